//! `jisr audit recover`: the operator's way out when start-up refuses a
//! log that lost or had altered entries. Over a real node's files: without
//! `--accept-loss` it changes nothing and says what it would do; with it,
//! the damaged files are kept aside byte for byte, the node starts from
//! the entries every check agrees on, and a signed `LOG_LOSS_ACCEPTED`
//! entry says what was lost.

use crate::faults::{baseline, records, start, Baseline};
use crate::support::proc::jisr;
use crate::support::SEGMENT;
use jisr::audit::log::segment;
use jisr::proto::jisr::audit::v1::{AuditRecord, Kind};
use prost::Message as _;
use std::path::{Path, PathBuf};

fn audit_dir(base: &Baseline) -> PathBuf {
    base.pki.root().join("gateway-audit")
}

fn recover(base: &Baseline, accept: bool) -> (bool, String) {
    let mut cmd = jisr();
    cmd.args(["audit", "recover", "--config"]).arg(&base.config);
    if accept {
        cmd.arg("--accept-loss");
    }
    let out = cmd.output().unwrap();
    crate::support::outcome(&out)
}

/// Every regular file under `dir` with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.ends_with("LOCK"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

/// The copy set aside as `<name>.lost-<time>` in `dir`, if any.
fn lost_copy(dir: &Path, name: &str) -> Option<Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&format!("{name}.lost-"))
        })
        .map(|p| std::fs::read(p).unwrap())
}

/// After an accepted loss: the node starts, keeps exactly the first
/// `kept` entries, then the loss entry; the log verifies with the node's
/// published key; returns the loss entry.
fn after_loss(base: &Baseline, kept: usize) -> AuditRecord {
    start(&base.config).expect("the node starts after the loss was accepted");
    let now = records(&audit_dir(base));
    assert_eq!(now.len(), kept + 1, "kept entries and the loss entry");
    assert_eq!(
        now[..kept],
        base.records[..kept],
        "the kept entries are unchanged"
    );
    let entry = AuditRecord::decode(now[kept].as_slice()).unwrap();
    assert_eq!(entry.kind, Kind::LogLossAccepted as i32);
    let verifier =
        std::fs::read_to_string(base.pristine.path().join("gateway-audit/verifier.key")).unwrap();
    let verifier = jisr::audit::note::NoteVerifier::from_text(verifier.trim()).unwrap();
    let report = jisr::audit::verify::verify(&audit_dir(base), Some(verifier));
    assert!(report.ok(), "{:?}", report.problems);
    assert!(
        report.covered > kept as u64,
        "a signed checkpoint covers the loss entry"
    );
    entry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_tail_is_refused_then_recovered_with_the_loss_recorded() {
    let base = baseline().await;
    let dir = audit_dir(&base);
    let path = base.pki.root().join(SEGMENT);
    let scan = segment::scan(&path, |_, _| {}).unwrap();
    let n = base.records.len();
    let kept = n - 3;
    // Cut the last three records: all covered by a signed checkpoint.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(scan.offsets[kept])
        .unwrap();
    let refused = start(&base.config).unwrap_err();
    assert!(refused.contains("covers"), "{refused}");
    let history = std::fs::read(dir.join("checkpoints.log")).unwrap();

    let before = files(&dir);
    let (ok, said) = recover(&base, false);
    assert!(!ok, "without --accept-loss it refuses: {said}");
    assert!(said.contains(&format!("keep entries 0..{kept}")), "{said}");
    assert!(said.contains("lose at least 3 entries"), "{said}");
    assert!(said.contains("--accept-loss"), "{said}");
    assert_eq!(files(&dir), before, "nothing changed without --accept-loss");
    assert!(start(&base.config).is_err(), "still refused");

    let (ok, said) = recover(&base, true);
    assert!(ok, "{said}");
    assert!(said.contains("LOG_LOSS_ACCEPTED"), "{said}");
    let entry = after_loss(&base, kept);
    assert_eq!(entry.count, 3, "{}", entry.detail);
    assert!(
        entry.detail.contains("checkpoints.log.lost-"),
        "{}",
        entry.detail
    );
    // The history that proves the lost entries is kept, byte for byte.
    assert_eq!(lost_copy(&dir, "checkpoints.log").unwrap(), history);
    // Nothing left to recover.
    let (ok, said) = recover(&base, false);
    assert!(ok && said.contains("nothing to recover"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_record_is_kept_aside_and_the_log_goes_on_before_it() {
    let base = baseline().await;
    let dir = audit_dir(&base);
    let path = base.pki.root().join(SEGMENT);
    let scan = segment::scan(&path, |_, _| {}).unwrap();
    // A byte inside record 2's payload: damage with valid records after.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[scan.offsets[2] as usize + 10] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let refused = start(&base.config).unwrap_err();
    assert!(refused.contains("00000000000000000000.log"), "{refused}");

    let (ok, said) = recover(&base, true);
    assert!(ok, "{said}");
    let entry = after_loss(&base, 2);
    assert!(
        entry.count >= base.records.len() as u64 - 2,
        "{}",
        entry.detail
    );
    assert!(
        entry.detail.contains("checksum mismatch"),
        "{}",
        entry.detail
    );
    // The damaged segment as it was, altered byte included.
    let copy = lost_copy(&dir, "00000000000000000000.log").unwrap();
    assert_eq!(copy, bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_log_has_nothing_to_recover_and_is_left_alone() {
    let base = baseline().await;
    let dir = audit_dir(&base);
    let before = files(&dir);
    let (ok, said) = recover(&base, true);
    assert!(ok && said.contains("nothing to recover"), "{said}");
    assert_eq!(files(&dir), before);
}
