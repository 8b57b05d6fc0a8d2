//! Handing out deliveries: first what the group holds past its ack deadline
//! (claimed again, or buried as dead letters past the attempt limit), then
//! new entries, within the subscription's in-flight bound.

use std::collections::HashMap;

use redis::Value;

use super::block::Blocking;
use super::reply::{entries, int, items, text, Fields};
use super::{keys, Keys, RedisBusStore};
use crate::bus::store::{exhausted_reason, BusError, Pending};

/// The event id an entry carries (replayed entries keep their first id),
/// else the entry's own.
fn event_id_of(id: &str, fields: &Fields) -> String {
    fields.get("eid").map_or_else(
        || id.to_owned(),
        |v| String::from_utf8_lossy(v).into_owned(),
    )
}

/// The delivery id of entry `id`: it names the stream (see `split_id`).
fn delivery_id(replay: bool, id: &str) -> String {
    let prefix = if replay { "r" } else { "e" };
    format!("{prefix}:{id}")
}

impl RedisBusStore {
    /// Claims deliveries of `stream` idle past the ack deadline; those past
    /// the attempt limit become dead letters.
    async fn reclaim(
        &self,
        stream: &str,
        k: &Keys,
        sub: &str,
        max: u32,
        replay: bool,
        now: i64,
    ) -> Result<Vec<Pending>, BusError> {
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(stream)
            .arg(sub)
            .arg(&self.consumer)
            .arg(Self::ms(self.limits.ack_deadline))
            .arg("0-0")
            .arg("COUNT")
            .arg(max);
        let reply: Value = self.run("claim expired deliveries", &cmd).await?;
        let claimed = entries(items(&reply).get(1).unwrap_or(&Value::Nil));
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let attempts = self.delivery_counts(stream, sub, &claimed).await?;
        let mut out = Vec::new();
        for (id, fields) in claimed {
            let attempt = attempts.get(&id).copied().unwrap_or(1);
            let event = self.seal.open(&k.topic, &fields)?;
            if attempt > self.limits.max_attempts {
                self.bury(stream, k, sub, (&id, &fields), attempt - 1, now)
                    .await?;
            } else {
                out.push(Pending {
                    id: delivery_id(replay, &id),
                    event_id: event_id_of(&id, &fields),
                    event,
                    attempt,
                });
            }
        }
        Ok(out)
    }

    /// How often each of the `claimed` entries (in id order) was delivered.
    async fn delivery_counts(
        &self,
        stream: &str,
        sub: &str,
        claimed: &[(String, Fields)],
    ) -> Result<HashMap<String, u32>, BusError> {
        let mut counts = redis::cmd("XPENDING");
        counts
            .arg(stream)
            .arg(sub)
            .arg(&claimed[0].0)
            .arg(&claimed[claimed.len() - 1].0)
            .arg(claimed.len())
            .arg(&self.consumer);
        let reply: Value = self.run("read delivery counts", &counts).await?;
        Ok(items(&reply)
            .iter()
            .filter_map(|row| {
                let r = items(row);
                Some((
                    text(r.first()?)?,
                    u32::try_from(int(r.get(3)?)).unwrap_or(u32::MAX),
                ))
            })
            .collect())
    }

    /// Moves the entry `(id, fields)`, delivered `delivered` times, to the
    /// dead letters and acknowledges it in its group.
    async fn bury(
        &self,
        stream: &str,
        k: &Keys,
        sub: &str,
        (id, fields): (&str, &Fields),
        delivered: u32,
        now: i64,
    ) -> Result<(), BusError> {
        let event_id = event_id_of(id, fields);
        let mut dead = redis::cmd("XADD");
        dead.arg(&k.dead)
            .arg("*")
            .arg("e")
            .arg(fields.get("e").cloned().unwrap_or_default())
            .arg("eid")
            .arg(&event_id)
            .arg("attempts")
            .arg(delivered)
            .arg("reason")
            .arg(exhausted_reason(delivered))
            .arg("at")
            .arg(now);
        let _: Value = self.run("add a dead letter", &dead).await?;
        let _: Value = self
            .run(
                "acknowledge a dead letter",
                redis::cmd("XACK").arg(stream).arg(sub).arg(id),
            )
            .await?;
        Ok(())
    }

    async fn pending_count(&self, stream: &str, sub: &str) -> Result<u32, BusError> {
        let reply: Value = self
            .run(
                "count deliveries in flight",
                redis::cmd("XPENDING").arg(stream).arg(sub),
            )
            .await?;
        Ok(u32::try_from(int(items(&reply).first().unwrap_or(&Value::Int(0)))).unwrap_or(u32::MAX))
    }

    /// Hands out up to `max` deliveries; with `blocking`, when nothing is
    /// due, waits on its connection for new events (see `block`).
    pub(super) async fn fetch_inner(
        &self,
        topic: &str,
        sub: &str,
        max: u32,
        now: i64,
        blocking: Option<&mut Blocking>,
    ) -> Result<Vec<Pending>, BusError> {
        let k = keys(topic, sub);
        let mut out = self.reclaim(&k.replay, &k, sub, max, true, now).await?;
        if (out.len() as u32) < max {
            let more = self
                .reclaim(&k.events, &k, sub, max - out.len() as u32, false, now)
                .await?;
            out.extend(more);
        }
        let in_flight =
            self.pending_count(&k.events, sub).await? + self.pending_count(&k.replay, sub).await?;
        let room = self
            .limits
            .max_in_flight
            .saturating_sub(in_flight)
            .min(max.saturating_sub(out.len() as u32));
        // Something to hand out already: no reason to wait for more.
        let blocking = blocking.filter(|_| out.is_empty());
        if room > 0 {
            out.extend(self.read_new(&k, sub, room, blocking).await?);
        } else if let Some(b) = blocking {
            // The in-flight bound is reached: what frees room is an ack or
            // a deadline passing, which the next turn finds.
            tokio::time::sleep(b.wait).await;
        }
        Ok(out)
    }

    /// Up to `room` entries never delivered to the group, from both streams;
    /// with `blocking`, waiting for the first on its connection.
    async fn read_new(
        &self,
        k: &Keys,
        sub: &str,
        room: u32,
        blocking: Option<&mut Blocking>,
    ) -> Result<Vec<Pending>, BusError> {
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(sub)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(room);
        if let Some(b) = &blocking {
            read.arg("BLOCK").arg(Self::ms(b.wait));
        }
        read.arg("STREAMS")
            .arg(&k.replay)
            .arg(&k.events)
            .arg(">")
            .arg(">");
        let reply: Value = match blocking {
            Some(b) => self.read_blocked(b, &read).await?,
            None => self.run("read new events", &read).await?,
        };
        let mut fresh = Vec::new();
        for stream in items(&reply) {
            let parts = items(stream);
            let name = parts.first().and_then(text).unwrap_or_default();
            let replay = name == k.replay;
            for (id, fields) in entries(parts.get(1).unwrap_or(&Value::Nil)) {
                let pending = Pending {
                    id: delivery_id(replay, &id),
                    event_id: event_id_of(&id, &fields),
                    event: self.seal.open(&k.topic, &fields)?,
                    attempt: 1,
                };
                fresh.push((replay, pending));
            }
        }
        // Replayed dead letters go first, like the embedded store's order.
        fresh.sort_by_key(|(replay, _)| !*replay);
        Ok(fresh
            .into_iter()
            .take(room as usize)
            .map(|(_, p)| p)
            .collect())
    }
}
