//! `jisr probe`: the connection test an agency runs from its own machine
//! with its own certificate. Each step prints `ok` or `FAIL` with what to
//! do: the certificate itself, the TLS handshake (and who the gateway says
//! it is), whether the gateway kept the connection (it accepted the
//! certificate and knows the agency), a harmless health call, what the
//! rules let the agency call, and whether the gateway reaches each
//! provider of those methods. With `--config` and `--provider` it is the
//! gateway's side instead: from the node's own configuration and
//! certificate, each step towards each instance of one provider
//! ([`provider`]).

use crate::identity::{AgencyId, PeerIdentity, TrustDomain};
use crate::proto::jisr::probe::v1::{probe_client::ProbeClient, CheckRequest};
use crate::tls::{self, Greeting, TlsFiles};
use rustls::AlertDescription;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

mod calls;
mod contract;
mod provider;
use calls::{channel, health, rules};

/// How long each network step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// What `jisr probe` is given: `--gateway`, `--pki` and `--as` for an
/// agency's probe of the gateway, or `--config` and `--provider` for the
/// gateway's probe of a provider.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Gateway address host:port, or @FILE to read it from a file.
    #[arg(long, required_unless_present = "provider")]
    pub gateway: Option<String>,
    /// Directory holding `ca.crt` and `<agency>.crt`/`.key`, as `jisr agency
    /// add` issued them.
    #[arg(long, required_unless_present = "provider")]
    pub pki: Option<PathBuf>,
    /// The agency probing.
    #[arg(long = "as", required_unless_present = "provider")]
    pub agency: Option<String>,
    /// The gateway's configuration: probe a provider from the node's side,
    /// with the node's certificate (with --provider).
    #[arg(long, requires = "provider")]
    pub config: Option<PathBuf>,
    /// The provider agency whose upstream instances to probe (with --config).
    #[arg(long, requires = "config", conflicts_with_all = ["gateway", "pki", "agency", "ca", "cert", "key"])]
    pub provider: Option<String>,
    /// The platform CA (default: `<pki>/ca.crt`).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The agency's certificate (default: `<pki>/<agency>.crt`).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Its private key (default: `<pki>/<agency>.key`).
    #[arg(long)]
    pub key: Option<PathBuf>,
}

/// Runs `jisr probe`: exit 0 when every step passed, 1 otherwise (64 for
/// a configuration that does not load).
pub fn run(args: &ProbeArgs) -> ExitCode {
    if let (Some(config), Some(provider)) = (&args.config, &args.provider) {
        return provider::run(config, provider);
    }
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(probe(args)));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("jisr: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The printed verdicts; remembers whether one failed.
#[derive(Default)]
pub(super) struct Report {
    passed: usize,
    warned: usize,
    failed: bool,
}

impl Report {
    fn ok(&mut self, step: &str, what: &str) {
        self.passed += 1;
        println!("ok    {step:<12} {what}");
    }

    fn fail(&mut self, step: &str, what: &str, fix: &str) {
        self.failed = true;
        println!("FAIL  {step:<12} {what}\n      fix: {fix}");
    }

    /// Something to know that does not fail the probe.
    fn warn(&mut self, step: &str, what: &str) {
        self.warned += 1;
        println!("warn  {step:<12} {what}");
    }
}

async fn probe(args: &ProbeArgs) -> anyhow::Result<bool> {
    tls::install_crypto_provider();
    // clap requires the three unless --provider is given, handled above.
    let (Some(gateway), Some(pki), Some(agency)) = (&args.gateway, &args.pki, &args.agency) else {
        anyhow::bail!("pass --gateway, --pki and --as (an agency's probe of the gateway), or --config and --provider (the gateway's probe of a provider)");
    };
    let files = TlsFiles {
        ca: args.ca.clone().unwrap_or_else(|| pki.join("ca.crt")),
        cert: (args.cert.clone()).unwrap_or_else(|| pki.join(format!("{agency}.crt"))),
        key: (args.key.clone()).unwrap_or_else(|| pki.join(format!("{agency}.key"))),
        crls: Vec::new(),
    };
    let addr = match gateway.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("cannot read {file}: {e}"))?
            .trim()
            .to_owned(),
        None => gateway.clone(),
    };
    let mut report = Report::default();
    println!("probing {addr} as `{agency}` with {}", files.cert.display());
    let Some(domain) = certificate(&mut report, &files.cert, agency) else {
        return Ok(false);
    };
    let Some(mut stream) = handshake(&mut report, &files, &domain, &addr).await else {
        return Ok(false);
    };
    if !accepted(&mut report, &mut stream, agency).await {
        return Ok(false);
    }
    drop(stream);
    let config = tls::probe_client_config(&files, &domain)?;
    let channel = channel(&addr, config);
    if !health(&mut report, channel.clone()).await {
        return Ok(false);
    }
    match tokio::time::timeout(
        STEP_TIMEOUT,
        ProbeClient::new(channel).check(CheckRequest {}),
    )
    .await
    {
        Ok(Ok(answer)) => rules(&mut report, &answer.into_inner()),
        Ok(Err(status)) => report.fail(
            "rules",
            &format!(
                "the gateway did not answer the probe: {:?}: {}",
                status.code(),
                status.message()
            ),
            "the gateway may be older than this `jisr`; ask its operator",
        ),
        Err(_) => report.fail(
            "rules",
            "no answer in time",
            "retry; if it lasts, ask the gateway's operator",
        ),
    }
    Ok(!report.failed)
}

/// Step 1, offline: the certificate file, the identity it names and its
/// validity. Returns the trust domain it names (to check the gateway's).
fn certificate(report: &mut Report, path: &Path, agency: &str) -> Option<TrustDomain> {
    let step = "certificate";
    let reissue = format!("ask the node's operator for `{agency}`'s certificate (`jisr agency add {agency}`, or with `--force` to renew it)");
    let pem = match std::fs::read(path) {
        Ok(pem) => pem,
        Err(e) => {
            report.fail(
                step,
                &format!("cannot read {}: {e}", path.display()),
                &format!(
                    "pass --pki with the directory holding {agency}.crt, or --cert FILE; {reissue}"
                ),
            );
            return None;
        }
    };
    let parsed = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| e.to_string());
    let uri = parsed.and_then(|(_, pem)| {
        let cert = pem.parse_x509().map_err(|e| e.to_string())?;
        let not_after = cert.validity().not_after;
        let uris: Vec<String> = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::URI(u)
                            if u.starts_with("spiffe://") =>
                        {
                            Some((*u).to_owned())
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let secs = u64::try_from(not_after.timestamp()).unwrap_or(0);
        let until = tls::rfc3339(rustls::pki_types::UnixTime::since_unix_epoch(
            Duration::from_secs(secs),
        ));
        Ok((uris, secs, until))
    });
    let (uris, not_after, until) = match uri {
        Ok(found) => found,
        Err(e) => {
            report.fail(
                step,
                &format!("{} is not a PEM certificate: {e}", path.display()),
                &reissue,
            );
            return None;
        }
    };
    let [uri] = uris.as_slice() else {
        report.fail(
            step,
            &format!(
                "{} names {} spiffe:// identities, not one",
                path.display(),
                uris.len()
            ),
            &reissue,
        );
        return None;
    };
    let domain = uri
        .strip_prefix("spiffe://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|d| TrustDomain::parse(d).ok())?;
    let names = AgencyId::parse(agency)
        .ok()
        .is_some_and(|id| PeerIdentity::from_uri(uri, &domain) == Ok(PeerIdentity::Agency(id)));
    if !names {
        report.fail(
            step,
            &format!(
                "{} is `{uri}`, not agency `{agency}` of `{domain}`",
                path.display()
            ),
            &format!("pass --as with the agency it names, or {reissue}"),
        );
    } else if not_after < rustls::pki_types::UnixTime::now().as_secs() {
        // Reported, then shown to the gateway: its verdict follows.
        report.fail(step, &format!("`{uri}` expired on {until}"), &reissue);
    } else {
        report.ok(step, &format!("{uri}, valid until {until}"));
    }
    Some(domain)
}

/// Step 2: TCP and the TLS handshake; the gateway's certificate must chain
/// to our CA and name a gateway of our trust domain.
async fn handshake(
    report: &mut Report,
    files: &TlsFiles,
    domain: &TrustDomain,
    addr: &str,
) -> Option<TlsStream<TcpStream>> {
    let config = match tls::probe_client_config(files, domain) {
        Ok(config) => config,
        Err(e) => {
            report.fail("tls", &e.to_string(), "fix the file it names: the certificate and key `jisr agency add` issued, and the platform CA");
            return None;
        }
    };
    let tcp = match tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            report.fail("tls", &format!("cannot connect to {addr}: {e}"), "check the gateway's address and port (its `node.listen`), and that no firewall stands between this machine and it");
            return None;
        }
        Err(_) => {
            report.fail(
                "tls",
                &format!("connecting to {addr} timed out"),
                "check the address, and that a firewall lets this machine reach it",
            );
            return None;
        }
    };
    let name = rustls::pki_types::ServerName::try_from("jisr-gateway").ok()?;
    let stream = match tokio::time::timeout(
        STEP_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            let (what, fix) = refused_gateway(&e, files, domain);
            report.fail("tls", &what, &fix);
            return None;
        }
        Err(_) => {
            report.fail(
                "tls",
                "the TLS handshake timed out",
                "is this the gateway's gRPC port (not its admin port)?",
            );
            return None;
        }
    };
    let leaf = stream.get_ref().1.peer_certificates();
    match tls::peer_identity(leaf, domain) {
        Ok(PeerIdentity::Gateway(node)) => {
            report.ok(
                "tls",
                &format!(
                    "the gateway is {} (TLS 1.3, its certificate chains to {})",
                    domain.gateway_uri(node.as_str()),
                    files.ca.display()
                ),
            );
            Some(stream)
        }
        other => {
            report.fail(
                "tls",
                &format!("{addr} is not a gateway: its certificate names {other:?}"),
                "check the address: it should be the gateway's, not a provider's",
            );
            None
        }
    }
}

/// Why our side refused the gateway's certificate, and the fix.
fn refused_gateway(e: &std::io::Error, files: &TlsFiles, domain: &TrustDomain) -> (String, String) {
    use rustls::CertificateError as C;
    let reason = tls::handshake_failure_reason(e);
    let wrong_ca = matches!(
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(
            C::UnknownIssuer | C::BadSignature
        ))
    );
    if wrong_ca {
        return (
            format!("the gateway's certificate is not issued by the CA in {} ({reason})", files.ca.display()),
            "use the platform CA the node's operator gave you (the `ca.crt` of the node's PKI), not another one".into(),
        );
    }
    if reason.contains("foreign trust domain") {
        return (
            format!("the gateway is of another trust domain than your certificate (`{domain}`): {reason}"),
            "use the certificate issued for this platform, or probe the gateway of your trust domain".into(),
        );
    }
    (reason, "check that the address is the gateway's gRPC port; the gateway logs its side of a refused handshake".into())
}

/// Step 3: the gateway checks our certificate once our side of the
/// handshake is done; it either greets us or refuses.
async fn accepted(report: &mut Report, stream: &mut TlsStream<TcpStream>, agency: &str) -> bool {
    let step = "accepted";
    let greeting = tokio::time::timeout(STEP_TIMEOUT, tls::h2_greeting(stream))
        .await
        .unwrap_or_else(|_| Err(Greeting::Other("no answer in time".into())));
    let log = "the gateway's log has a `TLS handshake refused` line with the reason, at this time, with this machine's address";
    let (what, fix) = match greeting {
        Ok(()) => {
            report.ok(step, &format!("the gateway accepted the certificate and knows agency `{agency}`"));
            return true;
        }
        Err(Greeting::Alert { alert: AlertDescription::CertificateExpired, reason }) => (
            format!("the gateway refused the certificate: it expired ({reason})"),
            format!("ask the node's operator to renew it (`jisr agency add {agency} --force`, or their CA)"),
        ),
        Err(Greeting::Alert { alert: AlertDescription::CertificateRevoked, reason }) => (
            format!("the gateway refused the certificate: it is revoked ({reason})"),
            "ask the node's operator for a new certificate".into(),
        ),
        Err(Greeting::Alert { alert: AlertDescription::UnknownCA | AlertDescription::DecryptError | AlertDescription::BadCertificate, reason }) => (
            format!("the gateway does not trust the CA that issued the certificate: it was issued by a different CA ({reason})"),
            format!("use the certificate the node's operator issued for `{agency}` from the node's CA (`jisr agency add {agency}`); {log}"),
        ),
        Err(Greeting::Alert { reason, .. }) => (format!("the gateway refused the certificate ({reason})"), log.to_owned()),
        Err(Greeting::Closed) => (
            format!("the gateway accepted the certificate's chain, then closed the connection: agency `{agency}` is not declared on this node"),
            format!("ask the node's operator to declare it: `jisr agency add {agency} --config <the node's config>` (the gateway logs `connection refused: … does not declare it`)"),
        ),
        Err(Greeting::Other(why)) => (why, log.to_owned()),
    };
    report.fail(step, &what, &fix);
    false
}
