//! Start-up trusts nothing it can check, and destroys no evidence: the
//! cases of issue 19, each on the log API.

use super::log::segment;
use super::tests::{closed_log, ends, fill, new_log, options, record};
use super::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file of `dir` and its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.ends_with("LOCK"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Files named `<name>.<why>-…` next to `path`.
fn asides(path: &Path, why: &str) -> Vec<PathBuf> {
    let prefix = format!("{}.{why}-", path.file_name().unwrap().to_str().unwrap());
    std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&prefix)
        })
        .collect()
}

fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at as usize] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// Opens the log and expects a refusal; returns its text after checking
/// that nothing in the directory changed.
fn refused(dir: &Path, signer: &note::NoteSigner, rps: u64) -> String {
    let before = files(dir);
    let err = AuditLog::open(options(dir, signer, rps)).unwrap_err();
    assert_eq!(files(dir), before, "a refused start changed files: {err}");
    err.to_string()
}

#[tokio::test]
async fn a_torn_tail_is_copied_aside_before_it_is_cut_and_the_copy_is_named() {
    let (dir, signer) = closed_log(1000, 10).await;
    let seg = segment::segment_path(dir.path(), 0);
    let records_end = ends(&seg).0;
    let mut torn = Vec::new();
    segment::frame(&record(10), &mut torn);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[records_end as usize..records_end as usize + torn.len() / 2]
        .copy_from_slice(&torn[..torn.len() / 2]);
    std::fs::write(&seg, &bytes).unwrap();
    let log = AuditLog::open(options(dir.path(), &signer, 1000)).unwrap();
    assert_eq!(log.size(), 10);
    let copies = asides(&seg, "torn");
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(
        std::fs::read(&copies[0]).unwrap(),
        bytes,
        "the segment as it was"
    );
    assert_eq!(ends(&seg).0, records_end, "and then cut");
    log.close().await;
}

#[tokio::test]
async fn an_altered_last_record_refuses_to_start_and_is_not_cut() {
    // Issue 19, point 2: the altered record used to be cut as a torn write
    // before the refusal.
    let (dir, signer) = closed_log(1000, 40).await;
    let seg = segment::segment_path(dir.path(), 0);
    flip(&seg, ends(&seg).0 - 1);
    let err = refused(dir.path(), &signer, 1000);
    assert!(err.contains("covers 40 entries but only 39"), "{err}");
    assert!(asides(&seg, "torn").is_empty());
}

/// The notes of `checkpoints.log`, as framed records.
fn history(dir: &Path) -> Vec<Vec<u8>> {
    let mut notes = Vec::new();
    segment::scan(&dir.join("checkpoints.log"), |_, n| notes.push(n.to_vec())).unwrap();
    notes
}

#[tokio::test]
async fn a_crash_between_the_first_note_and_the_first_checkpoint_file_restarts() {
    // The writer appends to `checkpoints.log`, syncs, then writes
    // `checkpoint`: killed in between on its first checkpoint, the node
    // holds one note and no `checkpoint`. That is a crash, not a deletion.
    let (dir, signer) = closed_log(1000, 3).await;
    let notes = history(dir.path());
    assert!(!notes.is_empty(), "test bug: no checkpoint was signed");
    let mut first = Vec::new();
    segment::frame(&notes[0], &mut first);
    std::fs::write(dir.path().join("checkpoints.log"), &first).unwrap();
    std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
    let report = verify::verify(dir.path(), Some(signer.verifier()));
    assert!(report.ok(), "{:?}", report.problems);
    let log = AuditLog::open(options(dir.path(), &signer, 1000)).unwrap();
    fill(&log, 3..5).await;
    log.close().await;
    drop(log);
    assert!(dir.path().join("checkpoint").exists());
    let report = verify::verify(dir.path(), Some(signer.verifier()));
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.entries, 5);
    // With two notes kept, `checkpoint` has been written once: now a
    // missing one was deleted.
    assert!(history(dir.path()).len() > 1, "test bug: one note only");
    std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
    let err = refused(dir.path(), &signer, 1000);
    assert!(
        err.contains("is missing but checkpoints.log holds"),
        "{err}"
    );
}

#[tokio::test]
async fn a_deleted_checkpoint_and_a_cut_log_refuse_to_start() {
    // Issue 19, point 1: delete `checkpoint`, cut the last records; the
    // history still says how far the log went.
    let (dir, signer) = closed_log(1000, 145).await;
    std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
    let seg = segment::segment_path(dir.path(), 0);
    let scan = segment::scan(&seg, |_, _| {}).unwrap();
    segment::truncate(&seg, scan.offsets[95]).unwrap();
    let err = refused(dir.path(), &signer, 1000);
    assert!(
        err.contains("checkpoint") && err.contains("is missing but checkpoints.log holds"),
        "{err}"
    );
    // With the checkpoint back, the history's checkpoints still refuse.
    let mut notes = Vec::new();
    segment::scan(&dir.path().join("checkpoints.log"), |_, n| {
        notes.push(n.to_vec())
    })
    .unwrap();
    std::fs::write(dir.path().join("checkpoint"), notes.last().unwrap()).unwrap();
    let err = refused(dir.path(), &signer, 1000);
    assert!(err.contains("covers 145 entries but only 95"), "{err}");
}

#[tokio::test]
async fn an_altered_checkpoint_history_refuses_to_start() {
    // Issue 19, point 4: one byte in the middle of checkpoints.log.
    let (dir, signer, log) = new_log(1000);
    // Four rounds, each covered by a checkpoint of its own before the next
    // (waited for, not slept on): the history holds at least four notes.
    for round in 0..4 {
        fill(&log, round * 10..round * 10 + 10).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while log.checkpoint().checkpoint.size < round * 10 + 10 {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint of round {round}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    log.close().await;
    drop(log);
    let history = dir.path().join("checkpoints.log");
    let len = std::fs::metadata(&history).unwrap().len();
    flip(&history, len / 2);
    let err = refused(dir.path(), &signer, 1000);
    assert!(err.contains("checkpoints.log"), "{err}");
}

#[tokio::test]
async fn an_altered_stored_hash_is_found_moved_aside_and_rebuilt() {
    // Issue 19, point 3: one byte of tree.hashes, here an inner node's.
    let (dir, signer) = closed_log(16, 77).await;
    let hashes = dir.path().join("tree.hashes");
    let inner = merkle::stored_hash_index(2, 5);
    flip(&hashes, inner * 32 + 7);
    let damaged = std::fs::read(&hashes).unwrap();
    let log = AuditLog::open(options(dir.path(), &signer, 16)).unwrap();
    let copies = asides(&hashes, "damaged");
    assert_eq!(copies.len(), 1);
    assert_eq!(std::fs::read(&copies[0]).unwrap(), damaged);
    let proof = log.inclusion_proof(21, 77).unwrap();
    let root = log.checkpoint().checkpoint.root;
    merkle::verify_inclusion(&proof, 77, &root, 21, &merkle::leaf_hash(&record(21))).unwrap();
    log.close().await;
    drop(log);
    assert!(verify::verify(dir.path(), Some(signer.verifier())).ok());
}

#[tokio::test]
async fn an_altered_acknowledged_entry_no_checkpoint_covers_refuses_to_start() {
    // Issue 19, point 3 (case 6): entries acknowledged after the last
    // checkpoint, the last one altered. Its stored hash says it was
    // acknowledged: not a torn write.
    let dir = tempfile::tempdir().unwrap();
    let signer = note::NoteSigner::generate("test.example/jisr/gw-1").unwrap();
    let mut opts = options(dir.path(), &signer, 1000);
    opts.checkpoint_interval = std::time::Duration::from_secs(3600);
    let log = AuditLog::open(opts).unwrap();
    fill(&log, 0..12).await;
    log.crash();
    let seg = segment::segment_path(dir.path(), 0);
    let scan = segment::scan(&seg, |_, _| {}).unwrap();
    flip(&seg, scan.valid_len - 3);
    let err = refused(dir.path(), &signer, 1000);
    assert!(
        err.contains("tree.hashes holds the hashes of 12 entries but the segments hold 11"),
        "{err}"
    );
    // Altered in the middle: damage, as before.
    flip(&seg, scan.valid_len - 3); // back
    flip(&seg, scan.offsets[5] + 10);
    let err = refused(dir.path(), &signer, 1000);
    assert!(err.contains("is damaged"), "{err}");
}

#[tokio::test]
async fn a_batch_failing_across_a_segment_boundary_keeps_later_indexes_right() {
    let (dir, signer, log) = new_log(16);
    fill(&log, 0..10).await;
    // The next segment cannot be made: a directory has its name.
    let next = segment::segment_path(dir.path(), 16);
    std::fs::create_dir(&next).unwrap();
    let appends = (10..40).map(|i| log.append(record(i)));
    let results = futures_util::future::join_all(appends).await;
    assert!(results.iter().any(Result::is_err));
    std::fs::remove_dir(&next).unwrap();
    // Every index acknowledged from now on holds its own record.
    for i in 100..120 {
        let index = log.append(record(i)).await.unwrap();
        assert_eq!(log.read(index).unwrap(), record(i), "entry {index}");
    }
    let size = log.size();
    let root = log.root(size).unwrap();
    log.close().await;
    drop(log);
    let report = verify::verify(dir.path(), Some(signer.verifier()));
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.entries, size);
    assert_eq!(report.latest.unwrap().root, root);
}

#[tokio::test]
async fn a_missing_middle_segment_refuses_to_start_naming_the_gap() {
    let (dir, signer) = closed_log(4, 12).await;
    let gap = segment::segment_path(dir.path(), 4);
    std::fs::remove_file(&gap).unwrap();
    let err = refused(dir.path(), &signer, 4);
    assert!(
        err.contains("00000000000000000004.log is damaged: it is missing: it holds entries 4..8")
            && err.contains("the next segment present starts at entry 8")
            && err.contains("restore the segment from the archive"),
        "{err}"
    );
}

#[tokio::test]
async fn a_log_opened_with_another_signing_key_refuses_to_start() {
    let (dir, _signer) = closed_log(16, 5).await;
    let other = note::NoteSigner::generate("test.example/jisr/gw-1").unwrap();
    let err = refused(dir.path(), &other, 16);
    assert!(
        err.contains("does not verify with this node's key") && err.contains("[audit] signing_key"),
        "{err}"
    );
}
