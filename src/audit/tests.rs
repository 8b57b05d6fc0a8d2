//! The log as a whole: append, recover, prove, verify, tamper.

use super::log::files;
use super::log::segment;
use super::merkle::{self, verify_consistency, verify_inclusion};
use super::note::{open_note, Checkpoint, NoteSigner};
use super::*;
use crate::proto::jisr::audit::v1::AuditRecord;
use prost::Message as _;
use std::path::Path;
use std::time::Duration;

pub(super) fn options(dir: &Path, signer: &NoteSigner, rps: u64) -> LogOptions {
    LogOptions {
        dir: dir.to_owned(),
        signer: NoteSigner::from_secret_text(&signer.to_secret_text()).unwrap(),
        records_per_segment: rps,
        checkpoint_interval: Duration::from_millis(20),
        archive_dir: None,
    }
}

pub(super) fn record(i: u64) -> Vec<u8> {
    AuditRecord {
        time_unix_micros: i as i64,
        request_id: format!("req-{i}"),
        consumer: "education".into(),
        method: "/ma.tax.v1.TaxRecords/GetTaxStatus".into(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A fresh directory and signer, and a log there with `rps` records per
/// segment.
pub(super) fn new_log(rps: u64) -> (tempfile::TempDir, NoteSigner, AuditLog) {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::generate("test.example/jisr/gw-1").unwrap();
    let log = AuditLog::open(options(dir.path(), &signer, rps)).unwrap();
    (dir, signer, log)
}

/// A log with `rps` records per segment holding entries `0..entries`,
/// closed, in a fresh directory.
pub(super) async fn closed_log(rps: u64, entries: u64) -> (tempfile::TempDir, NoteSigner) {
    let (dir, signer, log) = new_log(rps);
    fill(&log, 0..entries).await;
    log.close().await;
    (dir, signer)
}

/// Checks that `dir` verifies offline and holds `entries`.
fn verifies(dir: &Path, signer: &NoteSigner, entries: u64) {
    let report = verify::verify(dir, Some(signer.verifier()));
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.entries, entries);
}

/// Closes `log`, then checks that `dir` verifies offline and holds `entries`.
async fn close_and_verify(log: AuditLog, dir: &Path, signer: &NoteSigner, entries: u64) {
    log.close().await;
    drop(log);
    verifies(dir, signer, entries);
}

pub(super) async fn fill(log: &AuditLog, range: std::ops::Range<u64>) -> Vec<u64> {
    let appends = range.map(|i| log.append(record(i)));
    futures_util::future::join_all(appends)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

#[tokio::test]
async fn appends_are_durable_provable_and_survive_reopening() {
    let (dir, signer, log) = new_log(16);
    let mut indexes = fill(&log, 0..100).await;
    indexes.sort_unstable();
    assert_eq!(indexes, (0..100).collect::<Vec<_>>());
    assert_eq!(log.size(), 100);
    let root = log.root(100).unwrap();
    for i in [0, 15, 16, 57, 99] {
        let bytes = log.read(i).unwrap();
        let proof = log.inclusion_proof(i, 100).unwrap();
        verify_inclusion(&proof, 100, &root, i, &merkle::leaf_hash(&bytes)).unwrap();
    }
    let old = log.root(37).unwrap();
    let proof = log.consistency_proof(37, 100).unwrap();
    verify_consistency(&proof, 100, &root, 37, &old).unwrap();
    log.close().await;
    let cp = log.checkpoint();
    assert_eq!(cp.checkpoint.size, 100);
    let body = open_note(&cp.note, &signer.verifier()).unwrap();
    assert_eq!(Checkpoint::parse(body).unwrap().root, root);
    drop(log);

    let log = AuditLog::open(options(dir.path(), &signer, 16)).unwrap();
    assert_eq!(log.size(), 100);
    assert_eq!(log.root(100).unwrap(), root);
    fill(&log, 100..130).await;
    close_and_verify(log, dir.path(), &signer, 130).await;
}

#[tokio::test]
async fn a_torn_tail_is_truncated_and_damage_refuses_to_start() {
    let (dir, signer) = closed_log(1000, 10).await;
    let seg = segment::segment_path(dir.path(), 0);
    let clean = ends(&seg).0 as usize;
    // An interrupted write: half a frame at the end, in a log without
    // padding (as written before the tail was padded) …
    let mut extra = Vec::new();
    segment::frame(&record(10), &mut extra);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.truncate(clean);
    bytes.extend_from_slice(&extra[..extra.len() / 2]);
    std::fs::write(&seg, &bytes).unwrap();
    let log = AuditLog::open(options(dir.path(), &signer, 1000)).unwrap();
    assert_eq!(log.size(), 10);
    log.close().await;
    drop(log);
    // … is cut off; the writer pads the tail again.
    let (end, len) = ends(&seg);
    assert_eq!(end as usize, clean);
    assert!(len > end);
    // Damage in the middle: a flipped byte in the third record.
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[clean / 3] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    let err = AuditLog::open(options(dir.path(), &signer, 1000)).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("is damaged") && message.contains("offset"),
        "{message}"
    );
}

#[tokio::test]
async fn a_log_shorter_than_its_checkpoint_refuses_to_start() {
    let (dir, signer) = closed_log(1000, 10).await;
    // Cut exactly at a record boundary: not torn, but acknowledged entries are gone.
    let seg = segment::segment_path(dir.path(), 0);
    let scan = segment::scan(&seg, |_, _| {}).unwrap();
    segment::truncate(&seg, scan.offsets[7]).unwrap();
    let err = AuditLog::open(options(dir.path(), &signer, 1000)).unwrap_err();
    assert!(
        err.to_string().contains("covers 10 entries but only 7"),
        "{err}"
    );
    let report = verify::verify(dir.path(), Some(signer.verifier()));
    assert!(!report.ok());
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::generate("test.example/jisr/gw-1").unwrap();
    let _log = AuditLog::open(options(dir.path(), &signer, 1000)).unwrap();
    let err = AuditLog::open(options(dir.path(), &signer, 1000)).unwrap_err();
    assert!(matches!(err, AuditError::Locked { .. }), "{err}");
}

#[tokio::test]
async fn lost_stored_hashes_are_rebuilt_from_the_records_on_open() {
    let (dir, signer, log) = new_log(16);
    fill(&log, 0..77).await;
    let root = log.root(77).unwrap();
    log.close().await;
    drop(log);
    // A crash between the records' fsync and the stored hashes' write.
    let hashes = dir.path().join("tree.hashes");
    let full = std::fs::metadata(&hashes).unwrap().len();
    let cut = merkle::stored_hash_count(40) * 32 + 7;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&hashes)
        .unwrap()
        .set_len(cut)
        .unwrap();

    let log = AuditLog::open(options(dir.path(), &signer, 16)).unwrap();
    assert_eq!(std::fs::metadata(&hashes).unwrap().len(), full);
    assert_eq!(log.root(77).unwrap(), root);
    fill(&log, 77..90).await;
    close_and_verify(log, dir.path(), &signer, 90).await;
}

/// The records' end and the file's length of a segment.
pub(super) fn ends(path: &Path) -> (u64, u64) {
    let scan = segment::scan(path, |_, _| {}).unwrap();
    assert_eq!(scan.problem, None, "{}", path.display());
    (scan.valid_len, scan.file_len)
}

#[tokio::test]
async fn a_padded_tail_reopens_as_it_is_and_appends_go_on_over_the_padding() {
    let (dir, signer) = closed_log(1000, 50).await;
    let seg = segment::segment_path(dir.path(), 0);
    let (records_end, file_len) = ends(&seg);
    assert!(
        file_len >= records_end + files::PAD_CHUNK / 2,
        "the tail is padded ahead: records end at {records_end}, file at {file_len}"
    );

    let log = AuditLog::open(options(dir.path(), &signer, 1000)).unwrap();
    assert_eq!(log.size(), 50);
    // Clean padding is neither truncated nor rewritten on open.
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), file_len);
    let old = log.root(50).unwrap();
    fill(&log, 50..80).await;
    let root = log.root(80).unwrap();
    for i in [0, 49, 50, 79] {
        let proof = log.inclusion_proof(i, 80).unwrap();
        let leaf = merkle::leaf_hash(&log.read(i).unwrap());
        verify_inclusion(&proof, 80, &root, i, &leaf).unwrap();
    }
    let proof = log.consistency_proof(50, 80).unwrap();
    verify_consistency(&proof, 80, &root, 50, &old).unwrap();
    log.close().await;
    assert_eq!(log.checkpoint().checkpoint.size, 80);
    drop(log);
    let (end, len) = ends(&seg);
    assert!(end > records_end && len == file_len, "{end} {len}");
    verifies(dir.path(), &signer, 80);
}

#[tokio::test]
async fn after_a_crash_padding_is_kept_a_torn_write_in_it_is_cut_and_sealed_segments_are_exact() {
    let (dir, signer, log) = new_log(16);
    fill(&log, 0..40).await;
    let root = log.root(40).unwrap();
    log.crash();
    // Sealed segments lost their padding when sealed; the tail has some.
    for first in [0, 16] {
        let (end, len) = ends(&segment::segment_path(dir.path(), first));
        assert_eq!(end, len, "segment {first} is exact");
    }
    let seg = segment::segment_path(dir.path(), 32);
    let (records_end, file_len) = ends(&seg);
    assert!(file_len > records_end);

    // Reopen after the crash: the same entries, the padding kept.
    let log = AuditLog::open(options(dir.path(), &signer, 16)).unwrap();
    assert_eq!((log.size(), log.root(40).unwrap()), (40, root));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), file_len);
    log.crash();

    // A write interrupted inside the padding: half a frame, zeros after.
    let mut torn = Vec::new();
    segment::frame(&record(40), &mut torn);
    use std::os::unix::fs::FileExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .write_all_at(&torn[..torn.len() / 2], records_end)
        .unwrap();
    let scan = segment::scan(&seg, |_, _| {}).unwrap();
    assert_eq!(scan.problem, Some(segment::Problem::TornTail));
    let log = AuditLog::open(options(dir.path(), &signer, 16)).unwrap();
    assert_eq!(log.size(), 40);
    fill(&log, 40..60).await;
    log.close().await;
    drop(log);
    // The torn write was cut and the tail padded again; the log verifies.
    let (end, len) = ends(&segment::segment_path(dir.path(), 48));
    assert!(len > end);
    assert_eq!(ends(&seg).0, ends(&seg).1, "segment 32 is sealed now");
    verifies(dir.path(), &signer, 60);
}

#[tokio::test]
async fn a_sealed_segment_with_padding_is_damage() {
    let (dir, signer) = closed_log(16, 40).await;
    let seg = segment::segment_path(dir.path(), 16);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.resize(bytes.len() + 4096, 0);
    std::fs::write(&seg, &bytes).unwrap();
    let err = AuditLog::open(options(dir.path(), &signer, 16))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("00000000000000000016.log") && err.contains("4096 zero bytes"),
        "{err}"
    );
    let report = verify::verify(dir.path(), Some(signer.verifier()));
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("4096 zero bytes") && p.contains("only the last segment")),
        "{:?}",
        report.problems
    );
    let err = reindex(dir.path()).unwrap_err().to_string();
    assert!(err.contains("zero bytes"), "{err}");
}

/// A small tmpfs, unmounted on drop. Mounting needs root: the tests using
/// it are `#[ignore]`d and named `…_as_root`, and `scripts/test.sh` runs
/// them when it runs as root; run by hand without root, they fail saying so.
/// `fault_tests.rs` proves the same refusals on any machine.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0\n"))
            .unwrap_or(false);
        assert!(
            root,
            "this test mounts a small tmpfs, which needs root: run it as root \
             (scripts/test.sh does when it runs as root)"
        );
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs failed although root");
        Self { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Appends rounds of `n` entries until one fails; returns the entries
/// acknowledged and the first error.
async fn fill_until_refused(log: &AuditLog, from: u64, n: u64) -> (u64, AuditError) {
    let mut next = from;
    for _ in 0..2000 {
        let results =
            futures_util::future::join_all((next..next + n).map(|i| log.append(record(i)))).await;
        next += n;
        for r in results {
            if let Err(e) = r {
                let acked = log.size();
                return (acked, e);
            }
        }
    }
    panic!("the disk never filled up");
}

#[tokio::test]
#[ignore = "needs root (mounts a tmpfs); scripts/test.sh runs it as root"]
async fn a_full_disk_uses_the_padding_left_then_refuses_and_loses_nothing_as_root() {
    let disk = SmallDisk::mount("6m");
    let dir = disk.dir.path().join("audit");
    let signer = NoteSigner::generate("test.example/jisr/gw-1").unwrap();
    let log = AuditLog::open(options(&dir, &signer, 1 << 16)).unwrap();
    fill(&log, 0..10).await;
    let seg = segment::segment_path(&dir, 0);
    assert!(std::fs::metadata(&seg).unwrap().len() >= files::PAD_CHUNK);
    // Fill the disk; the tail's padding is all the room left.
    let filler = disk.dir.path().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 8 << 20]);
    assert!(std::fs::write(disk.dir.path().join("more"), [1u8; 8192]).is_err());
    // Entries go on into the padding, then on the space it gave back, then
    // the log refuses with a clear error.
    fill(&log, 10..1010).await;
    let (acked, err) = fill_until_refused(&log, 1010, 100).await;
    assert!(acked > 1010, "{acked}");
    assert!(
        matches!(err, AuditError::Unavailable(ref why) if why.contains("No space left")),
        "{err}"
    );
    // Space comes back. The log records again without a restart, unless a
    // derived file (the offset index, the stored hashes) was the one that
    // hit the full disk: then it stopped for good and a restart fixes it.
    std::fs::remove_file(&filler).unwrap();
    if log.failure().is_none() {
        log.append(record(1)).await.expect("recording resumes");
    }
    let acked = log.size();
    log.crash();
    // Nothing acknowledged is lost, and the log verifies and restarts.
    let log = AuditLog::open(options(&dir, &signer, 1 << 16)).unwrap();
    assert!(log.size() >= acked, "{} < {acked}", log.size());
    let n = log.size();
    fill(&log, n..n + 10).await;
    log.close().await;
    drop(log);
    let report = verify::verify(&dir, Some(signer.verifier()));
    assert!(report.ok(), "{:?}", report.problems);
}

#[tokio::test]
async fn a_segment_filled_by_a_batch_is_sealed_between_batches_not_padded() {
    let (dir, signer) = closed_log(16, 16).await;
    let (end, len) = ends(&segment::segment_path(dir.path(), 0));
    assert_eq!(end, len, "the full segment was sealed exact");
    // The next segment exists already, empty and padded.
    let (end, len) = ends(&segment::segment_path(dir.path(), 16));
    assert_eq!(end, 0);
    assert!(len >= files::PAD_CHUNK);
    let log = AuditLog::open(options(dir.path(), &signer, 16)).unwrap();
    assert_eq!(log.size(), 16);
    fill(&log, 16..20).await;
    close_and_verify(log, dir.path(), &signer, 20).await;
}

#[tokio::test]
async fn each_signed_checkpoint_is_published_to_those_who_wait_for_it() {
    let (_dir, _signer, log) = new_log(16);
    let mut published = log.published();
    assert_eq!(*published.borrow_and_update(), 0);
    fill(&log, 0..3).await;
    // Checkpoints of 1 or 2 entries may come first; the bound only
    // catches a publication that never comes.
    tokio::time::timeout(Duration::from_secs(10), async {
        while *published.borrow_and_update() < 3 {
            published.changed().await.unwrap();
        }
    })
    .await
    .expect("the checkpoint of 3 entries was signed but never published");
    assert_eq!(log.checkpoint().checkpoint.size, 3);
    log.close().await;
}
