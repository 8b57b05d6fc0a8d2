//! The C2SP signed-note and checkpoint parsers and the Merkle proof
//! checkers on arbitrary input (receipts and checkpoints come from outside:
//! `jisr audit check-receipt`, auditors' copies): errors are fine, panics
//! are not. A note signed by the fuzzer's own key must open and give back
//! its text, whatever the text.

#![no_main]

use jisr::audit::merkle;
use jisr::audit::note::{open_note, Checkpoint, NoteSigner, NoteVerifier};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn signer() -> &'static NoteSigner {
    static SIGNER: OnceLock<NoteSigner> = OnceLock::new();
    SIGNER.get_or_init(|| NoteSigner::generate("fuzz.example/log").expect("a key"))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Arbitrary text as a verifier key, a signed note and a checkpoint body.
    let _ = NoteVerifier::from_text(&text);
    let verifier = signer().verifier();
    if let Ok(body) = open_note(&text, &verifier) {
        let _ = Checkpoint::parse(body);
    }
    let _ = Checkpoint::parse(&text);
    // Whatever the signer accepts to sign opens again to the same text.
    if let Ok(note) = signer().sign(&text) {
        assert_eq!(open_note(&note, &verifier).ok(), Some(&*text));
    }
    // Proof checkers on arbitrary sizes, indexes and hashes.
    if data.len() >= 48 {
        let n = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().expect("8 bytes"));
        let (a, b) = (n(0), n(8));
        let root: [u8; 32] = data[16..48].try_into().expect("32 bytes");
        let proof: Vec<[u8; 32]> = data[48..]
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect();
        let _ = merkle::verify_inclusion(&proof, a, &root, b, &root);
        let _ = merkle::verify_consistency(&proof, a, &root, b, &root);
    }
});
