//! The body of a C2SP tlog-witness `add-checkpoint` request: an `old <size>`
//! line, at most 63 base64 consistency-proof hashes one per line, an empty
//! line, then the signed checkpoint note. The witness reads it from anyone
//! on the network, so the parser is strict and bounded: it never allocates
//! more than the body it was given.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::audit::merkle::Hash;
use crate::audit::note::parse_size;

/// Most consistency-proof lines a request may carry (the spec's limit: a
/// proof in a tree of 2^63 leaves is at most 63 hashes long).
pub const MAX_PROOF_LINES: usize = 63;
/// Largest request body read: a checkpoint with the 100 signatures a note
/// may carry, and the proof, fit many times over.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the client believes the witness last
    /// cosigned for this log (0 the first time).
    pub old_size: u64,
    /// The RFC 6962 consistency proof from `old_size` to the checkpoint.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, signature lines included.
    pub checkpoint: String,
}

/// Why a request body was refused (the witness answers 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// More than [`MAX_BODY_BYTES`].
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// Not UTF-8 text.
    #[error("request body is not UTF-8 text")]
    NotText,
    /// The first line is not `old <decimal size>`.
    #[error("the first line must be `old <size>` (decimal, no leading zeros)")]
    OldSize,
    /// A proof line that is not base64 of 32 bytes.
    #[error("consistency proof line {0} is not base64 of a 32-byte hash")]
    ProofLine(usize),
    /// More than [`MAX_PROOF_LINES`] proof lines.
    #[error("more than {MAX_PROOF_LINES} consistency proof lines")]
    ProofTooLong,
    /// No empty line between the proof and the checkpoint.
    #[error("no empty line between the consistency proof and the checkpoint")]
    NoSeparator,
    /// Nothing (or no origin line) after the empty line.
    #[error("no checkpoint after the empty line")]
    NoCheckpoint,
}

impl AddCheckpoint {
    /// Parses a request body.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(RequestError::TooLarge);
        }
        let text = std::str::from_utf8(body).map_err(|_| RequestError::NotText)?;
        let (first, mut rest) = text.split_once('\n').ok_or(RequestError::OldSize)?;
        let old_size = first
            .strip_prefix("old ")
            .and_then(parse_size)
            .ok_or(RequestError::OldSize)?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest.split_once('\n').ok_or(RequestError::NoSeparator)?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(RequestError::ProofTooLong);
            }
            let hash = B64
                .decode(line)
                .ok()
                .and_then(|h| Hash::try_from(h).ok())
                .ok_or(RequestError::ProofLine(proof.len() + 1))?;
            proof.push(hash);
        }
        if rest.split('\n').next().is_none_or(str::is_empty) {
            return Err(RequestError::NoCheckpoint);
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            checkpoint: rest.to_owned(),
        })
    }

    /// The request body [`Self::parse`] reads.
    pub fn to_body(&self) -> String {
        let mut body = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            body.push_str(&B64.encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.checkpoint);
        body
    }

    /// The checkpoint's origin line (its first line), by which the witness
    /// finds the log before checking anything else.
    pub fn origin(&self) -> &str {
        self.checkpoint.split('\n').next().unwrap_or_default()
    }
}
