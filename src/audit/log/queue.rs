//! The writer thread's queue: group commit and acknowledgement.
//!
//! One thread takes every append waiting in the channel (up to
//! [`MAX_BATCH`]) and hands the batch to its [`Storage`] target at once,
//! even while the previous batch's fsync is in flight on the sync thread
//! ([`pipeline`]): batches are written as they arrive, and synced one
//! fsync after another, each covering everything written before it began;
//! the sync thread acknowledges what each covered.
//! A batch is acknowledged only once a sync that began after it was written
//! has succeeded, and batches are acknowledged in log order. While entries
//! arrive it signs a checkpoint of the durable entries at least every
//! interval and has the target keep it. After a failed sync it refuses
//! every batch not yet durable and stops taking entries for good: the page
//! cache can no longer be trusted, the node must restart. Where the bytes
//! go is the target's business, not the queue's.

use super::storage::Storage;
use super::{Shared, SignedCheckpoint};
use crate::audit::merkle;
use crate::audit::note::{Checkpoint, NoteSigner};
use crate::audit::AuditError;
pub(super) use answers::Ack;
use pipeline::{Core, Event, Syncing, Waiting};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

mod answers;
mod pipeline;

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
        ack: Ack,
    },
    /// Flush, sign a final checkpoint and stop.
    Close {
        /// Answered when done.
        ack: oneshot::Sender<()>,
    },
}

/// The writer: its storage target, what waits for a sync, and when it
/// last signed.
pub(super) struct Queue<S> {
    shared: Arc<Shared>,
    storage: S,
    signer: NoteSigner,
    interval: Duration,
    last_checkpoint: Instant,
    /// Batches written and not yet acknowledged, in log order.
    waiting: VecDeque<Waiting>,
    /// The sync in flight, if any.
    syncing: Option<Syncing>,
    /// The writer is done: the sync thread ends once nothing is left.
    stopping: bool,
}

/// What one wake-up took from the channel.
#[derive(Default)]
struct Batch {
    payloads: Vec<Vec<u8>>,
    acks: Vec<Ack>,
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
            waiting: VecDeque::new(),
            syncing: None,
            stopping: false,
        }
    }

    fn size(&self) -> u64 {
        self.shared.size.load(Ordering::Acquire)
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
                // Published after the write above, so whoever wakes reads it.
                self.shared.published.send_replace(size);
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
    /// ends if entries are unsigned, else for as long as it takes. Entries
    /// written and not yet durable count as unsigned: the sync thread
    /// makes them durable without waking the writer, whose timer then
    /// signs them.
    fn wait(&self) -> Option<Duration> {
        let pending = self
            .shared
            .checkpoint
            .read()
            .map(|c| c.checkpoint.size)
            .unwrap_or(0)
            < self.size() + self.unacknowledged();
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

/// The writer thread's loop; it starts the sync thread beside it.
pub(super) fn run<S: Storage + Send + 'static>(queue: Queue<S>, mut rx: mpsc::Receiver<Request>) {
    // Only for the checkpoint interval's timer while waiting for appends.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build();
    let shared = queue.shared.clone();
    let core = Arc::new(Core::new(queue));
    let syncer = rt
        .map_err(|e| format!("cannot start the writer's runtime: {e}"))
        .and_then(|rt| {
            let core = core.clone();
            std::thread::Builder::new()
                .name("jisr-audit-sync".into())
                .spawn(move || core.sync_loop())
                .map(|thread| (rt, thread))
                .map_err(|e| format!("cannot start the audit sync thread: {e}"))
        });
    match syncer {
        Ok((rt, thread)) => {
            write_until_closed(&core, &rt, &mut rx);
            core.stop();
            let _ = thread.join();
        }
        Err(why) => shared.fail(why),
    }
    refuse_queued(rx);
}

/// Writes what arrives until a close or until every sender is gone, then
/// waits until everything written is answered.
fn write_until_closed<S: Storage>(
    core: &Core<S>,
    rt: &tokio::runtime::Runtime,
    rx: &mut mpsc::Receiver<Request>,
) {
    {
        let mut queue = core.lock();
        queue.checkpoint();
        queue.seal();
    }
    loop {
        // Not more than MAX_BATCH entries unsynced: the channel's bound
        // then holds callers back.
        let wait = core.room(core.lock()).wait();
        match rt.block_on(pipeline::next_event(rx, wait)) {
            Event::Interval => {
                // Entries unsigned for an interval; if none became durable
                // since the last checkpoint, look again an interval later.
                let mut queue = core.lock();
                queue.checkpoint();
                queue.last_checkpoint = Instant::now();
            }
            Event::Gone => {
                // Every sender is gone: answer what is written, then stop.
                drop(core.settle(core.lock()));
                return;
            }
            Event::Request(first) => {
                let mut batch = drain(first, rx);
                let close = batch.close.take();
                if !batch.payloads.is_empty() {
                    core.write(batch);
                }
                if let Some(ack) = close {
                    core.settle(core.lock()).checkpoint();
                    let _ = ack.send(());
                    return;
                }
            }
        }
        let mut queue = core.lock();
        if queue.last_checkpoint.elapsed() >= queue.interval {
            queue.checkpoint();
        }
    }
}

/// Whatever is still queued cannot be written any more.
fn refuse_queued(mut rx: mpsc::Receiver<Request>) {
    rx.close();
    while let Ok(request) = rx.try_recv() {
        if let Request::Append { ack, .. } = request {
            ack.send(Err(AuditError::Unavailable(
                "the audit log is closed".into(),
            )));
        }
    }
}

#[cfg(test)]
mod tests;
