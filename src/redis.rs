//! Where the Redis consent store connects: a standalone server through a
//! self-reconnecting [`ConnectionManager`], or a Redis Cluster through a
//! [`ClusterConnection`] (which follows slot moves and reconnects to nodes).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A connection to the store's Redis; cheap to clone (clones share it).
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
pub(super) fn validate(target: &Target) -> RedisResult<()> {
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
