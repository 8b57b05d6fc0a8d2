//! Overlapped commits: the next batch is written while the previous one's
//! fsync is in flight.
//!
//! At most one sync is in flight, on the writer runtime's blocking pool; it
//! covers every batch written before it began. Batches written meanwhile
//! wait in [`Queue::waiting`] behind the ones it covers, and the next sync
//! begins as soon as it ends, so the disk is never idle while something is
//! unsynced and no batch waits for the writer to come round to it. When a
//! sync succeeds the batches it covered are acknowledged, oldest first;
//! none is acknowledged before a sync that began after its write has
//! succeeded ("no audit, no data"). When one fails, every batch written and
//! not acknowledged is refused, the log stops, and none is acknowledged
//! after (recovery at the restart decides what the log holds).

use super::{Batch, Queue, Request, MAX_BATCH};
use crate::audit::log::storage::Storage;
use crate::audit::AuditError;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Where one append's answer goes.
type Ack = oneshot::Sender<Result<u64, AuditError>>;

/// A batch written and waiting for a sync.
pub(in crate::audit::log) struct Waiting {
    entries: u64,
    acks: Vec<Ack>,
}

/// The fsync in flight and how many of the waiting batches it covers.
pub(in crate::audit::log) struct Syncing {
    job: JoinHandle<Result<(), String>>,
    batches: usize,
}

/// What woke the writer.
pub(super) enum Event {
    /// An append or a close arrived.
    Request(Request),
    /// Every sender is gone.
    Gone,
    /// The sync in flight ended.
    Synced(Result<(), String>),
    /// The checkpoint interval passed with entries unsigned.
    Interval,
}

/// The sync job's result, or why its thread did not return one.
fn joined(result: Result<Result<(), String>, tokio::task::JoinError>) -> Result<(), String> {
    result.unwrap_or_else(|e| Err(format!("the fsync thread stopped: {e}")))
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
    for ack in acks {
        let _ = ack.send(Err(AuditError::Unavailable(why.to_owned())));
    }
}

impl<S: Storage> Queue<S> {
    /// Entries written and not covered by the sync in flight.
    fn uncovered(&self) -> u64 {
        let covered = self.syncing.as_ref().map_or(0, |s| s.batches);
        self.waiting.iter().skip(covered).map(|w| w.entries).sum()
    }

    /// Writes a batch after the ones waiting; it is answered when a sync
    /// covering it ends. A batch that cannot be written beside a sync in
    /// flight (see [`Storage::overlaps`]) waits for everything before it.
    pub(super) fn write(&mut self, rt: &Runtime, batch: Batch) {
        if !self.storage.overlaps(&batch.payloads) {
            self.settle(rt);
        }
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

    /// Starts syncing what is written, unless a sync is in flight or
    /// nothing waits; refuses what waits if the log has stopped.
    pub(super) fn start_sync(&mut self, rt: &Runtime) {
        if self.syncing.is_some() || self.waiting.is_empty() {
            return;
        }
        if let Some(why) = self.shared.failed() {
            return self.refuse_waiting(&why);
        }
        let job = self.storage.start_sync();
        self.syncing = Some(Syncing {
            job: rt.spawn_blocking(job),
            batches: self.waiting.len(),
        });
    }

    /// The sync in flight ended with `result`: acknowledges the batches it
    /// covered, in order, or refuses every batch waiting and stops the log.
    pub(super) fn synced(&mut self, result: Result<(), String>) {
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
        for (index, ack) in (first..).zip(batches.into_iter().flat_map(|w| w.acks)) {
            let _ = ack.send(Ok(index));
        }
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

    /// Waits until nothing is in flight and everything written is answered
    /// (durable and acknowledged, or refused).
    pub(super) fn settle(&mut self, rt: &Runtime) {
        loop {
            self.start_sync(rt);
            let Some(syncing) = self.syncing.as_mut() else {
                return;
            };
            let result = joined(rt.block_on(&mut syncing.job));
            self.synced(result);
        }
    }

    /// Waits for the sync in flight, an append (unless [`MAX_BATCH`]
    /// entries already wait unsynced: the channel's bound then holds
    /// callers back) or the end of the checkpoint `wait`.
    pub(super) async fn next_event(
        &mut self,
        rx: &mut mpsc::Receiver<Request>,
        wait: Option<Duration>,
    ) -> Event {
        let take = self.uncovered() < MAX_BATCH as u64;
        let syncing = self.syncing.as_mut();
        let synced = async move {
            match syncing {
                Some(s) => joined((&mut s.job).await),
                None => std::future::pending().await,
            }
        };
        let request = async move {
            match take {
                true => rx.recv().await,
                false => std::future::pending().await,
            }
        };
        let interval = async move {
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            result = synced => Event::Synced(result),
            request = request => request.map_or(Event::Gone, Event::Request),
            () = interval => Event::Interval,
        }
    }
}
