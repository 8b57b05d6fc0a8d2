//! The log as a whole: append, recover, prove, verify, tamper.

use super::merkle::{self, verify_consistency, verify_inclusion};
use super::note::{open_note, Checkpoint, NoteSigner};
use super::segment;
use super::*;
use crate::proto::jisr::audit::v1::AuditRecord;
use prost::Message as _;
use std::path::Path;
use std::time::Duration;

fn options(dir: &Path, signer: &NoteSigner, rps: u64) -> LogOptions {
    LogOptions {
        dir: dir.to_owned(),
        signer: NoteSigner::from_secret_text(&signer.to_secret_text()).unwrap(),
        records_per_segment: rps,
        checkpoint_interval: Duration::from_millis(20),
    }
}

fn record(i: u64) -> Vec<u8> {
    AuditRecord {
        time_unix_micros: i as i64,
        request_id: format!("req-{i}"),
        consumer: "education".into(),
        method: "/ma.tax.v1.TaxRecords/GetTaxStatus".into(),
        ..Default::default()
    }
    .encode_to_vec()
}

async fn fill(log: &AuditLog, range: std::ops::Range<u64>) -> Vec<u64> {
    let appends = range.map(|i| log.append(record(i)));
    futures_util::future::join_all(appends)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

#[tokio::test]
async fn appends_are_durable_provable_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::generate("test.example/jisr/gw-1").unwrap();
    let log = AuditLog::open(options(dir.path(), &signer, 16)).unwrap();
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
    log.close().await;
    drop(log);
    let report = verify::verify(dir.path(), Some(signer.verifier()));
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.entries, 130);
}

#[tokio::test]
async fn a_torn_tail_is_truncated_and_damage_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::generate("test.example/jisr/gw-1").unwrap();
    let log = AuditLog::open(options(dir.path(), &signer, 1000)).unwrap();
    fill(&log, 0..10).await;
    log.close().await;
    drop(log);
    let seg = segment::segment_path(dir.path(), 0);
    // An interrupted write: half a frame at the end.
    let mut extra = Vec::new();
    segment::frame(&record(10), &mut extra);
    let mut bytes = std::fs::read(&seg).unwrap();
    let clean = bytes.len();
    bytes.extend_from_slice(&extra[..extra.len() / 2]);
    std::fs::write(&seg, &bytes).unwrap();
    let log = AuditLog::open(options(dir.path(), &signer, 1000)).unwrap();
    assert_eq!(log.size(), 10);
    assert_eq!(std::fs::metadata(&seg).unwrap().len() as usize, clean);
    drop(log);
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
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::generate("test.example/jisr/gw-1").unwrap();
    let log = AuditLog::open(options(dir.path(), &signer, 1000)).unwrap();
    fill(&log, 0..10).await;
    log.close().await;
    drop(log);
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
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::generate("test.example/jisr/gw-1").unwrap();
    let log = AuditLog::open(options(dir.path(), &signer, 16)).unwrap();
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
    log.close().await;
    drop(log);
    let report = verify::verify(dir.path(), Some(signer.verifier()));
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.entries, 90);
}
