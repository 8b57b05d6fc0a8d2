//! The writer's real failure paths, driven by its fault hook
//! ([`super::log::Faults`]) rather than a disk that must be filled or
//! broken: runs on any machine, without root.

use super::tests::{fill, new_log, options, record};
use super::*;

/// Why an append was refused.
async fn refused(log: &AuditLog, i: u64) -> String {
    match log.append(record(i)).await {
        Ok(index) => panic!("entry {i} was acknowledged as {index} although the disk failed"),
        Err(AuditError::Unavailable(why)) => why,
        Err(other) => panic!("expected Unavailable, got {other}"),
    }
}

#[tokio::test]
async fn a_full_disk_refuses_the_batch_loses_nothing_and_recording_resumes() {
    let (dir, signer, log) = new_log(16);
    fill(&log, 0..5).await;
    let faults = log.faults();
    faults.fill_disk();
    let why = refused(&log, 5).await;
    assert!(why.contains("No space left on device"), "{why}");
    // A failed write stops nothing: the log is not failed, and the refused
    // entry took no index.
    assert_eq!(log.failure(), None);
    assert_eq!(log.size(), 5);
    let why = refused(&log, 5).await;
    assert!(why.contains("No space left on device"), "{why}");
    faults.free_disk();
    assert_eq!(log.append(record(5)).await.unwrap(), 5);
    // The same with an I/O error rather than a full disk.
    faults.fail_writes(true);
    let why = refused(&log, 6).await;
    assert!(why.contains("Input/output error"), "{why}");
    faults.fail_writes(false);
    assert_eq!(log.append(record(6)).await.unwrap(), 6);
    log.close().await;
    drop(log);
    // The failed writes were cut off: the log verifies, with exactly the
    // acknowledged entries, each the one acknowledged at its index.
    let report = verify::verify(dir.path(), Some(signer.verifier()));
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.entries, 7);
    let log = AuditLog::open(options(dir.path(), &signer, 16)).unwrap();
    for i in 0..7 {
        assert_eq!(log.read(i).unwrap(), record(i), "entry {i}");
    }
}

#[tokio::test]
async fn a_failed_fsync_stops_the_log_for_good_and_acknowledges_nothing_after() {
    let (dir, signer, log) = new_log(16);
    fill(&log, 0..3).await;
    log.faults().fail_next_fsync();
    let why = refused(&log, 3).await;
    assert!(
        why.contains("fsync") && why.contains("Input/output error"),
        "{why}"
    );
    // The page cache can no longer be trusted: every later append is
    // refused too, though the next fsync would succeed, until a restart.
    let failure = log.failure().expect("the log stopped");
    assert!(failure.contains("fsync"), "{failure}");
    for i in 4..6 {
        let again = refused(&log, i).await;
        assert!(again.contains("fsync"), "{again}");
    }
    assert_eq!(log.size(), 3);
    log.close().await;
    drop(log);
    // A restart recovers: what was acknowledged is there and verifies.
    let log = AuditLog::open(options(dir.path(), &signer, 16)).unwrap();
    assert!(log.size() >= 3, "{}", log.size());
    for i in 0..3 {
        assert_eq!(log.read(i).unwrap(), record(i), "entry {i}");
    }
    let n = log.size();
    fill(&log, n..n + 2).await;
    log.close().await;
    drop(log);
    let report = verify::verify(dir.path(), Some(signer.verifier()));
    assert!(report.ok(), "{:?}", report.problems);
}
