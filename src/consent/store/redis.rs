//! The Redis consent store: consents shared by several gateway replicas
//! through a Redis server or a Redis Cluster.
//!
//! Keys carry a hash tag so that everything about one consent lives in one
//! slot: `jisr:consent:{<id>}` is a hash (`data`: the signed encoding, `sig`,
//! `revoked_at`, `uses`, and `max_uses` copied from the consent for the
//! script), and `jisr:subject:{<hex sha256(subject)>}` is a sorted set of the
//! citizen's consent ids scored by recording time, so the citizen id is never
//! a key in clear.
//!
//! Nothing is cached: every call reads Redis, so a revocation made through
//! one replica is seen by every replica on its next call. `put`, `revoke` and
//! `use_once` are Lua scripts (see `scripts`), atomic on the consent's hash.
//! Every operation is bounded by the store's timeout; a Redis that does not
//! answer in time, or answers with an error, is [`StoreError::Unavailable`],
//! and the caller refuses the call (fail closed). The connection reconnects
//! by itself, so the same store works again once Redis is back.

mod scripts;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::RedisResult;

use super::embedded::{check_new, subject_digest};
use super::{ConsentStore, StoreError, StoreFuture, StoredConsent, UseOutcome};
use crate::redis::{Conn, Target};
use scripts::{FIELDS, PUT, RATE, REVOKE, USE_ONCE};

/// How long an operation may take by default before it is refused.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// Consents in Redis (standalone or Cluster), shared by every replica.
#[derive(Clone)]
pub struct RedisConsentStore {
    /// Set once the first connection succeeds; the connection then
    /// reconnects by itself.
    conn: Arc<tokio::sync::OnceCell<Conn>>,
    target: Arc<Target>,
    /// The URL without credentials, for messages.
    address: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisConsentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConsentStore")
            .field("address", &self.address)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisConsentStore {
    /// Connects with [`DEFAULT_TIMEOUT`]; see [`Self::connect_with_timeout`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_timeout(url, DEFAULT_TIMEOUT).await
    }

    /// Connects to `redis://host:port[/db]`, or to a cluster named as
    /// `redis+cluster://[user:password@]h1:p1,h2:p2,…` or as a
    /// comma-separated list of `redis://` URLs. Fails if Redis cannot be
    /// reached now, so a wrong URL shows at once; once connected, the store
    /// reconnects by itself. `timeout` bounds every operation.
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let store = Self::new(url, timeout)?;
        store.connection().await?;
        Ok(store)
    }

    /// Like [`Self::connect_with_timeout`], but a Redis that cannot be
    /// reached now is not an error: the store connects on its first use, and
    /// until then every operation fails (the gateway refuses those calls
    /// with CONSENT_UNAVAILABLE). A gateway replica can so start before Redis
    /// and serve the calls that need no consent meanwhile. A URL that cannot
    /// name a Redis at all is still an error.
    pub async fn open(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let store = Self::new(url, timeout)?;
        if let Err(e) = store.connection().await {
            tracing::warn!(
                error = %e,
                "starting without the consent store; calls that need a consent are refused with CONSENT_UNAVAILABLE until Redis answers"
            );
        }
        Ok(store)
    }

    fn new(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let address = crate::redis::redact(url);
        let target = crate::redis::parse(url);
        crate::redis::validate(&target).map_err(|e| {
            StoreError::Unavailable(format!(
                "`{address}` is not a Redis URL ({e}); write `redis://host:port` or `redis+cluster://host1:port1,host2:port2`"
            ))
        })?;
        Ok(Self {
            conn: Arc::new(tokio::sync::OnceCell::new()),
            target: Arc::new(target),
            address,
            timeout,
        })
    }

    /// The shared connection, opening it first if no attempt succeeded yet.
    /// An attempt is bounded by a few operations' time (connecting may retry
    /// a few times); a failed one leaves the next caller to try again.
    async fn connection(&self) -> Result<Conn, StoreError> {
        if let Some(conn) = self.conn.get() {
            return Ok(conn.clone());
        }
        let bound = self.timeout * 4;
        let attempt = self.conn.get_or_try_init(|| async {
            match tokio::time::timeout(bound, crate::redis::open(&self.target, self.timeout)).await {
                Ok(Ok(conn)) => {
                    tracing::info!(address = %self.address, "connected to the consent store");
                    Ok(conn)
                }
                Ok(Err(e)) => Err(StoreError::Unavailable(format!(
                    "cannot connect to redis at {}: {e}; check that Redis runs and `consent.redis_url`",
                    self.address
                ))),
                Err(_) => Err(StoreError::Unavailable(format!(
                    "cannot connect to redis at {} within {} ms; check that Redis runs and `consent.redis_url`",
                    self.address,
                    bound.as_millis()
                ))),
            }
        });
        attempt.await.cloned()
    }

    /// The store's address, without credentials.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Takes one call from `consumer`'s shared rate bucket (`interval` and
    /// `tolerance` in microseconds, as in `proxy::rate`): `Ok(0)` if let
    /// through, else the microseconds to wait. Bounded like every operation.
    pub async fn take_rate(
        &self,
        consumer: &str,
        interval: u64,
        tolerance: u64,
    ) -> Result<u64, StoreError> {
        let mut conn = self.connection().await?;
        self.bounded("count a call against a rate limit", async {
            RATE.key(format!("jisr:rate:{{{consumer}}}"))
                .arg(interval)
                .arg(tolerance)
                .invoke_async(&mut conn)
                .await
        })
        .await
    }

    /// Runs `op` within the store's timeout, turning failure into a refusal.
    async fn bounded<T>(
        &self,
        what: &str,
        op: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreError::Unavailable(format!(
                "redis at {} failed to {what}: {e}; the call is refused (fail closed); check Redis",
                self.address
            ))),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis at {} did not answer within {} ms ({what}); the call is refused (fail closed); check Redis",
                self.address,
                self.timeout.as_millis()
            ))),
        }
    }

    async fn put_consent(&self, consent: StoredConsent) -> Result<(), StoreError> {
        check_new(&consent)?;
        let c = &consent.consent;
        let mut conn = self.connection().await?;
        let stored: i64 = self
            .bounded("store a consent", async {
                // The index entry goes first: a crash in between leaves an
                // index entry without a consent, which listing skips, rather
                // than a consent its citizen cannot list. NX keeps the score
                // of an existing entry.
                let _: i64 = redis::cmd("ZADD")
                    .arg(subject_key(&c.subject))
                    .arg("NX")
                    .arg(c.recorded_unix_micros as f64)
                    .arg(&c.id)
                    .query_async(&mut conn)
                    .await?;
                PUT.key(consent_key(&c.id))
                    .arg(consent.encoded.as_slice())
                    .arg(consent.signature.as_slice())
                    .arg(c.max_uses)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        match stored {
            1 => Ok(()),
            _ => Err(StoreError::Exists(c.id.clone())),
        }
    }

    async fn get_consent(&self, id: &str) -> Result<Option<StoredConsent>, StoreError> {
        let mut conn = self.connection().await?;
        let fields: Vec<Option<Vec<u8>>> = self
            .bounded(
                "read a consent",
                redis::cmd("HMGET")
                    .arg(consent_key(id))
                    .arg(&FIELDS[..])
                    .query_async(&mut conn),
            )
            .await?;
        if fields.first().is_none_or(Option::is_none) {
            return Ok(None);
        }
        scripts::stored(id, fields).map(Some)
    }

    async fn revoke_consent(&self, id: &str, at: i64) -> Result<Option<StoredConsent>, StoreError> {
        // 0 means "not revoked": a revocation is at least 1 µs after the epoch.
        let at = at.max(1);
        let mut conn = self.connection().await?;
        let fields: Option<Vec<Option<Vec<u8>>>> = self
            .bounded(
                "revoke a consent",
                REVOKE.key(consent_key(id)).arg(at).invoke_async(&mut conn),
            )
            .await?;
        fields.map(|f| scripts::stored(id, f)).transpose()
    }

    async fn use_consent(&self, id: &str) -> Result<UseOutcome, StoreError> {
        let mut conn = self.connection().await?;
        let reply: Vec<Option<Vec<u8>>> = self
            .bounded(
                "count a use of a consent",
                USE_ONCE.key(consent_key(id)).invoke_async(&mut conn),
            )
            .await?;
        scripts::use_outcome(id, reply)
    }

    async fn list_consents(&self, subject: &str) -> Result<Vec<StoredConsent>, StoreError> {
        let mut conn = self.connection().await?;
        let rows = self
            .bounded("list a citizen's consents", async {
                let ids: Vec<String> = redis::cmd("ZRANGE")
                    .arg(subject_key(subject))
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
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, fields) in rows {
            if fields.first().is_none_or(Option::is_none) {
                continue; // an index entry whose put did not complete
            }
            let stored = scripts::stored(&id, fields)?;
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
        Box::pin(async move {
            let mut conn = self.connection().await?;
            let _: String = self
                .bounded("answer PING", redis::cmd("PING").query_async(&mut conn))
                .await?;
            Ok(())
        })
    }
}

/// The hash of one consent; the id is the hash tag, so a cluster keeps it
/// (and any key added for the consent later) in one slot.
fn consent_key(id: &str) -> String {
    format!("jisr:consent:{{{id}}}")
}

/// The sorted set of a citizen's consent ids, under the digest of their id.
fn subject_key(subject: &str) -> String {
    let hex: String = subject_digest(subject)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("jisr:subject:{{{hex}}}")
}
