//! The Lua scripts that make `put`, `revoke` and `use_once` atomic on Redis,
//! and the reading of their replies.
//!
//! Each script touches one key, the consent's hash, so it runs on the node
//! owning that key's slot in a cluster too. Redis runs a script with no other
//! command interleaved: a `use_once` either runs wholly before a `revoke` (and
//! is counted) or wholly after it (and sees the revocation).
//!
//! Numbers are stored as decimal strings and returned as strings (never Lua
//! numbers, which are doubles) so that micro-second times survive exactly.

use std::sync::LazyLock;

use redis::Script;

use super::seal::Sealer;
use crate::consent::store::assemble;
use crate::consent::store::{StoreError, StoredConsent, UseOutcome};

/// The fields of a consent's hash, in the order the scripts return them.
pub(super) const FIELDS: [&str; 4] = ["data", "sig", "revoked_at", "uses"];

/// KEYS[1] consent hash; ARGV sealed data, sig, max_uses. 1 if stored, 0 if the id
/// exists.
pub(super) static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'sig', ARGV[2], 'revoked_at', '0',
  'uses', '0', 'max_uses', ARGV[3])
return 1
",
    )
});

/// KEYS[1] consent hash; ARGV[1] revocation time. Nil if unknown, else the
/// fields after the revocation (an earlier revocation time is kept).
pub(super) static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('HMGET', KEYS[1], 'data', 'sig', 'revoked_at', 'uses')
if not v[1] then return false end
local current = tonumber(v[3]) or 0
if current == 0 or tonumber(ARGV[1]) < current then
  redis.call('HSET', KEYS[1], 'revoked_at', ARGV[1])
  v[3] = ARGV[1]
end
return v
",
    )
});

/// KEYS[1] consent hash. `{outcome, data, sig, revoked_at, uses}` with
/// outcome `counted`, `revoked` or `exhausted`, or `{unknown}`.
pub(super) static USE_ONCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('HMGET', KEYS[1], 'data', 'sig', 'revoked_at', 'uses', 'max_uses')
if not v[1] then return {'unknown'} end
if (tonumber(v[3]) or 0) ~= 0 then return {'revoked', v[1], v[2], v[3], v[4]} end
local max = tonumber(v[5]) or 0
if max ~= 0 and (tonumber(v[4]) or 0) >= max then
  return {'exhausted', v[1], v[2], v[3], v[4]}
end
local uses = redis.call('HINCRBY', KEYS[1], 'uses', 1)
return {'counted', v[1], v[2], v[3], tostring(uses)}
",
    )
});

/// A consent from the four [`FIELDS`] as read from its hash, its `data`
/// opened with the node's sealer.
pub(super) fn stored(
    sealer: &Sealer,
    id: &str,
    fields: Vec<Option<Vec<u8>>>,
) -> Result<StoredConsent, StoreError> {
    let damaged = |what: String| StoreError::Damaged {
        id: id.to_owned(),
        what,
    };
    let [data, sig, revoked, uses]: [Option<Vec<u8>>; 4] = fields
        .try_into()
        .map_err(|v: Vec<_>| damaged(format!("Redis returned {} fields, not 4", v.len())))?;
    let missing = |name: &str| damaged(format!("its hash has no `{name}` field"));
    let data = sealer.open(id, &data.ok_or_else(|| missing("data"))?)?;
    let sig = sig.ok_or_else(|| missing("sig"))?;
    let revoked = number(
        id,
        "revoked_at",
        &revoked.ok_or_else(|| missing("revoked_at"))?,
    )?;
    let uses = number(id, "uses", &uses.ok_or_else(|| missing("uses"))?)?;
    let uses = u32::try_from(uses.max(0)).unwrap_or(u32::MAX);
    assemble(id, data, sig, revoked, uses)
}

/// The reply of [`USE_ONCE`].
pub(super) fn use_outcome(
    sealer: &Sealer,
    id: &str,
    mut reply: Vec<Option<Vec<u8>>>,
) -> Result<UseOutcome, StoreError> {
    if reply.is_empty() {
        return Err(StoreError::Damaged {
            id: id.to_owned(),
            what: "Redis returned an empty reply to use_once".into(),
        });
    }
    let outcome = reply.remove(0).unwrap_or_default();
    match outcome.as_slice() {
        b"unknown" => Ok(UseOutcome::Unknown),
        b"counted" => Ok(UseOutcome::Counted(stored(sealer, id, reply)?)),
        b"revoked" => Ok(UseOutcome::Revoked(stored(sealer, id, reply)?)),
        b"exhausted" => Ok(UseOutcome::Exhausted(stored(sealer, id, reply)?)),
        other => Err(StoreError::Damaged {
            id: id.to_owned(),
            what: format!(
                "Redis returned the outcome `{}` to use_once",
                String::from_utf8_lossy(other)
            ),
        }),
    }
}

fn number(id: &str, field: &str, bytes: &[u8]) -> Result<i64, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Damaged {
            id: id.to_owned(),
            what: format!(
                "its `{field}` field is not a number: `{}`",
                String::from_utf8_lossy(bytes)
            ),
        })
}
