//! Sealing what a part writes to Redis about a citizen, so that whoever
//! reads Redis without the operator's pseudonym key learns nothing from it.
//!
//! ChaCha20-Poly1305 under a key the caller derives from the pseudonym key
//! with its own label (each part seals under a different key), a random
//! 96-bit nonce per write stored beside the ciphertext, and caller-given
//! associated data (a sealed value moved under another name does not open).
//! A sealed value starts with a format byte, so a value stored unsealed by
//! an earlier version is named as such rather than mistaken for damage.
//! This module knows no pseudonym key: the part derives the key (the
//! foundations do not import the parts) and words the errors for its reader.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};

/// The first byte of a sealed value: its format. Earlier versions stored
/// bare protobuf encodings, whose first byte is a field tag (0x0a, 0x12…),
/// never this.
pub const FORMAT: u8 = 1;

/// Why a value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// It does not start with [`FORMAT`]: stored unsealed by an earlier
    /// version of Jisr.
    #[error(
        "it was stored unencrypted by an earlier version of Jisr, which this version does not read"
    )]
    Unsealed,
    /// Shorter than a format byte and a nonce.
    #[error("its sealed value is {0} bytes, too short")]
    TooShort(usize),
    /// The tag does not verify: another key sealed it (a replica with
    /// another pseudonym key), or it was altered or moved.
    #[error("it cannot be decrypted with this node's pseudonym key: every replica must share `[audit] pseudonym_key`")]
    Undecryptable,
    /// Larger than ChaCha20-Poly1305 can seal (about 256 GiB).
    #[error("it is too large to seal")]
    TooLarge,
}

/// Seals and opens values under one derived key.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    /// The sealer whose key is `derive(label)`: the caller's keyed digest
    /// (HMAC under the pseudonym key) of its own label, so no other use of
    /// the pseudonym key yields the same bytes.
    pub fn new(label: &[u8], derive: impl FnOnce(&[u8]) -> [u8; 32]) -> Self {
        let derived = derive(label);
        // ChaCha20-Poly1305 takes exactly 32-byte keys, which `derive` returns.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &derived)
            .expect("a 32-byte key fits ChaCha20-Poly1305");
        Self {
            key: LessSafeKey::new(unbound),
        }
    }

    /// `FORMAT || nonce || ciphertext || tag` of `clear`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], clear: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + clear.len() + 16);
        sealed.push(FORMAT);
        sealed.extend_from_slice(&nonce);
        let mut body = clear.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| SealError::TooLarge)?;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// The clear bytes of what [`Self::seal`] made with `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let Some((&FORMAT, rest)) = sealed.split_first() else {
            return Err(SealError::Unsealed);
        };
        if rest.len() < NONCE_LEN {
            return Err(SealError::TooShort(sealed.len()));
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        // `split_at` gave exactly NONCE_LEN bytes.
        let nonce = Nonce::try_assume_unique_for_key(nonce).expect("NONCE_LEN bytes");
        let mut body = body.to_vec();
        let clear = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut body)
            .map_err(|_| SealError::Undecryptable)?;
        Ok(clear.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(key: u8, label: &[u8]) -> Sealer {
        Sealer::new(label, |l| {
            let mut k = [key; 32];
            k[0] = l.len() as u8;
            k[1] = l.first().copied().unwrap_or(0);
            k
        })
    }

    #[test]
    fn a_sealed_value_opens_with_the_same_key_and_aad_only() {
        let a = sealer(1, b"a");
        let sealed = a.seal(b"id-1", b"AB123456 event").unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"AB123456".as_slice()));
        assert_eq!(a.open(b"id-1", &sealed).unwrap(), b"AB123456 event");
        // A fresh nonce per write: the same value never seals the same.
        assert_ne!(a.seal(b"id-1", b"AB123456 event").unwrap(), sealed);
        assert_eq!(
            sealer(2, b"a").open(b"id-1", &sealed),
            Err(SealError::Undecryptable)
        );
        // Another label derives another key.
        assert_eq!(
            sealer(1, b"b").open(b"id-1", &sealed),
            Err(SealError::Undecryptable)
        );
        assert_eq!(a.open(b"id-2", &sealed), Err(SealError::Undecryptable));
    }

    #[test]
    fn an_unsealed_or_truncated_value_is_named_not_opened() {
        let a = sealer(1, b"a");
        assert_eq!(a.open(b"x", b"\x0a\x03c-1"), Err(SealError::Unsealed));
        assert_eq!(a.open(b"x", &[FORMAT, 1, 2]), Err(SealError::TooShort(3)));
        assert_eq!(a.open(b"x", &[]), Err(SealError::Unsealed));
    }
}
