//! C2SP tlog-cosignature/v1 with Ed25519: a witness's timestamped statement
//! that a checkpoint is the largest consistent tree it has seen for a log.
//!
//! A cosignature is a note signature line whose signature is
//! `u64 timestamp (big-endian) ‖ Ed25519 signature` over
//! `"cosignature/v1\ntime <timestamp>\n" ‖ checkpoint text`. Its key id uses
//! the algorithm byte 0x04 (a note signature uses 0x01), so a cosigner key
//! can never pass for a log key nor the reverse. Key texts follow
//! `signed-note`'s verifier key form with that byte:
//! `<name>+<hex key id>+base64(0x04 ‖ public key)`, and the secret
//! `PRIVATE+KEY+<name>+<hex key id>+base64(0x04 ‖ seed)`.

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};

use super::key::{decode_key, key_id, key_text, Kind, PrivateKey};
use super::{check_name, has_control, parse_signature_line, split_key_text, NoteError};
use super::{B64, SIG_PREFIX};

/// The algorithm byte of an Ed25519 cosignature/v1 key.
const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Timestamp and Ed25519 signature.
const BLOB_LEN: usize = 8 + 64;

/// A witness's Ed25519 cosigning key. `Debug` shows the name and key id only.
pub struct Cosigner {
    key: PrivateKey,
}

/// A cosigner's key: algorithm byte 0x04.
const COSIGNER: Kind = Kind {
    alg: ALG_COSIGNATURE_V1,
    which: "cosigner",
    not_seed: "not an Ed25519 cosigner seed (0x04)",
};

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.key.debug("Cosigner", f)
    }
}

impl Cosigner {
    /// A new cosigner with a fresh random key.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        PrivateKey::generate(name, COSIGNER).map(|key| Self { key })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex8 key id>+base64(0x04 ‖ seed)`.
    pub fn from_secret_text(text: &str) -> Result<Self, NoteError> {
        PrivateKey::from_secret_text(text, COSIGNER).map(|key| Self { key })
    }

    /// The secret text [`Self::from_secret_text`] reads; keep it out of logs.
    pub fn to_secret_text(&self) -> String {
        self.key.to_secret_text()
    }

    /// The cosigner name (a schema-less URL by convention).
    pub fn name(&self) -> &str {
        &self.key.name
    }

    /// The matching verifier.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.key.name.clone(),
            key_id: self.key.key_id,
            key: self.key.key.verifying_key(),
        }
    }

    /// The cosignature line (ending in a newline) over the checkpoint note
    /// text `text` (its body with the final newline, no signature lines),
    /// made at `timestamp` (POSIX seconds).
    pub fn cosign(&self, text: &str, timestamp: u64) -> String {
        let signature = self.key.key.sign(&signed_message(text, timestamp));
        let mut blob = Vec::with_capacity(4 + BLOB_LEN);
        blob.extend_from_slice(&self.key.key_id.to_be_bytes());
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        format!("{SIG_PREFIX}{} {}\n", self.key.name, B64.encode(blob))
    }
}

/// A witness's public cosigning key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// Parses `<name>+<hex8 key id>+base64(0x04 ‖ public key)`, checking
    /// the key id.
    pub fn from_text(vkey: &str) -> Result<Self, NoteError> {
        let bad = |why| NoteError::MalformedKey {
            which: "cosigner verifier",
            why,
        };
        let (name, stated, key) =
            split_key_text(vkey).ok_or_else(|| bad("expected <name>+<key id>+<key>"))?;
        check_name(name)?;
        let bytes = decode_key(key, ALG_COSIGNATURE_V1).ok_or_else(|| {
            bad("not an Ed25519 cosignature/v1 key (base64 of 0x04 and 32 bytes)")
        })?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not a valid Ed25519 point"))?;
        let computed = key_id(name, &key, ALG_COSIGNATURE_V1);
        if computed != stated {
            return Err(NoteError::KeyIdMismatch { stated, computed });
        }
        Ok(CosignatureVerifier {
            name: name.to_owned(),
            key_id: computed,
            key,
        })
    }

    /// The key text [`Self::from_text`] reads.
    pub fn to_text(&self) -> String {
        key_text(
            &self.name,
            self.key_id,
            self.key.as_bytes(),
            ALG_COSIGNATURE_V1,
        )
    }

    /// The cosigner name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Finds this cosigner's line among `lines` (signature lines, each
    /// ending in a newline: a witness's answer, or the signatures of a
    /// note) and checks it over the checkpoint `text`. Returns the line and
    /// its timestamp. Lines by other keys are ignored; a line by this key
    /// that does not verify is an error.
    pub fn verify<'a>(&self, text: &str, lines: &'a str) -> Result<(&'a str, u64), NoteError> {
        if has_control(lines) {
            return Err(NoteError::MalformedNote("control character"));
        }
        let id = || format!("{}+{:08x}", self.name, self.key_id);
        for line in lines.lines().filter(|l| !l.is_empty()) {
            let (name, key_id, blob) = parse_signature_line(line)?;
            if name != self.name || key_id != self.key_id {
                continue;
            }
            if blob.len() != BLOB_LEN {
                return Err(NoteError::BadSignature(id()));
            }
            let (time, signature) = blob.split_at(8);
            let mut be = [0u8; 8];
            be.copy_from_slice(time);
            let timestamp = u64::from_be_bytes(be);
            let signature =
                Signature::from_slice(signature).map_err(|_| NoteError::BadSignature(id()))?;
            self.key
                .verify_strict(&signed_message(text, timestamp), &signature)
                .map_err(|_| NoteError::BadSignature(id()))?;
            return Ok((line, timestamp));
        }
        Err(NoteError::NotSigned(id()))
    }
}

/// `cosignature/v1\ntime <t>\n` then the checkpoint text.
fn signed_message(text: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{text}").into_bytes()
}
