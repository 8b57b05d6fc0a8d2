//! One commit: a batch written, synced and acknowledged by the audit
//! thread, start to end, before it takes the next.
//!
//! The thread hands the batch to storage, runs the fsync that covers it
//! (a sync that begins after the batch's write succeeded), brings storage
//! up to it (offsets, stored hashes), moves the log's size past it and
//! acknowledges its appends in log order, then seals or prepares segments
//! before taking what arrived meanwhile. So no batch is acknowledged
//! before it is durable ("no audit, no data"), and batches are
//! acknowledged in the order they were written. When a write fails, that
//! batch alone is refused (storage undid it). When a sync fails, the batch
//! it covered is refused, the log stops for good (the page cache can no
//! longer be trusted; recovery at the restart decides what the log holds)
//! and every later batch is refused without being written.
//!
//! Nothing is written while a sync runs: appends arriving meanwhile wait in
//! the [`super::intake`] list and form the next batch. Writing is a pwrite
//! and a leaf hash per entry, small beside the fsync, and keeping it on
//! the thread that syncs saves the wake of a second thread per batch
//! (docs/BENCHMARKS.md, "Cut 6").

use super::answers::{answer_all, Ack};
use super::intake::Batch;
use super::Queue;
use crate::audit::log::storage::{Storage, SyncJob};
use crate::audit::AuditError;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;

/// The reason an error gives, without the `Unavailable` prefix: wrapped
/// again when answered, its text would be prefixed twice ("cannot record
/// entries: cannot record entries: …").
fn reason(e: AuditError) -> String {
    match e {
        AuditError::Unavailable(why) => why,
        other => other.to_string(),
    }
}

fn refuse(acks: &mut Vec<Ack>, why: &str) {
    answer_all(
        acks.drain(..)
            .map(|ack| (ack, Err(AuditError::Unavailable(why.to_owned())))),
    );
}

/// Runs a sync job; a panic in it is a failed sync, not a lost thread.
fn run_job(job: SyncJob) -> Result<(), String> {
    std::panic::catch_unwind(AssertUnwindSafe(job))
        .unwrap_or_else(|_| Err("the fsync stopped: the sync panicked".into()))
}

impl<S: Storage> Queue<S> {
    /// Writes `batch`, syncs it and answers every append in it; leaves
    /// its vectors empty, their room kept for the next batch.
    pub(super) fn commit(&mut self, batch: &mut Batch) {
        match self.write(&batch.payloads) {
            Ok(()) => self.acknowledge(&mut batch.acks),
            Err(why) => refuse(&mut batch.acks, &why),
        }
        batch.payloads.clear();
        // After the answers: appends that arrive meanwhile wait for the
        // storage's upkeep, but the batch just written did not.
        self.seal();
    }

    /// Writes `payloads` after the durable entries; an error refuses them.
    fn write(&mut self, payloads: &[Vec<u8>]) -> Result<(), String> {
        if let Some(why) = self.shared.failed() {
            return Err(why);
        }
        self.storage.append(self.size(), payloads).map_err(reason)?;
        self.sync()
    }

    /// Syncs what is written and brings storage up to it; a failure stops
    /// the log.
    fn sync(&mut self) -> Result<(), String> {
        // A failure met meanwhile by another fsync of the same file (while
        // undoing a write or padding) may have taken this sync's error.
        let result = run_job(self.storage.start_sync())
            .and_then(|()| self.shared.failed().map_or(Ok(()), Err))
            .and_then(|()| self.storage.synced().map_err(reason));
        result.map_err(|why| {
            self.shared.failed().unwrap_or_else(|| {
                self.shared.fail(why.clone());
                why
            })
        })
    }

    /// The batch of `acks` is durable: the size moves past it and each
    /// append is answered with its index, in log order.
    fn acknowledge(&mut self, acks: &mut Vec<Ack>) {
        let first = self.size();
        let entries = acks.len() as u64;
        self.shared.size.store(first + entries, Ordering::Release);
        {
            let mut stats = self.shared.stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.batches += 1;
            stats.entries += entries;
            let _ = stats.batch_sizes.record(entries);
        }
        // One hand-over per runtime that waits, not one wake per entry.
        answer_all(acks.drain(..).zip(first..).map(|(ack, i)| (ack, Ok(i))));
    }
}
