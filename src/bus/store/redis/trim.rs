//! Retention on Redis: one script per topic, atomic, so replicas trimming
//! at once each see a consistent stream and the second finds nothing left
//! to do. Its keys (the stream, each subscriber's dead letters and replay
//! stream) share the topic's hash tag, so it runs on Redis Cluster too.
//!
//! `XTRIM … MINID` on the events stream stops at the oldest entry any
//! group still owes: its oldest pending (delivered, not acknowledged)
//! entry, else the first entry after its last-delivered id; and at the
//! retention cutoff, measured on Redis's clock (the one entry ids carry).
//! Dead letters (a copy of the event each) go past their own retention;
//! a replay stream keeps what its group owes. Times are Redis's `TIME`.

use redis::Value;

use super::reply::{int, items};
use super::{keys, RedisBusStore};
use crate::bus::store::{BusError, Retention, SubscriptionState, TopicState};

/// Events removed per script call: bounds how long one call holds Redis.
const CAP: u64 = 500;
/// Calls per run: bounds a run's work.
const ROUNDS: usize = 200;

/// KEYS: the stream, then per subscriber its dead letters and replay
/// stream. ARGV: retention ms, dead-letter retention ms, the cap, then the
/// subscribers. Returns {events trimmed, dead letters trimmed, stream
/// length, per subscriber {group present 0/1, oldest owed ms or -1, dead
/// letters}}. A configured group that is missing (Redis lost it) stops
/// the events trim: its subscriber is told of the loss and the group made
/// again first.
const TRIM_LUA: &str = r"
local function parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function before(a, b)
  local am, as = parts(a)
  local bm, bs = parts(b)
  return am < bm or (am == bm and as < bs)
end
local function after(id)
  local ms, seq = parts(id)
  return string.format('%d-%d', ms, seq + 1)
end
local function owed(stream)
  local out = {}
  if redis.call('EXISTS', stream) == 0 then return out end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    local oldest = false
    if f['pending'] > 0 then oldest = redis.call('XPENDING', stream, f['name'])[2] end
    if not oldest then
      local nxt = redis.call('XRANGE', stream, '(' .. f['last-delivered-id'], '+', 'COUNT', 1)
      if #nxt > 0 then oldest = nxt[1][1] end
    end
    out[f['name']] = {oldest, f['last-delivered-id']}
  end
  return out
end
local function trim(stream, cutoff, groups, cap)
  if redis.call('EXISTS', stream) == 0 then return 0 end
  local minid = cutoff
  for _, g in pairs(groups) do
    local bound = g[1] or after(g[2])
    if before(bound, minid) then minid = bound end
  end
  if minid == '0-0' then return 0 end
  local below = redis.call('XRANGE', stream, '-', '(' .. minid, 'COUNT', cap + 1)
  if #below == 0 then return 0 end
  if #below > cap then minid = below[cap + 1][1] end
  return redis.call('XTRIM', stream, 'MINID', minid)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[3])
local groups = owed(KEYS[1])
local complete = true
local subs = {}
local dead_trimmed = 0
for i = 4, #ARGV do
  local dead, replay = KEYS[2 * (i - 3)], KEYS[2 * (i - 3) + 1]
  local g = groups[ARGV[i]]
  if not g then complete = false end
  dead_trimmed = dead_trimmed + redis.call('XTRIM', dead, 'MINID',
    string.format('%d-0', now - tonumber(ARGV[2])))
  local replayed = owed(replay)
  trim(replay, string.format('%d-0', now + 1), replayed, cap)
  local oldest = -1
  local function consider(o)
    if o then
      local ms = parts(o)
      if oldest < 0 or ms < oldest then oldest = ms end
    end
  end
  if g then consider(g[1]) end
  if replayed[ARGV[i]] then consider(replayed[ARGV[i]][1]) end
  subs[#subs + 1] = {g and 1 or 0, oldest, redis.call('XLEN', dead)}
end
local trimmed = 0
if complete then
  trimmed = trim(KEYS[1], string.format('%d-0', now - tonumber(ARGV[1])), groups, cap)
end
return {trimmed, dead_trimmed, redis.call('XLEN', KEYS[1]), subs}
";

static TRIM: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(TRIM_LUA));

impl RedisBusStore {
    /// One script call: up to [`CAP`] events removed, and what it found.
    async fn trim_once(
        &self,
        topic: &str,
        subscribers: &[String],
        retention: Retention,
    ) -> Result<TopicState, BusError> {
        let mut invocation = TRIM.key(keys(topic, "").events);
        for sub in subscribers {
            let k = keys(topic, sub);
            invocation.key(k.dead).key(k.replay);
        }
        invocation
            .arg(Self::ms(retention.events))
            .arg(Self::ms(retention.dead_letters))
            .arg(CAP)
            .arg(subscribers);
        let reply: Value = self
            .redis
            .call("trim", |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await
            .map_err(super::unavailable)?;
        let parts = items(&reply);
        let count = |i: usize| {
            parts
                .get(i)
                .map_or(0, |v| u64::try_from(int(v)).unwrap_or(0))
        };
        let mut state = TopicState {
            trimmed: count(0),
            trimmed_dead: count(1),
            length: count(2),
            subscriptions: Vec::new(),
        };
        let found = parts.get(3).map(items).unwrap_or_default();
        for (sub, row) in subscribers.iter().zip(found) {
            let row = items(row);
            let at = |i: usize| row.get(i).map_or(0, int);
            if at(0) == 0 {
                self.recreate_groups(topic, sub).await?;
            }
            state.subscriptions.push(SubscriptionState {
                subscriber: sub.clone(),
                oldest_owed_unix_micros: (at(1) >= 0).then(|| at(1).saturating_mul(1000)),
                dead_letters: u64::try_from(at(2)).unwrap_or(0),
            });
        }
        Ok(state)
    }

    pub(super) async fn trim_inner(
        &self,
        topic: &str,
        subscribers: &[String],
        retention: Retention,
    ) -> Result<TopicState, BusError> {
        let mut total = TopicState::default();
        for _ in 0..ROUNDS {
            let state = self.trim_once(topic, subscribers, retention).await?;
            let more = state.trimmed >= CAP;
            total = TopicState {
                trimmed: total.trimmed + state.trimmed,
                trimmed_dead: total.trimmed_dead + state.trimmed_dead,
                ..state
            };
            if !more {
                break;
            }
        }
        Ok(total)
    }
}
