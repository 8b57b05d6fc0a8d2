//! The queue over fake storage: failed syncs, and syncs held at the fault
//! hook's gate while the next batch is written.

use super::*;
use crate::audit::log::hashes::HashFile;
use crate::audit::log::storage::SyncJob;
use crate::audit::log::WriterStats;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, RwLock};

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
    fn overlaps(&self, _: &[Vec<u8>]) -> bool {
        true
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

fn shared(dir: &std::path::Path, signer: &NoteSigner) -> Arc<Shared> {
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

fn append(tx: &mpsc::Sender<Request>) -> oneshot::Receiver<Result<u64, AuditError>> {
    let (ack, done) = oneshot::channel();
    tx.try_send(Request::Append {
        payload: b"entry".to_vec(),
        ack: Ack::direct(ack),
    })
    .unwrap();
    done
}

#[tokio::test]
async fn a_failed_sync_acknowledges_nothing_and_stops_the_queue_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::generate("test.example/jisr/queue").unwrap();
    let shared = shared(dir.path(), &signer);
    let calls = Arc::new(Mutex::new(Calls::default()));
    let storage = FailingSync(calls.clone());
    let queue = Queue::new(shared.clone(), storage, signer, Duration::from_secs(60));
    let (tx, rx) = mpsc::channel(16);
    // Queued before the thread starts, so they are one batch.
    let first: Vec<_> = (0..3).map(|_| append(&tx)).collect();
    let thread = std::thread::spawn(move || run(queue, rx));

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
    let err = append(&tx).await.unwrap().unwrap_err();
    assert!(
        err.to_string().contains("fsync of the fake failed"),
        "{err}"
    );
    {
        let calls = calls.lock().unwrap();
        assert_eq!(calls.appended, [3]);
        assert_eq!(calls.syncs, 1);
    }
    assert_eq!(shared.stats.lock().unwrap().batches, 0);

    let (ack, closed) = oneshot::channel();
    tx.try_send(Request::Close { ack }).unwrap();
    closed.await.unwrap();
    thread.join().unwrap();
}

/// A storage that records what it is asked, in order, and whose sync
/// jobs go through the fault hook: tests hold them at its gate.
struct Gated {
    events: Arc<Mutex<Vec<String>>>,
    faults: Arc<crate::audit::log::Faults>,
}

impl Gated {
    fn note(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }
}

impl Storage for Gated {
    fn append(&mut self, first: u64, batch: &[Vec<u8>]) -> Result<(), AuditError> {
        self.note(format!("write {first}+{}", batch.len()));
        Ok(())
    }
    fn overlaps(&self, _: &[Vec<u8>]) -> bool {
        true
    }
    fn start_sync(&mut self) -> SyncJob {
        self.note("sync".into());
        let faults = self.faults.clone();
        Box::new(move || match faults.on_fsync() {
            Some(e) => Err(format!("fsync of the fake failed: {e}")),
            None => Ok(()),
        })
    }
    fn synced(&mut self) -> Result<(), AuditError> {
        self.note("synced".into());
        Ok(())
    }
    fn seal(&mut self) {}
    fn checkpoint(&mut self, _: &SignedCheckpoint) -> Result<(), AuditError> {
        Ok(())
    }
}

type Done = oneshot::Receiver<Result<u64, AuditError>>;

/// A writer thread over [`Gated`] storage whose fsyncs are held.
struct Rig {
    shared: Arc<Shared>,
    events: Arc<Mutex<Vec<String>>>,
    tx: mpsc::Sender<Request>,
    thread: std::thread::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// Starts the writer with `first` appends queued (one batch).
    fn start(first: usize) -> (Self, Vec<Done>) {
        let dir = tempfile::tempdir().unwrap();
        let signer = NoteSigner::generate("test.example/jisr/queue").unwrap();
        let shared = shared(dir.path(), &signer);
        shared.faults.hold_fsyncs();
        let events = Arc::new(Mutex::new(Vec::new()));
        let storage = Gated {
            events: events.clone(),
            faults: shared.faults.clone(),
        };
        let queue = Queue::new(shared.clone(), storage, signer, Duration::from_secs(60));
        let (tx, rx) = mpsc::channel(16);
        let done = (0..first).map(|_| append(&tx)).collect();
        let thread = std::thread::spawn(move || run(queue, rx));
        let rig = Self {
            shared,
            events,
            tx,
            thread,
            _dir: dir,
        };
        (rig, done)
    }

    /// Waits until an fsync is held at the gate.
    fn held(&self) {
        let held = self.shared.faults.wait_held(1, Duration::from_secs(10));
        assert!(held, "no fsync reached the gate: {:?}", self.events());
    }

    /// Waits until `n` entries were written (bounded).
    fn wait_written(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while written(&self.events()) < n {
            assert!(
                Instant::now() < deadline,
                "not {n} written: {:?}",
                self.events()
            );
            std::thread::yield_now();
        }
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    fn size(&self) -> u64 {
        self.shared.size.load(Ordering::Acquire)
    }

    async fn close(self) {
        self.shared.faults.stop_holding();
        let (ack, closed) = oneshot::channel();
        self.tx.try_send(Request::Close { ack }).unwrap();
        closed.await.unwrap();
        self.thread.join().unwrap();
    }
}

/// Entries written, from the events' "write first+n".
fn written(events: &[String]) -> u64 {
    events
        .iter()
        .filter_map(|e| e.strip_prefix("write "))
        .map(|e| e.split_once('+').unwrap().1.parse::<u64>().unwrap())
        .sum()
}

/// Whether an answer has arrived, without waiting for one.
fn answered(done: &mut [Done]) -> Vec<bool> {
    done.iter_mut()
        .map(|d| !matches!(d.try_recv(), Err(oneshot::error::TryRecvError::Empty)))
        .collect()
}

#[tokio::test]
async fn the_next_batch_is_written_while_a_sync_is_held_and_each_waits_for_its_own() {
    let (rig, mut first) = Rig::start(2);
    rig.held(); // the first batch's fsync is in flight, held
    let mut second = vec![append(&rig.tx), append(&rig.tx)];
    // Written while the first sync is held (one batch or two, as the
    // writer happened to take them).
    rig.wait_written(4);
    assert_eq!(answered(&mut first), [false, false]);
    assert_eq!(answered(&mut second), [false, false]);
    assert_eq!(rig.size(), 0);

    rig.shared.faults.release_fsyncs(1);
    for (i, done) in first.into_iter().enumerate() {
        assert_eq!(done.await.unwrap().unwrap(), i as u64);
    }
    // The second batch's own sync began after the first ended; it is
    // held, and its batch is not acknowledged meanwhile.
    rig.held();
    assert_eq!(answered(&mut second), [false, false]);
    assert_eq!(rig.size(), 2);
    rig.shared.faults.release_fsyncs(1);
    for (i, done) in second.into_iter().enumerate() {
        assert_eq!(done.await.unwrap().unwrap(), 2 + i as u64);
    }
    assert_eq!(rig.size(), 4);
    let events = rig.events();
    let first_synced = events.iter().position(|e| e == "synced").unwrap();
    assert_eq!(written(&events[..first_synced]), 4, "{events:?}");
    assert_eq!(
        events.iter().filter(|e| *e == "sync").count(),
        2,
        "{events:?}"
    );
    rig.close().await;
}

#[tokio::test]
async fn a_failed_sync_refuses_both_batches_in_flight_and_everything_after() {
    let (rig, first) = Rig::start(2);
    rig.held();
    let second = vec![append(&rig.tx), append(&rig.tx)];
    rig.wait_written(4);
    rig.shared.faults.fail_next_fsync();
    rig.shared.faults.release_fsyncs(1);
    for done in first.into_iter().chain(second) {
        let err = done.await.unwrap().unwrap_err();
        assert!(
            err.to_string().contains("fsync of the fake failed"),
            "{err}"
        );
    }
    assert_eq!(rig.size(), 0, "nothing acknowledged");
    assert!(rig.shared.failed().is_some());
    // Stopped for good: nothing later is written, synced or answered
    // with an index, though the next fsync would succeed.
    rig.shared.faults.stop_holding();
    let err = append(&rig.tx).await.unwrap().unwrap_err();
    assert!(err.to_string().contains("fsync"), "{err}");
    assert_eq!(rig.size(), 0);
    let events = rig.events();
    assert_eq!(
        events.iter().filter(|e| *e == "sync").count(),
        1,
        "{events:?}"
    );
    assert!(!events.iter().any(|e| e == "synced"), "{events:?}");
    assert_eq!(
        written(&events),
        4,
        "the later append was not written: {events:?}"
    );
    rig.close().await;
}
