//! The other replicas of a deployment, as the audit API reaches them: a
//! mutual-TLS gRPC client per peer that presents this node's gateway
//! certificate and accepts only the peer's own (`spiffe://<td>/gateway/<node>`).
//!
//! Where the list comes from is a [`PeerSource`]: the static
//! `[cluster] peers` of the configuration when given, else, with a shared
//! Redis, the other nodes of the replica registry ([`LivePeers`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::config::Config;
use crate::identity::{AgencyId, PeerIdentity};
use crate::proto::jisr::audit::v1::audit_client::AuditClient;
use crate::tls::{self, TlsError};

mod live;

pub use live::{LivePeers, REFRESH};

/// The metadata naming the agency a peer read is made for. Trusted only on
/// a connection from a peer node (configured, or live in the registry).
pub const ON_BEHALF_OF: &str = "jisr-on-behalf-of";

/// One other replica and a client to its audit API.
#[derive(Clone)]
pub struct Peer {
    /// The peer's node id.
    pub node: AgencyId,
    client: AuditClient<Channel>,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer").field("node", &self.node).finish()
    }
}

impl Peer {
    /// A client for one call (clients are cheap clones of the channel).
    pub fn client(&self) -> AuditClient<Channel> {
        self.client.clone()
    }
}

/// Where the audit API learns which peers to ask.
pub trait PeerSource: Send + Sync + fmt::Debug {
    /// The peers to ask now (never this node).
    fn peers(&self) -> Vec<Peer>;
}

/// The peers named in `[cluster]`, fixed until the next reload.
#[derive(Debug, Default)]
pub struct StaticPeers {
    peers: Vec<Peer>,
}

impl PeerSource for StaticPeers {
    fn peers(&self) -> Vec<Peer> {
        self.peers.clone()
    }
}

/// The peers of a configuration, each reached lazily: building them opens
/// no connection, so a peer that is down does not stop this node starting.
#[derive(Debug, Clone)]
pub struct Peers {
    /// This node's id.
    pub node: AgencyId,
    /// The longest a peer read may take.
    pub timeout: Duration,
    source: Arc<dyn PeerSource>,
}

impl Peers {
    /// A single node: no peers.
    pub fn alone(node: AgencyId) -> Self {
        Self {
            node,
            timeout: Duration::from_secs(2),
            source: Arc::new(StaticPeers::default()),
        }
    }

    /// The `[cluster]` peers of `config`, with TLS from its `[tls]` files;
    /// when it lists none, the registry's `live` nodes if there is a
    /// registry (static peers win: they are the operator's explicit word).
    pub fn from_config(config: &Config, live: Option<Arc<LivePeers>>) -> Result<Self, TlsError> {
        if let (true, Some(live)) = (config.cluster.peers.is_empty(), live) {
            return Ok(Self {
                node: config.node.id.clone(),
                timeout: config.cluster.peer_timeout,
                source: live,
            });
        }
        let domain = &config.node.trust_domain;
        let peers = config
            .cluster
            .peers
            .iter()
            .map(|p| {
                let expect = PeerIdentity::Gateway(p.node.clone());
                let tls = tls::client_config(&config.tls, domain, expect)?;
                Ok(Peer {
                    node: p.node.clone(),
                    client: AuditClient::new(channel(&p.address, tls)),
                })
            })
            .collect::<Result<Vec<_>, TlsError>>()?;
        Ok(Self {
            node: config.node.id.clone(),
            timeout: config.cluster.peer_timeout,
            source: Arc::new(StaticPeers { peers }),
        })
    }

    /// The peers to ask now.
    pub fn list(&self) -> Vec<Peer> {
        self.source.peers()
    }

    /// The peer `node`, if it is one.
    pub fn get(&self, node: &str) -> Option<Peer> {
        self.list().into_iter().find(|p| p.node.as_str() == node)
    }
}

/// A lazily connected HTTP/2 channel to `address` over mutual TLS.
fn channel(address: &str, tls: Arc<rustls::ClientConfig>) -> Channel {
    let address = address.to_owned();
    let connector = tower::service_fn(move |_uri: http::Uri| {
        let address = address.clone();
        let tls = tls.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(&address).await?;
            let _ = tcp.set_nodelay(true);
            // Not checked: the verifier compares the SPIFFE id instead.
            let name = rustls::pki_types::ServerName::try_from("jisr-peer")
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    // A constant, valid URI: only its shape matters, the connector dials.
    Endpoint::from_static("http://jisr-peer")
        .connect_timeout(Duration::from_secs(2))
        .connect_with_connector_lazy(connector)
}
