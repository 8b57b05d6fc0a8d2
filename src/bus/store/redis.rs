//! The Redis bus store: each topic is a Redis Stream and each subscription a
//! consumer group on it, so several gateway replicas share a subscription
//! (each replica is a consumer of the group) without losing or duplicating
//! work: an entry read by a replica that dies stays in the group's pending
//! list and another replica claims it once its ack deadline passed
//! (`XAUTOCLAIM`).
//!
//! Keys share the hash tag `{<topic>}`, so a topic lives in one Cluster
//! slot: `jisr:bus:{t}:events` (the stream; field `e` is the sealed
//! encoding of the [`StoredEvent`], see [`sealed`]),
//! `jisr:bus:{t}:idem:<digest>` (the first event id of an idempotency key,
//! named by its keyed digest, expiring with the window), and per subscriber
//! `jisr:bus:{t}:replay:<sub>` (replayed dead letters, a stream with the
//! same group) and `jisr:bus:{t}:dead:<sub>` (dead letters).
//!
//! Attempts are the group's delivery counter. Durability of an acknowledged
//! publish is Redis's: a gateway crash loses nothing Redis holds; a Redis
//! crash loses what its persistence settings (AOF `appendfsync`) allow, and
//! the groups are then made again ([`groups`]). An idle Subscribe stream
//! blocks in `XREADGROUP … BLOCK` on a connection of its own ([`block`]).

use std::time::Duration;

use redis::Value;

use super::{
    BusError, BusFuture, BusStore, DeadLetter, Limits, Pending, Published, Retention, StoredEvent,
    TopicState, Waiter,
};
use crate::audit::keys::Pseudonymizer;
use crate::bus::figures::Figures;
use crate::redis::{Shared, Target};

mod block;
mod dead;
mod fetch;
mod groups;
mod publish;
pub(crate) mod reply;
pub(crate) mod sealed;
mod trim;

/// Subscribe streams that block on a connection of their own at once; more
/// streams poll (each blocked reader holds one connection to Redis).
const MAX_BLOCKED_READERS: usize = 128;

/// Topics in Redis Streams, shared by every replica.
#[derive(Clone)]
pub struct RedisBusStore {
    /// The bus's own connection (`bus.redis_url` may name another Redis
    /// than the consent store's), opened at once and reconnecting by itself.
    redis: Shared,
    limits: Limits,
    /// This process's consumer name in every group.
    consumer: String,
    /// Where blocked readers open their own connections.
    target: std::sync::Arc<Target>,
    /// Bounds how many connections blocked readers hold.
    blocked: std::sync::Arc<tokio::sync::Semaphore>,
    /// Seals events and names idempotency keys (see [`sealed`]).
    seal: std::sync::Arc<sealed::EventSeal>,
    /// Where a loss of data (a group made again) is told.
    figures: std::sync::Arc<Figures>,
}

impl std::fmt::Debug for RedisBusStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBusStore")
            .field("address", &self.redis.address())
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

use reply::{int, items};

/// A Redis failure in the bus's words: which setting to check when it
/// cannot connect; only what failed once connected (the caller decides
/// what the failure means for the call).
fn unavailable(e: crate::redis::Error) -> BusError {
    use crate::redis::Error;
    BusError::Unavailable(match e {
        Error::Connect { .. } => {
            format!("{e}; check that Redis runs and `bus.redis_url`")
        }
        Error::ConnectTimedOut { address, .. } => format!(
            "cannot connect to redis at {address} in time; check that Redis runs and `bus.redis_url`"
        ),
        Error::TimedOut {
            address,
            what,
            after,
        } => format!(
            "redis at {address} did not answer in {} ms ({what})",
            after.as_millis()
        ),
        Error::Failed { .. } => e.to_string(),
    })
}

struct Keys {
    /// The topic, which sealed events are bound to.
    topic: String,
    events: String,
    replay: String,
    dead: String,
}

fn keys(topic: &str, sub: &str) -> Keys {
    Keys {
        topic: topic.to_owned(),
        events: format!("jisr:bus:{{{topic}}}:events"),
        replay: format!("jisr:bus:{{{topic}}}:replay:{sub}"),
        dead: format!("jisr:bus:{{{topic}}}:dead:{sub}"),
    }
}

/// A delivery id names the stream: `e:<id>` (events) or `r:<id>` (replay).
fn split_id(id: &str) -> Result<(bool, &str), BusError> {
    match id.split_once(':') {
        Some(("e", rest)) => Ok((false, rest)),
        Some(("r", rest)) => Ok((true, rest)),
        _ => Err(BusError::Invalid(format!(
            "`{id}` is not a delivery id of this gateway's bus; send the `id` of a Delivery"
        ))),
    }
}

impl RedisBusStore {
    /// Connects to Redis (`redis://…` or `redis+cluster://…`); fails now if
    /// it cannot be reached. `consumer` names this node in the groups;
    /// events are sealed under a key derived from `pseudonyms`'s; a loss of
    /// data is told to `figures`.
    pub async fn connect(
        url: &str,
        limits: Limits,
        timeout: Duration,
        (node, pseudonyms): (&str, Pseudonymizer),
        figures: std::sync::Arc<Figures>,
    ) -> Result<Self, BusError> {
        let redis = Shared::new(url, timeout, "bus store");
        redis.connection().await.map_err(unavailable)?;
        Ok(Self {
            redis,
            limits,
            consumer: format!("{node}-{:016x}", rand::random::<u64>()),
            target: std::sync::Arc::new(crate::redis::parse(url)),
            blocked: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_BLOCKED_READERS)),
            seal: std::sync::Arc::new(sealed::EventSeal::new(pseudonyms)),
            figures,
        })
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        what: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, BusError> {
        self.redis
            .call(what, |mut conn| async move {
                cmd.query_async::<T>(&mut conn).await
            })
            .await
            .map_err(unavailable)
    }

    fn ms(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    async fn ack_inner(
        &self,
        topic: &str,
        sub: &str,
        ids: &[String],
        release: Option<bool>,
    ) -> Result<u32, BusError> {
        let k = keys(topic, sub);
        let mut by_stream: [(String, Vec<&str>); 2] = [
            (k.events.clone(), Vec::new()),
            (k.replay.clone(), Vec::new()),
        ];
        for id in ids {
            let (replay, raw) = split_id(id)?;
            by_stream[usize::from(replay)].1.push(raw);
        }
        let mut done = 0;
        for (stream, list) in &by_stream {
            if list.is_empty() {
                continue;
            }
            if release == Some(false) {
                self.give_back(stream, sub, list).await?;
            } else if release.is_some() {
                // Idle as long as the deadline: due again at once, for any replica.
                let mut cmd = redis::cmd("XCLAIM");
                cmd.arg(stream)
                    .arg(sub)
                    .arg(&self.consumer)
                    .arg(0)
                    .arg(list)
                    .arg("IDLE")
                    .arg(Self::ms(self.limits.ack_deadline))
                    .arg("JUSTID");
                let _: Value = self.run("release deliveries", &cmd).await?;
            } else {
                let n: i64 = self
                    .run(
                        "acknowledge",
                        redis::cmd("XACK").arg(stream).arg(sub).arg(list),
                    )
                    .await?;
                done += u32::try_from(n).unwrap_or(0);
                if stream == &k.replay {
                    let _: Value = self
                        .run(
                            "drop replayed entries",
                            redis::cmd("XDEL").arg(stream).arg(list),
                        )
                        .await?;
                }
            }
        }
        Ok(done)
    }

    /// Makes deliveries due at once with one delivery fewer counted (they
    /// never left the gateway).
    async fn give_back(&self, stream: &str, sub: &str, ids: &[&str]) -> Result<(), BusError> {
        for id in ids {
            let mut pending = redis::cmd("XPENDING");
            pending.arg(stream).arg(sub).arg(*id).arg(*id).arg(1);
            let reply: Value = self.run("read a delivery count", &pending).await?;
            let Some(row) = items(&reply).first() else {
                continue; // acknowledged meanwhile
            };
            let count = items(row).get(3).map_or(1, int);
            let mut cmd = redis::cmd("XCLAIM");
            cmd.arg(stream)
                .arg(sub)
                .arg(&self.consumer)
                .arg(0)
                .arg(*id)
                .arg("IDLE")
                .arg(Self::ms(self.limits.ack_deadline))
                .arg("RETRYCOUNT")
                .arg((count - 1).max(0))
                .arg("JUSTID");
            let _: Value = self.run("give a delivery back", &cmd).await?;
        }
        Ok(())
    }
}

impl BusStore for RedisBusStore {
    fn prepare<'a>(&'a self, subscriptions: &'a [(String, String)]) -> BusFuture<'a, ()> {
        Box::pin(async move {
            for (topic, sub) in subscriptions {
                // `$`: a new subscriber starts with the events published from
                // now on, like the embedded store.
                self.create_groups(topic, sub, "$").await?;
            }
            Ok(())
        })
    }

    fn publish<'a>(
        &'a self,
        topic: &'a str,
        subscribers: &'a [String],
        event: StoredEvent,
    ) -> BusFuture<'a, Published> {
        Box::pin(self.publish_inner(topic, subscribers, event))
    }

    fn fetch<'a>(
        &'a self,
        topic: &'a str,
        subscriber: &'a str,
        max: u32,
        now: i64,
    ) -> BusFuture<'a, Vec<Pending>> {
        Box::pin(async move {
            match self.fetch_inner(topic, subscriber, max, now, None).await {
                Err(e) if groups::lost(&e) => {
                    self.recreate_groups(topic, subscriber).await?;
                    self.fetch_inner(topic, subscriber, max, now, None).await
                }
                done => done,
            }
        })
    }

    fn ack<'a>(
        &'a self,
        topic: &'a str,
        subscriber: &'a str,
        ids: &'a [String],
    ) -> BusFuture<'a, u32> {
        Box::pin(async move {
            match self.ack_inner(topic, subscriber, ids, None).await {
                // The deliveries went with the group: nothing left to ack.
                Err(e) if groups::lost(&e) => {
                    self.recreate_groups(topic, subscriber).await.map(|()| 0)
                }
                done => done,
            }
        })
    }

    fn release<'a>(
        &'a self,
        topic: &'a str,
        subscriber: &'a str,
        ids: &'a [String],
        counted: bool,
    ) -> BusFuture<'a, ()> {
        Box::pin(async move {
            match self.ack_inner(topic, subscriber, ids, Some(counted)).await {
                Err(e) if groups::lost(&e) => self.recreate_groups(topic, subscriber).await,
                done => done.map(drop),
            }
        })
    }

    fn dead_letters<'a>(
        &'a self,
        topic: &'a str,
        subscriber: &'a str,
        limit: u32,
    ) -> BusFuture<'a, Vec<DeadLetter>> {
        Box::pin(async move {
            Ok(self
                .dead_inner(topic, subscriber, limit)
                .await?
                .into_iter()
                .map(|(_, d)| d)
                .collect())
        })
    }

    fn replay<'a>(
        &'a self,
        topic: &'a str,
        subscriber: &'a str,
        event_ids: &'a [String],
        _now: i64,
    ) -> BusFuture<'a, u32> {
        Box::pin(self.replay_inner(topic, subscriber, event_ids))
    }

    fn trim<'a>(
        &'a self,
        topic: &'a str,
        subscribers: &'a [String],
        retention: Retention,
        _now: i64,
    ) -> BusFuture<'a, TopicState> {
        // Redis's own clock: the one its entry ids carry.
        Box::pin(self.trim_inner(topic, subscribers, retention))
    }

    fn waiter(&self) -> Option<Box<dyn Waiter>> {
        block::RedisWaiter::new(self).map(|w| Box::new(w) as Box<dyn Waiter>)
    }
}
