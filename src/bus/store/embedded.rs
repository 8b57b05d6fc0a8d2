//! The embedded bus store: topics in a redb database on the gateway's disk,
//! for a single node (the default, and what `jisr demo` runs).
//!
//! Tables, keyed so that one subscription's rows are one ordered range:
//! `bus_events` (topic, seq) → the encoded [`StoredEvent`]; `bus_seq` topic →
//! last seq; `bus_idem` (topic, key) → (seq, time); `bus_pending` (topic,
//! subscriber, seq) → (attempts, deadline), one row per event a subscription
//! still owes (deadline 0: never delivered or released; else in flight until
//! then); `bus_dead` (topic, subscriber, seq) → the encoded `DeadRecord`.
//!
//! A publish commits durably (fsync) before it returns: an acknowledged
//! publish survives a crash. Publishes go through one writer thread that
//! commits everything queued in one transaction (group commit), so
//! concurrent publishers share an fsync. Delivery-state changes (fetch, ack, release)
//! commit without fsync: a crash can only forget that a delivery was made or
//! acknowledged, so the event is delivered again — at-least-once, never lost.
//! redb is blocking I/O, so each operation runs on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use redb::{Database, Durability, ReadableTable, TableDefinition};

use super::{
    exhausted_reason, BusError, BusFuture, BusStore, DeadLetter, Limits, Pending, Published,
    Retention, StoredEvent, TopicState,
};

const EVENTS: TableDefinition<'static, (&str, u64), &[u8]> = TableDefinition::new("bus_events");
const SEQ: TableDefinition<'static, &str, u64> = TableDefinition::new("bus_seq");
const IDEM: TableDefinition<'static, (&str, &str), (u64, i64)> = TableDefinition::new("bus_idem");
const PENDING: TableDefinition<'static, (&str, &str, u64), (u32, i64)> =
    TableDefinition::new("bus_pending");
const DEAD: TableDefinition<'static, (&str, &str, u64), &[u8]> = TableDefinition::new("bus_dead");

/// A dead letter as `bus_dead` holds it.
#[derive(Clone, PartialEq, Message)]
struct DeadRecord {
    #[prost(uint32, tag = "1")]
    attempts: u32,
    #[prost(string, tag = "2")]
    reason: String,
    #[prost(int64, tag = "3")]
    dead_unix_micros: i64,
}

/// Topics in an embedded redb database; survives restarts.
#[derive(Clone)]
pub struct EmbeddedBusStore {
    inner: Arc<Inner>,
    writer: Arc<Writer>,
}

struct Inner {
    db: Database,
    path: PathBuf,
    limits: Limits,
}

impl std::fmt::Debug for EmbeddedBusStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBusStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn seq_of(id: &str) -> Result<u64, BusError> {
    id.parse().map_err(|_| {
        BusError::Invalid(format!(
            "`{id}` is not a delivery id of this gateway's bus; send the `id` of a Delivery"
        ))
    })
}

impl EmbeddedBusStore {
    /// Opens the store at `path`, creating the file and its tables if absent.
    /// Every page is checked on open: a damaged file is an error naming it
    /// and the fix, never a panic (see [`crate::embedded`]).
    pub fn open(path: &Path, limits: Limits) -> Result<Self, BusError> {
        let opened = crate::embedded::open_keeping_evidence(path, || {
            let db = Database::builder()
                .set_check_integrity_on_open(true)
                .create(path)
                .map_err(|e| {
                    BusError::Unavailable(format!(
                        "cannot open the bus store {}: {e}; if another gateway uses it, stop that one; if the file is damaged (corrupted), restore it from a backup: undelivered events are kept nowhere else",
                        path.display()
                    ))
                })?;
            Self::with(db, path, limits)
        });
        opened.map_err(|not| {
            let kept = not.kept_note();
            match not.failure {
                Ok(BusError::Unavailable(e)) => BusError::Unavailable(format!("{e}.{kept}")),
                Ok(other) => other,
                Err(panic) => BusError::Unavailable(format!(
                    "the bus store {} is damaged (the storage library failed reading it: {panic}); the node did not start. Restore it from a backup: undelivered events are kept nowhere else (the audit log's bus entries say what was published and delivered since the backup).{kept}",
                    path.display()
                )),
            }
        })
    }

    /// A store in memory, for a node without topics: it never holds an
    /// event, and opens no file (so nodes without topics can share a
    /// directory).
    pub fn in_memory(limits: Limits) -> Result<Self, BusError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| BusError::Unavailable(format!("cannot create the bus store: {e}")))?;
        Self::with(db, Path::new("(memory)"), limits)
    }

    fn with(db: Database, path: &Path, limits: Limits) -> Result<Self, BusError> {
        let inner = Inner {
            db,
            path: path.to_owned(),
            limits,
        };
        let txn = inner.db.begin_write().map_err(|e| inner.failed(e))?;
        txn.open_table(EVENTS).map_err(|e| inner.failed(e))?;
        txn.open_table(SEQ).map_err(|e| inner.failed(e))?;
        txn.open_table(IDEM).map_err(|e| inner.failed(e))?;
        txn.open_table(PENDING).map_err(|e| inner.failed(e))?;
        txn.open_table(DEAD).map_err(|e| inner.failed(e))?;
        txn.commit().map_err(|e| inner.failed(e))?;
        let inner = Arc::new(inner);
        let writer = Writer::start(Arc::clone(&inner))?;
        Ok(Self {
            inner,
            writer: Arc::new(writer),
        })
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, BusError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, BusError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| BusError::Unavailable(format!("a bus store task failed: {e}")))?
    }
}

impl Inner {
    fn failed(&self, e: impl Into<redb::Error>) -> BusError {
        BusError::Unavailable(format!(
            "the bus store {} failed: {}; check the disk",
            self.path.display(),
            e.into()
        ))
    }

    fn write(&self, durable: bool) -> Result<redb::WriteTransaction, BusError> {
        let mut txn = self.db.begin_write().map_err(|e| self.failed(e))?;
        if !durable {
            txn.set_durability(Durability::None)
                .map_err(|e| BusError::Unavailable(format!("bus store: {e}")))?;
        }
        Ok(txn)
    }

    fn event(
        &self,
        events: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
        topic: &str,
        seq: u64,
    ) -> Result<StoredEvent, BusError> {
        let bytes = events
            .get((topic, seq))
            .map_err(|e| self.failed(e))?
            .ok_or_else(|| {
                BusError::Unavailable(format!("bus store: event {seq} of `{topic}` is missing"))
            })?;
        StoredEvent::decode(bytes.value()).map_err(|e| {
            BusError::Unavailable(format!(
                "bus store: event {seq} of `{topic}` is damaged: {e}"
            ))
        })
    }

    fn fetch(&self, topic: &str, sub: &str, max: u32, now: i64) -> Result<Vec<Pending>, BusError> {
        let limits = self.limits;
        let deadline = now.saturating_add(micros(limits.ack_deadline));
        let txn = self.write(false)?;
        let mut out = Vec::new();
        {
            let mut pending = txn.open_table(PENDING).map_err(|e| self.failed(e))?;
            let events = txn.open_table(EVENTS).map_err(|e| self.failed(e))?;
            let mut dead = txn.open_table(DEAD).map_err(|e| self.failed(e))?;
            let mut in_flight = 0u32;
            let mut due = Vec::new();
            let mut expired = Vec::new();
            for row in pending
                .range((topic, sub, 0u64)..=(topic, sub, u64::MAX))
                .map_err(|e| self.failed(e))?
            {
                let (key, value) = row.map_err(|e| self.failed(e))?;
                let seq = key.value().2;
                let (attempts, until) = value.value();
                if until > now {
                    in_flight += 1;
                } else if attempts >= limits.max_attempts {
                    expired.push((seq, attempts));
                    continue;
                } else {
                    due.push((seq, attempts));
                }
                if in_flight + due.len() as u32 >= limits.max_in_flight || due.len() as u32 >= max {
                    break;
                }
            }
            for (seq, attempts) in expired {
                pending
                    .remove((topic, sub, seq))
                    .map_err(|e| self.failed(e))?;
                let record = DeadRecord {
                    attempts,
                    reason: exhausted_reason(attempts),
                    dead_unix_micros: now,
                };
                dead.insert((topic, sub, seq), record.encode_to_vec().as_slice())
                    .map_err(|e| self.failed(e))?;
            }
            for (seq, attempts) in due {
                pending
                    .insert((topic, sub, seq), (attempts + 1, deadline))
                    .map_err(|e| self.failed(e))?;
                out.push(Pending {
                    id: seq.to_string(),
                    event_id: seq.to_string(),
                    event: self.event(&events, topic, seq)?,
                    attempt: attempts + 1,
                });
            }
        }
        txn.commit().map_err(|e| self.failed(e))?;
        Ok(out)
    }

    /// Acknowledges (`release` `None`), or releases keeping the attempt
    /// (`Some(true)`) or giving it back (`Some(false)`).
    fn settle(
        &self,
        topic: &str,
        sub: &str,
        ids: &[String],
        release: Option<bool>,
    ) -> Result<u32, BusError> {
        let seqs = ids
            .iter()
            .map(|id| seq_of(id))
            .collect::<Result<Vec<_>, _>>()?;
        let txn = self.write(false)?;
        let mut done = 0;
        {
            let mut pending = txn.open_table(PENDING).map_err(|e| self.failed(e))?;
            for seq in seqs {
                let current = pending
                    .get((topic, sub, seq))
                    .map_err(|e| self.failed(e))?
                    .map(|v| v.value());
                let Some((attempts, _)) = current else {
                    continue;
                };
                if let Some(counted) = release {
                    let attempts = if counted {
                        attempts
                    } else {
                        attempts.saturating_sub(1)
                    };
                    pending
                        .insert((topic, sub, seq), (attempts, 0i64))
                        .map_err(|e| self.failed(e))?;
                } else {
                    pending
                        .remove((topic, sub, seq))
                        .map_err(|e| self.failed(e))?;
                }
                done += 1;
            }
        }
        txn.commit().map_err(|e| self.failed(e))?;
        Ok(done)
    }
}

impl BusStore for EmbeddedBusStore {
    fn prepare<'a>(&'a self, _subscriptions: &'a [(String, String)]) -> BusFuture<'a, ()> {
        // A subscription is its rows: nothing to create.
        Box::pin(async { Ok(()) })
    }

    fn publish<'a>(
        &'a self,
        topic: &'a str,
        subscribers: &'a [String],
        event: StoredEvent,
    ) -> BusFuture<'a, Published> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = PublishJob {
            topic: topic.to_owned(),
            subscribers: subscribers.to_vec(),
            event,
            reply,
        };
        let sent = self.writer.send(job);
        Box::pin(async move {
            let stopped = || BusError::Unavailable("the bus writer thread stopped".into());
            sent.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        })
    }

    fn fetch<'a>(
        &'a self,
        topic: &'a str,
        subscriber: &'a str,
        max: u32,
        now: i64,
    ) -> BusFuture<'a, Vec<Pending>> {
        let (topic, sub) = (topic.to_owned(), subscriber.to_owned());
        Box::pin(self.blocking(move |s| s.fetch(&topic, &sub, max, now)))
    }

    fn ack<'a>(
        &'a self,
        topic: &'a str,
        subscriber: &'a str,
        ids: &'a [String],
    ) -> BusFuture<'a, u32> {
        let (topic, sub, ids) = (topic.to_owned(), subscriber.to_owned(), ids.to_vec());
        Box::pin(self.blocking(move |s| s.settle(&topic, &sub, &ids, None)))
    }

    fn release<'a>(
        &'a self,
        topic: &'a str,
        subscriber: &'a str,
        ids: &'a [String],
        counted: bool,
    ) -> BusFuture<'a, ()> {
        let (topic, sub, ids) = (topic.to_owned(), subscriber.to_owned(), ids.to_vec());
        Box::pin(self.blocking(move |s| s.settle(&topic, &sub, &ids, Some(counted)).map(drop)))
    }

    fn dead_letters<'a>(
        &'a self,
        topic: &'a str,
        subscriber: &'a str,
        limit: u32,
    ) -> BusFuture<'a, Vec<DeadLetter>> {
        let (topic, sub) = (topic.to_owned(), subscriber.to_owned());
        Box::pin(self.blocking(move |s| s.dead_letters(&topic, &sub, limit)))
    }

    fn replay<'a>(
        &'a self,
        topic: &'a str,
        subscriber: &'a str,
        event_ids: &'a [String],
        _now: i64,
    ) -> BusFuture<'a, u32> {
        let (topic, sub, ids) = (topic.to_owned(), subscriber.to_owned(), event_ids.to_vec());
        Box::pin(self.blocking(move |s| s.replay(&topic, &sub, &ids)))
    }

    fn trim<'a>(
        &'a self,
        topic: &'a str,
        subscribers: &'a [String],
        retention: Retention,
        now: i64,
    ) -> BusFuture<'a, TopicState> {
        let (topic, subs) = (topic.to_owned(), subscribers.to_vec());
        Box::pin(self.blocking(move |s| s.trim(&topic, &subs, retention, now)))
    }
}

mod dead;
mod publish;
#[cfg(test)]
mod retention_tests;
#[cfg(test)]
mod tests;
mod trim;

use publish::{PublishJob, Writer};
