//! The kept cosignatures: counted against the quorum, read back only when
//! they still verify against the log and the witnesses configured.

use super::kept::{self, Kept, FILE};
use crate::audit::note::{open_note, Cosigner};
use crate::audit::tests::{fill, new_log};

#[tokio::test]
async fn a_checkpoint_is_witnessed_at_the_quorum_and_read_back_only_where_it_verifies() {
    let (_dir, signer, log) = new_log(16);
    fill(&log, 0..10).await;
    log.close().await;
    let signed = log.checkpoint();
    assert_eq!(signed.checkpoint.size, 10);
    let text = signed.checkpoint.to_text();
    let (a, b) = (
        Cosigner::generate("a.ma/w").unwrap(),
        Cosigner::generate("b.ma/w").unwrap(),
    );
    let both = [a.verifier(), b.verifier()];

    let kept = Kept::open(&log, &both, 2).unwrap();
    assert_eq!(kept.latest_of(0), None);
    let one = kept.with(0, &signed, &a.cosign(&text, 1));
    assert_eq!(one.latest_of(0), Some(10));
    assert_eq!(one.witnessed(), None, "1 of 2 is not the quorum");
    let two = one.with(1, &signed, &b.cosign(&text, 2));
    let witnessed = two.witnessed().unwrap();
    assert_eq!((witnessed.size, witnessed.cosignatures), (10, 2));
    // The log's signature and both cosignatures, in the C2SP form.
    let body = open_note(&witnessed.note, &signer.verifier()).unwrap();
    let lines = &witnessed.note[body.len() + 1..];
    a.verifier().verify(body, lines).unwrap();
    b.verifier().verify(body, lines).unwrap();
    kept::write(&two).unwrap();

    let again = Kept::open(&log, &both, 2).unwrap();
    assert_eq!(again.witnessed(), Some(witnessed));
    // A witness no longer configured no longer counts.
    let only_a = Kept::open(&log, &both[..1], 1).unwrap();
    assert_eq!(only_a.witnessed().unwrap().cosignatures, 1);
    let stranger = Cosigner::generate("a.ma/w").unwrap().verifier();
    assert_eq!(Kept::open(&log, &[stranger], 1).unwrap().witnessed(), None);

    // A cosignature altered on disk is left out; so is a checkpoint whose
    // root is not the log's.
    let path = log.dir().join(FILE);
    let original = std::fs::read_to_string(&path).unwrap();
    let line = a.cosign(&text, 1);
    let sig = line.trim_end().rsplit(' ').next().unwrap();
    let mut bytes = sig.as_bytes().to_vec();
    bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
    let forged = original.replace(sig, std::str::from_utf8(&bytes).unwrap());
    assert_ne!(forged, original);
    std::fs::write(&path, &forged).unwrap();
    let read = Kept::open(&log, &both, 2).unwrap();
    assert_eq!(read.witnessed(), None);
    assert_eq!(read.latest_of(0), None);
    assert_eq!(read.latest_of(1), Some(10));

    let other_root = crate::audit::note::Checkpoint {
        root: [9; 32],
        ..signed.checkpoint
    }
    .to_text();
    let other_note = signer.sign(&other_root).unwrap();
    let disk = serde_json::json!({"checkpoints": [{"note": other_note, "cosignatures": [a.cosign(&other_root, 1).trim_end()]}]});
    std::fs::write(&path, disk.to_string()).unwrap();
    let read = Kept::open(&log, &both, 1).unwrap();
    assert_eq!(read.latest_of(0), None, "not the log's tree: left out");

    std::fs::write(&path, "not json").unwrap();
    let e = Kept::open(&log, &both, 1).unwrap_err().to_string();
    assert!(e.contains("move it aside"), "{e}");
}
