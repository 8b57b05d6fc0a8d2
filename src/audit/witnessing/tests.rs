use super::request::{AddCheckpoint, RequestError, MAX_BODY_BYTES, MAX_PROOF_LINES};
use crate::audit::note::{Checkpoint, CosignatureVerifier, Cosigner, NoteError, NoteSigner};
use proptest::prelude::*;

const SPEC_EXAMPLE: &str = "old 20852014
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=

example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
";

#[test]
fn parses_the_spec_example_and_writes_it_back() {
    let request = AddCheckpoint::parse(SPEC_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(request.old_size, 20_852_014);
    assert_eq!(request.proof.len(), 2);
    assert_eq!(request.origin(), "example.com/behind-the-sofa");
    assert!(request
        .checkpoint
        .starts_with("example.com/behind-the-sofa\n20852163\n"));
    assert_eq!(request.to_body(), SPEC_EXAMPLE);
}

#[test]
fn refuses_each_malformed_part_by_name() {
    let cases: &[(&str, RequestError)] = &[
        ("", RequestError::OldSize),
        ("old 01\n\norigin\n", RequestError::OldSize),
        ("old -1\n\norigin\n", RequestError::OldSize),
        ("old  1\n\norigin\n", RequestError::OldSize),
        ("new 1\n\norigin\n", RequestError::OldSize),
        (
            "old 18446744073709551616\n\norigin\n",
            RequestError::OldSize,
        ),
        ("old 1\nnot base64\n\norigin\n", RequestError::ProofLine(1)),
        ("old 1\nAAAA\n\norigin\n", RequestError::ProofLine(1)),
        ("old 1\norigin\n", RequestError::ProofLine(1)),
        ("old 1\n", RequestError::NoSeparator),
        ("old 1\n\n", RequestError::NoCheckpoint),
        ("old 1\n\n\norigin\n", RequestError::NoCheckpoint),
    ];
    for (body, want) in cases {
        assert_eq!(
            AddCheckpoint::parse(body.as_bytes()).as_ref(),
            Err(want),
            "{body:?}"
        );
    }
    assert_eq!(
        AddCheckpoint::parse(b"old 1\n\xff\n\norigin\n"),
        Err(RequestError::NotText)
    );
}

#[test]
fn bounds_the_proof_and_the_body() {
    let line = "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n";
    let body = |n: usize| format!("old 5\n{}\norigin\n1\nroot\n", line.repeat(n));
    let request = AddCheckpoint::parse(body(MAX_PROOF_LINES).as_bytes()).unwrap();
    assert_eq!(request.proof.len(), MAX_PROOF_LINES);
    assert_eq!(
        AddCheckpoint::parse(body(MAX_PROOF_LINES + 1).as_bytes()),
        Err(RequestError::ProofTooLong)
    );
    let huge = format!("old 0\n\norigin\n{}", "x".repeat(MAX_BODY_BYTES));
    assert_eq!(
        AddCheckpoint::parse(huge.as_bytes()),
        Err(RequestError::TooLarge)
    );
}

proptest! {
    /// Untrusted input: any bytes give a request or an error, never a panic.
    #[test]
    fn any_bytes_parse_or_refuse(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = AddCheckpoint::parse(&body);
    }

    /// Near-valid bodies (lines from the grammar, shuffled) never panic,
    /// and whatever parses writes back to the same bytes.
    #[test]
    fn parsed_bodies_round_trip(lines in proptest::collection::vec(prop_oneof![
        Just("old 0"), Just("old 7"), Just("old 007"), Just(""),
        Just("PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw="), Just("origin"),
        Just("12"), Just("\u{2014} k AAAA"),
    ], 0..12)) {
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        if let Ok(request) = AddCheckpoint::parse(body.as_bytes()) {
            prop_assert_eq!(request.to_body(), body);
        }
    }

    /// Any request written and read back is the same request.
    #[test]
    fn written_requests_read_back(
        old_size in any::<u64>(),
        proof in proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_PROOF_LINES),
        origin in "[a-z./]{1,20}",
    ) {
        let request = AddCheckpoint { old_size, proof, checkpoint: format!("{origin}\n1\nx\n") };
        prop_assert_eq!(AddCheckpoint::parse(request.to_body().as_bytes()).unwrap(), request);
    }
}

fn checkpoint_text() -> String {
    Checkpoint {
        origin: "interop.gov.ma/jisr/gw-1".into(),
        size: 3,
        root: [7; 32],
        extensions: vec![],
    }
    .to_text()
}

#[test]
fn a_cosignature_verifies_with_its_timestamp_and_only_over_its_checkpoint() {
    let witness = Cosigner::generate("cndp.ma/witness").unwrap();
    let verifier = CosignatureVerifier::from_text(&witness.verifier().to_text()).unwrap();
    let text = checkpoint_text();
    let line = witness.cosign(&text, 1_700_000_000);
    let answer = format!("\u{2014} other.example/w AAAAAAAAAAAA\n{line}");
    assert_eq!(
        verifier.verify(&text, &answer).unwrap(),
        (line.trim_end(), 1_700_000_000)
    );
    let other = text.replace("\n3\n", "\n4\n");
    assert!(matches!(
        verifier.verify(&other, &line),
        Err(NoteError::BadSignature(_))
    ));
    let stranger = Cosigner::generate("cndp.ma/witness").unwrap().verifier();
    assert!(matches!(
        stranger.verify(&text, &line),
        Err(NoteError::NotSigned(_))
    ));
}

#[test]
fn cosigner_keys_round_trip_and_differ_from_log_keys() {
    let witness = Cosigner::generate("cndp.ma/witness").unwrap();
    let again = Cosigner::from_secret_text(&witness.to_secret_text()).unwrap();
    assert_eq!(again.verifier(), witness.verifier());
    // A log's note key is not a cosigner key, and the reverse: the
    // algorithm byte (0x01 against 0x04) keeps them apart.
    let log = NoteSigner::generate("cndp.ma/witness").unwrap();
    assert!(CosignatureVerifier::from_text(&log.verifier().to_text()).is_err());
    assert!(Cosigner::from_secret_text(&log.to_secret_text()).is_err());
    assert!(NoteSigner::from_secret_text(&witness.to_secret_text()).is_err());
}

/// The message layout of c2sp.org/tlog-cosignature, checked by rebuilding
/// it and verifying the signature with the bare Ed25519 key.
#[test]
fn the_signed_message_is_the_specified_one() {
    use base64::Engine as _;
    let witness = Cosigner::generate("w.example/1").unwrap();
    let text = checkpoint_text();
    let line = witness.cosign(&text, 1_679_315_147);
    let b64 = line.trim_end().rsplit(' ').next().unwrap();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(blob.len(), 4 + 8 + 64);
    assert_eq!(blob[4..12], 1_679_315_147u64.to_be_bytes());
    let vkey = witness.verifier().to_text();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(vkey.splitn(3, '+').nth(2).unwrap())
        .unwrap();
    assert_eq!(raw[0], 0x04);
    let key = ed25519_dalek::VerifyingKey::from_bytes(raw[1..].try_into().unwrap()).unwrap();
    let message = format!("cosignature/v1\ntime 1679315147\n{text}");
    let signature = ed25519_dalek::Signature::from_slice(&blob[12..]).unwrap();
    key.verify_strict(message.as_bytes(), &signature).unwrap();
}
