//! `jisr probe --config FILE --provider AGENCY`: the gateway's side of a
//! provider's connection, tried from the node's own configuration and
//! certificate before any call depends on it. For each upstream instance:
//! TCP, the TLS handshake (the provider's certificate chains to `[tls] ca`),
//! the SPIFFE id it presents, ALPN `h2`, whether it kept the connection
//! (it accepted the gateway's certificate), a `grpc.health.v1` check, and
//! its server reflection against the contract in the configuration.

use super::contract::{contract, Contract};
use super::{channel, Report, STEP_TIMEOUT};
use crate::config::{self, Config};
use crate::identity::{AgencyId, PeerIdentity, TrustDomain};
use crate::tls::{self, Greeting};
use crate::tools::cli::{commands::check_loaded, EXIT_INVALID_CONFIG};
use std::path::Path;
use std::process::ExitCode;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// What the probe needs of the node and of the provider.
struct Target<'a> {
    config: &'a Config,
    path: &'a Path,
    agency: AgencyId,
    contract: Contract,
}

/// Runs the provider probe: exit 0 when every step of every instance
/// passed, 1 otherwise, 64 when the configuration does not load.
pub(super) fn run(path: &Path, agency: &str) -> ExitCode {
    tls::install_crypto_provider();
    let (config, catalogue) = match Config::load(path).and_then(check_loaded) {
        Ok(loaded) => loaded,
        Err(errors) => {
            println!("{}", config::report(&errors));
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    let declared = AgencyId::parse(agency)
        .ok()
        .and_then(|id| config.agencies.iter().find(|a| a.id == id));
    let providers = || {
        let names: Vec<&str> = (config.agencies.iter())
            .filter(|a| !a.upstreams.is_empty())
            .map(|a| a.id.as_str())
            .collect();
        names.join(", ")
    };
    let Some(declared) = declared else {
        eprintln!("jisr: {} declares no agency `{agency}`; its providers: {}; pass one of them to --provider (or declare it: `jisr agency add {agency} --config {} --contract … --upstream HOST:PORT`)", path.display(), providers(), path.display());
        return ExitCode::from(EXIT_INVALID_CONFIG);
    };
    if declared.upstreams.is_empty() {
        eprintln!("jisr: `{agency}` has no `upstream` in {}: it only calls others, there is no back-end to probe; its providers: {}", path.display(), providers());
        return ExitCode::from(EXIT_INVALID_CONFIG);
    }
    let target = Target {
        config: &config,
        path,
        agency: declared.id.clone(),
        contract: Contract::of(&catalogue, &declared.id),
    };
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(probe(&target, &declared.upstreams)));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("jisr: cannot start the probe: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every instance in turn; whether all passed.
async fn probe(target: &Target<'_>, upstreams: &[String]) -> bool {
    let node = &target.config.node;
    println!(
        "probing provider `{}` from node {} ({}, {})",
        target.agency,
        node.id,
        node.trust_domain.gateway_uri(node.id.as_str()),
        shown(&target.config.tls.cert)
    );
    let mut report = Report::default();
    for addr in upstreams {
        println!("instance {addr}");
        instance(&mut report, target, addr).await;
    }
    !report.failed
}

/// The steps towards one instance, up to the first that fails.
async fn instance(report: &mut Report, target: &Target<'_>, addr: &str) {
    let domain = &target.config.node.trust_domain;
    let Some(mut stream) = connect(report, target, addr).await else {
        return;
    };
    let leaf = stream.get_ref().1.peer_certificates();
    let expected = domain.agency_uri(&target.agency);
    match tls::peer_identity(leaf, domain) {
        Ok(PeerIdentity::Agency(id)) if id == target.agency => {
            report.ok("identity", &format!("the provider is {expected}"));
        }
        found => {
            let found = match found {
                Ok(PeerIdentity::Agency(id)) => domain.agency_uri(&id),
                Ok(PeerIdentity::Gateway(node)) => domain.gateway_uri(node.as_str()),
                Err(e) => e.to_string(),
            };
            report.fail("identity", &format!("the back-end at {addr} presents {found}, but the configuration expects {expected} there"), &format!("give that back-end `{}`'s certificate (the one `jisr agency add {} --force` issues), or fix `upstream` in {} if {addr} is another agency's back-end", target.agency, target.agency, target.path.display()));
            return;
        }
    }
    if stream.get_ref().1.alpn_protocol() != Some(b"h2".as_slice()) {
        report.fail("alpn", "the provider did not choose ALPN `h2` (gRPC over HTTP/2)", "serve gRPC over TLS with ALPN h2 (every gRPC server does); a TLS-terminating proxy in front of the back-end must pass h2 through");
        return;
    }
    report.ok("alpn", "h2 (gRPC over HTTP/2)");
    if !accepted(report, &mut stream, target, domain).await {
        return;
    }
    drop(stream);
    let client = match tls::probe_client_config(&target.config.tls, domain) {
        Ok(client) => client,
        // `connect` built the same configuration a moment ago.
        Err(e) => return report.fail("health", &e.to_string(), "fix [tls] in the configuration"),
    };
    let channel = channel(addr, client);
    health(report, channel.clone()).await;
    contract(report, channel, &target.contract).await;
}

/// TCP, then the TLS handshake as the gateway makes it towards a provider
/// (any identity of the trust domain is let through here, so that the
/// next step can name the one found).
async fn connect(
    report: &mut Report,
    target: &Target<'_>,
    addr: &str,
) -> Option<TlsStream<TcpStream>> {
    let domain = &target.config.node.trust_domain;
    let config = match tls::probe_client_config(&target.config.tls, domain) {
        Ok(config) => config,
        Err(e) => {
            report.fail(
                "tls",
                &e.to_string(),
                &format!(
                    "fix [tls] in {} (`jisr check-config` says more)",
                    target.path.display()
                ),
            );
            return None;
        }
    };
    let tcp = match tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            report.fail("tcp", &format!("cannot connect to {addr}: {e}"), &format!("check that `{}`'s back-end is running and listening on {addr} (the `upstream` of its [[agency]] in {}), and that no firewall stands between this node and it", target.agency, target.path.display()));
            return None;
        }
        Err(_) => {
            report.fail(
                "tcp",
                &format!("connecting to {addr} timed out"),
                "check the address, and that a firewall lets this node reach it",
            );
            return None;
        }
    };
    report.ok("tcp", &format!("connected to {addr}"));
    // Not checked: the verifier compares the SPIFFE id instead.
    let name = rustls::pki_types::ServerName::try_from("jisr-provider").ok()?;
    let connecting = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
    match tokio::time::timeout(STEP_TIMEOUT, connecting).await {
        Ok(Ok(stream)) => {
            let ca = shown(&target.config.tls.ca);
            report.ok(
                "tls",
                &format!("TLS 1.3, the provider's certificate chains to {ca}"),
            );
            Some(stream)
        }
        Ok(Err(e)) => {
            let (what, fix) = refused_provider(&e, target, domain);
            report.fail("tls", &what, &fix);
            None
        }
        Err(_) => {
            report.fail(
                "tls",
                "the TLS handshake timed out",
                &format!("is {addr} the back-end's gRPC port, serving TLS?"),
            );
            None
        }
    }
}

/// A file of the configuration as the operator would type it: relative to
/// the working directory when it lies under it (the configuration holds
/// it resolved against its own directory).
fn shown(path: &Path) -> String {
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf));
    relative
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// Why the gateway's side refused the provider's certificate, and the fix.
fn refused_provider(
    e: &std::io::Error,
    target: &Target<'_>,
    domain: &TrustDomain,
) -> (String, String) {
    use rustls::CertificateError as C;
    let reason = tls::handshake_failure_reason(e);
    let agency = &target.agency;
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let ca = shown(&target.config.tls.ca);
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature)) => (
            format!("the provider's certificate is issued by a different CA than this node's `[tls] ca` ({ca}): {reason}"),
            format!("the back-end must present a certificate issued from {ca}: `jisr agency add {agency} --force` issues one (give `{agency}` it, its key and {ca}); or, if its CA is the right one, add that CA to {ca}"),
        ),
        _ if reason.contains("foreign trust domain") => (
            format!("the provider's certificate is of another trust domain than this node's (`{domain}`): {reason}"),
            format!("give the back-end a certificate for {} from this node's CA", domain.agency_uri(agency)),
        ),
        Some(rustls::Error::AlertReceived(_)) => (
            format!("the provider refused the handshake: {reason}"),
            "the back-end must serve TLS 1.3 with ALPN h2 and accept a client certificate from the node's CA; its log says which".into(),
        ),
        _ => (reason, "check that the address is the back-end's gRPC port and that it serves TLS 1.3".into()),
    }
}

/// The provider checks the gateway's certificate once the gateway's side
/// of the handshake is done: it either greets it or ends the connection.
async fn accepted(
    report: &mut Report,
    stream: &mut TlsStream<TcpStream>,
    target: &Target<'_>,
    domain: &TrustDomain,
) -> bool {
    let gateway = domain.gateway_uri(target.config.node.id.as_str());
    let greeting = tokio::time::timeout(STEP_TIMEOUT, tls::h2_greeting(stream))
        .await
        .unwrap_or_else(|_| Err(Greeting::Other("no answer in time".into())));
    let fix = format!("the back-end must require a client certificate from the node's CA ({}) and accept the gateway's identities, spiffe://{domain}/gateway/<node-id> (this node: {gateway}); docs/stacks.md shows how per language", shown(&target.config.tls.ca));
    let what = match greeting {
        Ok(()) => {
            report.ok(
                "accepted",
                &format!("the provider accepted the gateway's certificate ({gateway})"),
            );
            return true;
        }
        Err(Greeting::Alert { reason, .. }) => {
            format!("the provider refused the gateway's certificate ({reason})")
        }
        Err(Greeting::Closed) => format!(
            "the provider closed the connection after the handshake: it does not accept {gateway}"
        ),
        Err(Greeting::Other(why)) => format!("the provider ended the connection: {why}"),
    };
    report.fail("accepted", &what, &fix);
    false
}

/// `grpc.health.v1.Health/Check` of the whole server; a provider that
/// does not implement it is told so, without failing.
async fn health(report: &mut Report, channel: tonic::transport::Channel) {
    use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};
    let mut client = HealthClient::new(channel);
    let call = client.check(tonic_health::pb::HealthCheckRequest::default());
    match tokio::time::timeout(STEP_TIMEOUT, call).await {
        Ok(Ok(answer)) => {
            let status = answer.get_ref().status();
            if status == ServingStatus::Serving {
                report.ok("health", "grpc.health.v1.Health/Check: SERVING");
            } else {
                report.fail("health", &format!("grpc.health.v1.Health/Check: {}", status.as_str_name()), "the back-end says it is not serving: see its own log and readiness");
            }
        }
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => report.warn("health", "the provider does not implement grpc.health.v1.Health (UNIMPLEMENTED): not a failure, but a health service lets its operators and this probe see it is serving"),
        Ok(Err(status)) => report.fail("health", &format!("grpc.health.v1.Health/Check failed: {:?}: {}", status.code(), status.message()), "see the back-end's log for this call"),
        Err(_) => report.fail("health", "grpc.health.v1.Health/Check: no answer in time", "see the back-end's log: is it overloaded or stuck?"),
    }
}
