//! The Ed25519 key both a log's note signer (signed-note, algorithm byte
//! 0x01) and a witness's cosigner (cosignature/v1, 0x04) hold, with the key
//! texts they share: one type, told apart only by that byte, which goes
//! into the key id and the key text (so a key of one kind can never pass
//! for the other).

use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::{check_name, split_key_text, NoteError, B64, SECRET_PREFIX};

/// What a key is for: its algorithm byte and how errors name it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kind {
    /// The algorithm byte of its key id and key text.
    pub(super) alg: u8,
    /// `"signer"`, `"cosigner"`, …, for errors about the private key.
    pub(super) which: &'static str,
    /// What the error says when the key bytes are not of this kind.
    pub(super) not_seed: &'static str,
}

/// An Ed25519 private key with its name and key id. `Debug` (through its
/// owners) shows the name and key id only.
pub(super) struct PrivateKey {
    pub(super) name: String,
    pub(super) key_id: u32,
    pub(super) key: SigningKey,
    kind: Kind,
}

impl PrivateKey {
    /// A fresh random key named `name`.
    pub(super) fn generate(name: &str, kind: Kind) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self::from_seed(name, rand::random::<[u8; 32]>(), kind))
    }

    fn from_seed(name: &str, seed: [u8; 32], kind: Kind) -> Self {
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id(name, &key.verifying_key(), kind.alg);
        Self {
            name: name.to_owned(),
            key_id,
            key,
            kind,
        }
    }

    /// Parses `PRIVATE+KEY+<name>+<hex8 key id>+base64(alg ‖ seed)`,
    /// checking the key id against the key.
    pub(super) fn from_secret_text(text: &str, kind: Kind) -> Result<Self, NoteError> {
        let bad = |why| NoteError::MalformedKey {
            which: kind.which,
            why,
        };
        let rest = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| bad("missing PRIVATE+KEY+ prefix"))?;
        let (name, stated, key) =
            split_key_text(rest).ok_or_else(|| bad("expected <name>+<key id>+<key>"))?;
        check_name(name)?;
        let seed = decode_key(key, kind.alg).ok_or_else(|| bad(kind.not_seed))?;
        let private = Self::from_seed(name, seed, kind);
        if private.key_id != stated {
            return Err(NoteError::KeyIdMismatch {
                stated,
                computed: private.key_id,
            });
        }
        Ok(private)
    }

    /// The secret text [`Self::from_secret_text`] reads; keep it out of logs.
    pub(super) fn to_secret_text(&self) -> String {
        format!(
            "{SECRET_PREFIX}{}",
            key_text(&self.name, self.key_id, self.key.as_bytes(), self.kind.alg)
        )
    }

    /// The `Debug` of its owner `owner`: name and key id, key redacted.
    pub(super) fn debug(&self, owner: &str, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(owner)
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .field("key", &"<redacted>")
            .finish()
    }
}

/// `SHA-256(name ‖ "\n" ‖ alg ‖ public key)[:4]`, big-endian.
pub(super) fn key_id(name: &str, key: &VerifyingKey, alg: u8) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update([alg])
        .chain_update(key.as_bytes())
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// `<name>+<hex8 key id>+base64(alg ‖ key)`.
pub(super) fn key_text(name: &str, key_id: u32, key: &[u8; 32], alg: u8) -> String {
    let mut blob = Vec::with_capacity(33);
    blob.push(alg);
    blob.extend_from_slice(key);
    format!("{name}+{key_id:08x}+{}", B64.encode(blob))
}

/// Decodes `base64(alg ‖ 32 bytes)` into the 32 bytes.
pub(super) fn decode_key(b64: &str, alg: u8) -> Option<[u8; 32]> {
    let blob = B64.decode(b64).ok()?;
    match blob.split_first() {
        Some((&first, key)) if first == alg => key.try_into().ok(),
        _ => None,
    }
}
