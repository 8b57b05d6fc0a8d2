//! The gateway's Redis: where a store URL points (a standalone server
//! through a self-reconnecting [`ConnectionManager`], or a Redis Cluster
//! through a [`ClusterConnection`], which follows slot moves and reconnects
//! to nodes), and [`Shared`], the one connection its users share: the
//! consent store and the shared rate limits on `consent.redis_url`, the bus
//! store on `bus.redis_url`. Every call through it is bounded by one
//! timeout, so a Redis that hangs costs a caller that long and no more.

pub mod seal;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A connection to a Redis; cheap to clone (clones share it).
#[derive(Clone)]
pub(crate) enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Standalone(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Standalone(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// What a store URL names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// One server: the URL as given.
    Standalone(String),
    /// A cluster: one `redis://` URL per seed node.
    Cluster(Vec<String>),
}

const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Reads `redis://host:port[/db]` (standalone), or a cluster as
/// `redis+cluster://[user:password@]h1:p1,h2:p2,…` (the credentials apply to
/// every node) or as a comma-separated list of `redis://` URLs.
pub(crate) fn parse(url: &str) -> Target {
    let url = url.trim();
    if let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) {
        let (auth, hosts) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (format!("{auth}@"), hosts),
            None => (String::new(), rest),
        };
        let nodes = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{auth}{h}"))
            .collect();
        return Target::Cluster(nodes);
    }
    if url.contains(',') {
        let nodes = url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        return Target::Cluster(nodes);
    }
    Target::Standalone(url.to_owned())
}

/// The URL without credentials, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    // Each element of a list may carry credentials; in the cluster form only
    // the first does.
    url.trim()
        .split(',')
        .map(|part| redact_part(part.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

fn redact_part(part: &str) -> String {
    match part.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => part.to_owned(),
    }
}

/// Checks that every URL of the target can name a Redis, without connecting.
fn validate(target: &Target) -> RedisResult<()> {
    let urls = match target {
        Target::Standalone(url) => std::slice::from_ref(url),
        Target::Cluster(nodes) => nodes.as_slice(),
    };
    if urls.is_empty() {
        return Err(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "no node named",
        )));
    }
    for url in urls {
        redis::Client::open(url.as_str())?;
    }
    Ok(())
}

/// Opens the connection; `timeout` bounds each connection attempt and reply.
pub(crate) async fn open(target: &Target, timeout: Duration) -> RedisResult<Conn> {
    match target {
        Target::Standalone(url) => {
            let client = redis::Client::open(url.as_str())?;
            // Reconnection retries quickly and gives up within about a second,
            // after which the next call starts a new round: when Redis comes
            // back, calls find it again without a long back-off.
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_min_delay(Duration::from_millis(10))
                .set_max_delay(Duration::from_millis(200))
                .set_number_of_retries(4);
            let manager = ConnectionManager::new_with_config(client, config).await?;
            Ok(Conn::Standalone(manager))
        }
        Target::Cluster(nodes) => {
            let wait_ms = u64::try_from(timeout.as_millis() / 4).unwrap_or(u64::MAX);
            let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(2)
                .min_retry_wait(wait_ms.min(10))
                .max_retry_wait(wait_ms.max(10))
                .build()?;
            Ok(Conn::Cluster(client.get_async_connection().await?))
        }
    }
}

/// Why a call through [`Shared`] failed. Each user adds what the operator
/// should do, which differs between them (the setting to check, whether
/// the call was refused).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection could be opened.
    #[error("cannot connect to redis at {address}: {source}")]
    Connect {
        /// The URL without credentials.
        address: String,
        /// What Redis or the network said.
        source: redis::RedisError,
    },
    /// No connection could be opened within the bound.
    #[error("cannot connect to redis at {address} within {} ms", .after.as_millis())]
    ConnectTimedOut {
        /// The URL without credentials.
        address: String,
        /// How long the attempt was given.
        after: Duration,
    },
    /// Redis answered the call with an error, or the connection broke.
    #[error("redis at {address} failed to {what}: {source}")]
    Failed {
        /// The URL without credentials.
        address: String,
        /// What the call was for.
        what: &'static str,
        /// What Redis said.
        source: redis::RedisError,
    },
    /// Redis did not answer within the command timeout.
    #[error("redis at {address} did not answer within {} ms ({what})", .after.as_millis())]
    TimedOut {
        /// The URL without credentials.
        address: String,
        /// What the call was for.
        what: &'static str,
        /// The command timeout.
        after: Duration,
    },
}

impl Error {
    /// Whether no connection could be opened (rather than a call failing on
    /// an open one): the URL or Redis itself is then the thing to check.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::ConnectTimedOut { .. })
    }
}

/// One Redis connection shared by its users; cheap to clone (clones share
/// the connection). It is opened on first use, not at construction, so a
/// gateway can start before its Redis; once open it reconnects by itself.
#[derive(Clone)]
pub struct Shared {
    inner: Arc<Inner>,
}

struct Inner {
    /// Set once an attempt to connect succeeds; a failed attempt leaves it
    /// empty for the next caller to try again.
    conn: tokio::sync::OnceCell<Conn>,
    target: Target,
    /// The URL without credentials, for messages and logs.
    address: String,
    /// Bounds each command (and each connection attempt's steps).
    timeout: Duration,
    /// Who uses it, for the log line saying it connected.
    user: &'static str,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("address", &self.inner.address)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// A handle on the Redis `url` names (a server or a cluster, as `parse`
    /// reads it), not connected yet.
    /// `timeout` bounds every call; `user` names its users in the log (e.g.
    /// "consent store").
    pub fn new(url: &str, timeout: Duration, user: &'static str) -> Self {
        Self {
            inner: Arc::new(Inner {
                conn: tokio::sync::OnceCell::new(),
                target: parse(url),
                address: redact(url),
                timeout,
                user,
            }),
        }
    }

    /// Checks, without connecting, that the URL can name a Redis at all.
    pub fn check_url(&self) -> RedisResult<()> {
        validate(&self.inner.target)
    }

    /// The URL without credentials.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// The bound of every call.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The connection, opening it first if no attempt succeeded yet. An
    /// attempt is bounded by four command timeouts, since connecting may
    /// retry a few times.
    pub(crate) async fn connection(&self) -> Result<Conn, Error> {
        if let Some(conn) = self.inner.conn.get() {
            return Ok(conn.clone());
        }
        let inner = &*self.inner;
        let bound = inner.timeout * 4;
        let attempt = inner.conn.get_or_try_init(|| async {
            match tokio::time::timeout(bound, open(&inner.target, inner.timeout)).await {
                Ok(Ok(conn)) => {
                    tracing::info!(address = %inner.address, "connected to the {}", inner.user);
                    Ok(conn)
                }
                Ok(Err(source)) => Err(Error::Connect {
                    address: inner.address.clone(),
                    source,
                }),
                Err(_) => Err(Error::ConnectTimedOut {
                    address: inner.address.clone(),
                    after: bound,
                }),
            }
        });
        attempt.await.cloned()
    }

    /// Runs `op` on the connection (opened first if need be) within the
    /// command timeout; `what` says what it was for in the error.
    pub(crate) async fn call<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, Error>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = self.connection().await?;
        match tokio::time::timeout(self.inner.timeout, op(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(Error::Failed {
                address: self.inner.address.clone(),
                what,
                source,
            }),
            Err(_) => Err(Error::TimedOut {
                address: self.inner.address.clone(),
                what,
                after: self.inner.timeout,
            }),
        }
    }

    /// Whether Redis answers now (one PING, bounded like every call).
    pub async fn ping(&self) -> Result<(), Error> {
        self.call("answer PING", |mut conn| async move {
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_standalone_and_cluster_urls() {
        assert_eq!(
            parse("redis://127.0.0.1:6379"),
            Target::Standalone("redis://127.0.0.1:6379".into())
        );
        assert_eq!(
            parse("redis+cluster://:pw@a:1,b:2"),
            Target::Cluster(vec!["redis://:pw@a:1".into(), "redis://:pw@b:2".into()])
        );
        assert_eq!(
            parse("redis://a:1, redis://b:2"),
            Target::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()])
        );
    }

    #[tokio::test]
    async fn a_redis_that_is_not_there_is_a_connect_error_without_credentials() {
        // Port 1 on loopback: nothing listens, the connection is refused.
        let redis = Shared::new(
            "redis://:secret@127.0.0.1:1",
            Duration::from_millis(50),
            "test",
        );
        redis.check_url().unwrap();
        let e = redis.ping().await.unwrap_err();
        assert!(e.is_connect(), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with("cannot connect to redis at redis://127.0.0.1:1"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
        // A failed attempt leaves the next call to try again.
        assert!(redis.ping().await.unwrap_err().is_connect());
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(redact("redis://:secret@h:1/0"), "redis://h:1/0");
        assert_eq!(
            redact("redis+cluster://u:p@a:1,b:2"),
            "redis+cluster://a:1,b:2"
        );
        assert_eq!(
            redact("redis://u:p@a:1,redis://v:q@b:2"),
            "redis://a:1,redis://b:2"
        );
    }
}
