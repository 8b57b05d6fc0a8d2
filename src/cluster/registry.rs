//! The registry of live nodes in the shared Redis: one key per node id,
//! `jisr:node:{<node-id>}`, holding a [`NodeEntry`] as JSON, claimed with
//! `SET NX PX` and renewed by its holder only (a script compares the
//! instance id before touching the key). At start a live entry with the
//! same owner (the SHA-256 of the replica's instance token, see
//! [`super::token`]) is the same replica's, left by a crash: it is taken
//! over at once. A set, `jisr:nodes`, names the ids
//! so that [`Registry::list`] works on a Redis Cluster too, where keys of
//! different slots cannot be scanned as one.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::redis::{Error, Shared};

mod heartbeat;
use heartbeat::heartbeat;

/// The set of registered node ids.
const MEMBERS: &str = "jisr:nodes";

/// Claims the key if free (`{0, ''}`); else takes it over if its holder
/// has owner ARGV[3] (not empty) (`{1, previous}`); else returns its
/// holder's entry (`{2, holder}`).
const CLAIM: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0, ''} end
local v = redis.call('GET', KEYS[1]) or ''
if ARGV[3] ~= '' then
  local ok, held = pcall(cjson.decode, v)
  if ok and type(held) == 'table' and held.owner == ARGV[3] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return {1, v}
  end
end
return {2, v}
";

/// Replaces the entry and renews its TTL if the key is held by instance
/// ARGV[1]; 1 if it was, 0 if not (expired, or held by another).
const RENEW: &str = r"
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v).instance == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// Deletes the key if held by instance ARGV[1].
const RELEASE: &str = r"
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v).instance == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// A live node, as it registered itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// The node id (`[node] id`).
    pub node: String,
    /// Random per process start: tells a restarted node from its old self.
    pub instance: String,
    /// Where other replicas reach it (`[node] advertise`, else its listener).
    pub address: String,
    /// Its audit log's verifier key, in signed-note text.
    pub verifier_key: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// The SHA-256 of its instance token (see [`super::token`]): a restart
    /// of the same replica shows the same; empty when not given.
    #[serde(default)]
    pub owner: String,
}

impl NodeEntry {
    /// The entry of a node starting now, with a new instance id.
    pub fn starting(node: &str, address: &str, verifier_key: &str) -> Self {
        let started_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            node: node.to_owned(),
            instance: format!("{:016x}", rand::random::<u64>()),
            address: address.to_owned(),
            verifier_key: verifier_key.to_owned(),
            started_ms,
            owner: String::new(),
        }
    }

    /// The entry of the replica holding instance token `token`.
    #[must_use]
    pub fn owned_by(self, token: &str) -> Self {
        Self {
            owner: super::token::owner(token),
            ..self
        }
    }

    /// When it started, in RFC 3339.
    pub fn started(&self) -> String {
        let nanos = i128::from(self.started_ms) * 1_000_000;
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| format!("{} ms after the Unix epoch", self.started_ms))
    }

    fn json(&self) -> String {
        // A struct of strings and an integer always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why a node may not start.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Another live instance holds the node id.
    #[error(
        "node id `{node}` is already live in this deployment: {holder}; give each replica its own node id (`[node] id`, or `id_from = \"env\"` / `\"hostname\"`); if that replica is gone, start it again with its own audit log (its instance token) to take its registration back at once, or wait up to {} s for the registration to expire",
        .ttl.as_secs_f64().ceil()
    )]
    Taken {
        /// The node id.
        node: String,
        /// Who holds it: address, start time and instance.
        holder: String,
        /// How long its registration outlives its last heartbeat.
        ttl: Duration,
    },
}

/// The registry in one Redis.
#[derive(Clone, Debug)]
pub struct Registry {
    redis: Shared,
    ttl: Duration,
}

/// What a claim found.
enum Claim {
    Ours,
    /// Ours, taken over from a previous instance of this replica (its entry).
    TookOver(String),
    Held(String),
}

impl Registry {
    /// The registry in `redis`; entries live `ttl` past their last heartbeat.
    pub fn new(redis: Shared, ttl: Duration) -> Self {
        Self { redis, ttl }
    }

    fn key(node: &str) -> String {
        format!("jisr:node:{{{node}}}")
    }

    /// Registers `entry` and keeps it alive until [`Registration::release`].
    /// Refuses when another live instance holds the node id. When Redis does
    /// not answer, logs a warning and registers once it does: a replica
    /// starts without its Redis, as it serves without it.
    pub async fn register(&self, entry: NodeEntry) -> Result<Registration, RegistryError> {
        let registered = match self.claim(&entry, true).await {
            Ok(Claim::Ours) => true,
            Ok(Claim::TookOver(previous)) => {
                tracing::info!(node = %entry.node, previous = %describe(&previous), "took over this replica's own registration, left by its previous instance (same instance token)");
                true
            }
            Ok(Claim::Held(holder)) => {
                return Err(RegistryError::Taken {
                    node: entry.node.clone(),
                    holder: describe(&holder),
                    ttl: self.ttl,
                })
            }
            Err(e) => {
                tracing::warn!(node = %entry.node, error = %e, "cannot register the node in the replica registry; starting anyway and registering when Redis answers (until then a second replica with this node id is not detected)");
                false
            }
        };
        let registration = Registration {
            registry: self.clone(),
            entry: Arc::new(Mutex::new(entry)),
            heartbeat: Mutex::new(None),
        };
        let task = tokio::spawn(heartbeat(
            self.clone(),
            registration.entry.clone(),
            registered,
        ));
        *lock(&registration.heartbeat) = Some(task);
        Ok(registration)
    }

    /// The live nodes, by node id.
    pub async fn list(&self) -> Result<Vec<NodeEntry>, Error> {
        let ids: Vec<String> = self
            .redis
            .call("list the registered nodes", |mut conn| async move {
                redis::cmd("SMEMBERS")
                    .arg(MEMBERS)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let mut nodes = Vec::with_capacity(ids.len());
        for id in ids {
            let key = Self::key(&id);
            let value: Option<String> = self
                .redis
                .call("read a node's registration", |mut conn| async move {
                    redis::cmd("GET").arg(key).query_async(&mut conn).await
                })
                .await?;
            match value.and_then(|v| serde_json::from_str::<NodeEntry>(&v).ok()) {
                Some(entry) => nodes.push(entry),
                // Expired: forget the id (a node re-adds it at each heartbeat).
                None => self.forget(&id).await?,
            }
        }
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(nodes)
    }

    async fn forget(&self, id: &str) -> Result<(), Error> {
        let id = id.to_owned();
        self.redis
            .call("forget an expired node", |mut conn| async move {
                redis::cmd("SREM")
                    .arg(MEMBERS)
                    .arg(id)
                    .query_async(&mut conn)
                    .await
            })
            .await
    }

    /// Claims the node id; with `take_over`, also from a live entry of the
    /// same owner (at start only: the heartbeat never takes an entry back).
    async fn claim(&self, entry: &NodeEntry, take_over: bool) -> Result<Claim, Error> {
        let (key, value, ttl) = (Self::key(&entry.node), entry.json(), self.ttl_ms());
        let owner = if take_over {
            entry.owner.clone()
        } else {
            String::new()
        };
        let (status, held): (i64, String) = self
            .redis
            .call("register the node", |mut conn| async move {
                let script = redis::Script::new(CLAIM);
                script
                    .key(key)
                    .arg(value)
                    .arg(ttl)
                    .arg(owner)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        if status == 2 {
            return Ok(Claim::Held(held));
        }
        self.add_member(&entry.node).await?;
        Ok(if status == 1 {
            Claim::TookOver(held)
        } else {
            Claim::Ours
        })
    }

    async fn add_member(&self, node: &str) -> Result<(), Error> {
        let node = node.to_owned();
        self.redis
            .call("list the node as registered", |mut conn| async move {
                redis::cmd("SADD")
                    .arg(MEMBERS)
                    .arg(node)
                    .query_async(&mut conn)
                    .await
            })
            .await
    }

    /// Renews (and rewrites) the entry if it is still ours.
    async fn renew(&self, entry: &NodeEntry) -> Result<bool, Error> {
        let key = Self::key(&entry.node);
        let (instance, value, ttl) = (entry.instance.clone(), entry.json(), self.ttl_ms());
        let renewed: i64 = self
            .redis
            .call("renew the node's registration", |mut conn| async move {
                let script = redis::Script::new(RENEW);
                script
                    .key(key)
                    .arg(instance)
                    .arg(value)
                    .arg(ttl)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        if renewed == 1 {
            self.add_member(&entry.node).await?;
        }
        Ok(renewed == 1)
    }

    async fn release(&self, entry: &NodeEntry) -> Result<(), Error> {
        let (key, instance) = (Self::key(&entry.node), entry.instance.clone());
        self.redis
            .call("remove the node's registration", |mut conn| async move {
                let script = redis::Script::new(RELEASE);
                let _: i64 = script
                    .key(key)
                    .arg(instance)
                    .invoke_async(&mut conn)
                    .await?;
                Ok(())
            })
            .await
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A node's live registration; [`Registration::release`] ends it.
#[derive(Debug)]
pub struct Registration {
    registry: Registry,
    entry: Arc<Mutex<NodeEntry>>,
    heartbeat: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Registration {
    /// The entry as registered.
    pub fn entry(&self) -> NodeEntry {
        lock(&self.entry).clone()
    }

    /// Sets the address peers should dial (once the listener is bound, when
    /// the configured one had port 0); written now if Redis answers, else
    /// by the next heartbeat.
    pub async fn set_address(&self, address: &str) {
        let entry = {
            let mut entry = lock(&self.entry);
            entry.address = address.to_owned();
            entry.clone()
        };
        if let Err(e) = self.registry.renew(&entry).await {
            tracing::debug!(error = %e, "the node's new address is written at the next heartbeat");
        }
    }

    /// Stops the heartbeat and removes the entry (if still ours), so a
    /// replacement can start at once.
    pub async fn release(&self) {
        if let Some(task) = lock(&self.heartbeat).take() {
            task.abort();
        }
        let entry = self.entry();
        match self.registry.release(&entry).await {
            Ok(()) => tracing::info!(node = %entry.node, "left the replica registry"),
            Err(e) => {
                tracing::warn!(node = %entry.node, error = %e, "cannot remove the node's registration; it expires by itself")
            }
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Without heartbeats the entry expires within its TTL.
        if let Some(task) = lock(&self.heartbeat).take() {
            task.abort();
        }
    }
}

/// Who holds a key, for people.
fn describe(holder: &str) -> String {
    match serde_json::from_str::<NodeEntry>(holder) {
        Ok(e) => format!(
            "the instance at {} started {} (instance {})",
            e.address,
            e.started(),
            e.instance
        ),
        Err(_) => format!("an entry this version cannot read: {holder}"),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data is replaced whole under the lock, so a panicked holder
    // cannot leave it half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
