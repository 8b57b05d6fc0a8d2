//! `jisr witness` as another institution runs it: real processes, real TLS,
//! driven by the log-side client (`audit::witnessing::WitnessClient`) with
//! checkpoints and proofs of test logs built in memory.

use crate::support::proc::{jisr, wait_for_file, Proc};
use jisr::audit::merkle::{leaf_hash, prove_consistency, MemoryTree};
use jisr::audit::note::{Checkpoint, CosignatureVerifier, NoteSigner};
use jisr::audit::witnessing::{AddCheckpoint, Answer, WitnessClient};
use jisr::identity::{AgencyId, TrustDomain};
use std::path::{Path, PathBuf};

/// A log of the test's own: a signing key and an in-memory tree.
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
        for _ in 0..n {
            let leaf = format!("{tag}-{}", self.tree.size());
            self.tree.push(leaf_hash(leaf.as_bytes()));
        }
    }

    fn text(&self, size: u64) -> String {
        Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root: self.tree.root(size).unwrap(),
            extensions: vec![],
        }
        .to_text()
    }

    fn request(&self, old: u64, new: u64) -> AddCheckpoint {
        AddCheckpoint {
            old_size: old,
            proof: prove_consistency(new, old, &self.tree).unwrap_or_default(),
            checkpoint: self.signer.sign(&self.text(new)).unwrap(),
        }
    }
}

/// A witness process, its directory and its client.
pub(crate) struct RunningWitness {
    proc: Proc,
    dir: PathBuf,
    config: PathBuf,
    pub(crate) client: WitnessClient,
    pub(crate) verifier: CosignatureVerifier,
}

pub(crate) fn pki(dir: &Path) -> PathBuf {
    let pki = dir.join("pki");
    jisr::tools::pki::init(&jisr::tools::pki::PkiOptions {
        dir: pki.clone(),
        domain: TrustDomain::parse("cndp.ma").unwrap(),
        agencies: vec![AgencyId::parse("cndp").unwrap()],
        gateway_node: AgencyId::parse("witness").unwrap(),
        hosts: Vec::new(),
        force: false,
    })
    .unwrap();
    pki
}

pub(crate) fn configure(dir: &Path, pki: &Path, name: &str, logs: &[&NoteSigner]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut text = format!(
        "name = \"{name}\"\nlisten = \"127.0.0.1:0\"\nkey = \"witness.key\"\nstate_dir = \"state\"\n\
         [tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        pki.join("gateway.crt").display(),
        pki.join("gateway.key").display()
    );
    for log in logs {
        text.push_str(&format!(
            "[[log]]\nverifier = \"{}\"\n",
            log.verifier().to_text()
        ));
    }
    let config = dir.join("witness.toml");
    std::fs::write(&config, text).unwrap();
    config
}

pub(crate) fn start(dir: &Path, config: &Path, pki: &Path) -> RunningWitness {
    let out = jisr()
        .args(["witness", "verifier", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let verifier =
        CosignatureVerifier::from_text(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    let addr_file = dir.join("addr");
    let _ = std::fs::remove_file(&addr_file);
    let proc = Proc::spawn(
        "witness",
        jisr().args([
            "witness",
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--addr-file",
            addr_file.to_str().unwrap(),
        ]),
    );
    let addr = wait_for_file(&addr_file, &proc);
    let client = WitnessClient::new(&format!("https://{addr}"), &pki.join("ca.crt")).unwrap();
    RunningWitness {
        proc,
        dir: dir.to_owned(),
        config: config.to_owned(),
        client,
        verifier,
    }
}

impl RunningWitness {
    async fn ask(&self, request: &AddCheckpoint) -> Answer {
        self.client.add_checkpoint(request).await.unwrap()
    }

    /// Asks for a cosignature and checks it over the checkpoint's text.
    async fn cosign(&self, log: &TestLog, old: u64, new: u64) {
        match self.ask(&log.request(old, new)).await {
            Answer::Cosigned(lines) => {
                self.verifier.verify(&log.text(new), &lines).unwrap();
            }
            other => panic!("{old}→{new} not cosigned: {other:?}\n{}", self.proc.logs()),
        }
    }
}

fn conflict(answer: &Answer) -> u64 {
    match answer {
        Answer::Conflict { known_size } => *known_size,
        other => panic!("not a 409: {other:?}"),
    }
}

fn status(answer: &Answer) -> u16 {
    match answer {
        Answer::Refused { status, .. } => *status,
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test]
async fn two_witnesses_cosign_each_log_and_refuse_rollbacks_forks_and_strangers() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let mut one = TestLog::new(NoteSigner::generate("interop.gov.ma/jisr/gw-1").unwrap());
    let mut two = TestLog::new(NoteSigner::generate("interop.gov.ma/jisr/gw-2").unwrap());
    let witnesses: Vec<RunningWitness> = ["cndp.ma/witness", "courdescomptes.ma/witness"]
        .iter()
        .enumerate()
        .map(|(n, name)| {
            let dir = tmp.path().join(format!("w{n}"));
            let config = configure(&dir, &pki, name, &[&one.signer, &two.signer]);
            start(&dir, &config, &pki)
        })
        .collect();
    one.grow("one", 5);
    two.grow("two", 3);
    for w in &witnesses {
        w.cosign(&one, 0, 5).await;
        w.cosign(&two, 0, 3).await;
    }
    one.grow("one", 4);
    for w in &witnesses {
        // A log that forgot what the witness saw learns it from the 409.
        assert_eq!(conflict(&w.ask(&one.request(0, 9)).await), 5);
        w.cosign(&one, 5, 9).await;
    }
    let w = &witnesses[0];
    // Rollback: an older checkpoint, 409 with the size the witness knows.
    assert_eq!(conflict(&w.ask(&one.request(0, 5)).await), 9);
    assert_eq!(status(&w.ask(&one.request(9, 5)).await), 400);
    // Split view: the same origin and key, another tree.
    let mut fork =
        TestLog::new(NoteSigner::from_secret_text(&one.signer.to_secret_text()).unwrap());
    fork.grow("fork", 9);
    assert_eq!(conflict(&w.ask(&fork.request(9, 9)).await), 9);
    fork.grow("fork", 2);
    assert_eq!(status(&w.ask(&fork.request(9, 11)).await), 422);
    // A log it does not witness, and a key that is not the log's.
    let stranger = TestLog::new(NoteSigner::generate("elsewhere.example/log").unwrap());
    assert_eq!(status(&stranger_request(&stranger, w).await), 404);
    let mut impostor = TestLog::new(NoteSigner::generate("interop.gov.ma/jisr/gw-2").unwrap());
    impostor.grow("x", 4);
    assert_eq!(status(&w.ask(&impostor.request(3, 4)).await), 403);
    // The other witness was never shown the fork and still follows the log.
    two.grow("two", 1);
    witnesses[1].cosign(&two, 3, 4).await;
    let evidence = std::fs::read_dir(w.dir.join("state/evidence"))
        .unwrap()
        .count();
    assert_eq!(evidence, 2, "the forked checkpoints are kept as evidence");
}

async fn stranger_request(log: &TestLog, w: &RunningWitness) -> Answer {
    let mut log_request = log.request(0, 0);
    log_request.proof.clear();
    w.ask(&log_request).await
}

/// The witness records before it answers: killed (SIGKILL) right after a
/// cosignature and restarted, it still refuses what is inconsistent with
/// that cosignature, so it never cosigns two inconsistent checkpoints.
#[tokio::test]
async fn a_witness_killed_and_restarted_never_cosigns_a_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let mut log = TestLog::new(NoteSigner::generate("interop.gov.ma/jisr/gw-1").unwrap());
    let mut fork =
        TestLog::new(NoteSigner::from_secret_text(&log.signer.to_secret_text()).unwrap());
    let dir = tmp.path().join("w");
    let config = configure(&dir, &pki, "cndp.ma/witness", &[&log.signer]);
    let mut w = start(&dir, &config, &pki);
    for round in 1..=3u64 {
        let before = log.tree.size();
        log.grow("log", 4);
        w.cosign(&log, before, log.tree.size()).await;
        w.proc.kill();
        w = start(&w.dir.clone(), &w.config.clone(), &pki);
        // The fork, at the same size and larger, from any old size.
        fork.grow("fork", log.tree.size() - fork.tree.size());
        let size = log.tree.size();
        assert_eq!(
            conflict(&w.ask(&fork.request(size, size)).await),
            size,
            "round {round}"
        );
        assert_eq!(conflict(&w.ask(&fork.request(0, size)).await), size);
        fork.grow("fork", 1);
        assert_eq!(status(&w.ask(&fork.request(size, size + 1)).await), 422);
    }
}
