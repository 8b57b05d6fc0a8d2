//! The writer thread's queue: group commit and acknowledgement.
//!
//! One thread takes every append waiting in the channel (up to
//! [`MAX_BATCH`]), hands the batch to its [`Storage`] target, and
//! acknowledges the whole batch only once the target says it is durable.
//! While entries arrive it signs a checkpoint at least every interval and
//! has the target keep it. After a failed sync it stops taking entries for
//! good: the page cache can no longer be trusted, the node must restart.
//! Where the bytes go is the target's business, not the queue's.

use super::storage::Storage;
use super::{Shared, SignedCheckpoint};
use crate::audit::merkle;
use crate::audit::note::{Checkpoint, NoteSigner};
use crate::audit::AuditError;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Most entries written per fsync.
const MAX_BATCH: usize = 4096;

/// A message to the writer.
#[derive(Debug)]
pub(super) enum Request {
    /// Append one encoded record; answer with its index once durable.
    Append {
        /// The encoded record.
        payload: Vec<u8>,
        /// Where the answer goes.
        ack: oneshot::Sender<Result<u64, AuditError>>,
    },
    /// Flush, sign a final checkpoint and stop.
    Close {
        /// Answered when done.
        ack: oneshot::Sender<()>,
    },
}

/// The writer: its storage target and when it last signed.
pub(super) struct Queue<S> {
    shared: Arc<Shared>,
    storage: S,
    signer: NoteSigner,
    interval: Duration,
    last_checkpoint: Instant,
}

/// What one wake-up took from the channel.
#[derive(Default)]
struct Batch {
    payloads: Vec<Vec<u8>>,
    acks: Vec<oneshot::Sender<Result<u64, AuditError>>>,
    close: Option<oneshot::Sender<()>>,
}

impl<S: Storage> Queue<S> {
    pub(super) fn new(
        shared: Arc<Shared>,
        storage: S,
        signer: NoteSigner,
        interval: Duration,
    ) -> Self {
        Self {
            shared,
            storage,
            signer,
            interval,
            last_checkpoint: Instant::now(),
        }
    }

    fn size(&self) -> u64 {
        self.shared.size.load(Ordering::Acquire)
    }

    /// Hands a batch to storage and waits until it is durable; returns the
    /// index of its first entry.
    fn commit(&mut self, payloads: &[Vec<u8>]) -> Result<u64, AuditError> {
        if let Some(why) = self.shared.failed() {
            return Err(AuditError::Unavailable(why));
        }
        let first = self.size();
        self.storage.append(first, payloads)?;
        if let Err(e) = self.storage.sync() {
            self.shared.fail(match &e {
                AuditError::Unavailable(why) => why.clone(),
                other => other.to_string(),
            });
            return Err(e);
        }
        self.shared
            .size
            .store(first + payloads.len() as u64, Ordering::Release);
        let mut stats = self.shared.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.batches += 1;
        stats.entries += payloads.len() as u64;
        let _ = stats.batch_sizes.record(payloads.len() as u64);
        Ok(first)
    }

    /// Commits a batch and answers every append in it.
    fn commit_and_answer(&mut self, batch: Batch) {
        match self.commit(&batch.payloads) {
            Ok(first) => {
                for (i, ack) in batch.acks.into_iter().enumerate() {
                    let _ = ack.send(Ok(first + i as u64));
                }
                // After the answers: appends that arrive meanwhile wait
                // for the storage's upkeep, but the batch just written did not.
                self.seal();
            }
            Err(e) => {
                // Not `e.to_string()` for an `Unavailable` error: its text
                // would be prefixed twice ("cannot record entries: cannot
                // record entries: …") once wrapped again below.
                let why = match e {
                    AuditError::Unavailable(why) => why,
                    other => other.to_string(),
                };
                for ack in batch.acks {
                    let _ = ack.send(Err(AuditError::Unavailable(why.clone())));
                }
            }
        }
    }

    /// Lets storage close and prepare between batches, unless the log has
    /// stopped: then its files are left as they are for the restart.
    fn seal(&mut self) {
        if self.shared.failed().is_none() {
            self.storage.seal();
        }
    }

    /// Signs and publishes a checkpoint of the current tree if it grew.
    fn checkpoint(&mut self) {
        let size = self.size();
        let current = self
            .shared
            .checkpoint
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if current.checkpoint.size == size && !current.note.is_empty() {
            return;
        }
        match self.sign(size) {
            Ok(signed) => {
                *self
                    .shared
                    .checkpoint
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = signed;
                self.last_checkpoint = Instant::now();
            }
            Err(e) => {
                // Retry at the next interval, not in a tight loop.
                self.last_checkpoint = Instant::now();
                tracing::error!(error = %e, "cannot publish an audit checkpoint; retrying at the next interval");
            }
        }
    }

    /// Signs a checkpoint of the first `size` entries and has storage keep
    /// it before anyone sees it.
    fn sign(&mut self, size: u64) -> Result<SignedCheckpoint, AuditError> {
        // The stored hashes of every durable entry are written before the
        // size moves past it: the same root readers prove against.
        let root = merkle::tree_hash(size, &self.shared.hashes)
            .map_err(|e| AuditError::Proof(e.to_string()))?;
        let checkpoint = Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root,
            extensions: Vec::new(),
        };
        let note = self
            .signer
            .sign(&checkpoint.to_text())
            .map_err(|e| AuditError::Proof(e.to_string()))?;
        let signed = SignedCheckpoint { checkpoint, note };
        self.storage.checkpoint(&signed)?;
        Ok(signed)
    }

    /// How long to wait for the next append: until the checkpoint interval
    /// ends if entries are unsigned, else for as long as it takes.
    fn wait(&self) -> Option<Duration> {
        let pending = self
            .shared
            .checkpoint
            .read()
            .map(|c| c.checkpoint.size)
            .unwrap_or(0)
            < self.size();
        pending.then(|| self.interval.saturating_sub(self.last_checkpoint.elapsed()))
    }
}

/// Takes `first` and whatever else is queued, up to [`MAX_BATCH`] appends
/// or a close.
fn drain(first: Request, rx: &mut mpsc::Receiver<Request>) -> Batch {
    let mut batch = Batch::default();
    let mut next = Some(first);
    while let Some(request) = next.take() {
        match request {
            Request::Append { payload, ack } => {
                batch.payloads.push(payload);
                batch.acks.push(ack);
            }
            Request::Close { ack } => {
                batch.close = Some(ack);
                break;
            }
        }
        if batch.payloads.len() < MAX_BATCH {
            next = rx.try_recv().ok();
        }
    }
    batch
}

/// The writer thread's loop.
pub(super) fn run<S: Storage>(mut queue: Queue<S>, mut rx: mpsc::Receiver<Request>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            queue
                .shared
                .fail(format!("cannot start the writer's runtime: {e}"));
            return;
        }
    };
    queue.checkpoint();
    queue.seal();
    loop {
        let wait = queue.wait();
        let first = rt.block_on(async {
            match wait {
                Some(d) => tokio::time::timeout(d, rx.recv()).await.ok(),
                None => Some(rx.recv().await),
            }
        });
        let first = match first {
            None => {
                queue.checkpoint(); // the interval passed with entries unsigned
                continue;
            }
            Some(None) => break, // every sender is gone
            Some(Some(request)) => request,
        };
        let mut batch = drain(first, &mut rx);
        let close = batch.close.take();
        if !batch.payloads.is_empty() {
            queue.commit_and_answer(batch);
        }
        if queue.last_checkpoint.elapsed() >= queue.interval {
            queue.checkpoint();
        }
        if let Some(ack) = close {
            queue.checkpoint();
            let _ = ack.send(());
            break;
        }
    }
    refuse_queued(rx);
}

/// Whatever is still queued cannot be written any more.
fn refuse_queued(mut rx: mpsc::Receiver<Request>) {
    rx.close();
    while let Ok(request) = rx.try_recv() {
        if let Request::Append { ack, .. } = request {
            let _ = ack.send(Err(AuditError::Unavailable(
                "the audit log is closed".into(),
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::log::hashes::HashFile;
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
        fn sync(&mut self) -> Result<(), AuditError> {
            self.0.lock().unwrap().syncs += 1;
            Err(AuditError::Unavailable("fsync of the fake failed".into()))
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
            ack,
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
}
