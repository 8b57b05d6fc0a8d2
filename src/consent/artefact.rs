//! Consent artefacts: their canonical encoding, the gateway's signature over
//! it, and their state at a given time.

use super::store::StoredConsent;
use crate::audit::note::{NoteSigner, NoteVerifier};
use crate::audit::AuditError;
use crate::proto::jisr::consent::v1::{Consent, SignedConsent, Status};
use crate::refusal::{Reason, Refusal};
use prost::Message as _;
use std::path::Path;

/// Prefix of the signed bytes, so a consent signature can pass for nothing else.
pub const SIGNING_DOMAIN: &[u8] = b"jisr-consent-v1\n";

/// Signs consents with the operator's consent key (shared by replicas).
#[derive(Debug)]
pub struct ConsentSigner {
    signer: NoteSigner,
}

impl ConsentSigner {
    /// Loads the key, or creates it, named `<trust-domain>/jisr/consents`.
    pub fn load_or_create(path: &Path, name: &str) -> Result<Self, AuditError> {
        Ok(Self {
            signer: crate::audit::keys::load_or_create_key(
                path,
                name,
                crate::audit::keys::KeyUse::Consents,
            )?,
        })
    }

    /// A signer from an existing key (tests).
    pub fn new(signer: NoteSigner) -> Self {
        Self { signer }
    }

    /// The canonical encoding of a consent and the signature over it.
    pub fn sign(&self, consent: &Consent) -> (Vec<u8>, Vec<u8>) {
        let encoded = consent.encode_to_vec();
        let signature = self.signer.sign_bytes(&signed_bytes(&encoded)).to_vec();
        (encoded, signature)
    }

    /// The verifier key receipts are checked with.
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }
}

fn signed_bytes(encoded: &[u8]) -> Vec<u8> {
    let mut message = SIGNING_DOMAIN.to_vec();
    message.extend_from_slice(encoded);
    message
}

/// Whether `signature` is the consent key's signature over `encoded`.
pub fn verify(verifier: &NoteVerifier, encoded: &[u8], signature: &[u8]) -> bool {
    verifier.verify_bytes(&signed_bytes(encoded), signature)
}

/// What `Verify` makes of an artefact any agency sends: `None` when the
/// consent key did not sign these bytes, else the consent they encode.
/// Bytes the key signed that do not decode are `INVALID_REQUEST` (the
/// gateway signs only encodings it made, so this means a key was misused).
pub fn open(verifier: &NoteVerifier, signed: &SignedConsent) -> Result<Option<Consent>, Refusal> {
    if !verify(verifier, &signed.consent, &signed.signature) {
        return Ok(None);
    }
    Consent::decode(signed.consent.as_slice())
        .map(Some)
        .map_err(|e| {
            Refusal::new(
                Reason::InvalidRequest,
                format!("the consent bytes do not decode: {e}"),
            )
        })
}

/// The state of a stored consent at `now` (µs since the epoch).
pub fn status(stored: &StoredConsent, now: i64) -> Status {
    let c = &stored.consent;
    if stored.revoked_unix_micros != 0 {
        Status::Revoked
    } else if now >= c.not_after_unix_micros {
        Status::Expired
    } else if c.max_uses != 0 && stored.uses >= c.max_uses {
        Status::Exhausted
    } else {
        Status::Active
    }
}

/// The API form of a stored consent.
pub fn to_signed(stored: &StoredConsent, verifier: &NoteVerifier, now: i64) -> SignedConsent {
    SignedConsent {
        consent: stored.encoded.clone(),
        signature: stored.signature.clone(),
        verifier_key: verifier.to_text(),
        status: status(stored, now) as i32,
        revoked_unix_micros: stored.revoked_unix_micros,
        uses: stored.uses,
        decoded: Some(stored.consent.clone()),
    }
}

/// Microseconds since the epoch, now.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_encoding_and_nothing_else() {
        let signer =
            ConsentSigner::new(NoteSigner::generate("interop.gov.ma/jisr/consents").unwrap());
        let consent = Consent {
            id: "c1".into(),
            subject: "AB123456".into(),
            consumer: "education".into(),
            purpose: "bac-candidature".into(),
            not_after_unix_micros: i64::MAX,
            ..Default::default()
        };
        let (encoded, signature) = signer.sign(&consent);
        assert!(verify(&signer.verifier(), &encoded, &signature));
        let mut other = consent;
        other.subject = "CD234567".into();
        assert!(!verify(
            &signer.verifier(),
            &other.encode_to_vec(),
            &signature
        ));
        // Not valid as a signature of the bare encoding (domain separation).
        assert!(!signer.verifier().verify_bytes(&encoded, &signature));
        let stranger = NoteSigner::generate("interop.gov.ma/jisr/consents").unwrap();
        assert!(!verify(&stranger.verifier(), &encoded, &signature));
    }

    #[test]
    fn an_artefact_opens_only_under_the_key_that_signed_its_bytes() {
        let signer =
            ConsentSigner::new(NoteSigner::generate("interop.gov.ma/jisr/consents").unwrap());
        let consent = Consent {
            id: "c1".into(),
            subject: "AB123456".into(),
            not_after_unix_micros: i64::MAX,
            ..Default::default()
        };
        let (encoded, signature) = signer.sign(&consent);
        let signed = SignedConsent {
            consent: encoded,
            signature,
            ..Default::default()
        };
        let opened = open(&signer.verifier(), &signed).unwrap();
        assert_eq!(opened, Some(consent));
        let mut altered = signed.clone();
        altered.consent.push(0);
        assert_eq!(open(&signer.verifier(), &altered).unwrap(), None);
        let stranger = NoteSigner::generate("interop.gov.ma/jisr/consents").unwrap();
        assert_eq!(open(&stranger.verifier(), &signed).unwrap(), None);
        // Bytes the key did sign that are no consent: a typed refusal.
        let garbage = ConsentSigner::new(stranger);
        let bytes = vec![0xff, 0xff, 0xff];
        let signature = garbage.signer.sign_bytes(&signed_bytes(&bytes)).to_vec();
        let refused = open(
            &garbage.verifier(),
            &SignedConsent {
                consent: bytes,
                signature,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(refused.reason, Reason::InvalidRequest);
    }

    #[test]
    fn status_follows_revocation_expiry_and_uses() {
        let consent = Consent {
            not_after_unix_micros: 100,
            max_uses: 2,
            ..Default::default()
        };
        let mut stored = StoredConsent {
            encoded: vec![],
            signature: vec![],
            consent,
            revoked_unix_micros: 0,
            uses: 0,
        };
        assert_eq!(status(&stored, 50), Status::Active);
        assert_eq!(status(&stored, 100), Status::Expired);
        stored.uses = 2;
        assert_eq!(status(&stored, 50), Status::Exhausted);
        stored.revoked_unix_micros = 10;
        assert_eq!(status(&stored, 50), Status::Revoked);
    }
}
