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
//! others sealed. The sealing itself is `crate::redis::seal`'s, shared
//! with the bus store under another label.

use crate::audit::keys::{hex, Pseudonymizer};
use crate::consent::store::StoreError;
use crate::redis::seal::{self, SealError};

/// The label the sealing key is derived under: no other use of the
/// pseudonym key yields the same bytes.
const LABEL: &[u8] = b"jisr-redis-consent-v1";

/// Seals and opens consents, and names a citizen's index, with keys derived
/// from the node's pseudonym key.
pub struct Sealer {
    sealer: seal::Sealer,
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
        Self {
            sealer: seal::Sealer::new(LABEL, |label| pseudonyms.digest(label)),
            pseudonyms,
        }
    }

    /// The name of a citizen's index in keys: the hex of their pseudonym.
    pub fn subject_name(&self, subject: &str) -> String {
        hex(&self.pseudonyms.pseudonym(subject))
    }

    /// `FORMAT || nonce || ciphertext || tag` of `clear`, bound to `id`.
    pub fn seal(&self, id: &str, clear: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.sealer
            .seal(id.as_bytes(), clear)
            .map_err(|e| failed(id, e))
    }

    /// The clear bytes of what [`Self::seal`] made for `id`.
    pub fn open(&self, id: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.sealer
            .open(id.as_bytes(), sealed)
            .map_err(|e| failed(id, e))
    }
}

/// A sealing failure in the consent store's words.
fn failed(id: &str, e: SealError) -> StoreError {
    match e {
        SealError::Undecryptable => StoreError::Undecryptable(id.to_owned()),
        SealError::Unsealed => StoreError::Damaged {
            id: id.to_owned(),
            what: format!("{e}; the citizen grants the consent again (see CHANGELOG)"),
        },
        SealError::TooShort(_) | SealError::TooLarge => StoreError::Damaged {
            id: id.to_owned(),
            what: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::seal::FORMAT;

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
