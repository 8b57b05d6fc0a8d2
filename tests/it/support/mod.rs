//! Test support: real gateways on loopback ports (in this process, or
//! `jisr` processes where a test needs one, see [`gateway`]), a development
//! PKI with its broken fixtures, raw gRPC clients and an echo provider.

pub mod admin;
pub mod browser;
pub mod bus;
pub mod checkpoints;
pub mod client;
pub mod echo;
pub mod fixtures;
pub mod fleet;
pub mod gateway;
pub mod haproxy;
pub mod onboard;
pub mod otlp;
pub mod proc;
pub mod redis_server;
pub mod replicas;
pub mod web;

use jisr::identity::{AgencyId, TrustDomain};
use std::path::{Path, PathBuf};

pub use client::{call_raw, channel, framed_status, raw_h2, RawCall};
pub use fixtures::{
    birth, family, tax, vaccination, BIRTH, CITIZEN, FAMILY, SEGMENT, TAX, VACCINATION,
};
pub use gateway::Gateway;
pub use proc::{demo_serve, jisr, text, wait_for_file, Proc};

/// The trust domain of every test PKI.
pub const DOMAIN: &str = "interop.gov.ma";

/// A temporary directory with a PKI (`pki/`) and its fixtures.
pub struct Pki {
    /// Keeps the directory alive.
    pub tmp: tempfile::TempDir,
    /// `<tmp>/pki`.
    pub dir: PathBuf,
}

impl Pki {
    /// A PKI for the usual agencies and gateway `gw-1`, plus the fixtures.
    pub fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("jisr-it-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().join("pki");
        let domain = TrustDomain::parse(DOMAIN).unwrap();
        jisr::tools::pki::init(&jisr::tools::pki::PkiOptions {
            dir: dir.clone(),
            domain: domain.clone(),
            agencies: [
                "education",
                "tax",
                "health",
                "civil-status",
                "portal",
                "cndp",
            ]
            .iter()
            .map(|a| AgencyId::parse(a).unwrap())
            .collect(),
            gateway_node: AgencyId::parse("gw-1").unwrap(),
            hosts: Vec::new(),
            force: false,
        })
        .unwrap();
        jisr::tools::pki::fixtures(&dir, &domain).unwrap();
        Self { tmp, dir }
    }

    /// The temporary directory.
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// TLS files for an agency, or a fixture name such as `expired`.
    pub fn files(&self, name: &str) -> jisr::tls::TlsFiles {
        let mut files = jisr::tls::TlsFiles::for_agency(&self.dir, name);
        if name == "untrusted" {
            // The client trusts the real CA; only its own certificate is foreign.
            files.ca = self.dir.join("ca.crt");
        }
        files
    }
}

/// The repository's `proto/` directory.
/// Whether a finished command succeeded, and what it printed (stdout, then
/// stderr).
pub fn outcome(out: &std::process::Output) -> (bool, String) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs a command that prints JSON (a benchmark's `--json`), asserts it
/// succeeded (its output in the message otherwise) and parses its stdout.
pub fn json_output(cmd: &mut std::process::Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON on stdout ({e}):\n{stdout}\n{stderr}"))
}

pub fn proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("proto")
}

/// Where each provider is, for [`gateway_config`].
pub struct Upstreams {
    /// civil-status upstream `host:port`.
    pub civil_status: String,
    /// tax upstream.
    pub tax: String,
    /// health upstream.
    pub health: String,
}

impl Upstreams {
    /// The three agencies served by these echo providers.
    pub fn echoes(civil_status: &echo::Echo, tax: &echo::Echo, health: &echo::Echo) -> Self {
        Self {
            civil_status: civil_status.addr.to_string(),
            tax: tax.addr.to_string(),
            health: health.addr.to_string(),
        }
    }
}

/// The standard test config: the demo's agencies and rules, with `extra`
/// TOML appended (more rules, agencies) and `node_extra` lines in `[node]`.
pub fn gateway_config(pki: &Pki, up: &Upstreams, node_extra: &str, extra: &str) -> String {
    format!(
        r#"
[node]
id = "gw-1"
trust_domain = "{DOMAIN}"
listen = "127.0.0.1:0"
drain_timeout_ms = 5000
{node_extra}

[tls]
ca = "{pki}/ca.crt"
cert = "{pki}/gateway.crt"
key = "{pki}/gateway.key"

[catalogue]
include = ["{proto}"]

[[purpose]]
code = "bac-candidature"
description = "Baccalauréat application"

[[purpose]]
code = "tax-household"
description = "Tax household"

[[agency]]
id = "civil-status"
upstream = "{cs}"
contracts = ["agencies/civilstatus/v1/civilstatus.proto"]

[[agency]]
id = "tax"
upstream = "{tax}"
contracts = ["agencies/tax/v1/tax.proto"]

[[agency]]
id = "health"
upstream = "{health}"
contracts = ["agencies/health/v1/health.proto"]

[[agency]]
id = "education"

[[agency]]
id = "portal"
roles = ["consent-manager"]

[[agency]]
id = "cndp"
roles = ["auditor"]

[[rule]]
consumer = "education"
methods = ["ma.civilstatus.v1.CivilStatus/GetBirthRecord", "ma.tax.v1.TaxRecords/GetTaxStatus", "ma.health.v1.HealthRecords/GetVaccinationRecord"]
purposes = ["bac-candidature"]
basis = "law:55-19"

[[rule]]
consumer = "tax"
methods = ["ma.civilstatus.v1.CivilStatus/GetFamilyRecord", "ma.civilstatus.v1.CivilStatus/ListCivilEvents"]
purposes = ["tax-household"]
basis = "law:cgi-art-22"
{extra}
"#,
        pki = pki.dir.display(),
        proto = proto_dir().display(),
        cs = up.civil_status,
        tax = up.tax,
        health = up.health,
    )
}

/// `config` (written for node `gw-1`) for another replica, node `node`,
/// with its own certificate from the same CA: replicas never share a node
/// id (with a shared Redis the second would refuse to start).
pub fn replica_config(pki: &Pki, config: &str, node: &str) -> String {
    let node_id = AgencyId::parse(node).unwrap();
    jisr::tools::pki::issue_gateway(&pki.dir, None, &node_id, &[]).unwrap();
    assert!(
        config.contains("id = \"gw-1\""),
        "test bug: not a gw-1 config"
    );
    config
        .replacen("id = \"gw-1\"", &format!("id = \"{node}\""), 1)
        .replace("/gateway.crt\"", &format!("/gateway-{node}.crt\""))
        .replace("/gateway.key\"", &format!("/gateway-{node}.key\""))
}

/// A gateway in this process serving `config` (written into the PKI's
/// directory as `<name>.toml`), and its address.
pub fn start_gateway(pki: &Pki, name: &str, config: &str) -> (Gateway, String) {
    let gateway = Gateway::start(name, &write_config(pki, name, config));
    let addr = gateway.addr.clone();
    (gateway, addr)
}

/// A `jisr serve` process serving `config`, for tests that need the
/// process (see [`gateway`] for which). Its admin listener's address is in
/// `<name>.admin.addr` ([`admin_addr`]).
pub fn spawn_gateway(pki: &Pki, name: &str, config: &str) -> (Proc, String) {
    spawn_gateway_env(pki, name, config, &[])
}

/// The admin listener address of gateway `name` started by [`spawn_gateway`].
pub fn admin_addr(pki: &Pki, name: &str, proc: &Proc) -> String {
    wait_for_file(&pki.root().join(format!("{name}.admin.addr")), proc)
}

/// [`spawn_gateway`] with extra environment variables.
pub fn spawn_gateway_env(
    pki: &Pki,
    name: &str,
    config: &str,
    env: &[(&str, &str)],
) -> (Proc, String) {
    let path = write_config(pki, name, config);
    let addr_file = pki.root().join(format!("{name}.addr"));
    let admin_file = pki.root().join(format!("{name}.admin.addr"));
    let _ = std::fs::remove_file(&addr_file);
    let _ = std::fs::remove_file(&admin_file);
    let proc = Proc::spawn(
        name,
        jisr()
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .arg("--addr-file")
            .arg(&addr_file)
            .arg("--admin-addr-file")
            .arg(&admin_file)
            .envs(env.iter().copied()),
    );
    let addr = wait_for_file(&addr_file, &proc);
    (proc, addr)
}

/// Writes `config` to `<name>.toml` in the PKI's directory, giving the
/// gateway its own audit log and embedded consent store (each has one
/// writer) unless the config names them.
pub fn write_config(pki: &Pki, name: &str, config: &str) -> PathBuf {
    let path = pki.root().join(format!("{name}.toml"));
    let mut config = config.to_owned();
    if !config.contains("[audit]") {
        config.push_str(&format!(
            "\n[audit]\ndir = \"{name}-audit\"\nsigning_key = \"{name}-audit.key\"\n"
        ));
    }
    if !config.contains("[consent]") {
        config.push_str(&format!("\n[consent]\npath = \"{name}-consents.redb\"\n"));
    }
    std::fs::write(&path, config).unwrap();
    path
}

/// A sample provider process for `agency`.
pub fn start_provider(pki: &Pki, agency: &str) -> (Proc, String) {
    let addr_file = pki.root().join(format!("{agency}.provider.addr"));
    let proc = Proc::spawn(
        agency,
        jisr()
            .args([
                "sample-provider",
                "--agency",
                agency,
                "--listen",
                "127.0.0.1:0",
                "--pki",
            ])
            .arg(&pki.dir)
            .arg("--addr-file")
            .arg(&addr_file),
    );
    let addr = wait_for_file(&addr_file, &proc);
    (proc, addr)
}

/// Three sample providers and a gateway in front of them: in this process
/// ([`Network::start`]) or a `jisr serve` process ([`Network::spawn`]).
pub struct Network<G = Gateway> {
    /// The gateway (dropped first: it closes its audit log in the PKI's
    /// directory).
    pub gateway: G,
    /// Its address.
    pub addr: String,
    /// The providers.
    pub providers: Vec<(String, Proc, String)>,
    /// The PKI and the files.
    pub pki: Pki,
}

impl Network {
    /// Starts the providers and a gateway with the standard config plus `extra`.
    pub fn start(node_extra: &str, extra: &str) -> Self {
        Network::with(node_extra, extra, start_gateway)
    }
}

impl Network<Proc> {
    /// [`Network::start`] with the gateway in a `jisr serve` process.
    pub fn spawn(node_extra: &str, extra: &str) -> Self {
        Network::with(node_extra, extra, spawn_gateway)
    }
}

impl<G> Network<G> {
    fn with(
        node_extra: &str,
        extra: &str,
        start: impl FnOnce(&Pki, &str, &str) -> (G, String),
    ) -> Self {
        let pki = Pki::new();
        let providers: Vec<(String, Proc, String)> = ["civil-status", "tax", "health"]
            .iter()
            .map(|a| {
                let (p, addr) = start_provider(&pki, a);
                ((*a).to_owned(), p, addr)
            })
            .collect();
        let up = Upstreams {
            civil_status: providers[0].2.clone(),
            tax: providers[1].2.clone(),
            health: providers[2].2.clone(),
        };
        let config = gateway_config(&pki, &up, node_extra, extra);
        let (gateway, addr) = start(&pki, "gateway", &config);
        Self {
            pki,
            gateway,
            addr,
            providers,
        }
    }

    /// A tonic channel to the gateway as `agency` (or a fixture).
    pub async fn channel(&self, agency: &str) -> tonic::transport::Channel {
        channel(&self.addr, &self.pki.files(agency)).await.unwrap()
    }

    /// The address of a provider.
    pub fn provider(&self, agency: &str) -> &str {
        &self
            .providers
            .iter()
            .find(|(a, _, _)| a == agency)
            .unwrap()
            .2
    }
}
