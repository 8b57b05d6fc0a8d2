//! What the consent API's `Verify` accepts from any agency: a
//! `VerifyRequest` off the wire, opened with `consent::artefact::open`, the
//! code `Verify` runs. An artefact opens iff the consent key signed exactly
//! its bytes: the target signs what it is given and checks that this opens
//! to the same consent, and that the same signature over other bytes, or by
//! another key, does not.

#![no_main]

#[path = "common.rs"]
mod common;

use jisr::audit::note::NoteSigner;
use jisr::consent::artefact::{self, ConsentSigner};
use jisr::proto::jisr::consent::v1::{Consent, SignedConsent, VerifyRequest};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use std::sync::LazyLock;

static SIGNER: LazyLock<ConsentSigner> =
    LazyLock::new(|| ConsentSigner::new(common::consent_key()));

/// Another key of the same name, as a forger would make.
static STRANGER: LazyLock<NoteSigner> = LazyLock::new(|| {
    NoteSigner::generate(common::consent_key().name()).expect("a key of the same name")
});

fuzz_target!(|data: &[u8]| {
    let verifier = SIGNER.verifier();
    // As `Verify` receives it.
    if let Ok(request) = VerifyRequest::decode(data) {
        if let Some(signed) = request.consent {
            match artefact::open(&verifier, &signed) {
                Ok(Some(consent)) => {
                    // Only the fixture key's own signatures open: the seeds'.
                    assert!(artefact::verify(
                        &verifier,
                        &signed.consent,
                        &signed.signature
                    ));
                    assert_eq!(
                        Consent::decode(signed.consent.as_slice()).ok(),
                        Some(consent)
                    );
                    let other = STRANGER.verifier();
                    assert!(matches!(artefact::open(&other, &signed), Ok(None)));
                }
                Ok(None) => {}
                Err(refusal) => panic!("signed bytes that do not decode: {refusal:?}"),
            }
        }
    }
    // Whatever consent decodes, the gateway's signature over its encoding
    // opens to it, and to nothing else.
    if let Ok(consent) = Consent::decode(data) {
        let (encoded, signature) = SIGNER.sign(&consent);
        let signed = SignedConsent {
            consent: encoded.clone(),
            signature: signature.clone(),
            ..Default::default()
        };
        let opened = artefact::open(&verifier, &signed).expect("its own encoding decodes");
        assert_eq!(opened.as_ref(), Some(&consent));
        let mut altered = signed.clone();
        altered.consent.push(0);
        assert!(matches!(artefact::open(&verifier, &altered), Ok(None)));
        let mut forged = signed;
        forged.signature = STRANGER.sign_bytes(&encoded).to_vec();
        assert!(matches!(artefact::open(&verifier, &forged), Ok(None)));
    }
});
