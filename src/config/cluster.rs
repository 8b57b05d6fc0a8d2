//! `[cluster]`: the other replicas of this deployment, which the audit API
//! asks so that any replica answers for all of them.
//!
//! ```toml
//! [cluster]
//! peers = [{ node = "gw-2", address = "10.0.0.2:8443" }]
//! peer_timeout_ms = 2000
//! remember_departed_ms = 900000
//! ```

use std::collections::HashMap;
use std::time::Duration;

use toml::de::DeValue;

use super::sections::{agency_id, bounded};
use super::table::{Ctx, Section};
use crate::identity::AgencyId;

pub(super) const CLUSTER_KEYS: &[&str] = &["peers", "peer_timeout_ms", "remember_departed_ms"];
const PEER_KEYS: &[&str] = &["node", "address"];

/// Default of `cluster.peer_timeout_ms`.
const DEFAULT_PEER_TIMEOUT_MS: i64 = 2000;

/// Default of `cluster.remember_departed_ms`: 15 minutes.
const DEFAULT_REMEMBER_DEPARTED_MS: i64 = 15 * 60 * 1000;

/// `[cluster]`: the node's peers; none (a single replica) when absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The other replicas, in file order.
    pub peers: Vec<PeerConfig>,
    /// The longest a peer read may take when the caller set no shorter
    /// deadline (default 2 s).
    pub peer_timeout: Duration,
    /// Without `peers`: how long a node that left the replica registry is
    /// still asked, and named missing when it does not answer (default
    /// 15 min).
    pub remember_departed: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            // A positive constant: the cast is lossless.
            peer_timeout: Duration::from_millis(DEFAULT_PEER_TIMEOUT_MS as u64),
            remember_departed: Duration::from_millis(DEFAULT_REMEMBER_DEPARTED_MS as u64),
        }
    }
}

impl ClusterConfig {
    /// The peer with node id `node`, if configured.
    pub fn peer(&self, node: &str) -> Option<&PeerConfig> {
        self.peers.iter().find(|p| p.node.as_str() == node)
    }
}

/// Another replica: its node id (its certificate must name
/// `spiffe://<trust domain>/gateway/<node>`) and where it listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's node id.
    pub node: AgencyId,
    /// `host:port` of its gateway listener.
    pub address: String,
}

/// `[cluster]`, or no peers when the section is absent. `own` is this
/// node's id, which may not be listed as its own peer.
pub(super) fn cluster(
    ctx: &mut Ctx,
    s: Option<&Section<'_, '_>>,
    own: Option<&AgencyId>,
) -> Option<ClusterConfig> {
    let Some(s) = s else {
        return Some(ClusterConfig::default());
    };
    let timeout = bounded(
        ctx,
        s,
        "peer_timeout_ms",
        (50, 60_000, DEFAULT_PEER_TIMEOUT_MS),
    );
    let remember = bounded(
        ctx,
        s,
        "remember_departed_ms",
        (0, 7 * 24 * 3600 * 1000, DEFAULT_REMEMBER_DEPARTED_MS),
    );
    let peers = match s.table.get("peers") {
        None => Some(Vec::new()),
        Some(value) => peers(ctx, value, own),
    };
    Some(ClusterConfig {
        peers: peers?,
        // In 50..=60000 (checked by `bounded`), so the cast is lossless.
        peer_timeout: Duration::from_millis(timeout? as u64),
        // In 0..=7 days (checked by `bounded`), so the cast is lossless.
        remember_departed: Duration::from_millis(remember? as u64),
    })
}

fn peers(
    ctx: &mut Ctx,
    value: &toml::Spanned<DeValue<'_>>,
    own: Option<&AgencyId>,
) -> Option<Vec<PeerConfig>> {
    let Some(items) = value.get_ref().as_array() else {
        ctx.error(
            &value.span(),
            format!(
                "`peers` in [cluster] must be an array, found a {}",
                value.get_ref().type_str()
            ),
            "write `peers = [{ node = \"gw-2\", address = \"10.0.0.2:8443\" }]`",
        );
        return None;
    };
    let mut seen: HashMap<String, ()> = HashMap::new();
    let mut all = Some(Vec::with_capacity(items.len()));
    for item in items {
        let peer =
            Section::new("a [cluster] peer", item, PEER_KEYS, ctx).and_then(|p| peer(ctx, &p, own));
        match (peer, all.as_mut()) {
            (Some(peer), Some(list)) => {
                if seen.insert(peer.node.to_string(), ()).is_some() {
                    ctx.error(
                        &item.span(),
                        format!("peer `{}` is listed twice in [cluster]", peer.node),
                        "list each other replica once",
                    );
                    all = None;
                } else {
                    list.push(peer);
                }
            }
            (None, _) => all = None,
            (Some(_), None) => {}
        }
    }
    all
}

fn peer(ctx: &mut Ctx, s: &Section<'_, '_>, own: Option<&AgencyId>) -> Option<PeerConfig> {
    let node = s.req_str(ctx, "node", "\"gw-2\"");
    let node = node.and_then(|v| {
        let id = agency_id(ctx, &v, "node", "[cluster] peers")?;
        if own == Some(&id) {
            ctx.error(
                &v.span(),
                format!("`{id}` is this node's own id: a node is not its own peer"),
                "list only the other replicas under [cluster] peers",
            );
            return None;
        }
        Some(id)
    });
    let address = s.req_str(ctx, "address", "\"10.0.0.2:8443\"");
    let address = address.and_then(|v| {
        let ok = v
            .get_ref()
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if ok {
            Some(v.into_inner())
        } else {
            ctx.error(
                &v.span(),
                format!("`address` of a [cluster] peer is not a host and port: `{}`", v.get_ref()),
                "write the peer's gateway listener as `host:port`, e.g. `10.0.0.2:8443` or `gw-2.jisr:8443`",
            );
            None
        }
    });
    Some(PeerConfig {
        node: node?,
        address: address?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;

    const BASE: &str = r#"[node]
id = "gw-1"
trust_domain = "interop.gov.ma"
listen = "127.0.0.1:8443"

[tls]
ca = "pki/ca.crt"
cert = "pki/gw.crt"
key = "pki/gw.key"
"#;

    fn read(cluster: &str) -> Result<Config, Vec<String>> {
        Config::from_toml(
            &format!("{BASE}\n[cluster]\n{cluster}"),
            Path::new("/j.toml"),
        )
        .map_err(|e| {
            e.0.iter()
                .map(|e| format!("{} / {}", e.message, e.fix))
                .collect()
        })
    }

    #[test]
    fn peers_are_read_and_default_to_none() {
        let alone = Config::from_toml(BASE, Path::new("/j.toml")).unwrap();
        assert!(alone.cluster.peers.is_empty());
        let config = read(
            r#"peers = [{ node = "gw-2", address = "10.0.0.2:8443" }, { node = "gw-3", address = "gw-3.jisr:8443" }]
peer_timeout_ms = 500
remember_departed_ms = 0"#,
        )
        .unwrap();
        let nodes: Vec<_> = config
            .cluster
            .peers
            .iter()
            .map(|p| p.node.as_str())
            .collect();
        assert_eq!(nodes, ["gw-2", "gw-3"]);
        assert_eq!(config.cluster.peers[1].address, "gw-3.jisr:8443");
        assert_eq!(config.cluster.peer_timeout.as_millis(), 500);
        assert!(config.cluster.remember_departed.is_zero());
        assert_eq!(alone.cluster.remember_departed.as_secs(), 900);
        assert!(config.cluster.peer("gw-3").is_some() && config.cluster.peer("gw-1").is_none());
    }

    #[test]
    fn bad_peers_are_reported_with_a_fix() {
        let cases = [
            (r#"peers = [{ node = "gw-1", address = "a:1" }]"#, "own id"),
            (
                r#"peers = [{ node = "gw-2", address = "a:1" }, { node = "gw-2", address = "b:1" }]"#,
                "listed twice",
            ),
            (
                r#"peers = [{ node = "gw-2", address = "10.0.0.2" }]"#,
                "not a host and port",
            ),
            (
                r#"peers = [{ node = "GW 2", address = "a:1" }]"#,
                "`node` in [cluster] peers",
            ),
            (
                r#"peers = [{ node = "gw-2" }]"#,
                "missing the required key `address`",
            ),
            (r#"peers = "gw-2""#, "must be an array"),
            (r#"peer = []"#, "unknown key `peer`"),
            (r#"remember_departed_ms = -1"#, "remember_departed_ms"),
        ];
        for (text, want) in cases {
            let errors = read(text).unwrap_err();
            assert!(
                errors.iter().any(|e| e.contains(want)),
                "{text}: {errors:?}"
            );
        }
    }
}
