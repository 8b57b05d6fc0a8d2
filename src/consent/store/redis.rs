//! The Redis consent store: consents shared by several gateway replicas
//! through a Redis server or a Redis Cluster.
//!
//! Keys carry a hash tag so that everything about one consent lives in one
//! slot: `jisr:consent:{<id>}` is a hash (`data`: the signed encoding, sealed
//! (see `seal`), `sig`, `revoked_at`, `uses`, and `max_uses` copied from the
//! consent for the script), and `jisr:subject:{<hex pseudonym(subject)>}` is
//! a sorted set of the citizen's consent ids scored by recording time. The
//! citizen id is so in Redis neither in clear nor as a hash anyone could
//! compute from a guessed id: both need the operator's pseudonym key.
//!
//! Nothing is cached: every call reads Redis, so a revocation made through
//! one replica is seen by every replica on its next call. `put`, `revoke` and
//! `use_once` are Lua scripts (see `scripts`), atomic on the consent's hash.
//! Every operation is bounded by the store's timeout; a Redis that does not
//! answer in time, or answers with an error, is [`StoreError::Unavailable`],
//! and the caller refuses the call (fail closed). The connection reconnects
//! by itself, so the same store works again once Redis is back.

mod scripts;
pub mod seal;

use std::sync::Arc;
use std::time::Duration;

use redis::RedisResult;

use super::check_new;
use super::{ConsentStore, StoreError, StoreFuture, StoredConsent, UseOutcome};
use crate::audit::keys::Pseudonymizer;
use crate::redis::Shared;
use scripts::{FIELDS, PUT, REVOKE, USE_ONCE};
use seal::Sealer;

/// How long an operation may take by default before it is refused.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// Consents in Redis (standalone or Cluster), shared by every replica.
#[derive(Clone)]
pub struct RedisConsentStore {
    /// Connected on first use, then reconnecting by itself; shared with the
    /// gateway's shared rate limits, so they open no connection of their own.
    redis: Shared,
    /// Seals consents and names subjects under the node's pseudonym key.
    sealer: Arc<Sealer>,
}

impl std::fmt::Debug for RedisConsentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConsentStore")
            .field("address", &self.redis.address())
            .field("timeout", &self.redis.timeout())
            .finish_non_exhaustive()
    }
}

impl RedisConsentStore {
    /// Connects with [`DEFAULT_TIMEOUT`]; see [`Self::connect_with_timeout`].
    pub async fn connect(url: &str, pseudonyms: Pseudonymizer) -> Result<Self, StoreError> {
        Self::connect_with_timeout(url, DEFAULT_TIMEOUT, pseudonyms).await
    }

    /// Connects to `redis://host:port[/db]`, or to a cluster named as
    /// `redis+cluster://[user:password@]h1:p1,h2:p2,…` or as a
    /// comma-separated list of `redis://` URLs. Fails if Redis cannot be
    /// reached now, so a wrong URL shows at once; once connected, the store
    /// reconnects by itself. `timeout` bounds every operation. `pseudonyms`
    /// holds the operator's pseudonym key, which every replica shares: what
    /// one replica seals, the others open.
    pub async fn connect_with_timeout(
        url: &str,
        timeout: Duration,
        pseudonyms: Pseudonymizer,
    ) -> Result<Self, StoreError> {
        let store = Self::new(url, timeout, pseudonyms)?;
        store.redis.connection().await.map_err(unavailable)?;
        Ok(store)
    }

    /// Like [`Self::connect_with_timeout`], but a Redis that cannot be
    /// reached now is not an error: the store connects on its first use, and
    /// until then every operation fails (the gateway refuses those calls
    /// with CONSENT_UNAVAILABLE). A gateway replica can so start before Redis
    /// and serve the calls that need no consent meanwhile. A URL that cannot
    /// name a Redis at all is still an error.
    pub async fn open(
        url: &str,
        timeout: Duration,
        pseudonyms: Pseudonymizer,
    ) -> Result<Self, StoreError> {
        let store = Self::new(url, timeout, pseudonyms)?;
        if let Err(e) = store.redis.connection().await.map_err(unavailable) {
            tracing::warn!(
                error = %e,
                "starting without the consent store; calls that need a consent are refused with CONSENT_UNAVAILABLE until Redis answers"
            );
        }
        Ok(store)
    }

    fn new(url: &str, timeout: Duration, pseudonyms: Pseudonymizer) -> Result<Self, StoreError> {
        let redis = Shared::new(url, timeout, "consent store");
        redis.check_url().map_err(|e| {
            StoreError::Unavailable(format!(
                "`{}` is not a Redis URL ({e}); write `redis://host:port` or `redis+cluster://host1:port1,host2:port2`",
                redis.address()
            ))
        })?;
        Ok(Self {
            redis,
            sealer: Arc::new(Sealer::new(pseudonyms)),
        })
    }

    /// The store's address, without credentials.
    pub fn address(&self) -> &str {
        self.redis.address()
    }

    /// The store's Redis connection, for others to share rather than open
    /// their own (the gateway's shared rate limits).
    pub fn shared(&self) -> &Shared {
        &self.redis
    }

    async fn put_consent(&self, consent: StoredConsent) -> Result<(), StoreError> {
        check_new(&consent)?;
        let c = &consent.consent;
        let data = self.sealer.seal(&c.id, &consent.encoded)?;
        let subject = subject_key(&self.sealer, &c.subject);
        // The script runs in a `move` block: it takes references.
        let (data, subject, signature) = (&data, &subject, &consent.signature);
        let stored: i64 = self
            .redis
            .call("store a consent", |mut conn| async move {
                // The index entry goes first: a crash in between leaves an
                // index entry without a consent, which listing skips, rather
                // than a consent its citizen cannot list. NX keeps the score
                // of an existing entry.
                let _: i64 = redis::cmd("ZADD")
                    .arg(subject)
                    .arg("NX")
                    .arg(c.recorded_unix_micros as f64)
                    .arg(&c.id)
                    .query_async(&mut conn)
                    .await?;
                PUT.key(consent_key(&c.id))
                    .arg(data.as_slice())
                    .arg(signature.as_slice())
                    .arg(c.max_uses)
                    .invoke_async(&mut conn)
                    .await
            })
            .await
            .map_err(unavailable)?;
        match stored {
            1 => Ok(()),
            _ => Err(StoreError::Exists(c.id.clone())),
        }
    }

    async fn get_consent(&self, id: &str) -> Result<Option<StoredConsent>, StoreError> {
        let fields: Vec<Option<Vec<u8>>> = self
            .redis
            .call("read a consent", |mut conn| async move {
                redis::cmd("HMGET")
                    .arg(consent_key(id))
                    .arg(&FIELDS[..])
                    .query_async(&mut conn)
                    .await
            })
            .await
            .map_err(unavailable)?;
        if fields.first().is_none_or(Option::is_none) {
            return Ok(None);
        }
        scripts::stored(&self.sealer, id, fields).map(Some)
    }

    async fn revoke_consent(&self, id: &str, at: i64) -> Result<Option<StoredConsent>, StoreError> {
        // 0 means "not revoked": a revocation is at least 1 µs after the epoch.
        let at = at.max(1);
        let fields: Option<Vec<Option<Vec<u8>>>> = self
            .redis
            .call("revoke a consent", |mut conn| async move {
                REVOKE
                    .key(consent_key(id))
                    .arg(at)
                    .invoke_async(&mut conn)
                    .await
            })
            .await
            .map_err(unavailable)?;
        fields
            .map(|f| scripts::stored(&self.sealer, id, f))
            .transpose()
    }

    async fn use_consent(&self, id: &str) -> Result<UseOutcome, StoreError> {
        let reply: Vec<Option<Vec<u8>>> = self
            .redis
            .call("count a use of a consent", |mut conn| async move {
                USE_ONCE.key(consent_key(id)).invoke_async(&mut conn).await
            })
            .await
            .map_err(unavailable)?;
        scripts::use_outcome(&self.sealer, id, reply)
    }

    async fn list_consents(&self, subject: &str) -> Result<Vec<StoredConsent>, StoreError> {
        let index = &subject_key(&self.sealer, subject);
        let rows = self
            .redis
            .call("list a citizen's consents", |mut conn| async move {
                let ids: Vec<String> = redis::cmd("ZRANGE")
                    .arg(index)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await?;
                // Each consent may live on another cluster node: read them
                // concurrently rather than one round trip after another.
                let reads = ids.into_iter().map(|id| {
                    let mut conn = conn.clone();
                    async move {
                        let fields: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
                            .arg(consent_key(&id))
                            .arg(&FIELDS[..])
                            .query_async(&mut conn)
                            .await?;
                        RedisResult::Ok((id, fields))
                    }
                });
                futures_util::future::try_join_all(reads).await
            })
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, fields) in rows {
            if fields.first().is_none_or(Option::is_none) {
                continue; // an index entry whose put did not complete
            }
            let stored = scripts::stored(&self.sealer, &id, fields)?;
            // Guards against an index entry left by a refused put of a
            // reused id: the consent must be this citizen's.
            if stored.consent.subject == subject {
                out.push(stored);
            }
        }
        Ok(out)
    }
}

impl ConsentStore for RedisConsentStore {
    fn put(&self, consent: StoredConsent) -> StoreFuture<'_, ()> {
        Box::pin(self.put_consent(consent))
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<StoredConsent>> {
        Box::pin(self.get_consent(id))
    }

    fn revoke<'a>(&'a self, id: &'a str, at: i64) -> StoreFuture<'a, Option<StoredConsent>> {
        Box::pin(self.revoke_consent(id, at))
    }

    fn use_once<'a>(&'a self, id: &'a str) -> StoreFuture<'a, UseOutcome> {
        Box::pin(self.use_consent(id))
    }

    fn list_by_subject<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<StoredConsent>> {
        Box::pin(self.list_consents(subject))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.redis.ping().await.map_err(unavailable) })
    }
}

/// A Redis failure as the store's callers are told it: the call is refused
/// (fail closed), or the store could not connect.
// By value so that it fits `map_err` at each of its call sites.
#[allow(clippy::needless_pass_by_value)]
fn unavailable(e: crate::redis::Error) -> StoreError {
    StoreError::Unavailable(if e.is_connect() {
        format!("{e}; check that Redis runs and `consent.redis_url`")
    } else {
        format!("{e}; the call is refused (fail closed); check Redis")
    })
}

/// The hash of one consent; the id is the hash tag, so a cluster keeps it
/// (and any key added for the consent later) in one slot.
fn consent_key(id: &str) -> String {
    format!("jisr:consent:{{{id}}}")
}

/// The sorted set of a citizen's consent ids, under their keyed pseudonym.
fn subject_key(sealer: &Sealer, subject: &str) -> String {
    format!("jisr:subject:{{{}}}", sealer.subject_name(subject))
}
