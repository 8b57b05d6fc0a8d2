//! Known answers from Go's `golang.org/x/mod/sumdb/note` tests (the
//! PeterNeumann and EnochRoot keys and their signatures) and the C2SP
//! signed-note and tlog-checkpoint spec examples, then round trips and
//! refusals.

use proptest::prelude::*;

use super::*;

const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG: &str =
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str =
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

/// From c2sp.org/signed-note (signer's public key not published).
const SPEC_NOTE: &str = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";
/// From c2sp.org/tlog-checkpoint (signer's public key not published).
const SPEC_CHECKPOINT: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";

fn peter() -> NoteVerifier {
    NoteVerifier::from_text(PETER_VKEY).unwrap()
}

#[test]
fn go_keys_parse_and_key_ids_match() {
    let v = peter();
    assert_eq!((v.name(), v.key_id()), ("PeterNeumann", 0xc74f20a3));
    assert_eq!(v.to_text(), PETER_VKEY);
    let enoch = NoteVerifier::from_text(ENOCH_VKEY).unwrap();
    assert_eq!((enoch.name(), enoch.key_id()), ("EnochRoot", 0xaf0cfe78));

    let s = NoteSigner::from_secret_text(PETER_SKEY).unwrap();
    assert_eq!((s.name(), s.key_id()), ("PeterNeumann", 0xc74f20a3));
    assert_eq!(s.to_secret_text(), PETER_SKEY);
    assert_eq!(s.verifier(), v);
}

#[test]
fn go_signature_is_reproduced() {
    let s = NoteSigner::from_secret_text(PETER_SKEY).unwrap();
    assert_eq!(s.sign(TEXT).unwrap(), format!("{TEXT}\n{PETER_SIG}"));
}

#[test]
fn go_notes_open() {
    let enoch = NoteVerifier::from_text(ENOCH_VKEY).unwrap();
    let both = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    assert_eq!(open_note(&both, &peter()).unwrap(), TEXT);
    assert_eq!(open_note(&both, &enoch).unwrap(), TEXT);
    // Duplicate and unverifiable extra lines from other keys are ignored.
    let messy = format!(
        "{TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{}ABCD{}",
        &ENOCH_SIG[..60],
        &ENOCH_SIG[60..]
    );
    assert_eq!(open_note(&messy, &peter()).unwrap(), TEXT);
    assert!(matches!(
        open_note(&format!("{TEXT}\n{ENOCH_SIG}"), &peter()),
        Err(NoteError::NotSigned(_))
    ));
}

#[test]
fn go_refusals() {
    let v = peter();
    let corrupt = format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    assert!(matches!(
        open_note(&corrupt, &v),
        Err(NoteError::BadSignature(_))
    ));
    for msg in [
        TEXT.to_owned(),
        format!("{TEXT}\n"),
        format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
        format!("\x01{TEXT}\n{PETER_SIG}"),
        format!("{TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="),
        format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
        format!("{TEXT}\n{}", PETER_SIG.repeat(101)),
    ] {
        assert!(matches!(open_note(&msg, &v), Err(NoteError::MalformedNote(_))), "accepted {msg:?}");
    }
    // Another name or key id is another key: its signature is not ours.
    let misnamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego");
    assert!(matches!(
        open_note(&format!("{TEXT}\n{misnamed}"), &v),
        Err(NoteError::NotSigned(_))
    ));
    let wrong_id = PETER_SIG.replace("x08g", "xxxx");
    assert!(matches!(
        open_note(&format!("{TEXT}\n{wrong_id}"), &v),
        Err(NoteError::NotSigned(_))
    ));
}

/// Go's mangling test: every proper substring and every one-byte change of
/// a key text is refused.
fn assert_manglings_refused(key: &str, parse: impl Fn(&str) -> bool) {
    let b = key.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if (i, j) != (0, b.len()) {
                let s = String::from_utf8_lossy(&b[i..j]);
                assert!(!parse(&s), "accepted {s:?}");
            }
        }
    }
    let mut b = b.to_vec();
    for i in 0..b.len() {
        b[i] += 1;
        let s = String::from_utf8_lossy(&b);
        assert!(!parse(&s), "accepted {s:?}");
        b[i] -= 1;
    }
}

#[test]
fn mangled_keys_refused() {
    assert_manglings_refused(PETER_VKEY, |k| NoteVerifier::from_text(k).is_ok());
    assert_manglings_refused(PETER_SKEY, |k| NoteSigner::from_secret_text(k).is_ok());
    // Wrong key length and unknown algorithm, each with a matching key id.
    for k in [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ] {
        assert!(NoteVerifier::from_text(k).is_err(), "accepted {k}");
    }
}

#[test]
fn spec_examples_parse() {
    // No published key for these, so they cannot verify, but they must
    // parse: the refusal is "not signed by us", not "malformed".
    assert!(matches!(
        open_note(SPEC_NOTE, &peter()),
        Err(NoteError::NotSigned(_))
    ));
    assert!(matches!(
        open_note(SPEC_CHECKPOINT, &peter()),
        Err(NoteError::NotSigned(_))
    ));
    let body = SPEC_CHECKPOINT.split_once("\n\n").unwrap().0;
    let c = Checkpoint::parse(&format!("{body}\n")).unwrap();
    assert_eq!(
        (c.origin.as_str(), c.size),
        ("example.com/behind-the-sofa", 20852163)
    );
    assert_eq!(&c.root[..4], &[0x0a, 0xc5, 0x18, 0x6a]);
    assert_eq!(c.to_text(), format!("{body}\n"));
}

#[test]
fn round_trips() {
    let s = NoteSigner::generate("interop.gov.ma/jisr/gw-1").unwrap();
    let again = NoteSigner::from_secret_text(&s.to_secret_text()).unwrap();
    assert_eq!(again.verifier(), s.verifier());
    let v = NoteVerifier::from_text(&s.verifier().to_text()).unwrap();
    assert_eq!(v, s.verifier());
    assert_eq!(v.key_id(), s.key_id());

    let text = "line one\n\nafter a blank line\n";
    let note = s.sign(text).unwrap();
    assert!(note.contains("\n\n\u{2014} interop.gov.ma/jisr/gw-1 "));
    assert_eq!(open_note(&note, &v).unwrap(), text);
}

#[test]
fn tampering_refused() {
    let s = NoteSigner::generate("jisr.test/log").unwrap();
    let v = s.verifier();
    let note = s.sign("jisr.test/log\n5\nAAAA\n").unwrap();
    let tampered = note.replacen("\n5\n", "\n6\n", 1);
    assert!(matches!(
        open_note(&tampered, &v),
        Err(NoteError::BadSignature(_))
    ));

    let (head, sig) = note.rsplit_once(' ').unwrap();
    let mut blob = B64.decode(sig.trim_end()).unwrap();
    blob[10] ^= 1;
    let tampered = format!("{head} {}\n", B64.encode(&blob));
    assert!(matches!(
        open_note(&tampered, &v),
        Err(NoteError::BadSignature(_))
    ));

    // Same name, other key: a different key id, so not our signature.
    let other = NoteSigner::generate("jisr.test/log").unwrap();
    assert!(matches!(
        open_note(&note, &other.verifier()),
        Err(NoteError::NotSigned(_))
    ));
}

#[test]
fn extra_signers_ignored() {
    let log = NoteSigner::generate("jisr.test/log").unwrap();
    let witness = NoteSigner::generate("witness.example/w1").unwrap();
    let text = "jisr.test/log\n1\nAAAA\n";
    let note = log.sign(text).unwrap();
    let witness_line = witness
        .sign(text)
        .unwrap()
        .rsplit_once("\n\n")
        .unwrap()
        .1
        .to_owned();
    let cosigned = format!("{note}{witness_line}");
    assert_eq!(open_note(&cosigned, &log.verifier()).unwrap(), text);
    assert_eq!(open_note(&cosigned, &witness.verifier()).unwrap(), text);
    let witness_first = format!(
        "{text}\n{witness_line}{}",
        note.rsplit_once("\n\n").unwrap().1
    );
    assert_eq!(open_note(&witness_first, &log.verifier()).unwrap(), text);
}

#[test]
fn names_and_texts_checked() {
    for name in ["", "a+b", "a b", "a\tb", "a\u{a0}b"] {
        assert!(
            matches!(NoteSigner::generate(name), Err(NoteError::InvalidName(_))),
            "accepted {name:?}"
        );
    }
    let s = NoteSigner::generate("jisr.test/log").unwrap();
    assert!(s.sign("no newline").is_err());
    assert!(s.sign("tab\there\n").is_err());
}

#[test]
fn signer_debug_redacts_the_key() {
    let s = NoteSigner::from_secret_text(PETER_SKEY).unwrap();
    let debug = format!("{s:?}");
    assert!(debug.contains("PeterNeumann") && debug.contains("redacted"));
    assert!(
        !debug.contains("AYEKFALV") && !debug.contains("129, 10, 20"),
        "{debug}"
    );
}

#[test]
fn checkpoint_through_a_note() {
    let s = NoteSigner::generate("interop.gov.ma/jisr/gw-1").unwrap();
    let c = Checkpoint {
        origin: s.name().to_owned(),
        size: 42,
        root: [7; 32],
        extensions: vec!["ext one".into()],
    };
    let note = s.sign(&c.to_text()).unwrap();
    assert_eq!(
        Checkpoint::parse(open_note(&note, &s.verifier()).unwrap()).unwrap(),
        c
    );
}

#[test]
fn malformed_checkpoints_refused() {
    let root = B64.encode([1u8; 32]);
    assert_eq!(
        Checkpoint::parse(&format!("o\n0\n{root}\n")).unwrap().size,
        0
    );
    assert_eq!(
        Checkpoint::parse(&format!("o\n18446744073709551615\n{root}\n"))
            .unwrap()
            .size,
        u64::MAX
    );
    let bad = [
        format!("o\n0x10\n{root}\n"),
        format!("o\n+5\n{root}\n"),
        format!("o\n-1\n{root}\n"),
        format!("o\n007\n{root}\n"),
        format!("o\n00\n{root}\n"),
        format!("o\n 7\n{root}\n"),
        format!("o\n\n{root}\n"),
        format!("o\n18446744073709551616\n{root}\n"),
        "o\n5\n!!!!\n".to_owned(),
        format!("o\n5\n{}\n", B64.encode([1u8; 31])),
        format!("o\n5\n{}\n", B64.encode([1u8; 33])),
        format!("o\n5\n{}\n", root.trim_end_matches('=')),
        format!("o\n5\n{}F=\n", root.strip_suffix("E=").unwrap()), // non-zero pad bits
        "o\n5\n".to_owned(),
        "o\n".to_owned(),
        String::new(),
        format!("o\n5\n{root}"),
        format!("\n5\n{root}\n"),
        format!("o\n5\n{root}\n\n"),
        format!("o\n5\n{root}\next\n\nmore\n"),
    ];
    for text in bad {
        assert!(
            matches!(
                Checkpoint::parse(&text),
                Err(NoteError::MalformedCheckpoint(_))
            ),
            "accepted {text:?}"
        );
    }
}

proptest! {
    #[test]
    fn checkpoint_round_trip(
        origin in "[a-z0-9./-]{1,40}",
        size in any::<u64>(),
        root in any::<[u8; 32]>(),
        extensions in prop::collection::vec("[ -~]{1,30}", 0..4),
    ) {
        let c = Checkpoint { origin, size, root, extensions };
        prop_assert_eq!(Checkpoint::parse(&c.to_text()).unwrap(), c);
    }
}
