//! The peers of a node without `[cluster] peers`: the other live nodes of
//! the replica registry in the shared Redis, read again every
//! [`REFRESH`] into a cache that the audit API and the listener read for
//! free. A node that leaves the registry (stopped cleanly, or killed and
//! expired) is still asked, and so named missing when it does not answer,
//! for `[cluster] remember_departed_ms` after it was last seen: its log
//! still exists, and an answer that silently dropped it would look complete
//! when it is not.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use super::{channel, Peer, PeerSource};
use crate::cluster::{NodeEntry, Registry};
use crate::identity::{AgencyId, PeerIdentity, TrustDomain};
use crate::proto::jisr::audit::v1::audit_client::AuditClient;
use crate::tls::{self, TlsFiles};

/// How often the registry is read again: the live set is at most this old
/// (plus, for a node killed outright, its registration TTL).
pub const REFRESH: Duration = Duration::from_secs(1);

/// One node seen in the registry.
#[derive(Debug, Clone)]
struct Seen {
    peer: Peer,
    address: String,
    live: bool,
    last_seen: Instant,
}

/// The nodes seen, by node id; never this node.
#[derive(Debug, Default)]
struct Known {
    nodes: BTreeMap<String, Seen>,
}

impl Known {
    /// Records the registry's answer `live` at `now`: new or moved nodes get
    /// a client from `connect`, nodes no longer listed are marked departed,
    /// and departed nodes not seen for `remember` are forgotten.
    fn update(
        &mut self,
        now: Instant,
        remember: Duration,
        live: &[NodeEntry],
        connect: impl Fn(&AgencyId, &str) -> Option<AuditClient<Channel>>,
    ) {
        for seen in self.nodes.values_mut() {
            seen.live = false;
        }
        for entry in live {
            let Ok(node) = AgencyId::parse(&entry.node) else {
                tracing::warn!(node = %entry.node, "the replica registry lists a node id that is not valid; ignored");
                continue;
            };
            let known = self
                .nodes
                .get(&entry.node)
                .filter(|s| s.address == entry.address)
                .map(|s| s.peer.clone());
            let Some(peer) = known
                .or_else(|| connect(&node, &entry.address).map(|client| Peer { node, client }))
            else {
                continue;
            };
            let seen = Seen {
                peer,
                address: entry.address.clone(),
                live: true,
                last_seen: now,
            };
            if !self.nodes.contains_key(&entry.node) {
                tracing::info!(node = %entry.node, address = %entry.address, "a replica joined the registry");
            }
            self.nodes.insert(entry.node.clone(), seen);
        }
        self.nodes.retain(|node, seen| {
            let keep = seen.live || now.saturating_duration_since(seen.last_seen) < remember;
            if !keep {
                tracing::info!(%node, "a replica that left the registry is no longer asked");
            }
            keep
        });
    }
}

/// The registry's other nodes, cached; see the module documentation.
#[derive(Debug)]
pub struct LivePeers {
    own: String,
    registry: Registry,
    tls: TlsFiles,
    domain: TrustDomain,
    remember: Duration,
    known: Mutex<Known>,
}

impl LivePeers {
    /// Reads the registry once, then every [`REFRESH`] for as long as the
    /// returned value is held; departed nodes are asked for `remember`.
    pub async fn start(
        own: &AgencyId,
        registry: Registry,
        (tls, domain): (TlsFiles, TrustDomain),
        remember: Duration,
    ) -> Arc<Self> {
        let live = Arc::new(Self {
            own: own.to_string(),
            registry,
            tls,
            domain,
            remember,
            known: Mutex::new(Known::default()),
        });
        live.refresh().await;
        tokio::spawn(refresher(Arc::downgrade(&live)));
        live
    }

    /// Whether `node` is live in the registry (as of the last read).
    pub fn is_live(&self, node: &str) -> bool {
        lock(&self.known).nodes.get(node).is_some_and(|s| s.live)
    }

    async fn refresh(&self) {
        let entries = match self.registry.list().await {
            Ok(entries) => entries,
            Err(e) => {
                // The last known set stands until Redis answers again.
                tracing::warn!(error = %e, "cannot read the replica registry; the peers stay as last read");
                return;
            }
        };
        let others: Vec<NodeEntry> = entries.into_iter().filter(|e| e.node != self.own).collect();
        let connect = |node: &AgencyId, address: &str| {
            let expect = PeerIdentity::Gateway(node.clone());
            match tls::client_config(&self.tls, &self.domain, expect) {
                Ok(config) => Some(AuditClient::new(channel(address, config))),
                Err(e) => {
                    tracing::warn!(%node, error = %e, "cannot prepare TLS towards a replica");
                    None
                }
            }
        };
        lock(&self.known).update(Instant::now(), self.remember, &others, connect);
    }
}

impl PeerSource for LivePeers {
    fn peers(&self) -> Vec<Peer> {
        lock(&self.known)
            .nodes
            .values()
            .map(|s| s.peer.clone())
            .collect()
    }
}

async fn refresher(live: Weak<LivePeers>) {
    loop {
        tokio::time::sleep(REFRESH).await;
        let Some(live) = live.upgrade() else { return };
        live.refresh().await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // `Known` is only changed by `update`, which cannot panic midway.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(node: &str, address: &str) -> NodeEntry {
        NodeEntry::starting(node, address, "key")
    }

    fn client() -> AuditClient<Channel> {
        AuditClient::new(tonic::transport::Endpoint::from_static("http://unused").connect_lazy())
    }

    #[tokio::test]
    async fn departed_nodes_are_asked_for_a_while_then_forgotten() {
        let mut known = Known::default();
        let t0 = Instant::now();
        let remember = Duration::from_secs(900);
        let connect = |_: &AgencyId, _: &str| Some(client());
        known.update(
            t0,
            remember,
            &[entry("gw-2", "a:1"), entry("gw-3", "b:1")],
            connect,
        );
        let listed = |k: &Known| k.nodes.keys().cloned().collect::<Vec<_>>();
        assert_eq!(listed(&known), ["gw-2", "gw-3"]);
        assert!(known.nodes["gw-3"].live);

        // gw-3 leaves: still asked, no longer live.
        let t1 = t0 + Duration::from_secs(5);
        known.update(t1, remember, &[entry("gw-2", "a:1")], connect);
        assert_eq!(listed(&known), ["gw-2", "gw-3"]);
        assert!(!known.nodes["gw-3"].live && known.nodes["gw-2"].live);

        // Just before `remember` after it was last seen: still there.
        known.update(
            t0 + remember - Duration::from_millis(1),
            remember,
            &[entry("gw-2", "a:1")],
            connect,
        );
        assert_eq!(listed(&known), ["gw-2", "gw-3"]);
        // At `remember`: forgotten; gw-2, still live, stays.
        known.update(t0 + remember, remember, &[entry("gw-2", "a:1")], connect);
        assert_eq!(listed(&known), ["gw-2"]);

        // Back before it is forgotten: live again, at its new address.
        known.update(t1, remember, &[entry("gw-2", "c:1")], connect);
        assert_eq!(known.nodes["gw-2"].address, "c:1");
        // Invalid ids and nodes whose TLS cannot be prepared are left out.
        known.update(
            t1,
            remember,
            &[entry("GW 4", "d:1"), entry("gw-5", "e:1")],
            |n, _| (n.as_str() != "gw-5").then(client),
        );
        assert!(!known.nodes.contains_key("GW 4") && !known.nodes.contains_key("gw-5"));
    }
}
