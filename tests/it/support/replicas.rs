//! Three in-process replicas for the multi-replica tests: each with its own
//! node id, gateway certificate (issued here from the test CA), log and
//! consent store, knowing the others from `[cluster] peers`
//! ([`Replicas::start`]) or only through the registry of a shared Redis
//! ([`Replicas::on_registry`]).

use super::*;
use jisr::proto::jisr::audit::v1::audit_client::AuditClient;
use tonic::transport::Channel;

/// The replicas' node ids.
pub const NODES: [&str; 3] = ["gw-1", "gw-2", "gw-3"];

/// The replicas' `registration_ttl_ms`: how long a registration outlives a
/// killed replica. Short, so that the others (and the tests) soon see one
/// that is gone; a restarted replica takes its own back at once.
pub const TTL_MS: u64 = 1500;

/// Issues a gateway certificate for `node` from the PKI's CA into
/// `<pki>/<node>.crt` and `.key` (`jisr pki init` issues one gateway only).
pub fn issue_gateway(pki: &Pki, node: &str) -> jisr::tls::TlsFiles {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType};
    let read = |name: &str| std::fs::read_to_string(pki.dir.join(name)).unwrap();
    let ca_key = KeyPair::from_pem(&read("ca.key")).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&read("ca.crt"), ca_key).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let uri = format!("spiffe://{DOMAIN}/gateway/{node}");
    params
        .subject_alt_names
        .push(SanType::URI(uri.try_into().unwrap()));
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    params.distinguished_name.push(DnType::CommonName, node);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(pki.dir.join(format!("{node}.crt")), cert.pem()).unwrap();
    std::fs::write(pki.dir.join(format!("{node}.key")), key.serialize_pem()).unwrap();
    pki.files(node)
}

/// Three replicas sharing only the peer list (and the providers they call).
pub struct Replicas {
    /// The shared test PKI (one CA).
    pub pki: Pki,
    /// Each replica's gateway address.
    pub addrs: Vec<String>,
    configs: Vec<std::path::PathBuf>,
    gateways: Vec<Option<Gateway>>,
    _echos: Vec<echo::Echo>,
}

impl Replicas {
    /// Starts the three replicas (and the echo providers they call), each
    /// listing the others in `[cluster] peers`.
    pub async fn start() -> Self {
        Self::start_with(|node, addrs| {
            let peers: Vec<String> = NODES
                .iter()
                .zip(addrs)
                .filter(|(n, _)| **n != node)
                .map(|(n, a)| format!("{{ node = \"{n}\", address = \"{a}\" }}"))
                .collect();
            format!(
                "\n[cluster]\npeers = [{}]\npeer_timeout_ms = 1500\n",
                peers.join(", ")
            )
        })
        .await
    }

    /// Starts the three replicas on one Redis (`redis_url`), without
    /// `[cluster] peers`: they find each other in its registry. `cluster`
    /// is added to their `[cluster]` section.
    pub async fn on_registry(redis_url: &str, cluster: &str) -> Self {
        let url = redis_url.to_owned();
        Self::start_with(move |node, _| {
            format!(
                "\n[consent]\nredis_url = \"{url}\"\npath = \"{node}-consents.redb\"\n\n[cluster]\npeer_timeout_ms = 1500\n{cluster}\n"
            )
        })
        .await
    }

    /// Starts the replicas with `extra(node, addresses)` appended to each
    /// one's configuration.
    async fn start_with(extra: impl Fn(&str, &[String]) -> String) -> Self {
        let pki = Pki::new();
        let cs = echo::Echo::start(&pki.dir, "civil-status").await;
        let tax = echo::Echo::start(&pki.dir, "tax").await;
        let health = echo::Echo::start(&pki.dir, "health").await;
        let up = Upstreams::echoes(&cs, &tax, &health);
        let listeners: Vec<_> = NODES
            .iter()
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs: Vec<String> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().to_string())
            .collect();
        let mut configs = Vec::new();
        for node in NODES {
            issue_gateway(&pki, node);
            let config = gateway_config(&pki, &up, "", &extra(node, &addrs))
                .replace("id = \"gw-1\"", &format!("id = \"{node}\""))
                .replace("/gateway.crt", &format!("/{node}.crt"))
                .replace("/gateway.key", &format!("/{node}.key"));
            configs.push(write_config(&pki, node, &config));
        }
        let gateways = NODES
            .iter()
            .zip(&configs)
            .zip(listeners)
            .map(|((node, path), l)| Some(Gateway::start_on(node, path, l)))
            .collect();
        Self {
            pki,
            addrs,
            configs,
            gateways,
            _echos: vec![cs, tax, health],
        }
    }

    /// An audit client of replica `node` as `agency`.
    pub async fn client(&self, node: usize, agency: &str) -> AuditClient<Channel> {
        AuditClient::new(
            channel(&self.addrs[node], &self.pki.files(agency))
                .await
                .unwrap(),
        )
    }

    /// Stops replica `node` (drained; its log closed).
    pub fn stop(&mut self, node: usize) {
        if let Some(gw) = self.gateways[node].take() {
            gw.stop();
        }
    }

    /// Starts `node` again on its address, with its log.
    pub fn restart(&mut self, node: usize) {
        let listener = std::net::TcpListener::bind(&self.addrs[node]).unwrap();
        self.gateways[node] = Some(Gateway::start_on(
            NODES[node],
            &self.configs[node],
            listener,
        ));
    }
}
