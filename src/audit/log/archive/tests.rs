//! The archive with real files: what reaches it, an archive that cannot be
//! written, a restart that fills a backlog, and `verify` on an archive.

use super::ArchiveStats;
use crate::audit::log::{segment, AuditLog, LogOptions};
use crate::audit::note::NoteSigner;
use crate::audit::verify;
use crate::proto::jisr::audit::v1::AuditRecord;
use prost::Message as _;
use std::path::Path;
use std::time::{Duration, Instant};

const RPS: u64 = 4;

fn open(dir: &Path, signer: &NoteSigner, archive: Option<&Path>) -> AuditLog {
    AuditLog::open(LogOptions {
        dir: dir.to_owned(),
        signer: NoteSigner::from_secret_text(&signer.to_secret_text()).unwrap(),
        records_per_segment: RPS,
        checkpoint_interval: Duration::from_millis(20),
        archive_dir: archive.map(Path::to_owned),
    })
    .unwrap()
}

async fn fill(log: &AuditLog, range: std::ops::Range<u64>) {
    for i in range {
        let record = AuditRecord {
            time_unix_micros: i as i64,
            request_id: format!("req-{i}"),
            ..Default::default()
        };
        assert_eq!(log.append(record.encode_to_vec()).await.unwrap(), i);
    }
}

fn archive_stats(log: &AuditLog) -> ArchiveStats {
    log.stats().archive.expect("an archive is configured")
}

/// Polls `cond` every 10 ms for at most 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn same(a: &Path, b: &Path) {
    assert_eq!(
        std::fs::read(a).unwrap(),
        std::fs::read(b).unwrap_or_else(|e| panic!("{}: {e}", b.display())),
        "{} and {} differ",
        a.display(),
        b.display()
    );
}

/// Every sealed segment of `log_dir` (and its index) is in `archive`,
/// byte-identical, and the tail segment is not.
fn holds_sealed_segments(log_dir: &Path, archive: &Path, sealed: u64) {
    for k in 0..sealed {
        same(
            &segment::segment_path(log_dir, k * RPS),
            &segment::segment_path(archive, k * RPS),
        );
        same(
            &segment::index_path(log_dir, k * RPS),
            &segment::index_path(archive, k * RPS),
        );
    }
    assert!(
        !segment::segment_path(archive, sealed * RPS).exists(),
        "the tail segment is not archived"
    );
    assert_eq!(segment::list(archive).unwrap().len() as u64, sealed);
}

#[tokio::test]
async fn sealed_segments_and_checkpoints_reach_the_archive_byte_identical() {
    let (dir, archive) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let signer = NoteSigner::generate("test.example/jisr/gw-1").unwrap();
    let log = open(dir.path(), &signer, Some(archive.path()));
    fill(&log, 0..18).await;
    log.close().await;
    assert_eq!(
        archive_stats(&log),
        ArchiveStats {
            lag_segments: 0,
            failures: 0,
            segments_copied: 4,
            last_error: None
        }
    );

    holds_sealed_segments(dir.path(), archive.path(), 4);
    for name in ["checkpoint", "checkpoints.log", "verifier.key", "FORMAT"] {
        same(&dir.path().join(name), &archive.path().join(name));
    }
    let report = verify::verify(archive.path(), Some(signer.verifier()));
    assert!(report.ok(), "{:?}", report.problems);
    assert!(report.archive);
    assert_eq!(report.entries, 16);
    assert_eq!(report.latest.as_ref().map(|c| c.size), Some(18));
    assert_eq!(
        report.uncovered.last(),
        Some(&18),
        "the final checkpoint covers the tail"
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("entries 16..18 are not in the archive")),
        "{:?}",
        report.notes
    );
    // The live log itself is not an archive: it still verifies whole.
    let report = verify::verify(dir.path(), Some(signer.verifier()));
    assert!(
        report.ok() && !report.archive && report.entries == 18,
        "{:?}",
        report.problems
    );
}

#[tokio::test]
async fn an_unwritable_archive_stops_nothing_and_its_backlog_is_copied_once_writable() {
    let (dir, parent) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A file where the archive directory should be: every copy fails.
    let archive = parent.path().join("archive");
    std::fs::write(&archive, b"not a directory").unwrap();
    let signer = NoteSigner::generate("test.example/jisr/gw-1").unwrap();
    let log = open(dir.path(), &signer, Some(&archive));
    fill(&log, 0..10).await;
    assert_eq!(log.size(), 10, "every append acknowledged");
    assert!(log.failure().is_none());
    eventually("the failures to be counted", || {
        let s = archive_stats(&log);
        s.failures >= 1 && s.lag_segments == 2 && s.last_error.is_some()
    })
    .await;

    std::fs::remove_file(&archive).unwrap();
    // The next seal (or the retry) copies the backlog.
    fill(&log, 10..13).await;
    eventually("the backlog to be copied", || {
        let s = archive_stats(&log);
        s.lag_segments == 0 && s.last_error.is_none() && s.segments_copied == 3
    })
    .await;
    log.close().await;
    holds_sealed_segments(dir.path(), &archive, 3);
    same(
        &dir.path().join("checkpoints.log"),
        &archive.join("checkpoints.log"),
    );
    let report = verify::verify(&archive, Some(signer.verifier()));
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(
        (report.entries, report.latest.map(|c| c.size)),
        (12, Some(13))
    );
}

#[tokio::test]
async fn a_start_copies_what_the_archive_misses() {
    let (dir, archive) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let signer = NoteSigner::generate("test.example/jisr/gw-1").unwrap();
    let log = open(dir.path(), &signer, None);
    fill(&log, 0..9).await;
    log.close().await;
    drop(log);

    // No appends: the start-up pass alone fills the archive.
    let log = open(dir.path(), &signer, Some(archive.path()));
    eventually("the start-up copy", || {
        archive_stats(&log).segments_copied == 2
    })
    .await;
    assert_eq!(archive_stats(&log).lag_segments, 0);
    log.close().await;
    holds_sealed_segments(dir.path(), archive.path(), 2);
    same(
        &dir.path().join("checkpoint"),
        &archive.path().join("checkpoint"),
    );
    let report = verify::verify(archive.path(), None);
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.entries, 8);
}

#[tokio::test]
async fn verify_names_an_archived_segment_altered_by_one_byte() {
    let (dir, archive) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let signer = NoteSigner::generate("test.example/jisr/gw-1").unwrap();
    let log = open(dir.path(), &signer, Some(archive.path()));
    fill(&log, 0..13).await;
    log.close().await;
    let seg = segment::segment_path(archive.path(), RPS);
    let mut bytes = std::fs::read(&seg).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&seg, bytes).unwrap();

    let report = verify::verify(archive.path(), Some(signer.verifier()));
    assert!(!report.ok());
    let name = seg.display().to_string();
    assert!(
        report.problems.iter().any(|p| p.contains(&name)),
        "{:?}",
        report.problems
    );
}

#[tokio::test]
async fn an_archive_of_another_log_is_never_overwritten() {
    let (dir, archive) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let other = NoteSigner::generate("test.example/jisr/gw-2").unwrap();
    let theirs = format!("{}\n", other.verifier().to_text());
    std::fs::write(archive.path().join("verifier.key"), &theirs).unwrap();
    let signer = NoteSigner::generate("test.example/jisr/gw-1").unwrap();
    let log = open(dir.path(), &signer, Some(archive.path()));
    fill(&log, 0..6).await;
    eventually("the refusal to be counted", || {
        archive_stats(&log)
            .last_error
            .is_some_and(|e| e.contains("the archive of another log"))
    })
    .await;
    log.close().await;
    assert_eq!(
        std::fs::read_to_string(archive.path().join("verifier.key")).unwrap(),
        theirs
    );
    assert!(segment::list(archive.path()).unwrap().is_empty());
}
