//! Publishing: one script appends the event unless its idempotency key
//! names an event still in the stream, and makes any group Redis lost
//! first, so that no publish is answered OK that a subscription cannot see.

use redis::Value;

use super::reply::{int, items, text};
use super::{keys, unavailable, RedisBusStore};
use crate::bus::store::{BusError, Published, StoredEvent};

/// Publishes once per idempotency key, atomically. Sent by digest (`EVALSHA`), loaded on first use.
static PUBLISH: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(PUBLISH_LUA));

/// KEYS: the stream, the idempotency key; ARGV: the event, the window, then
/// every subscriber; returns {id, duplicate, groups it had to create}. A
/// key whose event is no longer in the stream does not count: Redis lost
/// the event (retention never removes one while its key lives: the
/// retention is at least the window), and publishing again is what
/// delivers it (at least once). Each subscriber's group is created
/// (from `0`, see `recreate_groups`) before the entry is appended, so no
/// publish is answered OK that a subscription cannot see, even when Redis
/// came back empty; any other failure is an error reply, never an OK. A
/// group it had to create was lost by Redis (every group is made at start).
const PUBLISH_LUA: &str = r"
local seen = redis.call('GET', KEYS[2])
if seen and #redis.call('XRANGE', KEYS[1], seen, seen) > 0 then return {seen, 1, {}} end
local created = {}
for i = 3, #ARGV do
  local made = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[i], '0', 'MKSTREAM')
  if type(made) == 'table' and made.err then
    if not string.find(made.err, 'BUSYGROUP', 1, true) then return made end
  else
    created[#created + 1] = ARGV[i]
  end
end
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
redis.call('SET', KEYS[2], id, 'PX', ARGV[2])
return {id, 0, created}
";

impl RedisBusStore {
    pub(super) async fn publish_inner(
        &self,
        topic: &str,
        subscribers: &[String],
        event: StoredEvent,
    ) -> Result<Published, BusError> {
        let k = keys(topic, "");
        let idem = format!(
            "jisr:bus:{{{topic}}}:idem:{}",
            self.seal.idempotency_name(&event.idempotency_key)
        );
        // Sealed here: the script appends what it is given.
        let sealed = self.seal.seal(topic, &event)?;
        let mut invocation = PUBLISH.key(&k.events);
        invocation
            .key(&idem)
            .arg(sealed)
            .arg(Self::ms(self.limits.idempotency_window))
            .arg(subscribers);
        let reply: Value = self
            .redis
            .call("publish", |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await
            .map_err(unavailable)?;
        let parts = items(&reply);
        let event_id = parts
            .first()
            .and_then(text)
            .ok_or_else(|| BusError::Unavailable("redis answered publish oddly".into()))?;
        let made: Vec<String> = parts
            .get(2)
            .map(items)
            .unwrap_or_default()
            .iter()
            .filter_map(text)
            .collect();
        if !made.is_empty() {
            self.lost_groups(topic, &made);
        }
        Ok(Published {
            event_id,
            duplicate: parts.get(1).map(int) == Some(1),
        })
    }
}
