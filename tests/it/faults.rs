//! Fault injection, in the spirit of Sunlight's and Tessera's: for every
//! file the node keeps and each kind of damage (a byte flipped in the
//! middle or at the end, the file cut in half, deleted, or replaced by an
//! older copy of itself), the node either starts and has lost nothing (a
//! derived file, rebuilt) or refuses to start with an error naming the
//! file — and either way the damaged bytes are still on disk afterwards,
//! in the file or in a copy kept next to it.
//!
//! Each start is `Gateway::build` (what `jisr serve` does before it
//! listens) on its own runtime, dropped after: no port is needed to decide
//! whether the node starts.

use crate::support::bus::{publish_death, BusNet};
use crate::support::{start_gateway, SEGMENT};
use jisr::audit::log::segment;
use std::path::{Path, PathBuf};

/// The kinds of damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    FlipMiddle,
    FlipEnd,
    Truncate,
    Delete,
    Older,
}

const DAMAGES: [Damage; 5] = [
    Damage::FlipMiddle,
    Damage::FlipEnd,
    Damage::Truncate,
    Damage::Delete,
    Damage::Older,
];

/// What the node must do with a damaged file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Start, with every entry of the log as it was.
    Serves,
    /// Refuse, naming the file.
    Refuses,
    /// Either (where the damage may land on bytes the file does not use,
    /// or cannot be told from an older state): but never a panic, never a
    /// start that loses log entries, and a refusal names the file.
    Either,
}

/// A node's files after some traffic, with a copy from earlier on.
pub(crate) struct Baseline {
    pub(crate) pki: crate::support::Pki,
    pub(crate) config: PathBuf,
    /// A copy of the node's directory after the first round of traffic.
    older: tempfile::TempDir,
    /// A copy of it at the end (each case starts from it).
    pub(crate) pristine: tempfile::TempDir,
    /// The log's records at the end.
    pub(crate) records: Vec<Vec<u8>>,
}

/// Publishes `n` deaths through a gateway on the node's files.
async fn traffic(addr: &str, pki: &crate::support::Pki, from: u32, n: u32) {
    let mut bus = crate::support::bus::client(addr, pki, "civil-status").await;
    for i in from..from + n {
        publish_death(&mut bus, &format!("AB{i:06}"), &format!("act-{i}"))
            .await
            .expect("published");
    }
}

pub(crate) async fn baseline() -> Baseline {
    let net = BusNet::start("");
    traffic(&net.addr, &net.pki, 0, 3).await;
    let BusNet {
        gateway,
        config,
        pki,
        ..
    } = net;
    gateway.stop();
    let older = snapshot(pki.root());
    // Two more runs: several checkpoints are signed after the older copy.
    for round in 0..2 {
        let (gateway, addr) = start_gateway(&pki, "gateway", &config);
        traffic(&addr, &pki, 10 * (round + 1), 2).await;
        gateway.stop();
    }
    let pristine = snapshot(pki.root());
    let records = records(&pki.root().join("gateway-audit"));
    assert!(records.len() >= 7, "{} entries", records.len());
    Baseline {
        config: pki.root().join("gateway.toml"),
        pki,
        older,
        pristine,
        records,
    }
}

/// The records of the log in `dir`, in order.
pub(crate) fn records(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for first in segment::list(dir).unwrap() {
        segment::scan(&segment::segment_path(dir, first), |_, p| {
            out.push(p.to_vec())
        })
        .unwrap();
    }
    out
}

/// A copy of the regular files of `from` (one level of subdirectories).
fn snapshot(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    copy_tree(from, to.path());
    to
}

pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
        }
    }
}

/// Where the bytes that matter end: a segment's records (its padding
/// after is not content), any other file's length.
fn content_len(path: &Path) -> u64 {
    if path.extension().is_some_and(|e| e == "log")
        && path.parent().unwrap().ends_with("gateway-audit")
    {
        if let Ok(scan) = segment::scan(path, |_, _| {}) {
            return scan.valid_len;
        }
    }
    std::fs::metadata(path).unwrap().len()
}

/// What damaging a file left.
enum Damaged {
    /// The damage does not apply (the older copy is the same).
    NotApplicable,
    /// The file is gone.
    Deleted,
    /// The file's bytes now.
    Bytes(Vec<u8>),
}

/// Damages `file` (relative to the node's directory).
fn damage(base: &Baseline, file: &str, how: Damage) -> Damaged {
    let path = base.pki.root().join(file);
    let len = content_len(&path);
    match how {
        Damage::FlipMiddle | Damage::FlipEnd => {
            let mut bytes = std::fs::read(&path).unwrap();
            let at = if how == Damage::FlipMiddle {
                len / 2
            } else {
                len - 1
            };
            bytes[at as usize] ^= 0x01;
            std::fs::write(&path, &bytes).unwrap();
        }
        Damage::Truncate => {
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(len / 2).unwrap();
        }
        Damage::Delete => {
            std::fs::remove_file(&path).unwrap();
            return Damaged::Deleted;
        }
        Damage::Older => {
            let older = base.older.path().join(file);
            let Ok(old) = std::fs::read(&older) else {
                return Damaged::NotApplicable;
            };
            if old == std::fs::read(&path).unwrap() {
                return Damaged::NotApplicable;
            }
            std::fs::write(&path, old).unwrap();
        }
    }
    Damaged::Bytes(std::fs::read(&path).unwrap())
}

/// Starts the node on its files as `jisr serve` would, then stops it.
pub(crate) fn start(config: &Path) -> Result<(), String> {
    let config = jisr::config::Config::load(config).map_err(|e| jisr::config::report(&e))?;
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let built = rt.block_on(jisr::gateway::Gateway::build(&config));
        let result = built.map(drop).map_err(|e| e.to_string());
        drop(rt);
        result
    })
    .join()
    .map_err(|_| "the gateway panicked while starting".to_owned())?
}

/// Whether the damaged bytes are still in the directory: in the file or
/// in a copy kept aside next to it (`<file>.<why>-<time>`); a cut or older
/// append-only file completed again (derived files rebuilt) still holds
/// them as its start.
fn kept(base: &Baseline, file: &str, damaged: &[u8], how: Damage) -> bool {
    let path = base.pki.root().join(file);
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n == name || n.starts_with(&format!("{name}."))
        })
        .any(|p| {
            std::fs::read(&p).is_ok_and(|b| {
                b == damaged
                    || (matches!(how, Damage::Truncate | Damage::Older) && b.starts_with(damaged))
            })
        })
}

/// Every case for `file`.
async fn suite(file: &str, expect: impl Fn(Damage) -> Expect) {
    let base = baseline().await;
    for how in DAMAGES {
        copy_tree(base.pristine.path(), base.pki.root());
        let aside = asides(&base);
        let damaged = damage(&base, file, how);
        if matches!(damaged, Damaged::NotApplicable) {
            continue;
        }
        let outcome = start(&base.config);
        let case = format!("{file}, {how:?}");
        // Said on every run (nextest shows it with a failure): which way
        // each "either" case went.
        eprintln!("{case}: {outcome:?}");
        match (&outcome, expect(how)) {
            (Ok(()), Expect::Refuses) => panic!("{case}: the node started"),
            (Err(e), Expect::Serves) => panic!("{case}: the node refused: {e}"),
            (Err(e), _) => {
                let name = Path::new(file).file_name().unwrap().to_str().unwrap();
                assert!(
                    e.contains(name),
                    "{case}: the refusal does not name {name}: {e}"
                );
                assert!(!e.contains("panicked"), "{case}: {e}");
            }
            (Ok(()), _) => {
                let now = records(&base.pki.root().join("gateway-audit"));
                assert!(
                    now.len() >= base.records.len()
                        && now[..base.records.len()] == base.records[..],
                    "{case}: the node started but log entries were lost or changed"
                );
                let verifier = std::fs::read_to_string(
                    base.pristine.path().join("gateway-audit/verifier.key"),
                )
                .unwrap();
                let verifier = jisr::audit::note::NoteVerifier::from_text(verifier.trim()).unwrap();
                let report = jisr::audit::verify::verify(
                    &base.pki.root().join("gateway-audit"),
                    Some(verifier),
                );
                assert!(report.ok(), "{case}: {:?}", report.problems);
            }
        }
        // redb writes its file when it opens it (a commit after the
        // integrity check, or a repair from its other commit slot): a
        // store's bytes are copied before the open and the copy kept when
        // the open fails. A store that opened (repaired, or damaged where
        // nothing is kept) is not evidence of anything; the audit index is
        // derived and rebuilt from the log.
        let evidence =
            !file.ends_with(".redb") || (outcome.is_err() && !file.ends_with("index.redb"));
        if let (Err(e), Damaged::Bytes(_), true) = (&outcome, &damaged, file.ends_with(".redb")) {
            assert!(
                file.ends_with("index.redb") || e.contains(".damaged-"),
                "{case}: the refusal does not name the copy kept: {e}"
            );
        }
        if let (Damaged::Bytes(bytes), true) = (damaged, evidence) {
            assert!(
                kept(&base, file, &bytes, how),
                "{case}: the damaged bytes are gone"
            );
        }
        // Copies kept aside are the node's business, not the next case's.
        for extra in asides(&base).difference(&aside) {
            std::fs::remove_file(extra).unwrap();
        }
    }
}

/// The files kept aside so far.
fn asides(base: &Baseline) -> std::collections::BTreeSet<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    for dir in [
        base.pki.root().to_owned(),
        base.pki.root().join("gateway-audit"),
    ] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            let n = p.file_name().unwrap().to_str().unwrap();
            if n.contains(".torn-") || n.contains(".damaged-") || n.contains(".replaced-") {
                out.insert(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_segment_refuses_to_start() {
    suite(SEGMENT, |_| Expect::Refuses).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_offset_index_is_rebuilt() {
    suite("gateway-audit/00000000000000000000.idx", |_| Expect::Serves).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_stored_hashes_are_rebuilt() {
    suite("gateway-audit/tree.hashes", |_| Expect::Serves).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_checkpoint_refuses_to_start() {
    suite("gateway-audit/checkpoint", |_| Expect::Refuses).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_checkpoint_history_refuses_to_start() {
    suite("gateway-audit/checkpoints.log", |_| Expect::Refuses).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_verifier_key_is_rewritten() {
    suite("gateway-audit/verifier.key", |_| Expect::Serves).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_audit_index_is_rebuilt() {
    suite("gateway-audit/index.redb", |_| Expect::Serves).await;
}

/// The key files end with a newline: flipping it leaves white space, which
/// is trimmed, and the key is the same. An older copy is the same key.
fn key_file(how: Damage) -> Expect {
    match how {
        Damage::FlipEnd | Damage::Older => Expect::Serves,
        _ => Expect::Refuses,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_signing_key_refuses_to_start() {
    suite("gateway-audit.key", key_file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_pseudonym_key_refuses_to_start() {
    suite("pseudonym.key", key_file).await;
}

/// A byte of a redb file may land on a page it does not use; an older copy
/// cannot be told from the node's own state (see docs/operations.md).
fn store(how: Damage) -> Expect {
    match how {
        Damage::Truncate => Expect::Refuses,
        _ => Expect::Either,
    }
}

/// The consent store is made at first start: deleted later, it is missed.
fn consent_store(how: Damage) -> Expect {
    match how {
        Damage::Delete => Expect::Refuses,
        other => store(other),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_consent_store_refuses_to_start_or_is_intact() {
    suite("gateway-consents.redb", consent_store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_bus_store_refuses_to_start_or_is_intact() {
    suite("bus.redb", store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_consent_signing_key_refuses_to_start() {
    suite("consent-signing.key", key_file).await;
}
