//! The development PKI: a local certificate authority and the agency and
//! gateway certificates Jisr's mutual TLS expects (`jisr pki init`), plus the
//! broken certificates the tests use to check that refusals happen and read
//! well. Production deployments bring their own PKI; this one exists so a
//! developer can run the demo and the tests with nothing installed.
//!
//! Every identity certificate carries exactly one SPIFFE URI SAN
//! (see [`crate::identity`]) and serves both as a client and a server
//! certificate, since agencies are callers and providers at once.

mod fixtures;
mod gateway;

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::identity::{AgencyId, TrustDomain};

pub use fixtures::fixtures;
pub use gateway::{ca_trust_domain, issue_gateway, resolve_domain};

/// Validity of agency and gateway certificates (the CA/Browser Forum's old
/// maximum, which common clients still accept).
const LEAF_DAYS: i64 = 825;
/// Validity of the development CA.
const CA_DAYS: i64 = 3650;

/// Why the development PKI could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// `init` found a PKI already in place.
    #[error("{0} already exists; pass --force to replace the PKI or choose another --dir")]
    Exists(PathBuf),
    /// The PKI directory could not be created.
    #[error("cannot create directory {path}: {source}; check the --dir path and its permissions")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A certificate or key file could not be written.
    #[error("cannot write {path}: {source}; check that the directory is writable")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The CA certificate or key could not be read.
    #[error("cannot read {path}: {source}; run `jisr pki init` with this --dir first")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The CA certificate or key could not be parsed or used.
    #[error(
        "{path} is not a usable CA file ({detail}); re-create the PKI with `jisr pki init --force`"
    )]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The CA's name does not say its trust domain (a CA not made by
    /// `jisr pki init`).
    #[error("cannot read the trust domain from {0}: its name is not `Jisr development CA (<trust domain>)` (a CA not made by `jisr pki init`) and it has no `spiffe://<trust domain>` URI subject alternative name; pass --trust-domain with the domain its certificates are for")]
    UnknownTrustDomain(PathBuf),
    /// The CA limits its certificates with a URI name constraint, which
    /// the nodes' certificate check cannot process.
    #[error("the CA in {path} has a URI name constraint (`{constraint}`): Jisr's certificate check (rustls-webpki) does not process URI name constraints and refuses every certificate under such a CA at the handshake (NameConstraintViolation), so nothing was issued; use a CA without URI name constraints that says its trust domain in a `spiffe://<trust domain>` URI subject alternative name (DNS name constraints are fine)")]
    UriNameConstraint {
        /// The CA certificate.
        path: PathBuf,
        /// The constraint found.
        constraint: String,
    },
    /// `--trust-domain` names another domain than the CA's.
    #[error("the CA in {path} issues certificates for trust domain `{ca}`, not `{given}`; leave out --trust-domain (the CA's is used) or pass --dir of the `{given}` PKI")]
    DomainMismatch {
        /// The domain asked for.
        given: TrustDomain,
        /// The CA's domain.
        ca: TrustDomain,
        /// The CA certificate.
        path: PathBuf,
    },
    /// An extra gateway host name is not a valid DNS name or IP address.
    #[error("`{0}` is not a valid DNS name or IP address for the gateway certificate; fix --host")]
    InvalidHost(String),
    /// Certificate generation failed (a bug or an exhausted system RNG).
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// What was being generated.
        what: String,
        /// The underlying error.
        source: rcgen::Error,
    },
}

/// What `jisr pki init` should create.
#[derive(Clone, Debug)]
pub struct PkiOptions {
    /// Directory receiving the PEM files (created if missing).
    pub dir: PathBuf,
    /// Trust domain written into every SPIFFE URI.
    pub domain: TrustDomain,
    /// Agencies to issue certificates for.
    pub agencies: Vec<AgencyId>,
    /// Id of the gateway node, e.g. `gw-1`.
    pub gateway_node: AgencyId,
    /// Extra DNS names or IP addresses for the gateway certificate.
    pub hosts: Vec<String>,
    /// Replace an existing PKI in `dir`.
    pub force: bool,
}

/// Writes a new CA and the agency and gateway certificates into `opts.dir`.
///
/// Files: `ca.crt`, `ca.key`, `<agency>.crt`/`.key` for each agency and
/// `gateway.crt`/`.key`. Key files are written with mode 0600. Refuses to
/// replace an existing `ca.crt` unless `opts.force`. Returns the written paths.
pub fn init(opts: &PkiOptions) -> Result<Vec<PathBuf>, PkiError> {
    let dir = &opts.dir;
    let ca_crt = dir.join("ca.crt");
    if ca_crt.exists() && !opts.force {
        return Err(PkiError::Exists(ca_crt));
    }
    fs::create_dir_all(dir).map_err(|source| PkiError::CreateDir {
        path: dir.clone(),
        source,
    })?;
    let mut hosts = Vec::with_capacity(opts.hosts.len());
    for host in &opts.hosts {
        hosts.push(host_san(host)?);
    }

    let ca_key = new_key("the CA key")?;
    let ca_params = ca_params(&format!("Jisr development CA ({})", opts.domain));
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(gen_err("the CA certificate"))?;
    let mut written = vec![
        write_file(&ca_crt, ca_cert.pem().as_bytes(), false)?,
        write_file(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes(), true)?,
    ];
    let issuer = Issuer::new(ca_params, ca_key);

    for agency in &opts.agencies {
        written.extend(write_agency(
            dir,
            &opts.domain,
            agency,
            &issuer,
            valid_from_now(),
        )?);
    }

    written.extend(gateway::write_gateway(
        dir,
        "gateway",
        (&opts.domain, &opts.gateway_node),
        hosts,
        &issuer,
    )?);
    Ok(written)
}

/// Loads `dir/ca.crt` and `dir/ca.key` and issues a certificate for one more
/// agency into `dir` (replacing an earlier one for the same agency, which is
/// how a certificate is renewed), in the CA's trust domain (`domain`, if
/// given, must match it: see [`resolve_domain`]). Returns the written paths.
pub fn issue_agency(
    dir: &Path,
    domain: Option<&TrustDomain>,
    agency: &AgencyId,
) -> Result<Vec<PathBuf>, PkiError> {
    issue_agency_for(dir, domain, agency, Duration::days(LEAF_DAYS))
}

/// [`issue_agency`] valid for `validity` from now (a renewal due soon, in
/// the tests of the console's expiry warnings).
pub fn issue_agency_for(
    dir: &Path,
    domain: Option<&TrustDomain>,
    agency: &AgencyId,
    validity: Duration,
) -> Result<Vec<PathBuf>, PkiError> {
    let issuer = load_ca(dir)?;
    let domain = resolve_domain(dir, domain)?;
    let (not_before, _) = valid_from_now();
    let until = OffsetDateTime::now_utc() + validity;
    write_agency(dir, &domain, agency, &issuer, (not_before, until))
}

fn write_agency(
    dir: &Path,
    domain: &TrustDomain,
    agency: &AgencyId,
    issuer: &Issuer<'_, KeyPair>,
    validity: (OffsetDateTime, OffsetDateTime),
) -> Result<Vec<PathBuf>, PkiError> {
    let uri = domain.agency_uri(agency);
    let params = leaf_params(
        &format!("{agency} (Jisr agency)"),
        Some(&uri),
        local_sans(),
        validity,
    )?;
    write_leaf(dir, agency.as_str(), &params, issuer)
}

/// Reads the CA of an existing PKI so it can sign more certificates.
pub(crate) fn load_ca(dir: &Path) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let crt_path = dir.join("ca.crt");
    let key_path = dir.join("ca.key");
    let read = |path: &Path| {
        fs::read_to_string(path).map_err(|source| PkiError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let crt = read(&crt_path)?;
    let key = read(&key_path)?;
    let key = KeyPair::from_pem(&key).map_err(|e| PkiError::BadCa {
        path: key_path.clone(),
        detail: e.to_string(),
    })?;
    Issuer::from_ca_cert_pem(&crt, key).map_err(|e| PkiError::BadCa {
        path: crt_path,
        detail: e.to_string(),
    })
}

/// Parameters of a CA certificate with common name `cn`.
pub(crate) fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let (not_before, _) = valid_from_now();
    params.not_before = not_before;
    params.not_after = not_before + Duration::days(CA_DAYS);
    params.serial_number = Some(random_serial());
    params
}

/// Parameters of an identity (leaf) certificate usable for both TLS client
/// and server authentication.
pub(crate) fn leaf_params(
    cn: &str,
    spiffe_uri: Option<&str>,
    mut sans: Vec<SanType>,
    (not_before, not_after): (OffsetDateTime, OffsetDateTime),
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(cn);
    if let Some(uri) = spiffe_uri {
        let uri = uri
            .to_owned()
            .try_into()
            .map_err(gen_err(&format!("the SAN {uri}")))?;
        sans.insert(0, SanType::URI(uri));
    }
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial());
    Ok(params)
}

/// `localhost`, `127.0.0.1` and `::1`: every node of the demo runs locally.
pub(crate) fn local_sans() -> Vec<SanType> {
    let mut sans = Vec::with_capacity(3);
    // "localhost" is plain ASCII, so the conversion cannot fail.
    if let Ok(name) = "localhost".try_into() {
        sans.push(SanType::DnsName(name));
    }
    sans.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    sans.push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    sans
}

pub(crate) fn host_san(host: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let valid = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
        });
    match host.to_owned().try_into() {
        Ok(name) if valid => Ok(SanType::DnsName(name)),
        _ => Err(PkiError::InvalidHost(host.to_owned())),
    }
}

/// Issues `params` with a fresh key and writes `<stem>.crt` and `<stem>.key`.
pub(crate) fn write_leaf(
    dir: &Path,
    stem: &str,
    params: &CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<Vec<PathBuf>, PkiError> {
    let what = format!("the certificate {stem}.crt");
    let key = new_key(&what)?;
    let cert = params.signed_by(&key, issuer).map_err(gen_err(&what))?;
    Ok(vec![
        write_file(
            &dir.join(format!("{stem}.crt")),
            cert.pem().as_bytes(),
            false,
        )?,
        write_file(
            &dir.join(format!("{stem}.key")),
            key.serialize_pem().as_bytes(),
            true,
        )?,
    ])
}

/// A fresh ECDSA P-256 key.
pub(crate) fn new_key(what: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err(what))
}

pub(crate) fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Generate {
        what: what.to_owned(),
        source,
    }
}

/// Validity starting an hour ago (tolerates clock skew between machines).
pub(crate) fn valid_from_now() -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - Duration::hours(1), now + Duration::days(LEAF_DAYS))
}

/// A positive 16-byte random serial number (RFC 5280 allows up to 20).
pub(crate) fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Keep the DER INTEGER positive and of full length.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Jisr");
    dn.push(DnType::CommonName, cn);
    dn
}

/// Writes `contents` to `path`; private keys get mode 0600 before any byte
/// is written, so they are never readable by others.
pub(crate) fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<PathBuf, PkiError> {
    let err = |source| PkiError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // `mode` only applies to new files; tighten a file being replaced too.
        if path.exists() {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(err)?;
        }
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(err)?;
    file.write_all(contents).map_err(err)?;
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests;
