//! The writer thread's queue: group commit and acknowledgement.
//!
//! One thread takes every append waiting in the channel (up to
//! [`MAX_BATCH`]) and hands the batch to its [`Storage`] target at once,
//! even while the previous batch's fsync is in flight on another thread
//! ([`pipeline`]): batches are written as they arrive, and synced one
//! fsync after another, each covering everything written before it began.
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
use pipeline::{Event, Syncing, Waiting};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

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
        ack: oneshot::Sender<Result<u64, AuditError>>,
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
            waiting: VecDeque::new(),
            syncing: None,
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
    // Its blocking pool runs the fsyncs (one at a time) beside the writer.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .thread_name("jisr-audit-sync")
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
        queue.start_sync(&rt);
        let wait = queue.wait();
        match rt.block_on(queue.next_event(&mut rx, wait)) {
            Event::Synced(result) => queue.synced(result),
            Event::Interval => queue.checkpoint(), // entries unsigned for an interval
            Event::Gone => {
                // Every sender is gone: answer what is written, then stop.
                queue.settle(&rt);
                break;
            }
            Event::Request(first) => {
                let mut batch = drain(first, &mut rx);
                let close = batch.close.take();
                if !batch.payloads.is_empty() {
                    queue.write(&rt, batch);
                }
                if let Some(ack) = close {
                    queue.settle(&rt);
                    queue.checkpoint();
                    let _ = ack.send(());
                    break;
                }
            }
        }
        if queue.last_checkpoint.elapsed() >= queue.interval {
            queue.checkpoint();
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
mod tests;
