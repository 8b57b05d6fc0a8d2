//! `jisr agency add` with a CA `jisr pki init` did not make: an existing
//! platform CA, made here by openssl (scripts/test.sh installs it). Its
//! trust domain is read from its SPIFFE URI SAN; a CA that does not say
//! its domain is refused with what is missing and how to pass it, and
//! nothing is written.

use crate::docs::runner::free_addr;
use crate::support::proc::{jisr, text, Proc};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A CA made by openssl in `dir/pki` (`ca.crt`, `ca.key`), with extra
/// `-addext` options, and the gateway certificate `jisr pki issue` makes
/// from it (given `domain` when the CA does not say it).
fn openssl_ca(dir: &Path, extra: &[&str], domain: Option<&str>) {
    let pki = dir.join("pki");
    openssl_ca_cert(&pki, extra);
    let mut issue = jisr();
    issue.args(["pki", "issue", "--dir", "pki", "--gateway-node", "gw-1"]);
    if let Some(domain) = domain {
        issue.args(["--trust-domain", domain]);
    }
    let out = issue.current_dir(dir).output().unwrap();
    assert!(out.status.success(), "pki issue: {out:?}");
    std::fs::rename(pki.join("gateway-gw-1.crt"), pki.join("gateway.crt")).unwrap();
    std::fs::rename(pki.join("gateway-gw-1.key"), pki.join("gateway.key")).unwrap();
    let config = format!(
        "[node]\nid = \"gw-1\"\ntrust_domain = \"interop.gov.ma\"\nlisten = \"{}\"\n\n\
         [tls]\nca = \"pki/ca.crt\"\ncert = \"pki/gateway.crt\"\nkey = \"pki/gateway.key\"\n\n\
         [catalogue]\ninclude = [\"proto\"]\n\n[audit]\ndir = \"audit\"\n",
        free_addr()
    );
    std::fs::write(dir.join("jisr.toml"), config).unwrap();
}

/// An openssl-made CA (`ca.crt`, `ca.key`) in `pki`, with `extra` options.
fn openssl_ca_cert(pki: &Path, extra: &[&str]) {
    std::fs::create_dir_all(pki).unwrap();
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "30",
        "-subj",
        "/O=Platform/CN=Platform interoperability CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ];
    args.extend(extra);
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(pki)
        .output()
        .expect("openssl (scripts/test.sh installs it)");
    assert!(out.status.success(), "openssl: {out:?}");
}

fn add(dir: &Path, extra: &[&str]) -> Output {
    jisr()
        .args(["agency", "add", "education", "--config", "jisr.toml"])
        .args(extra)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The SPIFFE id in a PEM certificate.
fn uri_of(crt: &Path) -> String {
    let pem = std::fs::read(crt).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .find_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn agency_add_reads_the_trust_domain_of_an_openssl_ca_and_the_gateway_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    openssl_ca(
        root,
        &["-addext", "subjectAltName=URI:spiffe://interop.gov.ma"],
        None,
    );
    let out = add(root, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        uri_of(&root.join("pki/education.crt")),
        "spiffe://interop.gov.ma/agency/education"
    );
    // A real gateway with that CA accepts the certificate.
    accepted_by_a_gateway(root);
}

/// A CA limited by a URI name constraint (the form the SPIFFE X.509
/// profile suggests for a CA limited to one trust domain) cannot serve:
/// rustls-webpki does not process URI name constraints and fails closed,
/// so a gateway would refuse every certificate under it with
/// `NameConstraintViolation`. Issuing from it (`pki issue`, and `agency
/// add` through the same check of the CA) is refused up front, with or
/// without `--trust-domain`, saying why and what CA to use; nothing is
/// written.
#[test]
fn a_ca_with_a_uri_name_constraint_is_refused_before_anything_is_issued() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    openssl_ca_cert(
        &pki,
        &[
            "-addext",
            "nameConstraints=critical,permitted;URI:interop.gov.ma",
        ],
    );
    for extra in [&[][..], &["--trust-domain", "interop.gov.ma"][..]] {
        let out = jisr()
            .args(["pki", "issue", "--dir", "pki", "--gateway-node", "gw-1"])
            .args(extra)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{}", text(&out));
        let said = text(&out);
        for needle in [
            "has a URI name constraint (`interop.gov.ma`)",
            "NameConstraintViolation",
            "nothing was issued",
            "`spiffe://<trust domain>` URI subject alternative name",
        ] {
            assert!(said.contains(needle), "{needle:?} not in:\n{said}");
        }
        assert!(!pki.join("gateway-gw-1.crt").exists());
    }
}

/// Starts `jisr serve` on `root/jisr.toml` and probes it as `education`
/// until the gateway has accepted the agency's certificate (20 s at most).
fn accepted_by_a_gateway(root: &Path) {
    let serve = Proc::spawn(
        "serve",
        jisr()
            .args(["serve", "--config", "jisr.toml"])
            .current_dir(root),
    );
    let config = std::fs::read_to_string(root.join("jisr.toml")).unwrap();
    let listen = config
        .lines()
        .find_map(|l| l.strip_prefix("listen = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let probe = jisr()
            .args([
                "probe",
                "--gateway",
                &listen,
                "--pki",
                "pki",
                "--as",
                "education",
            ])
            .current_dir(root)
            .output()
            .unwrap();
        let printed = text(&probe);
        if printed.contains("ok    accepted") {
            assert!(
                printed.contains("ok    call         grpc.health.v1.Health/Check: SERVING"),
                "{printed}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{printed}\n{}", serve.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn agency_add_with_a_ca_that_does_not_say_its_domain_asks_for_it_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    openssl_ca(root, &[], Some("interop.gov.ma"));
    let before = std::fs::read_to_string(root.join("jisr.toml")).unwrap();

    let out = add(root, &[]);
    assert!(!out.status.success());
    let said = text(&out);
    for needle in [
        "cannot read the trust domain from",
        "no `spiffe://<trust domain>` URI subject alternative name",
        "pass --trust-domain interop.gov.ma",
    ] {
        assert!(said.contains(needle), "{needle:?} not in:\n{said}");
    }
    let out = add(root, &["--trust-domain", "other.example"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("is not this node's trust domain `interop.gov.ma`"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(root.join("jisr.toml")).unwrap(),
        before
    );
    assert!(!root.join("pki/education.crt").exists());

    let out = add(root, &["--trust-domain", "interop.gov.ma"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        uri_of(&root.join("pki/education.crt")),
        "spiffe://interop.gov.ma/agency/education"
    );
}
