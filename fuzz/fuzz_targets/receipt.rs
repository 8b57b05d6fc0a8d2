//! Receipts, which come from outside: the JSON file `jisr audit prove`
//! writes and the citizen page offers for download, as `jisr audit
//! check-receipt` reads and checks it (`Receipt::parse`, `Receipt::check`,
//! with the key inside the receipt, as the command does without `--key`).
//!
//! A receipt that parses writes back to JSON that parses to the same
//! receipt. One that checks out names its tree size, and stops checking
//! out when its entry changes by one byte or when another key (of the same
//! name) is asked.

#![no_main]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use jisr::audit::note::{NoteSigner, NoteVerifier};
use jisr::tools::cli::audit::Receipt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(receipt) = Receipt::parse(text) else {
        return;
    };
    let json = serde_json::to_string(&receipt).expect("a receipt serialises");
    let again = Receipt::parse(&json).expect("a written receipt parses");
    assert_eq!(serde_json::to_string(&again).expect("serialises"), json);
    let Ok(verifier) = NoteVerifier::from_text(&receipt.verifier_key) else {
        return;
    };
    let Ok((size, _record)) = receipt.check(&verifier) else {
        return;
    };
    assert_eq!(size, receipt.tree_size);
    assert!(receipt.index < size);
    let mut altered = Receipt::parse(&json).expect("parses");
    let mut record = B64
        .decode(&altered.record)
        .expect("a checked record is base64");
    record.push(0);
    altered.record = B64.encode(&record);
    assert!(
        altered.check(&verifier).is_err(),
        "an altered entry checked out"
    );
    let stranger = NoteSigner::generate(verifier.name()).expect("a key of the same name");
    assert!(
        receipt.check(&stranger.verifier()).is_err(),
        "another key checked it"
    );
});
