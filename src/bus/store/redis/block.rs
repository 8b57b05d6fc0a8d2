//! Idle Subscribe streams wait in Redis (`XREADGROUP … BLOCK`) instead of
//! polling. A blocked read holds its connection until it returns, so it
//! cannot go through the multiplexed connection every other call shares
//! (they would queue behind it): each waiting stream has a connection of
//! its own, opened at its first wait and closed when the stream ends, and
//! at most `MAX_BLOCKED_READERS` streams hold one (more streams poll).

use std::time::Duration;

use redis::Value;
use tokio::sync::OwnedSemaphorePermit;

use super::{groups, RedisBusStore};
use crate::bus::store::{BusError, BusFuture, Pending, Waiter};
use crate::redis::Conn;

/// How long an idle stream blocks: a quarter of the ack deadline, so a
/// delivery whose deadline passed is reclaimed at most that late, and at
/// most a second. An idle turn costs five commands (two `XAUTOCLAIM`, two
/// `XPENDING` and the blocked `XREADGROUP`), so an idle stream costs at most
/// five commands a second with the default 30 s deadline.
pub(super) fn block_for(ack_deadline: Duration) -> Duration {
    (ack_deadline / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// A connection for blocked reads, and the room it takes in the bound.
pub(super) struct Blocking {
    conn: Option<Conn>,
    /// How long each read blocks.
    pub(super) wait: Duration,
}

/// One Subscribe stream's reader (see the module).
pub(super) struct RedisWaiter {
    store: RedisBusStore,
    blocking: Blocking,
    /// Released when the stream ends, with the connection.
    _permit: OwnedSemaphorePermit,
}

impl RedisWaiter {
    /// `None` when `MAX_BLOCKED_READERS` streams hold a connection already.
    pub(super) fn new(store: &RedisBusStore) -> Option<Self> {
        let Ok(permit) = store.blocked.clone().try_acquire_owned() else {
            tracing::debug!("every blocked-reader connection is taken; this stream polls");
            return None;
        };
        Some(Self {
            store: store.clone(),
            blocking: Blocking {
                conn: None,
                wait: block_for(store.limits.ack_deadline),
            },
            _permit: permit,
        })
    }
}

impl Waiter for RedisWaiter {
    fn fetch_waiting<'a>(
        &'a mut self,
        topic: &'a str,
        subscriber: &'a str,
        max: u32,
        now: i64,
    ) -> BusFuture<'a, Vec<Pending>> {
        Box::pin(async move {
            let store = &self.store;
            let fetched = store
                .fetch_inner(topic, subscriber, max, now, Some(&mut self.blocking))
                .await;
            match fetched {
                // Redis lost the groups (or the stream under a blocked
                // read): make them again; the next call reads on.
                Err(e) if groups::lost(&e) => {
                    store.recreate_groups(topic, subscriber).await?;
                    Ok(Vec::new())
                }
                done => done,
            }
        })
    }

    fn longest_wait(&self) -> Duration {
        self.blocking.wait
    }
}

impl RedisBusStore {
    /// Runs the blocking read `cmd` on `blocking`'s connection, opened first
    /// if need be; a connection that failed is dropped for the next call to
    /// open another.
    pub(super) async fn read_blocked(
        &self,
        blocking: &mut Blocking,
        cmd: &redis::Cmd,
    ) -> Result<Value, BusError> {
        // The reply may take the whole wait, on top of the usual bound.
        let bound = self.redis.timeout() + blocking.wait;
        let address = self.redis.address();
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            BusError::Unavailable(format!("redis at {address} failed to {what}: {e}"))
        };
        let mut conn = match blocking.conn.take() {
            Some(conn) => conn,
            None => {
                let open = crate::redis::open(&self.target, bound);
                match tokio::time::timeout(bound * 4, open).await {
                    Ok(Ok(conn)) => conn,
                    Ok(Err(e)) => return Err(fail("open a connection for blocked reads", &e)),
                    Err(_) => {
                        return Err(BusError::Unavailable(format!(
                            "cannot connect to redis at {address} in time; check that Redis runs and `bus.redis_url`"
                        )))
                    }
                }
            }
        };
        match tokio::time::timeout(bound, cmd.query_async::<Value>(&mut conn)).await {
            Ok(Ok(value)) => {
                blocking.conn = Some(conn);
                Ok(value)
            }
            Ok(Err(e)) => Err(fail("wait for new events", &e)),
            Err(_) => Err(BusError::Unavailable(format!(
                "redis at {address} did not answer a blocked read within {} ms",
                bound.as_millis()
            ))),
        }
    }
}
