use super::*;
use crate::identity::{IdentityError, PeerIdentity};

fn td() -> TrustDomain {
    TrustDomain::parse("interop.gov.ma").unwrap()
}

fn id(s: &str) -> AgencyId {
    AgencyId::parse(s).unwrap()
}

fn options(dir: &Path) -> PkiOptions {
    PkiOptions {
        dir: dir.to_owned(),
        domain: td(),
        agencies: vec![id("civil-status"), id("tax")],
        gateway_node: id("gw-1"),
        hosts: vec!["jisr.example".into(), "10.0.0.7".into()],
        force: false,
    }
}

fn identity_of(path: &Path) -> Result<PeerIdentity, IdentityError> {
    let pem = std::fs::read_to_string(path).unwrap();
    let der = pem_der(&pem);
    PeerIdentity::from_cert_der(&der, &td())
}

#[test]
fn init_writes_the_files_with_the_right_identities() {
    let dir = tempfile::tempdir().unwrap();
    let written = init(&options(dir.path())).unwrap();
    for name in [
        "ca.crt",
        "ca.key",
        "civil-status.crt",
        "civil-status.key",
        "tax.crt",
        "tax.key",
        "gateway.crt",
        "gateway.key",
    ] {
        let path = dir.path().join(name);
        assert!(written.contains(&path), "{name} not reported");
        assert!(path.is_file(), "{name} not written");
    }
    assert_eq!(
        identity_of(&dir.path().join("civil-status.crt")),
        Ok(PeerIdentity::Agency(id("civil-status")))
    );
    assert_eq!(
        identity_of(&dir.path().join("gateway.crt")),
        Ok(PeerIdentity::Gateway(id("gw-1")))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "tax.key", "gateway.key"] {
            let mode = std::fs::metadata(dir.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
    }
}

#[test]
fn gateway_certificate_names_the_extra_hosts() {
    use x509_parser::extensions::GeneralName;
    let dir = tempfile::tempdir().unwrap();
    init(&options(dir.path())).unwrap();
    let der = pem_der(&std::fs::read_to_string(dir.path().join("gateway.crt")).unwrap());
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(n) => dns.push(n.to_string()),
            GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
            _ => {}
        }
    }
    assert_eq!(dns, ["localhost", "jisr.example"]);
    assert!(ips.contains(&vec![127, 0, 0, 1]), "{ips:?}");
    assert!(ips.contains(&vec![10, 0, 0, 7]), "{ips:?}");
    assert_eq!(ips.len(), 3, "{ips:?}");
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    init(&opts).unwrap();
    let err = init(&opts).unwrap_err();
    assert!(matches!(err, PkiError::Exists(_)), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    opts.force = true;
    init(&opts).unwrap();
}

#[test]
fn issue_agency_uses_the_existing_ca() {
    let dir = tempfile::tempdir().unwrap();
    init(&options(dir.path())).unwrap();
    let written = issue_agency(dir.path(), Some(&td()), &id("health")).unwrap();
    assert_eq!(written.len(), 2);
    assert_eq!(
        identity_of(&dir.path().join("health.crt")),
        Ok(PeerIdentity::Agency(id("health")))
    );
    let empty = tempfile::tempdir().unwrap();
    let err = issue_agency(empty.path(), None, &id("health")).unwrap_err();
    assert!(err.to_string().contains("jisr pki init"), "{err}");
}

#[test]
fn issuing_reads_the_trust_domain_from_the_ca_and_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    init(&options(dir.path())).unwrap();
    issue_agency(dir.path(), None, &id("health")).unwrap();
    assert_eq!(
        identity_of(&dir.path().join("health.crt")),
        Ok(PeerIdentity::Agency(id("health")))
    );
    let typo = TrustDomain::parse("interop.gouv.ma").unwrap();
    let err = issue_agency(dir.path(), Some(&typo), &id("social")).unwrap_err();
    assert!(matches!(err, PkiError::DomainMismatch { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("`interop.gov.ma`, not `interop.gouv.ma`"),
        "{err}"
    );
    assert!(!dir.path().join("social.crt").exists());
    let node = id("gw-2");
    assert!(issue_gateway(dir.path(), Some(&typo), &node, &[]).is_err());
    assert!(!dir.path().join("gateway-gw-2.crt").exists());
}

#[test]
fn fixtures_are_written() {
    let dir = tempfile::tempdir().unwrap();
    init(&options(dir.path())).unwrap();
    fixtures(dir.path(), &td()).unwrap();
    assert_eq!(
        identity_of(&dir.path().join("no-san.crt")),
        Err(IdentityError::MissingSpiffeId)
    );
    assert!(matches!(
        identity_of(&dir.path().join("foreign.crt")),
        Err(IdentityError::ForeignTrustDomain { .. })
    ));
    assert!(dir.path().join("ca.crl").is_file());
}

#[test]
fn bad_hosts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.hosts = vec!["not a host".into()];
    assert!(matches!(init(&opts), Err(PkiError::InvalidHost(_))));
}

fn pem_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}
