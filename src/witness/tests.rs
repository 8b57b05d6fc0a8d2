use super::{KnownLog, Verdict, Witness};
use crate::audit::merkle::{leaf_hash, prove_consistency, MemoryTree};
use crate::audit::note::{Checkpoint, Cosigner, NoteSigner};
use crate::audit::witnessing::AddCheckpoint;

/// A log of our own: a key and a tree, making checkpoints and proofs.
struct TestLog {
    signer: NoteSigner,
    tree: MemoryTree,
}

impl TestLog {
    fn new(signer: NoteSigner) -> Self {
        TestLog {
            signer,
            tree: MemoryTree::new(),
        }
    }

    fn grow(&mut self, tag: &str, n: u64) {
        for i in 0..n {
            let size = self.tree.size();
            self.tree
                .push(leaf_hash(format!("{tag}-{size}-{i}").as_bytes()));
        }
    }

    fn note(&self, size: u64) -> String {
        let checkpoint = Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root: self.tree.root(size).unwrap(),
            extensions: vec![],
        };
        self.signer.sign(&checkpoint.to_text()).unwrap()
    }

    fn request(&self, old: u64, new: u64) -> Vec<u8> {
        AddCheckpoint {
            old_size: old,
            // A rollback (old > new) has no proof: send none.
            proof: prove_consistency(new, old, &self.tree).unwrap_or_default(),
            checkpoint: self.note(new),
        }
        .to_body()
        .into_bytes()
    }
}

fn signer() -> NoteSigner {
    NoteSigner::generate("interop.gov.ma/jisr/gw-1").unwrap()
}

fn witness(dir: &std::path::Path, cosigner: &str, logs: &[&NoteSigner]) -> Witness {
    let logs: Vec<KnownLog> = logs
        .iter()
        .map(|s| KnownLog {
            origin: s.name().to_owned(),
            verifier: s.verifier(),
        })
        .collect();
    Witness::open(Cosigner::from_secret_text(cosigner).unwrap(), &logs, dir).unwrap()
}

fn cosigned(verdict: &Verdict) -> &str {
    match verdict {
        Verdict::Cosigned(line) => line,
        other => panic!("not cosigned: {other:?}"),
    }
}

#[tokio::test]
async fn cosigns_a_growing_log_and_asks_for_the_size_it_knows() {
    let dir = tempfile::tempdir().unwrap();
    let key = Cosigner::generate("witness.cndp.ma/jisr").unwrap();
    let mut log = TestLog::new(signer());
    let w = witness(dir.path(), &key.to_secret_text(), &[&log.signer]);
    log.grow("a", 5);
    let line = w.add_checkpoint(&log.request(0, 5)).await;
    let text = log.note(5);
    let body = &text[..text.find("\n\n").unwrap() + 1];
    key.verifier().verify(body, cosigned(&line)).unwrap();
    log.grow("a", 8);
    // A client that does not know the witness's size sends 0 and learns it.
    assert!(matches!(
        w.add_checkpoint(&log.request(0, 13)).await,
        Verdict::Conflict { known_size: 5, .. }
    ));
    cosigned(&w.add_checkpoint(&log.request(5, 13)).await);
    // The same checkpoint again is cosigned again (a retry after a lost answer).
    cosigned(&w.add_checkpoint(&log.request(13, 13)).await);
}

#[tokio::test]
async fn refuses_a_rollback_and_a_split_view_and_keeps_the_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let key = Cosigner::generate("witness.cndp.ma/jisr").unwrap();
    let mut log = TestLog::new(signer());
    let w = witness(dir.path(), &key.to_secret_text(), &[&log.signer]);
    log.grow("a", 6);
    cosigned(&w.add_checkpoint(&log.request(0, 6)).await);
    // Rollback: an older checkpoint of the same log.
    assert!(matches!(
        w.add_checkpoint(&log.request(0, 4)).await,
        Verdict::Conflict { known_size: 6, .. }
    ));
    assert!(matches!(
        w.add_checkpoint(&log.request(6, 4)).await,
        Verdict::BadRequest(_)
    ));
    // Split view: the same key signs another tree.
    let mut fork =
        TestLog::new(NoteSigner::from_secret_text(&log.signer.to_secret_text()).unwrap());
    fork.grow("b", 6);
    assert!(matches!(
        w.add_checkpoint(&fork.request(6, 6)).await,
        Verdict::Conflict { known_size: 6, .. }
    ));
    fork.grow("b", 3);
    assert!(matches!(
        w.add_checkpoint(&fork.request(6, 9)).await,
        Verdict::BadProof(_)
    ));
    let evidence = std::fs::read_dir(dir.path().join("evidence"))
        .unwrap()
        .count();
    assert_eq!(
        evidence, 2,
        "both refusals of a validly signed fork are kept"
    );
    // The honest log goes on.
    log.grow("a", 3);
    cosigned(&w.add_checkpoint(&log.request(6, 9)).await);
}

#[tokio::test]
async fn refuses_unknown_logs_foreign_keys_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let key = Cosigner::generate("witness.cndp.ma/jisr").unwrap();
    let mut log = TestLog::new(signer());
    let w = witness(dir.path(), &key.to_secret_text(), &[&log.signer]);
    let mut other = TestLog::new(NoteSigner::generate("interop.gov.ma/jisr/gw-9").unwrap());
    other.grow("o", 2);
    assert!(matches!(
        w.add_checkpoint(&other.request(0, 2)).await,
        Verdict::UnknownLog(_)
    ));
    // Same origin, another key: the operator's key was not the one that signed.
    let mut impostor = TestLog::new(signer());
    impostor.grow("i", 2);
    assert!(matches!(
        w.add_checkpoint(&impostor.request(0, 2)).await,
        Verdict::Forbidden(_)
    ));
    assert!(matches!(
        w.add_checkpoint(b"old 0\n").await,
        Verdict::BadRequest(_)
    ));
    // A proof where none belongs (old size 0).
    log.grow("a", 4);
    let mut body = AddCheckpoint::parse(&log.request(0, 4)).unwrap();
    body.proof.push([0; 32]);
    assert!(matches!(
        w.add_checkpoint(body.to_body().as_bytes()).await,
        Verdict::BadProof(_)
    ));
}

#[tokio::test]
async fn remembers_each_log_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = Cosigner::generate("witness.cndp.ma/jisr")
        .unwrap()
        .to_secret_text();
    let (mut one, mut two) = (
        TestLog::new(signer()),
        TestLog::new(NoteSigner::generate("interop.gov.ma/jisr/gw-2").unwrap()),
    );
    {
        let w = witness(dir.path(), &key, &[&one.signer, &two.signer]);
        one.grow("1", 3);
        two.grow("2", 7);
        cosigned(&w.add_checkpoint(&one.request(0, 3)).await);
        cosigned(&w.add_checkpoint(&two.request(0, 7)).await);
    }
    let w = witness(dir.path(), &key, &[&one.signer, &two.signer]);
    assert!(matches!(
        w.add_checkpoint(&one.request(0, 3)).await,
        Verdict::Conflict { known_size: 3, .. }
    ));
    two.grow("2", 1);
    cosigned(&w.add_checkpoint(&two.request(7, 8)).await);
}

/// Two requests for one log at once: whichever comes second is checked
/// against what the first recorded, so the witness never moves backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_roll_a_log_back() {
    let dir = tempfile::tempdir().unwrap();
    let key = Cosigner::generate("witness.cndp.ma/jisr")
        .unwrap()
        .to_secret_text();
    let mut log = TestLog::new(signer());
    let w = std::sync::Arc::new(witness(dir.path(), &key, &[&log.signer]));
    log.grow("a", 20);
    let (small, large) = (log.request(0, 10), log.request(0, 20));
    let (a, b) = tokio::join!(
        {
            let w = w.clone();
            async move { w.add_checkpoint(&small).await }
        },
        {
            let w = w.clone();
            async move { w.add_checkpoint(&large).await }
        },
    );
    let outcomes = [a, b];
    assert_eq!(
        outcomes
            .iter()
            .filter(|v| matches!(v, Verdict::Cosigned(_)))
            .count(),
        1
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|v| matches!(v, Verdict::Conflict { .. }))
            .count(),
        1
    );
}
