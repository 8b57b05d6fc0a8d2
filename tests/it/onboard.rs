//! Onboarding with `jisr agency add`, as a newcomer does it: the command
//! checks the contract, issues the certificate, writes the configuration;
//! the operator fills in the rule it templates; calls then go through a
//! real gateway to the new provider, and the new consumer's certificate is
//! accepted.

use crate::support::echo::Echo;
use crate::support::onboard::{add_fund, arg, node, run};
use crate::support::*;
use std::path::Path;

const COVERAGE: &str = r#"syntax = "proto3";
package ma.socialsecurity.v1;
import "jisr/annotations.proto";
service Coverage {
  option (jisr.default_category) = SOCIAL;
  rpc GetCoverage(GetCoverageRequest) returns (CoverageStatus);
  rpc ListOffices(ListOfficesRequest) returns (Offices) {
    option (jisr.category) = NOT_PERSONAL;
    option (jisr.no_subject) = "lists the fund's office codes";
  }
}
message GetCoverageRequest { string citizen_id = 1 [(jisr.subject) = true]; }
message CoverageStatus { bool covered = 1; }
message ListOfficesRequest {}
message Offices { repeated string codes = 1; }
"#;

/// The operator's part: the commented rule, filled in and uncommented.
fn fill_in_rule(config: &Path, consumer: &str, purpose: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let start = text.find("# [[rule]]").expect("a rule template");
    let mut filled = text[..start].to_owned();
    for line in text[start..].lines().take(5) {
        let line = line.trim_start_matches("# ");
        let line = line.split("     #").next().unwrap().trim_end();
        filled.push_str(
            &line
                .replace("<consumer agency>", consumer)
                .replace("<purpose>", purpose)
                .replace("law:<reference>", "law:65-00"),
        );
        filled.push('\n');
    }
    std::fs::write(config, filled).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agency_add_onboards_a_provider_and_a_consumer_end_to_end() {
    let pki = Pki::new();
    let (config, contract) = node(&pki, COVERAGE);
    let before = std::fs::read_to_string(&config).unwrap();
    // The back-end's address is needed before its certificate exists.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap().to_string();
    let add = [
        "agency",
        "add",
        "social-security",
        "--config",
        arg(&config),
        "--contract",
        arg(&contract),
        "--upstream",
        &upstream,
    ];

    let (out, text) = run(&[&add[..], &["--dry-run"]].concat());
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("contracts = [\"agencies/socialsecurity/v1/coverage.proto\"]"),
        "{text}"
    );
    assert!(text.contains("\"ma.socialsecurity.v1.Coverage/GetCoverage\", \"ma.socialsecurity.v1.Coverage/ListOffices\""), "{text}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
    assert!(!pki.dir.join("social-security.crt").exists());

    let (out, text) = run(&add);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("ok — 7 agencies, 7 methods, 2 rules"),
        "{text}"
    );
    assert!(text.contains("next steps for `social-security`"), "{text}");
    assert!(
        text.contains("spiffe://interop.gov.ma/gateway/<node-id>"),
        "{text}"
    );
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.starts_with(&before), "the existing text is kept");
    let identity = jisr::identity::PeerIdentity::from_cert_der(
        &rustls_pem(&pki.dir.join("social-security.crt")),
        &jisr::identity::TrustDomain::parse(DOMAIN).unwrap(),
    );
    assert_eq!(
        identity,
        Ok(jisr::identity::PeerIdentity::Agency(
            jisr::identity::AgencyId::parse("social-security").unwrap()
        ))
    );
    // Adding it again is refused; the file does not change.
    let (out, text) = run(&add);
    assert!(!out.status.success());
    assert!(text.contains("already declared"), "{text}");

    fill_in_rule(&config, "education", "school-grant");
    let (out, text) = run(&["check-config", arg(&config)]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("3 rules"), "{text}");

    let _backend = Echo::start_on(&pki.dir, "social-security", listener).await;
    let gateway = Gateway::start("gateway", &config);
    let education = channel(&gateway.addr, &pki.files("education"))
        .await
        .unwrap();
    let body = b"\x0a\x08AB123456".to_vec();
    let path = "/ma.socialsecurity.v1.Coverage/GetCoverage";
    let (echoed, md) = call_raw(&education, RawCall::new(path, body.clone(), "school-grant"))
        .await
        .unwrap();
    assert_eq!(&echoed[..], &body[..]);
    assert_eq!(md.get("jisr-basis").unwrap(), "law:65-00");

    // A consumer: a certificate and a declaration, no contract.
    let (out, text) = run(&["agency", "add", "family-fund", "--config", arg(&config)]);
    assert!(out.status.success(), "{text}");
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.contains("# consumer = \"family-fund\""),
        "{written}"
    );
    // Let in once the gateway has reloaded the file (an undeclared agency's
    // connections are refused, issue 19), and refused by the rules only.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (reason, message) = loop {
        // Each try is bounded: a channel whose connections the gateway
        // keeps closing after the handshake may reconnect without end.
        let attempt = async {
            match channel(&gateway.addr, &pki.files("family-fund")).await {
                Ok(family) => {
                    let call = RawCall::new(path, body.clone(), "school-grant");
                    framed_status(call_raw(&family, call).await)
                }
                Err(e) => (tonic::Code::Unavailable, String::new(), e.to_string()),
            }
        };
        let answer = tokio::time::timeout(std::time::Duration::from_secs(5), attempt)
            .await
            .unwrap_or_else(|_| {
                (
                    tonic::Code::Unavailable,
                    String::new(),
                    "no answer in 5 s".into(),
                )
            });
        if !answer.1.is_empty() || std::time::Instant::now() > deadline {
            break (answer.1, answer.2);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(reason, "ACCESS_DENIED", "{message}");
}

#[test]
fn agency_add_writes_nothing_for_a_contract_without_annotations() {
    let pki = Pki::new();
    let bare = COVERAGE
        .replace("  option (jisr.default_category) = SOCIAL;\n", "")
        .replace(" [(jisr.subject) = true]", "");
    let (config, contract) = node(&pki, &bare);
    let before = std::fs::read_to_string(&config).unwrap();
    let (out, text) = add_fund(&config, &contract, "127.0.0.1:9");
    assert_eq!(out.status.code(), Some(64), "{text}");
    let at = format!("{}:4:1: error:", contract.display());
    assert!(text.contains(&at), "{text}");
    assert!(
        text.contains("declares no data category for `GetCoverage`"),
        "{text}"
    );
    assert!(
        text.contains("has no field marked (jisr.subject)"),
        "{text}"
    );
    assert!(text.contains("nothing was written"), "{text}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
    assert!(!pki.dir.join("social-security.crt").exists());
}

#[test]
fn agency_add_refuses_a_ca_the_node_does_not_trust() {
    let pki = Pki::new();
    let (config, _) = node(&pki, COVERAGE);
    let other = tempfile::tempdir().unwrap();
    let (out, text) = run(&[
        "pki",
        "init",
        "--dir",
        arg(other.path()),
        "--trust-domain",
        DOMAIN,
        "--agency",
        "tax",
    ]);
    assert!(out.status.success(), "{text}");
    let (out, text) = run(&[
        "agency",
        "add",
        "family-fund",
        "--config",
        arg(&config),
        "--pki",
        arg(other.path()),
    ]);
    assert!(!out.status.success());
    assert!(
        text.contains("is not among the CAs the node trusts"),
        "{text}"
    );
    assert!(!other.path().join("family-fund.crt").exists());
}

fn rustls_pem(path: &Path) -> rustls::pki_types::CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::from_pem_file(path).unwrap()
}

#[test]
fn check_config_warns_of_consent_asked_for_a_not_personal_method() {
    let pki = Pki::new();
    let (config, contract) = node(&pki, COVERAGE);
    let (out, text) = add_fund(&config, &contract, "127.0.0.1:9");
    assert!(out.status.success(), "{text}");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(
        "\n[[rule]]\nconsumer = \"education\"\nmethods = [\"ma.socialsecurity.v1.Coverage/*\"]\n\
         purposes = [\"school-grant\"]\nbasis = \"consent\"\n",
    );
    std::fs::write(&config, toml).unwrap();
    let (out, text) = run(&["check-config", arg(&config)]);
    assert!(out.status.success(), "a warning, not an error: {text}");
    assert!(
        text.contains("the rule asks for the citizen's consent to call `ma.socialsecurity.v1.Coverage/ListOffices`, which its contract marks NOT_PERSONAL"),
        "{text}"
    );
    assert!(text.contains("give the rule a law basis"), "{text}");
    assert!(!text.contains("Coverage/GetCoverage`, which"), "{text}");
}
