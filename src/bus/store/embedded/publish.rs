//! The publish path: one writer thread takes every publish queued and
//! commits them in one durable transaction (group commit), so concurrent
//! publishers share an fsync.

use std::sync::Arc;

use prost::Message;
use redb::ReadableTable;

use super::{micros, Inner, EVENTS, IDEM, PENDING, SEQ};
use crate::bus::store::{BusError, Published, StoredEvent};

/// The publish writer thread and its queue; the last store clone to go
/// closes the queue and waits for the thread, so the file is closed when
/// the store is dropped (and can be opened again at once).
pub(super) struct Writer {
    publishes: Option<std::sync::mpsc::Sender<PublishJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.publishes.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A publish waiting for the writer thread.
pub(super) struct PublishJob {
    pub(super) topic: String,
    pub(super) subscribers: Vec<String>,
    pub(super) event: StoredEvent,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<Published, BusError>>,
}

/// Publishes queued together are committed together.
const MAX_PUBLISH_BATCH: usize = 256;

/// The publish writer: takes every publish queued, commits them in one
/// durable transaction, answers each. Ends when the store is dropped.
fn publish_writer(inner: &Inner, jobs: &std::sync::mpsc::Receiver<PublishJob>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_PUBLISH_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        inner.publish_batch(batch);
    }
}

impl Writer {
    /// Starts the writer thread over `inner`.
    pub(super) fn start(inner: Arc<Inner>) -> Result<Self, BusError> {
        let (publishes, jobs) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("jisr-bus-publish".into())
            .spawn(move || publish_writer(&inner, &jobs))
            .map_err(|e| {
                BusError::Unavailable(format!("cannot start the bus writer thread: {e}"))
            })?;
        Ok(Self {
            publishes: Some(publishes),
            thread: Some(thread),
        })
    }

    /// Queues a publish; fails if the writer thread has stopped.
    pub(super) fn send(&self, job: PublishJob) -> Result<(), ()> {
        match &self.publishes {
            Some(queue) => queue.send(job).map_err(drop),
            None => Err(()),
        }
    }
}

impl Inner {
    /// One publish inside the batch's transaction: an earlier publish of
    /// the same batch with the same key makes this one a duplicate.
    fn publish_in(
        &self,
        txn: &redb::WriteTransaction,
        job: &PublishJob,
    ) -> Result<Published, BusError> {
        let (topic, event) = (job.topic.as_str(), &job.event);
        let mut idem = txn.open_table(IDEM).map_err(|e| self.failed(e))?;
        let window = micros(self.limits.idempotency_window);
        let key = event.idempotency_key.as_str();
        let seen = idem
            .get((topic, key))
            .map_err(|e| self.failed(e))?
            .map(|v| v.value());
        if let Some((seq, at)) = seen {
            if event.published_unix_micros - at < window {
                return Ok(Published {
                    event_id: seq.to_string(),
                    duplicate: true,
                });
            }
        }
        let mut seqs = txn.open_table(SEQ).map_err(|e| self.failed(e))?;
        let seq = seqs
            .get(topic)
            .map_err(|e| self.failed(e))?
            .map_or(0, |v| v.value())
            + 1;
        seqs.insert(topic, seq).map_err(|e| self.failed(e))?;
        idem.insert((topic, key), (seq, event.published_unix_micros))
            .map_err(|e| self.failed(e))?;
        let mut events = txn.open_table(EVENTS).map_err(|e| self.failed(e))?;
        events
            .insert((topic, seq), event.encode_to_vec().as_slice())
            .map_err(|e| self.failed(e))?;
        let mut pending = txn.open_table(PENDING).map_err(|e| self.failed(e))?;
        for sub in &job.subscribers {
            pending
                .insert((topic, sub.as_str(), seq), (0u32, 0i64))
                .map_err(|e| self.failed(e))?;
        }
        Ok(Published {
            event_id: seq.to_string(),
            duplicate: false,
        })
    }

    /// Publishes a batch in one durable transaction: one fsync for all.
    fn publish_batch(&self, jobs: Vec<PublishJob>) {
        let outcome = self.write(true).and_then(|txn| {
            let results: Vec<_> = jobs.iter().map(|job| self.publish_in(&txn, job)).collect();
            if results.iter().any(Result::is_err) {
                // Nothing of a failed batch is kept; each caller learns why.
                return Ok(results);
            }
            txn.commit().map_err(|e| self.failed(e))?;
            Ok(results)
        });
        match outcome {
            Ok(results) => {
                let failed = results
                    .iter()
                    .find_map(|r| r.as_ref().err().map(ToString::to_string));
                for (job, result) in jobs.into_iter().zip(results) {
                    let result = match &failed {
                        Some(why) => Err(BusError::Unavailable(why.clone())),
                        None => result,
                    };
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                let why = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(BusError::Unavailable(why.clone())));
                }
            }
        }
    }
}
