//! What the Redis consent store writes about a citizen, made unreadable to
//! whoever reads Redis without the operator's pseudonym key.
//!
//! A consent's signed encoding names the citizen, so it is stored sealed:
//! ChaCha20-Poly1305 under a key derived from the pseudonym key with its own
//! label, a random 96-bit nonce per write stored beside the ciphertext, and
//! the consent id as associated data (a sealed consent moved under another
//! id does not open). The subject index is keyed by the citizen's keyed
//! pseudonym, not by a plain hash anyone could compute from a guessed id.
//! Every replica shares `[audit] pseudonym_key`, so each opens what the
//! others sealed.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};

use crate::audit::keys::{hex, Pseudonymizer};
use crate::consent::store::StoreError;

/// The first byte of a sealed value: its format. An earlier version stored
/// the bare protobuf encoding, whose first byte is a field tag (0x0a for the
/// id), never this.
const FORMAT: u8 = 1;

/// The label the sealing key is derived under: no other use of the
/// pseudonym key yields the same bytes.
const LABEL: &[u8] = b"jisr-redis-consent-v1";

/// Seals and opens consents, and names a citizen's index, with keys derived
/// from the node's pseudonym key.
pub struct Sealer {
    key: LessSafeKey,
    pseudonyms: Pseudonymizer,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    /// The sealer of a node with this pseudonym key.
    pub fn new(pseudonyms: Pseudonymizer) -> Self {
        let derived = pseudonyms.digest(LABEL);
        // ChaCha20-Poly1305 takes exactly 32-byte keys, which `digest` returns.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &derived)
            .expect("a 32-byte key fits ChaCha20-Poly1305");
        Self {
            key: LessSafeKey::new(unbound),
            pseudonyms,
        }
    }

    /// The name of a citizen's index in keys: the hex of their pseudonym.
    pub fn subject_name(&self, subject: &str) -> String {
        hex(&self.pseudonyms.pseudonym(subject))
    }

    /// `FORMAT || nonce || ciphertext || tag` of `clear`, bound to `id`.
    pub fn seal(&self, id: &str, clear: &[u8]) -> Result<Vec<u8>, StoreError> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + clear.len() + 16);
        sealed.push(FORMAT);
        sealed.extend_from_slice(&nonce);
        let mut body = clear.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.as_bytes()),
                &mut body,
            )
            .map_err(|_| StoreError::Damaged {
                id: id.to_owned(),
                what: "it is too large to seal".into(),
            })?;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// The clear bytes of what [`Self::seal`] made for `id`.
    pub fn open(&self, id: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let Some((&FORMAT, rest)) = sealed.split_first() else {
            return Err(StoreError::Damaged {
                id: id.to_owned(),
                what: "it was stored unencrypted by an earlier version of Jisr, which this version does not read; the citizen grants the consent again (see CHANGELOG)".into(),
            });
        };
        if rest.len() < NONCE_LEN {
            return Err(StoreError::Damaged {
                id: id.to_owned(),
                what: format!("its sealed value is {} bytes, too short", sealed.len()),
            });
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        // `split_at` gave exactly NONCE_LEN bytes.
        let nonce = Nonce::try_assume_unique_for_key(nonce).expect("NONCE_LEN bytes");
        let mut body = body.to_vec();
        let clear = self
            .key
            .open_in_place(nonce, Aad::from(id.as_bytes()), &mut body)
            .map_err(|_| StoreError::Undecryptable(id.to_owned()))?;
        Ok(clear.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(key: u8) -> Sealer {
        Sealer::new(Pseudonymizer::new(&[key; 32]))
    }

    #[test]
    fn a_sealed_consent_opens_with_the_same_key_only() {
        let a = sealer(1);
        let sealed = a.seal("c-1", b"AB123456 consent").unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"AB123456".as_slice()));
        assert_eq!(a.open("c-1", &sealed).unwrap(), b"AB123456 consent");
        // A fresh nonce per write: the same consent never seals the same.
        assert_ne!(a.seal("c-1", b"AB123456 consent").unwrap(), sealed);

        let err = sealer(2).open("c-1", &sealed).unwrap_err();
        assert!(matches!(err, StoreError::Undecryptable(ref id) if id == "c-1"));
        assert_eq!(
            err.to_string(),
            "the consent `c-1` in Redis cannot be decrypted with this node's pseudonym key: every replica must share `[audit] pseudonym_key`"
        );
        // Moved under another id, it does not open either.
        assert!(matches!(
            a.open("c-2", &sealed),
            Err(StoreError::Undecryptable(_))
        ));
    }

    #[test]
    fn an_earlier_versions_value_or_a_truncated_one_is_named_not_opened() {
        let a = sealer(1);
        let old = a.open("c-1", b"\x0a\x03c-1").unwrap_err().to_string();
        assert!(old.contains("earlier version"), "{old}");
        let short = a.open("c-1", &[FORMAT, 1, 2]).unwrap_err().to_string();
        assert!(short.contains("too short"), "{short}");
        assert!(a.open("c-1", &[]).is_err());
    }

    #[test]
    fn the_subject_name_is_keyed() {
        let name = sealer(1).subject_name("AB123456");
        assert_eq!(name.len(), 64);
        assert_ne!(name, sealer(2).subject_name("AB123456"));
        assert!(!name.contains("AB123456"));
    }
}
