//! Dead letters: listing them, and replaying them into the subscriber's
//! replay stream, which its group reads before new events.

use redis::Value;

use super::reply::entries;
use super::{keys, RedisBusStore};
use crate::bus::store::{BusError, DeadLetter};

impl RedisBusStore {
    pub(super) async fn dead_inner(
        &self,
        topic: &str,
        sub: &str,
        limit: u32,
    ) -> Result<Vec<(String, DeadLetter)>, BusError> {
        let k = keys(topic, sub);
        let reply: Value = self
            .run(
                "list dead letters",
                redis::cmd("XRANGE")
                    .arg(&k.dead)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit),
            )
            .await?;
        entries(&reply)
            .into_iter()
            .map(|(id, f)| {
                let s = |name: &str| {
                    f.get(name)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default()
                };
                Ok((
                    id,
                    DeadLetter {
                        event_id: s("eid"),
                        attempts: s("attempts").parse().unwrap_or(0),
                        reason: s("reason"),
                        dead_unix_micros: s("at").parse().unwrap_or(0),
                        event: self.seal.open(topic, &f)?,
                    },
                ))
            })
            .collect()
    }

    pub(super) async fn replay_inner(
        &self,
        topic: &str,
        sub: &str,
        event_ids: &[String],
    ) -> Result<u32, BusError> {
        let k = keys(topic, sub);
        let mut done = 0;
        for (dead_id, letter) in self.dead_inner(topic, sub, u32::MAX).await? {
            if !event_ids.is_empty() && !event_ids.contains(&letter.event_id) {
                continue;
            }
            let sealed = self.seal.seal(topic, &letter.event)?;
            let mut add = redis::cmd("XADD");
            add.arg(&k.replay)
                .arg("*")
                .arg("e")
                .arg(sealed)
                .arg("eid")
                .arg(&letter.event_id);
            let _: Value = self.run("replay a dead letter", &add).await?;
            let _: Value = self
                .run(
                    "drop a replayed dead letter",
                    redis::cmd("XDEL").arg(&k.dead).arg(&dead_id),
                )
                .await?;
            done += 1;
        }
        Ok(done)
    }
}
