//! Consumer groups: made at start for every subscription, and made again
//! when Redis comes back without them (no persistence, `FLUSHALL`, an empty
//! node after a failover), so that the subscription goes on with whatever
//! is published from then on instead of failing every call with `NOGROUP`.

use redis::Value;

use super::{keys, RedisBusStore};
use crate::bus::store::BusError;

/// Whether Redis answered that the group or its stream is gone: `NOGROUP`,
/// or a blocked read woken because its stream was deleted.
pub(super) fn lost(e: &BusError) -> bool {
    let text = e.to_string();
    text.contains("NOGROUP") || text.contains("UNBLOCKED") || text.contains("no longer exists")
}

fn busy_group(e: &BusError) -> bool {
    e.to_string().contains("BUSYGROUP")
}

impl RedisBusStore {
    /// Creates `sub`'s groups on the topic's stream and on its replay stream
    /// (and the streams), starting at `from`; a group that exists is left
    /// as it is.
    pub(super) async fn create_groups(
        &self,
        topic: &str,
        sub: &str,
        from: &str,
    ) -> Result<(), BusError> {
        let k = keys(topic, sub);
        // The replay stream holds only what a replay put there for this
        // subscriber: always from its start.
        for (stream, from) in [(&k.events, from), (&k.replay, "0")] {
            let mut cmd = redis::cmd("XGROUP");
            cmd.arg("CREATE")
                .arg(stream)
                .arg(sub)
                .arg(from)
                .arg("MKSTREAM");
            match self.run::<Value>("create a consumer group", &cmd).await {
                Err(e) if !busy_group(&e) => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Makes the groups again after Redis lost them. They start at `0`: the
    /// stream then holds only what was published since the loss (every
    /// publish creates the groups it needs before appending), all of which
    /// is owed to the subscriber.
    pub(super) async fn recreate_groups(&self, topic: &str, sub: &str) -> Result<(), BusError> {
        self.lost_groups(topic, std::slice::from_ref(&sub.to_owned()));
        self.create_groups(topic, sub, "0").await
    }

    /// Tells the log and the bus's figures (metrics, `/readyz`) that Redis
    /// lost the groups of `subs` on `topic`, and what went with them.
    pub(super) fn lost_groups(&self, topic: &str, subs: &[String]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        for sub in subs {
            tracing::warn!(
                topic,
                subscriber = %sub,
                address = %self.redis.address(),
                "the bus's consumer group is gone from Redis (it lost its data); recreating it: \
                 events of this topic published before the loss and not yet acknowledged by this \
                 subscriber, its in-flight deliveries and its dead letters are lost, see docs/bus.md"
            );
            self.figures.data_lost(topic, sub, now);
        }
    }
}
