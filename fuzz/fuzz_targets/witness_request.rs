//! The body of a tlog-witness `add-checkpoint` request, which a witness
//! reads from anyone on the network, and cosignature lines, which a log
//! reads from its witnesses: errors are fine, panics are not. A body that
//! parses writes back to the same bytes.

#![no_main]

use jisr::audit::note::{Checkpoint, CosignatureVerifier, Cosigner};
use jisr::audit::witnessing::AddCheckpoint;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn cosigner() -> &'static Cosigner {
    static COSIGNER: OnceLock<Cosigner> = OnceLock::new();
    COSIGNER.get_or_init(|| Cosigner::generate("fuzz.example/witness").expect("a key"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = AddCheckpoint::parse(data) {
        assert_eq!(request.to_body().as_bytes(), data);
        let _ = request.origin();
    }
    let text = String::from_utf8_lossy(data);
    let _ = CosignatureVerifier::from_text(&text);
    let _ = Cosigner::from_secret_text(&text);
    // Arbitrary lines as a witness's answer, over a fixed checkpoint.
    let checkpoint = Checkpoint {
        origin: "fuzz.example/log".into(),
        size: 1,
        root: [0; 32],
        extensions: vec![],
    }
    .to_text();
    let verifier = cosigner().verifier();
    let _ = verifier.verify(&checkpoint, &text);
    let line = cosigner().cosign(&checkpoint, data.len() as u64);
    assert!(verifier.verify(&checkpoint, &line).is_ok());
});
