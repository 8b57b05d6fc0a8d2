//! Crashes at any byte: for any sequence of appends, crashes and restarts,
//! every acknowledged entry is in the log and every checkpoint ever
//! signed is consistent with the final tree.
//!
//! A crash here is what a kill or a power loss can leave: the writer
//! stops without flushing, then the files that are written but not
//! fsynced before an acknowledgement are cut at any byte (the stored
//! hashes, the offset index), and an unacknowledged write is torn at any
//! byte (part of one more record after the tail's records, part of one
//! more note after the checkpoint history's).

use super::log::segment;
use super::tests::{options, record};
use super::*;
use proptest::prelude::*;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

/// One step of a run.
#[derive(Debug, Clone)]
enum Step {
    /// Append this many entries, concurrently.
    Append(u64),
    /// Crash and restart, cutting and tearing at these fractions.
    Crash { cut: [u16; 3], torn: [u16; 2] },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1u64..24).prop_map(Step::Append),
        1 => (any::<[u16; 3]>(), any::<[u16; 2]>()).prop_map(|(cut, torn)| Step::Crash { cut, torn }),
    ]
}

/// `len * f / 65536`: a position anywhere in a file.
fn at(len: u64, f: u16) -> u64 {
    len * u64::from(f) / 65536
}

fn cut_file(path: &Path, f: u16) {
    if let Ok(file) = std::fs::OpenOptions::new().write(true).open(path) {
        let len = file.metadata().unwrap().len();
        file.set_len(at(len + 1, f).min(len)).unwrap();
    }
}

/// Writes the first part (never all) of `frame` at `offset`.
fn tear(path: &Path, offset: u64, frame: &[u8], f: u16) {
    let part = &frame[..at(frame.len() as u64, f) as usize];
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(part, offset).unwrap();
}

/// What a crash leaves of the files in `dir`.
fn crash_files(dir: &Path, cut: [u16; 3], torn: [u16; 2]) {
    cut_file(&dir.join("tree.hashes"), cut[0]);
    let firsts = segment::list(dir).unwrap();
    if let Some(&last) = firsts.last() {
        cut_file(&segment::index_path(dir, last), cut[1]);
        let seg = segment::segment_path(dir, last);
        let end = segment::scan(&seg, |_, _| {}).unwrap().valid_len;
        let mut frame = Vec::new();
        segment::frame(&record(999_999), &mut frame);
        tear(&seg, end, &frame, torn[0]);
    }
    let history = dir.join("checkpoints.log");
    if let Ok(meta) = std::fs::metadata(&history) {
        let mut frame = Vec::new();
        segment::frame(b"a note never published", &mut frame);
        tear(&history, meta.len(), &frame, torn[1]);
    }
    let _ = cut[2];
}

async fn run(steps: Vec<Step>) {
    let dir = tempfile::tempdir().unwrap();
    let signer = note::NoteSigner::generate("test.example/jisr/gw-1").unwrap();
    let open = || AuditLog::open(options(dir.path(), &signer, 8)).unwrap();
    let mut log = open();
    let mut acked: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut signed: Vec<SignedCheckpoint> = Vec::new();
    let mut next = 0u64;
    for step in steps {
        match step {
            Step::Append(n) => {
                let payloads: Vec<Vec<u8>> = (next..next + n).map(record).collect();
                next += n;
                let indexes =
                    futures_util::future::join_all(payloads.iter().map(|p| log.append(p.clone())))
                        .await;
                for (index, payload) in indexes.into_iter().zip(payloads) {
                    acked.push((index.unwrap(), payload));
                }
                signed.push(log.checkpoint());
            }
            Step::Crash { cut, torn } => {
                log.crash();
                crash_files(dir.path(), cut, torn);
                log = open();
                signed.push(log.checkpoint());
            }
        }
    }
    let size = log.size();
    for (index, payload) in &acked {
        assert_eq!(&log.read(*index).unwrap(), payload, "entry {index}");
    }
    for c in signed.iter().filter(|c| !c.note.is_empty()) {
        let c = &c.checkpoint;
        assert!(c.size <= size);
        assert_eq!(
            log.root(c.size).unwrap(),
            c.root,
            "checkpoint of size {}",
            c.size
        );
    }
    log.close().await;
    drop(log);
    let report = verify::verify(dir.path(), Some(signer.verifier()));
    assert!(report.ok(), "{:?}", report.problems);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn crashes_at_any_byte_lose_no_acknowledged_entry(steps in proptest::collection::vec(step(), 1..8)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(steps));
    }
}
