//! Retention in the embedded store: rows of events no subscription owes
//! and older than the retention are deleted (with their idempotency row),
//! dead letters past theirs too, a bounded batch per transaction. redb
//! reuses the freed pages for later writes, so the file stops growing once
//! publishing and trimming balance; it does not shrink by itself.
//!
//! An event is owed while some subscription has a `bus_pending` row for it
//! (every subscriber gets one at publish, removed by the ack), and kept
//! while a `bus_dead` row names it (a dead letter holds its event by seq).
//! Every subscriber that has rows counts, configured or not: a subscriber
//! dropped from the configuration keeps its backlog until it is back.

use prost::Message;
use redb::{ReadableTable, Table};

use super::{micros, DeadRecord, Inner, DEAD, EVENTS, IDEM, PENDING};
use crate::bus::store::{BusError, Retention, StoredEvent, SubscriptionState, TopicState};

/// Rows deleted per transaction, so a backlog never holds the writer long.
const BATCH: usize = 1_000;
/// Transactions per run: bounds a run's work (a million events).
const ROUNDS: usize = 1_000;

type Rows<'t> = Table<'t, (&'static str, &'static str, u64), &'static [u8]>;

/// The subscribers with rows of `topic` in a table keyed (topic, sub, seq),
/// found by skipping from one subscriber's range to the next.
fn subscribers_in<V: redb::Value + 'static>(
    table: &impl ReadableTable<(&'static str, &'static str, u64), V>,
    topic: &str,
) -> Result<Vec<String>, redb::StorageError> {
    let mut out: Vec<String> = Vec::new();
    let mut from = String::new();
    loop {
        let next = table
            .range((topic, from.as_str(), 0u64)..)?
            .next()
            .transpose()?
            .map(|(k, _)| (k.value().0 == topic).then(|| k.value().1.to_owned()));
        let Some(Some(sub)) = next else {
            return Ok(out);
        };
        // The smallest name after `sub` and every name it prefixes.
        from = format!("{sub}\0");
        out.push(sub);
    }
}

impl Inner {
    pub(super) fn trim(
        &self,
        topic: &str,
        configured: &[String],
        retention: Retention,
        now: i64,
    ) -> Result<TopicState, BusError> {
        let mut state = TopicState::default();
        for _ in 0..ROUNDS {
            let (events, dead) = self.trim_batch(topic, retention, now)?;
            state.trimmed += events;
            state.trimmed_dead += dead;
            if events < BATCH as u64 && dead < BATCH as u64 {
                break;
            }
        }
        self.state(topic, configured, state)
    }

    /// One transaction: up to [`BATCH`] dead letters and events removed.
    fn trim_batch(
        &self,
        topic: &str,
        retention: Retention,
        now: i64,
    ) -> Result<(u64, u64), BusError> {
        let txn = self.write(true)?;
        let done = {
            let f = |e: redb::StorageError| self.failed(e);
            let pending = txn.open_table(PENDING).map_err(|e| self.failed(e))?;
            let mut dead = txn.open_table(DEAD).map_err(|e| self.failed(e))?;
            let mut events = txn.open_table(EVENTS).map_err(|e| self.failed(e))?;
            let mut idem = txn.open_table(IDEM).map_err(|e| self.failed(e))?;
            let dead_subs = subscribers_in(&dead, topic).map_err(f)?;
            let dead_cutoff = now.saturating_sub(micros(retention.dead_letters));
            let trimmed_dead = self.trim_dead(&mut dead, topic, &dead_subs, dead_cutoff)?;
            // Below the first seq any subscription owes, every event was
            // acknowledged by all.
            let mut floor = u64::MAX;
            for sub in subscribers_in(&pending, topic).map_err(f)? {
                if let Some(row) = first_row(&pending, topic, &sub).map_err(f)? {
                    floor = floor.min(row);
                }
            }
            let cutoff = now.saturating_sub(micros(retention.events));
            let mut gone = Vec::new();
            for row in events.range((topic, 0u64)..(topic, floor)).map_err(f)? {
                let (key, value) = row.map_err(f)?;
                let seq = key.value().1;
                let event = StoredEvent::decode(value.value()).unwrap_or_default();
                if event.published_unix_micros >= cutoff || gone.len() >= BATCH {
                    break;
                }
                let mut kept = false;
                for sub in &dead_subs {
                    kept |= dead.get((topic, sub.as_str(), seq)).map_err(f)?.is_some();
                }
                if !kept {
                    gone.push((seq, event.idempotency_key));
                }
            }
            for (seq, key) in &gone {
                events.remove((topic, *seq)).map_err(f)?;
                // Only the key's row for this event: a later event may
                // have reused the key after the window.
                let same = idem
                    .get((topic, key.as_str()))
                    .map_err(f)?
                    .is_some_and(|v| v.value().0 == *seq);
                if same {
                    idem.remove((topic, key.as_str())).map_err(f)?;
                }
            }
            (gone.len() as u64, trimmed_dead)
        };
        if done == (0, 0) {
            // Nothing removed: no commit, so an idle node pays no fsync.
            txn.abort().map_err(|e| self.failed(e))?;
        } else {
            txn.commit().map_err(|e| self.failed(e))?;
        }
        Ok(done)
    }

    /// Removes up to [`BATCH`] dead letters set aside before `cutoff`.
    fn trim_dead(
        &self,
        dead: &mut Rows<'_>,
        topic: &str,
        subs: &[String],
        cutoff: i64,
    ) -> Result<u64, BusError> {
        let f = |e: redb::StorageError| self.failed(e);
        let mut old = Vec::new();
        for sub in subs {
            for row in dead
                .range((topic, sub.as_str(), 0u64)..=(topic, sub.as_str(), u64::MAX))
                .map_err(f)?
            {
                let (key, value) = row.map_err(f)?;
                let record = DeadRecord::decode(value.value()).unwrap_or_default();
                if record.dead_unix_micros < cutoff && old.len() < BATCH {
                    old.push((sub.clone(), key.value().2));
                }
            }
        }
        for (sub, seq) in &old {
            dead.remove((topic, sub.as_str(), *seq)).map_err(f)?;
        }
        Ok(old.len() as u64)
    }

    /// The topic's length and each configured subscription's backlog head
    /// and dead letters, read after a run.
    fn state(
        &self,
        topic: &str,
        configured: &[String],
        mut state: TopicState,
    ) -> Result<TopicState, BusError> {
        use redb::ReadableDatabase;
        let f = |e: redb::StorageError| self.failed(e);
        let txn = self.db.begin_read().map_err(|e| self.failed(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.failed(e))?;
        let pending = txn.open_table(PENDING).map_err(|e| self.failed(e))?;
        let dead = txn.open_table(DEAD).map_err(|e| self.failed(e))?;
        // The span from the oldest event held to the newest, read at both
        // ends instead of counted (a topic may hold millions): exact but
        // for events trimmed between two kept for dead letters.
        let mut held = events.range((topic, 0u64)..=(topic, u64::MAX)).map_err(f)?;
        let first = held
            .next()
            .transpose()
            .map_err(f)?
            .map(|(k, _)| k.value().1);
        let last = held
            .next_back()
            .transpose()
            .map_err(f)?
            .map(|(k, _)| k.value().1);
        let last = last.or(first);
        state.length = match (first, last) {
            (Some(a), Some(b)) => b - a + 1,
            _ => 0,
        };
        for sub in configured {
            let oldest = match first_row(&pending, topic, sub).map_err(f)? {
                Some(seq) => Some(self.event(&events, topic, seq)?.published_unix_micros),
                None => None,
            };
            let dead_letters = dead
                .range((topic, sub.as_str(), 0u64)..=(topic, sub.as_str(), u64::MAX))
                .map_err(f)?
                .count() as u64;
            state.subscriptions.push(SubscriptionState {
                subscriber: sub.clone(),
                oldest_owed_unix_micros: oldest,
                dead_letters,
            });
        }
        Ok(state)
    }

    /// Rows in each table, for tests that bound the store's size.
    #[cfg(test)]
    pub(super) fn rows(&self) -> [u64; 4] {
        use redb::{ReadableDatabase, ReadableTableMetadata};
        let txn = self.db.begin_read().expect("a read transaction");
        [
            txn.open_table(EVENTS).expect("events").len().expect("len"),
            txn.open_table(PENDING)
                .expect("pending")
                .len()
                .expect("len"),
            txn.open_table(IDEM).expect("idem").len().expect("len"),
            txn.open_table(DEAD).expect("dead").len().expect("len"),
        ]
    }
}

/// The first seq `sub` owes on `topic`, if any.
fn first_row(
    pending: &impl ReadableTable<(&'static str, &'static str, u64), (u32, i64)>,
    topic: &str,
    sub: &str,
) -> Result<Option<u64>, redb::StorageError> {
    Ok(pending
        .range((topic, sub, 0u64)..=(topic, sub, u64::MAX))?
        .next()
        .transpose()?
        .map(|(k, _)| k.value().2))
}
