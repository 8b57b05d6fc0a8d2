//! Overlapped commits: the next batch is written while the previous one's
//! fsync is in flight, and the thread that ran the fsync acknowledges.
//!
//! The writer thread and one sync thread share the [`Queue`] under a lock.
//! The writer writes each batch as it arrives and, when no sync is in
//! flight, leaves one for the sync thread ([`Queue::start_sync`]); at most
//! one sync is in flight and it covers every batch written before it began.
//! The sync thread runs it without the lock, then, under the lock, brings
//! storage up to it and acknowledges the batches it covered, oldest first,
//! and starts the next sync at once if more was written meanwhile: the disk
//! is never idle while something is unsynced, and the writer is not woken
//! between a sync and its acknowledgements (one thread hand-off per batch
//! fewer than a writer that waits for its syncs; docs/BENCHMARKS.md, "Where
//! the time goes below saturation"). None is acknowledged before a sync
//! that began after its write has succeeded ("no audit, no data"). When one
//! fails, every batch written and not acknowledged is refused, the log
//! stops, and none is acknowledged after (recovery at the restart decides
//! what the log holds).

use super::answers::{answer_all, Ack};
use super::{Batch, Queue, Request, MAX_BATCH};
use crate::audit::log::storage::{Storage, SyncJob};
use crate::audit::AuditError;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// A batch written and waiting for a sync.
pub(in crate::audit::log) struct Waiting {
    entries: u64,
    acks: Vec<Ack>,
}

/// The sync in flight: how many of the waiting batches it covers, and its
/// job until the sync thread takes it.
pub(in crate::audit::log) struct Syncing {
    job: Option<SyncJob>,
    batches: usize,
}

/// What woke the writer.
pub(super) enum Event {
    /// An append or a close arrived.
    Request(Request),
    /// Every sender is gone.
    Gone,
    /// The checkpoint interval passed with entries unsigned.
    Interval,
}

/// The queue shared by the writer and the sync thread.
pub(super) struct Core<S> {
    queue: Mutex<Queue<S>>,
    /// A sync job was left, or the writer is stopping (the sync thread
    /// waits on it).
    work: Condvar,
    /// A sync ended (the writer waits on it for room or to settle).
    progress: Condvar,
}

/// The reason an error gives, without the `Unavailable` prefix: wrapped
/// again when answered, its text would be prefixed twice ("cannot record
/// entries: cannot record entries: …").
fn reason(e: AuditError) -> String {
    match e {
        AuditError::Unavailable(why) => why,
        other => other.to_string(),
    }
}

fn refuse(acks: Vec<Ack>, why: &str) {
    answer_all(
        acks.into_iter()
            .map(|ack| (ack, Err(AuditError::Unavailable(why.to_owned())))),
    );
}

/// Runs a sync job; a panic in it is a failed sync, not a lost thread.
fn run_job(job: SyncJob) -> Result<(), String> {
    std::panic::catch_unwind(AssertUnwindSafe(job))
        .unwrap_or_else(|_| Err("the fsync thread stopped: the sync panicked".into()))
}

impl<S: Storage> Queue<S> {
    /// Entries written and not yet acknowledged (or refused).
    pub(super) fn unacknowledged(&self) -> u64 {
        self.waiting.iter().map(|w| w.entries).sum()
    }

    /// Entries written and not covered by the sync in flight.
    fn uncovered(&self) -> u64 {
        let covered = self.syncing.as_ref().map_or(0, |s| s.batches);
        self.waiting.iter().skip(covered).map(|w| w.entries).sum()
    }

    /// Writes a batch after the ones waiting; it is answered when a sync
    /// covering it ends.
    fn write(&mut self, batch: Batch) {
        if let Some(why) = self.shared.failed() {
            return refuse(batch.acks, &why);
        }
        let waiting: u64 = self.waiting.iter().map(|w| w.entries).sum();
        let first = self.size() + waiting;
        match self.storage.append(first, &batch.payloads) {
            Ok(()) => self.waiting.push_back(Waiting {
                entries: batch.payloads.len() as u64,
                acks: batch.acks,
            }),
            Err(e) => refuse(batch.acks, &reason(e)),
        }
    }

    /// Leaves a sync of what is written for the sync thread, unless one is
    /// in flight or nothing waits; refuses what waits if the log has
    /// stopped. Whether a job was left.
    fn start_sync(&mut self) -> bool {
        if self.syncing.is_some() || self.waiting.is_empty() {
            return false;
        }
        if let Some(why) = self.shared.failed() {
            self.refuse_waiting(&why);
            return false;
        }
        self.syncing = Some(Syncing {
            job: Some(self.storage.start_sync()),
            batches: self.waiting.len(),
        });
        true
    }

    /// The sync in flight ended with `result`: acknowledges the batches it
    /// covered, in order, or refuses every batch waiting and stops the log.
    fn synced(&mut self, result: Result<(), String>) {
        let Some(syncing) = self.syncing.take() else {
            return;
        };
        // A failure met meanwhile by another fsync of the same file (while
        // undoing a write or padding) may have taken this sync's error.
        let result = result
            .and_then(|()| self.shared.failed().map_or(Ok(()), Err))
            .and_then(|()| self.storage.synced().map_err(reason));
        if let Err(why) = result {
            let why = self.shared.failed().unwrap_or_else(|| {
                self.shared.fail(why.clone());
                why
            });
            return self.refuse_waiting(&why);
        }
        let first = self.size();
        let batches: Vec<Waiting> = self.waiting.drain(..syncing.batches).collect();
        let entries: u64 = batches.iter().map(|w| w.entries).sum();
        self.shared.size.store(first + entries, Ordering::Release);
        {
            let mut stats = self.shared.stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.batches += 1;
            stats.entries += entries;
            let _ = stats.batch_sizes.record(entries);
        }
        // One hand-over per runtime that waits, not one wake per entry.
        let acks = batches.into_iter().flat_map(|w| w.acks);
        answer_all(acks.zip(first..).map(|(ack, index)| (ack, Ok(index))));
        if self.waiting.is_empty() {
            // After the answers and with nothing in flight: appends that
            // arrive meanwhile wait for the storage's upkeep, but the
            // batches just written did not.
            self.seal();
        }
    }

    /// Every batch waiting is refused: the log has stopped.
    fn refuse_waiting(&mut self, why: &str) {
        for waiting in self.waiting.drain(..) {
            refuse(waiting.acks, why);
        }
    }
}

impl<S: Storage> Core<S> {
    pub(super) fn new(queue: Queue<S>) -> Self {
        Self {
            queue: Mutex::new(queue),
            work: Condvar::new(),
            progress: Condvar::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Queue<S>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait_progress<'a>(&self, queue: MutexGuard<'a, Queue<S>>) -> MutexGuard<'a, Queue<S>> {
        self.progress.wait(queue).unwrap_or_else(|e| e.into_inner())
    }

    /// Leaves a sync if none is in flight and wakes the sync thread for it.
    fn start_sync(&self, queue: &mut Queue<S>) {
        if queue.start_sync() {
            self.work.notify_one();
        }
    }

    /// Writes a batch (the writer thread). A batch that cannot be written
    /// beside a sync in flight (see [`Storage::overlaps`]) first waits for
    /// everything before it.
    pub(super) fn write(&self, batch: Batch) {
        let mut queue = self.lock();
        if !queue.storage.overlaps(&batch.payloads) {
            queue = self.settle(queue);
        }
        queue.write(batch);
        self.start_sync(&mut queue);
    }

    /// Waits until nothing is in flight and everything written is answered
    /// (durable and acknowledged, or refused).
    pub(super) fn settle<'a>(
        &self,
        mut queue: MutexGuard<'a, Queue<S>>,
    ) -> MutexGuard<'a, Queue<S>> {
        loop {
            self.start_sync(&mut queue);
            if queue.syncing.is_none() {
                return queue;
            }
            queue = self.wait_progress(queue);
        }
    }

    /// Waits while [`MAX_BATCH`] entries wait unsynced beside the sync in
    /// flight: the channel's bound then holds callers back.
    pub(super) fn room<'a>(&self, mut queue: MutexGuard<'a, Queue<S>>) -> MutexGuard<'a, Queue<S>> {
        while queue.syncing.is_some() && queue.uncovered() >= MAX_BATCH as u64 {
            queue = self.wait_progress(queue);
        }
        queue
    }

    /// Tells the sync thread to stop once nothing is left for it.
    pub(super) fn stop(&self) {
        self.lock().stopping = true;
        self.work.notify_one();
    }

    /// The sync thread's loop: runs each sync left for it without the
    /// lock, then acknowledges what it covered and starts the next.
    pub(super) fn sync_loop(&self) {
        let _gone = SyncerGone(self);
        let mut queue = self.lock();
        loop {
            let job = queue.syncing.as_mut().and_then(|s| s.job.take());
            if let Some(job) = job {
                drop(queue);
                let result = run_job(job);
                queue = self.lock();
                queue.synced(result);
                // More written meanwhile: its sync starts now, here.
                let _ = queue.start_sync();
                self.progress.notify_all();
                continue;
            }
            if queue.stopping {
                return;
            }
            queue = self.work.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Should the sync thread end other than by [`Core::stop`] (a panic while
/// acknowledging), the log stops and what waits is refused, so that the
/// writer neither waits for it nor acknowledges without it.
struct SyncerGone<'a, S: Storage>(&'a Core<S>);

impl<S: Storage> Drop for SyncerGone<'_, S> {
    fn drop(&mut self) {
        let mut queue = self.0.lock();
        if !queue.stopping {
            let why = "the audit log's sync thread stopped".to_owned();
            queue.shared.fail(why.clone());
            queue.syncing = None;
            queue.refuse_waiting(&why);
        }
        self.0.progress.notify_all();
    }
}

/// Waits for an append (or a close) or the end of the checkpoint `wait`.
pub(super) async fn next_event(rx: &mut mpsc::Receiver<Request>, wait: Option<Duration>) -> Event {
    let interval = async move {
        match wait {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        request = rx.recv() => request.map_or(Event::Gone, Event::Request),
        () = interval => Event::Interval,
    }
}
