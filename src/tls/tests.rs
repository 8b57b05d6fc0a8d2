use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;
use crate::identity::AgencyId;
use crate::tools::pki;

fn td() -> TrustDomain {
    TrustDomain::parse("interop.gov.ma").unwrap()
}

fn agency(s: &str) -> PeerIdentity {
    PeerIdentity::Agency(AgencyId::parse(s).unwrap())
}

fn gateway() -> PeerIdentity {
    PeerIdentity::Gateway(AgencyId::parse("gw-1").unwrap())
}

/// A PKI with two agencies, a gateway and all the fixtures.
fn make_pki() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ids = ["civil-status", "tax"].map(|s| AgencyId::parse(s).unwrap());
    pki::init(&pki::PkiOptions {
        dir: dir.path().to_owned(),
        domain: td(),
        agencies: ids.to_vec(),
        gateway_node: AgencyId::parse("gw-1").unwrap(),
        hosts: Vec::new(),
        force: false,
    })
    .unwrap();
    pki::fixtures(dir.path(), &td()).unwrap();
    dir
}

/// The gateway's agency-facing server, with the fixture CRL.
fn gateway_server(dir: &Path) -> Arc<ServerConfig> {
    let mut files = TlsFiles::for_agency(dir, "gateway");
    files.crls = vec![dir.join("ca.crl")];
    server_config(&files, &td(), Accept::Agencies).unwrap()
}

fn agency_client(dir: &Path, stem: &str) -> Arc<ClientConfig> {
    client_config(&TlsFiles::for_agency(dir, stem), &td(), gateway()).unwrap()
}

/// Runs one handshake in memory; returns the server's view (the client's
/// identity) and the client's result.
async fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
) -> (Result<PeerIdentity, io::Error>, Result<(), io::Error>) {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let accept = TlsAcceptor::from(server).accept(server_io);
    let name = ServerName::try_from("localhost").unwrap();
    let connect = TlsConnector::from(client).connect(name, client_io);
    // Both streams live until both sides are done, so neither sees the
    // other hang up mid-handshake.
    let (server_side, client_side) = tokio::join!(accept, connect);
    let identity = server_side.and_then(|stream| {
        let certs = stream.get_ref().1.peer_certificates();
        peer_identity(certs, &td()).map_err(io::Error::other)
    });
    (identity, client_side.map(drop))
}

#[tokio::test]
async fn agency_and_gateway_complete_a_handshake() {
    let pki = make_pki();
    let (server, client) = handshake(
        gateway_server(pki.path()),
        agency_client(pki.path(), "civil-status"),
    )
    .await;
    client.unwrap();
    assert_eq!(server.unwrap(), agency("civil-status"));
}

#[tokio::test]
async fn bad_client_certificates_are_refused_with_a_reason() {
    let pki = make_pki();
    let server = gateway_server(pki.path());
    for (stem, expected) in [
        ("expired", "certificate expired (not after "),
        ("not-yet-valid", "certificate not yet valid"),
        ("untrusted", "unknown issuer"),
        ("no-san", "no spiffe:// URI"),
        ("foreign", "foreign trust domain `other.example`"),
        ("revoked", "certificate revoked"),
        ("gateway", "gateway node `gw-1` may not connect here"),
    ] {
        let (result, _) = handshake(server.clone(), agency_client(pki.path(), stem)).await;
        let err = result.expect_err(stem);
        let reason = handshake_failure_reason(&err);
        assert!(reason.contains(expected), "{stem}: {reason}");
    }
}

#[tokio::test]
async fn a_client_without_certificate_is_refused() {
    let pki = make_pki();
    let files = TlsFiles::for_agency(pki.path(), "tax");
    let roots = Arc::new(load_roots(&files.ca).unwrap());
    let verifier =
        verify::SpiffeServerVerifier::new(roots, provider(), td(), Some(gateway()), Arc::from([]));
    let client = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let (result, _) = handshake(gateway_server(pki.path()), Arc::new(client)).await;
    let reason = handshake_failure_reason(&result.unwrap_err());
    assert_eq!(reason, "no client certificate presented");
}

#[tokio::test]
async fn the_client_refuses_an_unexpected_server() {
    let pki = make_pki();
    // The tax agency serves; the client believes it is calling civil-status.
    let server = server_config(
        &TlsFiles::for_agency(pki.path(), "tax"),
        &td(),
        Accept::Gateways,
    )
    .unwrap();
    let client = client_config(
        &TlsFiles::for_agency(pki.path(), "gateway"),
        &td(),
        agency("civil-status"),
    )
    .unwrap();
    let (server_side, client_side) = handshake(server.clone(), client).await;
    let reason = handshake_failure_reason(&client_side.unwrap_err());
    assert!(
        reason.contains("it is agency `tax`, not agency `civil-status`"),
        "{reason}"
    );
    let reason = handshake_failure_reason(&server_side.unwrap_err());
    assert!(reason.contains("refused our certificate"), "{reason}");

    // The same client expecting tax gets through, and the agency server
    // sees the gateway.
    let client = client_config(
        &TlsFiles::for_agency(pki.path(), "gateway"),
        &td(),
        agency("tax"),
    )
    .unwrap();
    let (server_side, client_side) = handshake(server, client).await;
    client_side.unwrap();
    assert_eq!(server_side.unwrap(), gateway());
}

#[tokio::test]
async fn the_client_refuses_a_server_from_another_ca() {
    let pki = make_pki();
    let server = server_config(
        &TlsFiles::for_agency(pki.path(), "untrusted"),
        &td(),
        Accept::Gateways,
    )
    .unwrap();
    let client = client_config(
        &TlsFiles::for_agency(pki.path(), "gateway"),
        &td(),
        agency("education"),
    )
    .unwrap();
    let (_, client_side) = handshake(server, client).await;
    let reason = handshake_failure_reason(&client_side.unwrap_err());
    assert!(reason.contains("unknown issuer"), "{reason}");
}

#[tokio::test]
async fn with_crls_the_client_refuses_a_revoked_server() {
    let pki = make_pki();
    // `revoked` names agency education and is listed in ca.crl.
    let server = |stem: &str| {
        server_config(
            &TlsFiles::for_agency(pki.path(), stem),
            &td(),
            Accept::Gateways,
        )
        .unwrap()
    };
    let client_for = |expect: &str, crls: Vec<PathBuf>| {
        let mut files = TlsFiles::for_agency(pki.path(), "gateway");
        files.crls = crls;
        client_config(&files, &td(), agency(expect)).unwrap()
    };
    let client = |crls: Vec<PathBuf>| client_for("education", crls);
    let crl = vec![pki.path().join("ca.crl")];
    let (_, client_side) = handshake(server("revoked"), client(crl.clone())).await;
    let reason = handshake_failure_reason(&client_side.unwrap_err());
    assert!(reason.contains("revoked"), "{reason}");
    // The same server passes without CRLs, and a valid one passes with them.
    let (_, client_side) = handshake(server("revoked"), client(Vec::new())).await;
    client_side.unwrap();
    let (server_side, client_side) = handshake(server("tax"), client_for("tax", crl.clone())).await;
    client_side.unwrap();
    assert_eq!(server_side.unwrap(), gateway());
    // An expired or foreign server is still refused on the CRL path.
    let (_, client_side) = handshake(server("expired"), client(crl.clone())).await;
    let reason = handshake_failure_reason(&client_side.unwrap_err());
    assert!(reason.contains("expired"), "{reason}");
    let (_, client_side) = handshake(server("untrusted"), client(crl)).await;
    let reason = handshake_failure_reason(&client_side.unwrap_err());
    assert!(reason.contains("unknown issuer"), "{reason}");
}

#[test]
fn file_errors_name_the_file_and_the_fix() {
    let pki = make_pki();
    let mut files = TlsFiles::for_agency(pki.path(), "tax");
    files.ca = pki.path().join("missing.crt");
    let err = server_config(&files, &td(), Accept::Agencies).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("cannot read CA bundle "), "{msg}");
    assert!(
        msg.contains("missing.crt") && msg.contains("jisr pki init"),
        "{msg}"
    );

    let mut files = TlsFiles::for_agency(pki.path(), "tax");
    files.key = pki.path().join("civil-status.key");
    let err = client_config(&files, &td(), gateway()).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");

    let mut files = TlsFiles::for_agency(pki.path(), "tax");
    files.cert = pki.path().join("tax.key");
    let err = server_config(&files, &td(), Accept::Agencies).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no certificate in certificate "),
        "{err}"
    );

    let mut files = TlsFiles::for_agency(pki.path(), "tax");
    let bogus = pki.path().join("bogus.crl");
    std::fs::write(
        &bogus,
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    files.crls = vec![bogus];
    let err = server_config(&files, &td(), Accept::Agencies).unwrap_err();
    assert!(err.to_string().starts_with("CRL "), "{err}");
    assert!(err.to_string().contains("bogus.crl"), "{err}");
}

#[test]
fn peer_identity_needs_a_certificate() {
    assert_eq!(
        peer_identity(None, &td()),
        Err(IdentityError::MissingSpiffeId)
    );
    assert_eq!(
        peer_identity(Some(&[]), &td()),
        Err(IdentityError::MissingSpiffeId)
    );
}

#[test]
fn tonic_config_builds_and_provider_install_is_idempotent() {
    install_crypto_provider();
    install_crypto_provider();
    let pki = make_pki();
    tonic_client_tls(&TlsFiles::for_agency(pki.path(), "civil-status")).unwrap();
    let mut files = TlsFiles::for_agency(pki.path(), "civil-status");
    files.key = pki.path().join("nope.key");
    assert!(tonic_client_tls(&files).is_err());
}

/// Every development CA has the same name; a certificate from another one
/// fails its signature check, which the log must call a different CA.
#[tokio::test]
async fn a_certificate_from_another_ca_of_the_same_name_is_named_as_such() {
    let ours = make_pki();
    let theirs = make_pki();
    let expected = "issued by a different CA";
    // A consumer whose certificate comes from the other CA.
    let server = server_config(
        &TlsFiles::for_agency(ours.path(), "gateway"),
        &td(),
        Accept::Agencies,
    )
    .unwrap();
    let mut foreign = TlsFiles::for_agency(theirs.path(), "tax");
    foreign.ca = ours.path().join("ca.crt");
    let client = client_config(&foreign, &td(), gateway()).unwrap();
    let (server_side, _) = handshake(server, client).await;
    let reason = handshake_failure_reason(&server_side.unwrap_err());
    assert!(reason.contains(expected), "{reason}");
    // A provider whose certificate comes from the other CA.
    let mut provider = TlsFiles::for_agency(theirs.path(), "tax");
    provider.ca = ours.path().join("ca.crt");
    let server = server_config(&provider, &td(), Accept::Gateways).unwrap();
    let client = client_config(
        &TlsFiles::for_agency(ours.path(), "gateway"),
        &td(),
        agency("tax"),
    )
    .unwrap();
    let (_, client_side) = handshake(server, client).await;
    let reason = handshake_failure_reason(&client_side.unwrap_err());
    assert!(reason.contains(expected), "{reason}");
}
