//! The mutual-TLS edge: loads the PEM files of a node, builds the rustls
//! server and client configurations, and turns a peer's leaf certificate into
//! a [`PeerIdentity`] exactly once per connection.
//!
//! Both directions speak TLS 1.3 only with ALPN `h2`, and both require the
//! peer's certificate to chain to the configured CA *and* to carry one SPIFFE
//! URI of this trust domain: a certificate from the right CA for the wrong
//! kind of peer is refused during the handshake, so nothing downstream ever
//! sees an unidentified connection. [`handshake_failure_reason`] turns the
//! resulting errors into one-line reasons for the log.

pub mod https;
mod load;
mod probe;
mod reason;
pub mod seen;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::{fmt, io};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::SingleCertAndKey;
use rustls::{ClientConfig, ServerConfig};

use crate::identity::{AgencyId, IdentityError, PeerIdentity, TrustDomain};

use load::{certified_key, load_all, load_crls, load_roots, read};
pub use probe::{h2_greeting, probe_client_config, Greeting};
pub use reason::handshake_failure_reason;
pub(crate) use reason::rfc3339;

/// The only application protocol Jisr speaks: gRPC over HTTP/2.
const ALPN_H2: &[u8] = b"h2";

/// Paths of the PEM files a node or agency uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA bundle that peer certificates must chain to.
    pub ca: PathBuf,
    /// This node's certificate (chain), leaf first.
    pub cert: PathBuf,
    /// The private key of `cert`.
    pub key: PathBuf,
    /// Certificate revocation lists checked for client certificates.
    pub crls: Vec<PathBuf>,
}

impl TlsFiles {
    /// The files `jisr pki init` writes for agency (or `gateway`) `id` in
    /// `pki_dir`: `ca.crt`, `<id>.crt`, `<id>.key`, and no CRL.
    pub fn for_agency(pki_dir: &Path, id: &str) -> TlsFiles {
        TlsFiles {
            ca: pki_dir.join("ca.crt"),
            cert: pki_dir.join(format!("{id}.crt")),
            key: pki_dir.join(format!("{id}.key")),
            crls: Vec::new(),
        }
    }
}

/// Which of the [`TlsFiles`] an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRole {
    /// `tls.ca`.
    Ca,
    /// `tls.cert`.
    Cert,
    /// `tls.key`.
    Key,
    /// One of `tls.crls`.
    Crl,
}

impl FileRole {
    fn hint(self) -> &'static str {
        match self {
            Self::Ca => "check `tls.ca` in the config or run `jisr pki init`",
            Self::Cert => "check `tls.cert` in the config or run `jisr pki init`",
            Self::Key => "check `tls.key` in the config or run `jisr pki init`",
            Self::Crl => "check `tls.crls` in the config or fetch the CRL again from the CA",
        }
    }

    fn item(self) -> &'static str {
        match self {
            Self::Ca | Self::Cert => "certificate",
            Self::Key => "private key",
            Self::Crl => "CRL",
        }
    }
}

impl fmt::Display for FileRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ca => "CA bundle",
            Self::Cert => "certificate",
            Self::Key => "private key",
            Self::Crl => "CRL",
        })
    }
}

/// Why a TLS configuration could not be built from its files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {role} {path}: {source}; {}", role.hint())]
    Read {
        /// Which file.
        role: FileRole,
        /// Its path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file is not PEM.
    #[error("{role} {path} is not valid PEM ({detail}); {}", role.hint())]
    Pem {
        /// Which file.
        role: FileRole,
        /// Its path.
        path: PathBuf,
        /// What the PEM parser said.
        detail: String,
    },
    /// A file holds no item of the expected kind.
    #[error("no {} in {role} {path}; {}", role.item(), role.hint())]
    Empty {
        /// Which file.
        role: FileRole,
        /// Its path.
        path: PathBuf,
    },
    /// A certificate of the CA bundle cannot serve as a trust anchor.
    #[error("the CA bundle {path} holds an unusable certificate ({detail}); {}", FileRole::Ca.hint())]
    BadCa {
        /// The CA bundle.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A CRL cannot be parsed or used.
    #[error("CRL {path} invalid ({detail}); {}", FileRole::Crl.hint())]
    BadCrl {
        /// The CRL file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The key is not the one the certificate was issued for.
    #[error("the private key in {key} does not match the certificate in {cert}; use the key file written together with that certificate")]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// The key cannot be used for TLS.
    #[error("the private key in {path} cannot be used ({detail}); use a PKCS#8 ECDSA P-256/P-384, Ed25519 or RSA key")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What rustls said.
        detail: String,
    },
    /// The certificate names another identity than the one configured.
    #[error("the certificate in {path} is for {found}, but this node is {expected}; issue the node's certificate for `{expected}` (e.g. `jisr pki init --gateway-node <node.id>`) or fix `node.id`")]
    WrongIdentity {
        /// The certificate file.
        path: PathBuf,
        /// What the certificate says.
        found: String,
        /// What the config says.
        expected: String,
    },
    /// rustls refused the assembled configuration.
    #[error("cannot set up TLS with CA {ca}: {detail}")]
    Setup {
        /// The CA bundle in use.
        ca: PathBuf,
        /// What rustls said.
        detail: String,
    },
}

/// Who may connect to a server built with [`server_config`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Agencies' back-office systems (`spiffe://<td>/agency/<id>`).
    Agencies,
    /// Other gateway nodes (`spiffe://<td>/gateway/<id>`).
    Gateways,
    /// Agencies, and gateway nodes for the replicas' audit reads: the
    /// listener then checks that a gateway is a configured peer.
    AgenciesAndPeers,
}

/// Installs ring as the process-wide rustls provider; idempotent, safe to
/// call many times. (The configurations here name ring explicitly; this is
/// for libraries such as tonic that ask for the process default.)
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side of mutual TLS: TLS 1.3, ALPN `h2`, presents
/// `files.cert`/`files.key`, and requires a client certificate that chains to
/// `files.ca`, is not revoked by `files.crls`, and names a peer of the
/// `accept`ed kind in `domain`.
pub fn server_config(
    files: &TlsFiles,
    domain: &TrustDomain,
    accept: Accept,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let roots = Arc::new(load_roots(&files.ca)?);
    let crls = load_crls(&files.crls)?;
    let setup = |detail: String| TlsError::Setup {
        ca: files.ca.clone(),
        detail,
    };
    // Unknown revocation status stays an error (the default): once CRLs are
    // configured, a certificate whose issuer has no CRL is refused.
    let webpki = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .with_crls(crls)
        .build()
        .map_err(|e| setup(e.to_string()))?;
    let verifier = verify::SpiffeClientVerifier::new(webpki, domain.clone(), accept);
    let key = certified_key(files, &provider)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| setup(e.to_string()))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(key)));
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// The server side of the web console: browsers, not agencies, connect,
/// so no client certificate is asked for (operators sign in with a link,
/// see `console`); TLS 1.2 and 1.3, ALPN `http/1.1`. Presents `cert`/`key`.
pub fn web_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let files = TlsFiles {
        ca: PathBuf::new(),
        cert: cert.to_owned(),
        key: key.to_owned(),
        crls: Vec::new(),
    };
    let key = certified_key(&files, &provider)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup {
            ca: files.cert.clone(),
            detail: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(key)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client side of a plain HTTPS call (a witness, see `audit::witnessing`):
/// no client certificate, the server's certificate must chain to `ca` and
/// name the host the caller connects to (ordinary web PKI rules, not SPIFFE:
/// a witness is run by another institution, with its own certificates).
pub fn web_client_config(ca: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let roots = load_roots(ca)?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup {
            ca: ca.to_owned(),
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client side of mutual TLS towards a provider (or another gateway):
/// TLS 1.3, ALPN `h2`, presents `files.cert`/`files.key`, and accepts only a
/// server whose certificate chains to `files.ca`, is not revoked by
/// `files.crls`, and whose SPIFFE identity is `expect`. The server name passed to the connector is not checked: peers
/// are identified by SPIFFE URI, not by DNS name.
pub fn client_config(
    files: &TlsFiles,
    domain: &TrustDomain,
    expect: PeerIdentity,
) -> Result<Arc<ClientConfig>, TlsError> {
    spiffe_client_config(files, domain, Some(expect), None)
}

/// [`client_config`] towards provider `agency`, noting its certificate
/// in `seen` at each handshake.
pub fn provider_client_config(
    files: &TlsFiles,
    domain: &TrustDomain,
    agency: AgencyId,
    seen: Arc<seen::SeenCertificates>,
) -> Result<Arc<ClientConfig>, TlsError> {
    spiffe_client_config(
        files,
        domain,
        Some(PeerIdentity::Agency(agency)),
        Some(seen),
    )
}

/// [`client_config`]; `expect: None` accepts any identity of `domain`.
fn spiffe_client_config(
    files: &TlsFiles,
    domain: &TrustDomain,
    expect: Option<PeerIdentity>,
    seen: Option<Arc<seen::SeenCertificates>>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let roots = Arc::new(load_roots(&files.ca)?);
    let crls = load_crls(&files.crls)?
        .iter()
        .map(|der| {
            webpki::OwnedCertRevocationList::from_der(der)
                .map(webpki::CertRevocationList::from)
                // `load_crls` parsed each file the same way, with its name.
                .map_err(|e| TlsError::BadCrl {
                    path: files.crls.first().cloned().unwrap_or_default(),
                    detail: e.to_string(),
                })
        })
        .collect::<Result<Arc<[_]>, _>>()?;
    let mut verifier =
        verify::SpiffeServerVerifier::new(roots, provider.clone(), domain.clone(), expect, crls);
    verifier.seen = seen;
    let key = certified_key(files, &provider)?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Setup {
            ca: files.ca.clone(),
            detail: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(key)));
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// The identity of the peer of an established connection, from its leaf
/// certificate (the first of `certs`).
pub fn peer_identity(
    certs: Option<&[CertificateDer<'_>]>,
    domain: &TrustDomain,
) -> Result<PeerIdentity, IdentityError> {
    let leaf = certs
        .and_then(|certs| certs.first())
        .ok_or(IdentityError::MissingSpiffeId)?;
    PeerIdentity::from_cert_der(leaf, domain)
}

/// A tonic client TLS configuration acting as an agency (tests, demo, load
/// generator): trusts `files.ca`, presents `files.cert`/`files.key`, and
/// expects the server certificate to name `localhost`.
pub fn tonic_client_tls(files: &TlsFiles) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    // Parse everything first so mistakes surface with our messages, not
    // tonic's at the first connection attempt.
    load_roots(&files.ca)?;
    certified_key(files, &provider())?;
    let ca = read(FileRole::Ca, &files.ca)?;
    let cert = read(FileRole::Cert, &files.cert)?;
    let key = read(FileRole::Key, &files.key)?;
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key))
        .domain_name("localhost"))
}

/// Checks that the node's own certificate carries the SPIFFE id `expect`.
pub fn check_own_identity(
    files: &TlsFiles,
    domain: &TrustDomain,
    expect: &PeerIdentity,
) -> Result<(), TlsError> {
    let chain: Vec<CertificateDer<'static>> = load_all(FileRole::Cert, &files.cert)?;
    let describe = |id: &PeerIdentity| match id {
        PeerIdentity::Agency(a) => domain.agency_uri(a),
        PeerIdentity::Gateway(g) => domain.gateway_uri(g.as_str()),
    };
    let found = match PeerIdentity::from_cert_der(&chain[0], domain) {
        Ok(id) if &id == expect => return Ok(()),
        Ok(id) => describe(&id),
        Err(e) => e.to_string(),
    };
    Err(TlsError::WrongIdentity {
        path: files.cert.clone(),
        found,
        expected: describe(expect),
    })
}

#[cfg(test)]
mod tests;
