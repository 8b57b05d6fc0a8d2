//! The queue over fake storage: failed syncs, syncs held at the fault
//! hook's gate while appends arrive, the intake's bound, and a close with
//! appends pending.

use super::*;
use crate::audit::log::hashes::HashFile;
use crate::audit::log::storage::SyncJob;
use crate::audit::log::WriterStats;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, RwLock};
use tokio::sync::oneshot;

/// What the fake storage was asked to do.
#[derive(Debug, Default)]
struct Calls {
    appended: Vec<usize>,
    syncs: usize,
}

/// A storage whose every sync fails, as a dying disk's fsync would.
struct FailingSync(Arc<Mutex<Calls>>);

impl Storage for FailingSync {
    fn append(&mut self, _first: u64, batch: &[Vec<u8>]) -> Result<(), AuditError> {
        self.0.lock().unwrap().appended.push(batch.len());
        Ok(())
    }
    fn start_sync(&mut self) -> SyncJob {
        self.0.lock().unwrap().syncs += 1;
        Box::new(|| Err("fsync of the fake failed".into()))
    }
    fn synced(&mut self) -> Result<(), AuditError> {
        unreachable!("the sync failed")
    }
    fn seal(&mut self) {}
    fn checkpoint(&mut self, _: &SignedCheckpoint) -> Result<(), AuditError> {
        Ok(())
    }
}

pub(super) fn shared(dir: &std::path::Path, signer: &NoteSigner) -> Arc<Shared> {
    let checkpoint = Checkpoint {
        origin: signer.name().to_owned(),
        size: 0,
        root: merkle::empty_root(),
        extensions: Vec::new(),
    };
    Arc::new(Shared {
        dir: dir.to_owned(),
        records_per_segment: 16,
        size: AtomicU64::new(0),
        hashes: HashFile::open(&dir.join("tree.hashes")).unwrap(),
        published: tokio::sync::watch::Sender::new(0),
        checkpoint: RwLock::new(SignedCheckpoint {
            checkpoint,
            note: String::new(),
        }),
        verifier: signer.verifier(),
        failure: Mutex::new(None),
        stats: Mutex::new(WriterStats::default()),
        faults: Arc::default(),
    })
}

pub(super) type Done = oneshot::Receiver<Result<u64, AuditError>>;

/// Pushes an append answered directly; there is room for it.
pub(super) async fn append(intake: &Intake, payload: &[u8]) -> Done {
    let (ack, done) = oneshot::channel();
    intake
        .push(payload.to_vec(), Ack::direct(ack))
        .await
        .unwrap();
    done
}

/// The refusal an append meets, at the push or in its answer.
pub(super) async fn refused(intake: &Intake) -> String {
    let (ack, done) = oneshot::channel();
    match intake.push(b"late".to_vec(), Ack::direct(ack)).await {
        Err(e) => e.to_string(),
        Ok(()) => done.await.unwrap().unwrap_err().to_string(),
    }
}

#[tokio::test]
async fn a_failed_sync_acknowledges_nothing_and_stops_the_queue_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::generate("test.example/jisr/queue").unwrap();
    let shared = shared(dir.path(), &signer);
    let calls = Arc::new(Mutex::new(Calls::default()));
    let storage = FailingSync(calls.clone());
    let queue = Queue::new(shared.clone(), storage, signer, Duration::from_secs(60));
    let intake = Arc::new(Intake::new(16));
    // Pushed before the thread starts, so they are one batch.
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(append(&intake, b"entry").await);
    }
    let thread = std::thread::spawn({
        let intake = intake.clone();
        move || run(queue, &intake)
    });

    for done in first {
        let err = done.await.unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            "the audit log cannot record entries: fsync of the fake failed",
            "the reason, prefixed once"
        );
    }
    assert_eq!(
        shared.size.load(Ordering::Acquire),
        0,
        "nothing acknowledged"
    );
    assert_eq!(shared.failed().as_deref(), Some("fsync of the fake failed"));

    // Stopped for good: a later append is refused without storage
    // being asked to write it.
    let err = refused(&intake).await;
    assert!(err.contains("fsync of the fake failed"), "{err}");
    {
        let calls = calls.lock().unwrap();
        assert_eq!(calls.appended, [3]);
        assert_eq!(calls.syncs, 1);
    }
    assert_eq!(shared.stats.lock().unwrap().batches, 0);

    let (ack, closed) = oneshot::channel();
    intake.close(ack);
    closed.await.unwrap();
    thread.join().unwrap();
}

/// A storage that keeps each batch's payloads as written, counts the
/// entries made durable by a sync that followed their write, and notes
/// any sync that finds its entries already acknowledged (the log's size
/// moves past a batch before its answers are sent).
struct Recording {
    shared: Arc<Shared>,
    written: Arc<Mutex<Vec<Vec<u8>>>>,
    durable: Arc<AtomicU64>,
    early: Arc<AtomicBool>,
}

impl Recording {
    fn new(shared: &Arc<Shared>) -> Self {
        Self {
            shared: shared.clone(),
            written: Arc::default(),
            durable: Arc::default(),
            early: Arc::default(),
        }
    }
}

impl Storage for Recording {
    fn append(&mut self, first: u64, batch: &[Vec<u8>]) -> Result<(), AuditError> {
        let mut written = self.written.lock().unwrap();
        assert_eq!(first, written.len() as u64, "written after the last");
        written.extend(batch.iter().cloned());
        Ok(())
    }
    fn start_sync(&mut self) -> SyncJob {
        let (written, durable) = (self.written.clone(), self.durable.clone());
        let (shared, early) = (self.shared.clone(), self.early.clone());
        Box::new(move || {
            if shared.size.load(Ordering::SeqCst) > durable.load(Ordering::SeqCst) {
                early.store(true, Ordering::SeqCst);
            }
            let n = written.lock().unwrap().len() as u64;
            durable.store(n, Ordering::SeqCst);
            Ok(())
        })
    }
    fn synced(&mut self) -> Result<(), AuditError> {
        Ok(())
    }
    fn seal(&mut self) {}
    fn checkpoint(&mut self, _: &SignedCheckpoint) -> Result<(), AuditError> {
        Ok(())
    }
}

/// `n` appends from a thread of its own, on a runtime of its own (so
/// answered through its inbox, as a lane's): each payload with its index,
/// and whether its entry was durable when its answer arrived.
fn lane(intake: &Intake, durable: &AtomicU64, name: &str, n: usize) -> Vec<(Vec<u8>, u64, bool)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut waiting = Vec::new();
        for i in 0..n {
            let payload = format!("{name}-{i}").into_bytes();
            let (ack, done) = oneshot::channel();
            intake.push(payload.clone(), Ack::here(ack)).await.unwrap();
            waiting.push((payload, done));
            if i % 7 == 0 {
                // Let some answers in between, so batches vary in size.
                tokio::task::yield_now().await;
            }
        }
        let mut got = Vec::new();
        for (payload, done) in waiting {
            let index = done.await.unwrap().unwrap();
            got.push((payload, index, durable.load(Ordering::SeqCst) > index));
        }
        got
    })
}

#[test]
fn appends_from_two_threads_are_acknowledged_in_log_order_once_durable() {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::generate("test.example/jisr/queue").unwrap();
    let shared = shared(dir.path(), &signer);
    let storage = Recording::new(&shared);
    let (written, durable) = (storage.written.clone(), storage.durable.clone());
    let early = storage.early.clone();
    let queue = Queue::new(shared.clone(), storage, signer, Duration::from_secs(60));
    let intake = Arc::new(Intake::new(64));
    let thread = std::thread::spawn({
        let intake = intake.clone();
        move || run(queue, &intake)
    });
    const N: usize = 500;
    let lanes: Vec<_> = ["one", "two"]
        .into_iter()
        .map(|name| {
            let (intake, durable) = (intake.clone(), durable.clone());
            std::thread::spawn(move || lane(&intake, &durable, name, N))
        })
        .collect();
    let answers: Vec<_> = lanes.into_iter().map(|t| t.join().unwrap()).collect();

    let written = written.lock().unwrap().clone();
    assert_eq!(written.len(), 2 * N);
    for got in &answers {
        for (payload, index, was_durable) in got {
            assert_eq!(
                &written[*index as usize], payload,
                "answered with its own index"
            );
            assert!(was_durable, "entry {index} answered before its sync");
        }
        // Each thread's appends, pushed in order, are in the log in order.
        assert!(got.windows(2).all(|w| w[0].1 < w[1].1));
    }
    assert_eq!(shared.size.load(Ordering::Acquire), 2 * N as u64);
    assert!(
        !early.load(Ordering::SeqCst),
        "entries acknowledged before their sync"
    );
    let (ack, closed) = oneshot::channel();
    intake.close(ack);
    closed.blocking_recv().unwrap();
    thread.join().unwrap();
}

#[test]
fn the_handle_gone_without_a_close_stops_the_thread_and_later_appends_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::generate("test.example/jisr/queue").unwrap();
    let shared = shared(dir.path(), &signer);
    let storage = Recording::new(&shared);
    let queue = Queue::new(shared, storage, signer, Duration::from_secs(60));
    let intake = Arc::new(Intake::new(4));
    let thread = std::thread::spawn({
        let intake = intake.clone();
        move || run(queue, &intake)
    });
    intake.gone();
    thread.join().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let err = rt.block_on(refused(&intake));
    assert!(err.contains("the audit writer has stopped"), "{err}");
}
