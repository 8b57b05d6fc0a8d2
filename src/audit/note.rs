//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, and the tlog
//! checkpoints (c2sp.org/tlog-checkpoint) the log signs with them.
//!
//! Keys use the text forms of Go's `golang.org/x/mod/sumdb/note`, so a key
//! made here works with Go tooling and the reverse:
//! verifier `<name>+<hex key id>+base64(0x01 ‖ public key)` and signer
//! `PRIVATE+KEY+<name>+<hex key id>+base64(0x01 ‖ seed)`.

mod checkpoint;
pub mod cosignature;
mod key;
#[cfg(test)]
mod tests;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};

pub(crate) use checkpoint::parse_size;
pub use checkpoint::Checkpoint;
pub use cosignature::{CosignatureVerifier, Cosigner};
use key::{decode_key, key_id, key_text, Kind, PrivateKey};

/// Signature type byte for Ed25519 in the signed-note spec.
const ALG_ED25519: u8 = 0x01;
/// The em dash (U+2014) and space that open a signature line.
const SIG_PREFIX: &str = "\u{2014} ";
/// Most signature lines looked at in one note; the spec requires accepting
/// at least 16, Go accepts 100.
const MAX_SIGNATURES: usize = 100;
const SECRET_PREFIX: &str = "PRIVATE+KEY+";

/// Why a key, note or checkpoint was refused.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// A key name that is empty or has a space or `+`.
    #[error("invalid key name {0:?}: it must be non-empty, without spaces or '+'")]
    InvalidName(String),
    /// Key text that does not parse.
    #[error("malformed {which} key: {why}")]
    MalformedKey {
        /// `"signer"` or `"verifier"`.
        which: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// Key text whose key id is not the one its name and key give.
    #[error("key id {stated:08x} does not match the key (computed {computed:08x})")]
    KeyIdMismatch {
        /// The id written in the key text.
        stated: u32,
        /// The id computed from the name and public key.
        computed: u32,
    },
    /// Text that cannot be signed, or a note that does not parse.
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    /// No signature line from the expected key.
    #[error("note has no signature by {0}")]
    NotSigned(String),
    /// A signature line from the expected key that does not verify.
    #[error("invalid signature by {0}")]
    BadSignature(String),
    /// A note text that is not a valid checkpoint.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
}

/// An Ed25519 note signer: a key name (e.g. `interop.gov.ma/jisr/gw-1`) and
/// its private key. `Debug` shows the name and key id only.
pub struct NoteSigner {
    key: PrivateKey,
}

/// A note signer's key: algorithm byte 0x01.
const SIGNER: Kind = Kind {
    alg: ALG_ED25519,
    which: "signer",
    not_seed: "not an Ed25519 seed",
};

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.key.debug("NoteSigner", f)
    }
}

impl NoteSigner {
    /// A new signer with a fresh random key.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        PrivateKey::generate(name, SIGNER).map(|key| Self { key })
    }

    /// Parses Go's private key text
    /// `PRIVATE+KEY+<name>+<hex8 key id>+base64(0x01 ‖ 32-byte seed)`,
    /// checking the key id against the key.
    pub fn from_secret_text(text: &str) -> Result<Self, NoteError> {
        PrivateKey::from_secret_text(text, SIGNER).map(|key| Self { key })
    }

    /// The private key text [`Self::from_secret_text`] reads. A secret: keep
    /// it out of logs.
    pub fn to_secret_text(&self) -> String {
        self.key.to_secret_text()
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.key.name
    }

    /// The key id: `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[:4]`, big-endian.
    pub fn key_id(&self) -> u32 {
        self.key.key_id
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.key.name.clone(),
            key_id: self.key.key_id,
            key: self.key.key.verifying_key(),
        }
    }

    /// Signs arbitrary bytes (an Ed25519 signature, 64 bytes). Callers
    /// put a domain-separation prefix in `message` so a signature made for
    /// one purpose cannot pass for another (e.g. a note).
    pub fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        self.key.key.sign(message).to_bytes()
    }

    /// Signs `text` (which must end in a newline and hold no control
    /// characters other than newlines) and returns the signed note:
    /// `text ‖ "\n" ‖ "— <name> base64(key id ‖ signature)\n"`.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let signature = self.key.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(4 + 64);
        blob.extend_from_slice(&self.key.key_id.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.key.name,
            B64.encode(blob)
        ))
    }
}

impl NoteVerifier {
    /// Whether `signature` is this key's Ed25519 signature of `message`.
    pub fn verify_bytes(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify_strict(message, &signature).is_ok()
    }
}

/// An Ed25519 note verifier: a key name and public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses verifier key text `<name>+<hex8 key id>+base64(0x01 ‖ public
    /// key)`, checking the key id against the name and key.
    pub fn from_text(vkey: &str) -> Result<Self, NoteError> {
        let bad = |why| NoteError::MalformedKey {
            which: "verifier",
            why,
        };
        let (name, stated, key) =
            split_key_text(vkey).ok_or_else(|| bad("expected <name>+<key id>+<key>"))?;
        check_name(name)?;
        let bytes: [u8; 32] =
            decode_key(key, ALG_ED25519).ok_or_else(|| bad("not an Ed25519 public key"))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not a valid Ed25519 point"))?;
        let computed = key_id(name, &key, ALG_ED25519);
        if computed != stated {
            return Err(NoteError::KeyIdMismatch { stated, computed });
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id: computed,
            key,
        })
    }

    /// The key text [`Self::from_text`] reads.
    pub fn to_text(&self) -> String {
        key_text(&self.name, self.key_id, self.key.as_bytes(), ALG_ED25519)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id (see [`NoteSigner::key_id`]).
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// `<name>+<hex key id>`, how errors name the key.
    fn id_text(&self) -> String {
        format!("{}+{:08x}", self.name, self.key_id)
    }
}

/// Opens a signed note: checks that `verifier` signed it and returns the
/// text (with its final newline). Signatures by other keys are ignored, as
/// the spec requires (they may be witnesses or a rotated key); a signature
/// that claims to be by `verifier` (same name and key id) but does not
/// verify refuses the whole note.
pub fn open_note<'a>(note: &'a str, verifier: &NoteVerifier) -> Result<&'a str, NoteError> {
    let malformed = NoteError::MalformedNote;
    if has_control(note) {
        return Err(malformed("control character"));
    }
    let body = note
        .strip_suffix('\n')
        .ok_or_else(|| malformed("does not end in a newline"))?;
    // The text ends at the last blank line; signatures follow it.
    let split = body
        .rfind("\n\n")
        .ok_or_else(|| malformed("no blank line before the signatures"))?;
    let (text, signatures) = (&note[..=split], &body[split + 2..]);
    let mut verified = false;
    for (count, line) in signatures.split('\n').enumerate() {
        if count == MAX_SIGNATURES {
            return Err(malformed("too many signatures"));
        }
        let (name, id, signature) = parse_signature_line(line)?;
        if name != verifier.name || id != verifier.key_id {
            continue;
        }
        let bad = |_| NoteError::BadSignature(verifier.id_text());
        let signature = Signature::from_slice(&signature).map_err(bad)?;
        verifier
            .key
            .verify_strict(text.as_bytes(), &signature)
            .map_err(bad)?;
        verified = true;
    }
    if !verified {
        return Err(NoteError::NotSigned(verifier.id_text()));
    }
    Ok(text)
}

/// Splits `— <name> <base64>` into name, key id and signature bytes.
fn parse_signature_line(line: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let malformed = NoteError::MalformedNote;
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or_else(|| malformed("signature line without the em dash"))?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or_else(|| malformed("signature line without a signature"))?;
    if check_name(name).is_err() {
        return Err(malformed("signature line with an invalid key name"));
    }
    let blob = B64
        .decode(b64)
        .map_err(|_| malformed("signature is not base64"))?;
    if blob.len() < 5 {
        return Err(malformed("signature too short"));
    }
    let (id, signature) = blob.split_at(4);
    let id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
    Ok((name, id, signature.to_vec()))
}

/// Splits `<name>+<hex8>+<base64>` (the name cannot contain `+`).
fn split_key_text(text: &str) -> Option<(&str, u32, &str)> {
    let mut parts = text.splitn(3, '+');
    let (name, hex, key) = (parts.next()?, parts.next()?, parts.next()?);
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((name, u32::from_str_radix(hex, 16).ok()?, key))
}

/// Key names: non-empty, no Unicode space, no `+`.
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(|c| c.is_whitespace() || c < ' ') {
        return Err(NoteError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// The spec forbids ASCII control characters other than newline.
fn has_control(text: &str) -> bool {
    text.bytes().any(|b| b < 0x20 && b != b'\n')
}

/// Note text: ends in a newline, no control characters but newlines.
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::MalformedNote("text does not end in a newline"));
    }
    if has_control(text) {
        return Err(NoteError::MalformedNote("control character"));
    }
    Ok(())
}
