//! The writer's real failure paths, driven by its fault hook
//! ([`super::log::Faults`]) rather than a disk that must be filled or
//! broken: runs on any machine, without root.

use super::tests::{fill, new_log, options, record};
use super::*;
use std::sync::Arc;
use std::time::Duration;

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

/// Waits (off the runtime's threads) until `n` fsyncs are held at the gate.
async fn held(log: &AuditLog, n: usize) {
    let faults = log.faults();
    let held = tokio::task::spawn_blocking(move || faults.wait_held(n, Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(held, "no fsync reached the gate");
}

/// Waits until entry `i`'s record is in the first segment's bytes.
async fn written(dir: &std::path::Path, i: u64) {
    let mut frame = Vec::new();
    log::segment::frame(&record(i), &mut frame);
    let path = log::segment::segment_path(dir, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read(&path)
        .unwrap()
        .windows(frame.len())
        .any(|w| w == frame.as_slice())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "entry {i} never written"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An append of entry `i` running on its own task.
fn spawn_append(log: &Arc<AuditLog>, i: u64) -> tokio::task::JoinHandle<Result<u64, AuditError>> {
    let log = log.clone();
    tokio::spawn(async move { log.append(record(i)).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_arriving_while_an_fsync_is_held_gets_its_own_and_neither_is_acknowledged_early() {
    let (dir, signer, log) = new_log(1024);
    let log = Arc::new(log);
    fill(&log, 0..2).await;
    log.faults().hold_fsyncs();
    let a = spawn_append(&log, 2);
    held(&log, 1).await;
    let b = spawn_append(&log, 3);
    tokio::task::yield_now().await;
    assert!(!a.is_finished() && !b.is_finished());
    assert_eq!(log.size(), 2);

    log.faults().release_fsyncs(1);
    assert_eq!(a.await.unwrap().unwrap(), 2);
    held(&log, 1).await; // entry 3's own fsync, after its write
    written(dir.path(), 3).await;
    assert!(!b.is_finished());
    assert_eq!(log.size(), 3);
    log.faults().release_fsyncs(1);
    assert_eq!(b.await.unwrap().unwrap(), 3);
    assert_eq!(log.size(), 4);
    log.faults().stop_holding();
    fill(&log, 4..6).await;
    let log = Arc::into_inner(log).unwrap();
    log.close().await;
    drop(log);
    let report = verify::verify(dir.path(), Some(signer.verifier()));
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.entries, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_refuses_both_batches_in_flight_and_the_restart_recovers() {
    let (dir, signer, log) = new_log(1024);
    let log = Arc::new(log);
    fill(&log, 0..2).await;
    log.faults().hold_fsyncs();
    let a = spawn_append(&log, 2);
    held(&log, 1).await;
    let b = spawn_append(&log, 3);
    log.faults().fail_next_fsync();
    log.faults().release_fsyncs(1);
    for refused in [a.await.unwrap(), b.await.unwrap()] {
        let why = refused.unwrap_err().to_string();
        assert!(
            why.contains("fsync") && why.contains("Input/output error"),
            "{why}"
        );
    }
    log.faults().stop_holding();
    assert_eq!(
        log.size(),
        2,
        "nothing after the failed fsync is acknowledged"
    );
    let again = refused(&log, 4).await;
    assert!(again.contains("fsync"), "{again}");
    assert_eq!(log.size(), 2);
    let log = Arc::into_inner(log).unwrap();
    log.close().await;
    drop(log);
    // The restart's recovery decides: what was acknowledged is there, the
    // refused entries may be too (written, not known to be durable).
    let log = AuditLog::open(options(dir.path(), &signer, 1024)).unwrap();
    assert!(log.size() >= 2, "{}", log.size());
    for i in 0..2 {
        assert_eq!(log.read(i).unwrap(), record(i), "entry {i}");
    }
    log.close().await;
    drop(log);
    let report = verify::verify(dir.path(), Some(signer.verifier()));
    assert!(report.ok(), "{:?}", report.problems);
}
