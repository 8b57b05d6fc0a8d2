//! The audit thread over storage whose fsyncs are held at the fault hook's
//! gate: what is written, synced and answered while one is held, the
//! intake's bound, a failed sync and a close with appends pending.

use super::tests::{append, refused, shared, Done};
use super::*;
use crate::audit::log::storage::SyncJob;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::task::{Context, Poll, Wake, Waker};
use tokio::sync::oneshot;

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

/// The audit thread over [`Gated`] storage whose fsyncs are held.
struct Rig {
    shared: Arc<Shared>,
    events: Arc<Mutex<Vec<String>>>,
    intake: Arc<Intake>,
    thread: std::thread::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// Starts the thread; at most `bound` appends wait in its intake.
    fn start(bound: usize) -> Self {
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
        let intake = Arc::new(Intake::new(bound));
        let thread = std::thread::spawn({
            let intake = intake.clone();
            move || run(queue, &intake)
        });
        Self {
            shared,
            events,
            intake,
            thread,
            _dir: dir,
        }
    }

    /// Waits until an fsync is held at the gate.
    fn held(&self) {
        let held = self.shared.faults.wait_held(1, Duration::from_secs(10));
        assert!(held, "no fsync reached the gate: {:?}", self.events());
    }

    /// Appends `a`, waits until its fsync is held at the gate, then
    /// appends `b` and `c`, which wait for it: `a`'s answer, theirs.
    async fn one_held_two_pending(&self) -> (Done, Vec<Done>) {
        let a = append(&self.intake, b"a").await;
        self.held();
        let pending = vec![
            append(&self.intake, b"b").await,
            append(&self.intake, b"c").await,
        ];
        (a, pending)
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
        self.intake.close(ack);
        closed.await.unwrap();
        self.thread.join().unwrap();
    }
}

/// Whether an answer has arrived, without waiting for one.
fn answered(done: &mut [Done]) -> Vec<bool> {
    done.iter_mut()
        .map(|d| !matches!(d.try_recv(), Err(oneshot::error::TryRecvError::Empty)))
        .collect()
}

async fn indexes(done: Vec<Done>) -> Vec<u64> {
    let mut got = Vec::new();
    for d in done {
        got.push(d.await.unwrap().unwrap());
    }
    got
}

#[tokio::test]
async fn appends_arriving_during_a_sync_wait_for_it_and_are_answered_after_their_own() {
    let rig = Rig::start(16);
    // The first batch's fsync is held.
    let (a, mut second) = rig.one_held_two_pending().await;
    let mut first = vec![a];
    assert_eq!(answered(&mut first), [false], "answered before its sync");
    assert_eq!(rig.size(), 0);

    rig.shared.faults.release_fsyncs(1);
    assert_eq!(indexes(first).await, [0]);
    // The second batch's own sync, after its write, is held; the batch is
    // not answered meanwhile.
    rig.held();
    assert_eq!(answered(&mut second), [false, false]);
    assert_eq!(rig.size(), 1);
    rig.shared.faults.release_fsyncs(1);
    assert_eq!(indexes(second).await, [1, 2]);
    assert_eq!(rig.size(), 3);
    assert_eq!(
        rig.events(),
        ["write 0+1", "sync", "synced", "write 1+2", "sync", "synced"],
        "one batch at a time, each synced after its write, taken whole"
    );
    rig.close().await;
}

/// Notes that a waker was woken.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_full_intake_makes_appends_wait_and_taking_it_lets_them_on() {
    let rig = Rig::start(2);
    let (a, bc) = rig.one_held_two_pending().await;
    // Two wait: the next append waits for room, without blocking.
    let (ack, d) = oneshot::channel();
    {
        let mut push = pin!(rig.intake.push(b"d".to_vec(), Ack::direct(ack)));
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(
            push.as_mut().poll(&mut cx).is_pending(),
            "no room to wait for"
        );

        // The thread takes b and c once a is synced: d is woken, goes in.
        rig.shared.faults.release_fsyncs(1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !flag.0.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "never woken: {:?}", rig.events());
            std::thread::yield_now();
        }
        assert!(matches!(push.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    }
    rig.shared.faults.stop_holding();
    assert_eq!(indexes(vec![a]).await, [0]);
    assert_eq!(indexes(bc).await, [1, 2]);
    assert_eq!(indexes(vec![d]).await, [3]);
    rig.close().await;
}

#[tokio::test]
async fn a_failed_sync_refuses_its_batch_every_pending_append_and_all_later_ones() {
    let rig = Rig::start(16);
    let (a, pending) = rig.one_held_two_pending().await;
    rig.shared.faults.fail_next_fsync();
    rig.shared.faults.release_fsyncs(1);
    for done in std::iter::once(a).chain(pending) {
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
    let err = refused(&rig.intake).await;
    assert!(err.contains("fsync"), "{err}");
    assert_eq!(rig.size(), 0);
    assert_eq!(
        rig.events(),
        ["write 0+1", "sync"],
        "the pending and later appends were not written"
    );
    rig.close().await;
}

#[tokio::test]
async fn a_close_commits_the_appends_pushed_before_it_then_refuses_appends() {
    let rig = Rig::start(16);
    let (a, pending) = rig.one_held_two_pending().await;
    let (ack, mut closed) = oneshot::channel();
    rig.intake.close(ack);
    let err = refused(&rig.intake).await;
    assert!(err.contains("the audit log is closed"), "{err}");
    assert!(closed.try_recv().is_err(), "closed with appends pending");

    rig.shared.faults.stop_holding();
    assert_eq!(indexes(vec![a]).await, [0]);
    assert_eq!(indexes(pending).await, [1, 2]);
    closed.await.unwrap();
    rig.thread.join().unwrap();
    assert_eq!(rig.shared.size.load(Ordering::Acquire), 3);
    // The thread is gone: appends are refused, not left waiting.
    let err = refused(&rig.intake).await;
    assert!(err.contains("the audit writer has stopped"), "{err}");
}
