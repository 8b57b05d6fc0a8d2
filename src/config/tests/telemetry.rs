//! The OTLP TLS keys: `otlp_ca`, `otlp_cert`, `otlp_key`. Their files are
//! read when the configuration loads, so each problem is located at its key.

use super::*;
use crate::identity::{AgencyId, TrustDomain};

/// A PKI (`ca.crt`, `gateway.crt`/`.key`, `tax.crt`/`.key`) in a temporary
/// directory.
fn pki() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::tools::pki::init(&crate::tools::pki::PkiOptions {
        dir: dir.path().to_owned(),
        domain: TrustDomain::parse("interop.gov.ma").unwrap(),
        agencies: vec![AgencyId::parse("tax").unwrap()],
        gateway_node: AgencyId::parse("gw-1").unwrap(),
        hosts: Vec::new(),
        force: false,
    })
    .unwrap();
    dir
}

/// BASE with a `[telemetry]` section of `lines` (its first line is line 30).
fn section(lines: &str) -> String {
    format!("{BASE}\n[telemetry]\n{lines}\n")
}

#[test]
fn an_https_endpoint_trusts_the_node_ca_unless_otlp_ca_is_given() {
    let config = Config::from_toml(
        &section("otlp_endpoint = \"https://collector.interop.gov.ma:4317\""),
        Path::new(FILE),
    )
    .unwrap();
    let tls = config.telemetry.otlp_tls.unwrap();
    assert_eq!(tls.ca, config.tls.ca);
    assert_eq!(tls.client, None);

    let pki = pki();
    let p = |name: &str| pki.path().join(name).display().to_string();
    let text = section(&format!(
        "otlp_endpoint = \"https://127.0.0.1:4317\"\notlp_ca = \"{}\"\notlp_cert = \"{}\"\notlp_key = \"{}\"",
        p("ca.crt"),
        p("gateway.crt"),
        p("gateway.key")
    ));
    let tls = Config::from_toml(&text, Path::new(FILE))
        .unwrap()
        .telemetry
        .otlp_tls
        .unwrap();
    assert_eq!(tls.ca, pki.path().join("ca.crt"));
    assert_eq!(
        tls.client,
        Some((
            pki.path().join("gateway.crt"),
            pki.path().join("gateway.key")
        ))
    );
    // A plaintext endpoint has no TLS.
    let config = Config::from_toml(
        &section("otlp_endpoint = \"http://127.0.0.1:4317\""),
        Path::new(FILE),
    )
    .unwrap();
    assert_eq!(config.telemetry.otlp_tls, None);
}

#[test]
fn tls_file_errors_are_located_at_their_key_with_a_fix() {
    let pki = pki();
    let p = |name: &str| pki.path().join(name).display().to_string();
    std::fs::write(pki.path().join("garbage.pem"), "not a certificate\n").unwrap();
    std::fs::write(
        pki.path().join("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let https = "otlp_endpoint = \"https://127.0.0.1:4317\"";
    one_error(
        &section(&format!("{https}\notlp_ca = \"{}\"", p("missing.crt"))),
        31,
        "cannot read `otlp_ca` file",
        "check the path",
    );
    one_error(
        &section(&format!("{https}\notlp_ca = \"{}\"", p("garbage.pem"))),
        31,
        "holds no PEM certificate",
        "CA that issued the collector's certificate",
    );
    one_error(
        &section(&format!("{https}\notlp_ca = \"{}\"", p("broken.pem"))),
        31,
        "is not valid PEM",
        "CA that issued the collector's certificate",
    );
    one_error(
        &section(&format!(
            "{https}\notlp_cert = \"{}\"\notlp_key = \"{}\"",
            p("gateway.crt"),
            p("tax.key")
        )),
        32,
        "does not match the certificate in `otlp_cert`",
        "key file written together with that certificate",
    );
    one_error(
        &section(&format!(
            "{https}\notlp_cert = \"{}\"\notlp_key = \"{}\"",
            p("gateway.crt"),
            p("gateway.crt")
        )),
        32,
        "holds no PEM private key",
        "private key of the certificate in `otlp_cert`",
    );
    one_error(
        &section(&format!("{https}\notlp_cert = \"{}\"", p("gateway.crt"))),
        31,
        "`otlp_cert` is set without `otlp_key`",
        "add `otlp_key`",
    );
    one_error(
        &section(&format!(
            "otlp_endpoint = \"http://127.0.0.1:4317\"\notlp_ca = \"{}\"",
            p("ca.crt")
        )),
        31,
        "`otlp_ca` applies only to an `https://` `otlp_endpoint`",
        "https://host:4317",
    );
    one_error(
        &section(&format!("otlp_ca = \"{}\"", p("ca.crt"))),
        30,
        "`otlp_ca` is set but [telemetry] has no `otlp_endpoint`",
        "otlp_endpoint = \"https://host:4317\"",
    );
    one_error(
        &section(&format!("{https}\notlp_key = \"\"")),
        31,
        "`otlp_key` in [telemetry] is an empty path",
        "give a path",
    );
}
