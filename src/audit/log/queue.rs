//! The audit thread: group commit on one thread, appends handed over
//! without a channel.
//!
//! Lanes push their appends onto the [`intake`] list under its lock and
//! wake the thread only when it sleeps. The thread (`jisr-audit`) loops:
//! it takes everything pending (up to [`MAX_BATCH`]), writes it, fsyncs,
//! acknowledges the batch in log order and seals or prepares segments
//! ([`commit`]), then goes round again at once if more arrived during the
//! sync. While entries arrive it signs a checkpoint of the durable entries
//! at least every interval and has the target keep it; when nothing
//! arrives it sleeps until the interval ends (if entries are unsigned) or
//! until an append, a close, or the log's handle going away. A close
//! commits what was pushed before it, signs a final checkpoint and stops.
//! After a failed sync every batch is refused and the log takes no entry
//! again: the node must restart. Where the bytes go is the target's
//! business ([`Storage`]), not the queue's.

use super::storage::Storage;
use super::{Shared, SignedCheckpoint};
use crate::audit::merkle;
use crate::audit::note::{Checkpoint, NoteSigner};
use crate::audit::AuditError;
pub(super) use answers::Ack;
pub(super) use intake::Intake;
use intake::{Batch, Next};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod answers;
mod commit;
mod intake;

/// Most entries written per fsync.
const MAX_BATCH: usize = 4096;

/// The audit thread's state: its storage target and when it last signed.
pub(super) struct Queue<S> {
    shared: Arc<Shared>,
    storage: S,
    signer: NoteSigner,
    interval: Duration,
    last_checkpoint: Instant,
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

    /// Until when to wait for the next append: the end of the checkpoint
    /// interval if durable entries are unsigned, else no end.
    fn deadline(&self) -> Option<Instant> {
        let signed = self
            .shared
            .checkpoint
            .read()
            .map(|c| c.checkpoint.size)
            .unwrap_or(0);
        (signed < self.size()).then(|| self.last_checkpoint + self.interval)
    }
}

/// The audit thread's loop, until a close or until the log's handle is
/// gone; appends are refused once it ends, however it ends.
pub(super) fn run<S: Storage>(mut queue: Queue<S>, intake: &Intake) {
    let shared = queue.shared.clone();
    let _stopped = Stopped(intake, &shared);
    queue.checkpoint();
    queue.seal();
    let mut batch = Batch::default();
    loop {
        match intake.next(&mut batch, queue.deadline()) {
            Next::Commit => queue.commit(&mut batch),
            Next::Interval => {
                // Entries unsigned for an interval; if none became durable
                // since the last checkpoint, look again an interval later.
                queue.checkpoint();
                queue.last_checkpoint = Instant::now();
            }
            Next::Close(ack) => {
                queue.checkpoint();
                let _ = ack.send(());
                return;
            }
            // Everything pushed is answered: stop as a crash would.
            Next::Gone => return,
        }
        if queue.last_checkpoint.elapsed() >= queue.interval {
            queue.checkpoint();
        }
    }
}

/// Refuses what waits, and every later append, when the thread ends (a
/// panic included), so that no caller waits for it.
struct Stopped<'a>(&'a Intake, &'a Shared);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.1.fail("the audit thread stopped: it panicked".into());
        }
        self.0.stopped();
    }
}

#[cfg(test)]
mod gated_tests;
#[cfg(test)]
mod tests;
