//! The demo's network: a development PKI, the three sample providers and a
//! gateway node, all on loopback ports picked by the system.

use crate::catalogue::ANNOTATIONS_PROTO;
use crate::config::{self, Config};
use crate::gateway::{self, Gateway};
use crate::identity::{AgencyId, TrustDomain};
use crate::tools::samples::{self, SampleAgency};
use crate::{tls, tools::pki};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The demo's trust domain.
pub const TRUST_DOMAIN: &str = "interop.gov.ma";
/// The agencies that get certificates.
/// (`cndp`, the data protection authority, audits; `portal` shows citizens
/// who accessed their data.)
pub const AGENCIES: [&str; 6] = [
    "education",
    "tax",
    "health",
    "civil-status",
    "portal",
    "cndp",
];

/// The sample contracts, embedded so the demo runs from any directory.
const CONTRACTS: [(&str, &str); 4] = [
    ("jisr/annotations.proto", ANNOTATIONS_PROTO),
    (
        "agencies/civilstatus/v1/civilstatus.proto",
        include_str!("../../../proto/agencies/civilstatus/v1/civilstatus.proto"),
    ),
    (
        "agencies/tax/v1/tax.proto",
        include_str!("../../../proto/agencies/tax/v1/tax.proto"),
    ),
    (
        "agencies/health/v1/health.proto",
        include_str!("../../../proto/agencies/health/v1/health.proto"),
    ),
];

/// A running demo network.
#[derive(Debug)]
pub struct Network {
    /// Where its files live.
    pub dir: PathBuf,
    /// The PKI directory.
    pub pki: PathBuf,
    /// The gateway's config file.
    pub config_path: PathBuf,
    /// The gateway's address.
    pub gateway: SocketAddr,
    /// The admin listener's address (`/metrics`, `/healthz`, `/readyz`).
    pub admin: SocketAddr,
    /// The web console's address, when started with it.
    pub console: Option<SocketAddr>,
    /// The providers' addresses.
    pub providers: Vec<(SampleAgency, SocketAddr)>,
    /// The loaded config.
    pub config: Config,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Writes `contents` to `path` through a temporary file and a rename, so a
/// reader never sees half a file.
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Writes the network's PKI (`DIR/pki`, replacing any) and the sample
/// contracts (`DIR/proto`); returns the PKI directory. Shared by the demo and
/// the load generator's own network.
pub fn prepare(dir: &Path) -> anyhow::Result<PathBuf> {
    let pki_dir = dir.join("pki");
    pki::init(&pki::PkiOptions {
        dir: pki_dir.clone(),
        domain: TrustDomain::parse(TRUST_DOMAIN)?,
        agencies: AGENCIES
            .iter()
            .map(|a| AgencyId::parse(a))
            .collect::<Result<_, _>>()?,
        gateway_node: AgencyId::parse("gw-1")?,
        hosts: Vec::new(),
        force: true,
    })?;
    for (name, text) in CONTRACTS {
        let path = dir.join("proto").join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
    }
    Ok(pki_dir)
}

impl Network {
    /// Creates the PKI, config and contracts under `dir` and starts everything.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(dir, false).await
    }

    /// [`Network::start`], with the web console on a loopback port when
    /// `console` (as `jisr demo --serve` runs it).
    pub async fn start_with(dir: &Path, console: bool) -> anyhow::Result<Self> {
        tls::install_crypto_provider();
        let domain = TrustDomain::parse(TRUST_DOMAIN)?;
        let pki_dir = prepare(dir).context("creating the demo PKI and contracts")?;
        let (stop, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut providers = Vec::new();
        for agency in SampleAgency::all() {
            let files = tls::TlsFiles::for_agency(&pki_dir, agency.id());
            let server_tls = tls::server_config(&files, &domain, tls::Accept::Gateways)?;
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            providers.push((agency, listener.local_addr()?));
            let shutdown = stopped(rx.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = samples::serve(agency, listener, server_tls, shutdown).await {
                    tracing::error!(agency = agency.id(), error = %e, "sample provider stopped");
                }
            }));
        }
        let config_path = dir.join("jisr.toml");
        let mut text = config_text(&providers);
        if console {
            text.push_str("\n# The operators' web console (`jisr demo --serve`).\n[console]\nlisten = \"127.0.0.1:0\"\n");
        }
        write_atomic(&config_path, &text)?;
        let config =
            Config::load(&config_path).map_err(|e| anyhow::anyhow!("{}", config::report(&e)))?;
        let (gateway, _) = Gateway::build(&config)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let gateway_addr = listener.local_addr()?;
        let admin = crate::tools::cli::bind_admin(&config).await?;
        let admin_addr = admin.local_addr()?;
        let console_addr = gateway.bind_console().await?;
        if let Some(addr) = console_addr {
            write_atomic(&dir.join("console.addr"), &addr.to_string())?;
        }
        let shutdown = stopped(rx.clone());
        tasks.push(tokio::spawn(gateway::run(
            gateway,
            listener,
            Some(admin),
            shutdown,
        )));
        write_atomic(&dir.join("admin.addr"), &admin_addr.to_string())?;
        write_atomic(&dir.join("gateway.addr"), &gateway_addr.to_string())?;
        Ok(Self {
            dir: dir.to_owned(),
            pki: pki_dir,
            config_path,
            gateway: gateway_addr,
            admin: admin_addr,
            console: console_addr,
            providers,
            config,
            stop,
            tasks,
        })
    }

    /// Stops the gateway (draining calls) and the providers.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

pub(crate) fn config_text(providers: &[(SampleAgency, SocketAddr)]) -> String {
    let upstream = |agency: SampleAgency| {
        providers
            .iter()
            .find(|(a, _)| *a == agency)
            .map(|(_, addr)| addr.to_string())
            .unwrap_or_default()
    };
    format!(
        include_str!("demo.toml.in"),
        civil_status = upstream(SampleAgency::CivilStatus),
        tax = upstream(SampleAgency::Tax),
        health = upstream(SampleAgency::Health),
    )
}

#[cfg(test)]
mod tests {
    use super::SampleAgency;
    use crate::config::Config;
    use std::path::Path;

    /// The demo ships every label its citizens could meet.
    #[test]
    fn the_demo_config_labels_everything_in_five_languages() {
        let addr = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let text = super::config_text(&[
            (SampleAgency::CivilStatus, addr(9101)),
            (SampleAgency::Tax, addr(9102)),
            (SampleAgency::Health, addr(9103)),
        ]);
        let config = Config::from_toml(&text, Path::new("/demo/jisr.toml")).unwrap();
        assert_eq!(config.missing_labels(), Vec::<String>::new());
        let bac = &config.labels.procedures["bac-2027-free-candidate"]["zgh"];
        assert!(bac.label.starts_with('ⴰ'), "{bac:?}");
        assert_eq!(config.labels.agencies["education"].len(), 5);
    }
}
