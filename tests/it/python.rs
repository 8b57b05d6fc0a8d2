//! An agency written in Python, onboarded as a newcomer would: its contract
//! is the one `docs/onboarding.md` shows, its back-end and its consumer are
//! grpcio programs (`tests/it/python/`) using stubs generated from that
//! contract by grpc_tools, `jisr agency add` adds it, `jisr probe` checks
//! the connection, and calls go through a real gateway over mutual TLS on
//! both legs, on a legal basis and with the citizen's consent.
//!
//! grpcio and grpcio-tools come from PyPI into `target/venv`, which
//! `scripts/test.sh` makes.

use crate::docs::repo;
use crate::support::onboard::{arg, onboard_fund};
use crate::support::proc::Proc;
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    let python = repo().join("target/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run the test command, scripts/test.sh (README), which installs \
         grpcio and grpcio-tools from PyPI into target/venv",
        python.display()
    );
    python
}

fn script(name: &str) -> PathBuf {
    repo().join("tests/it/python").join(name)
}

/// Runs the Python consumer; one JSON value per call it made.
async fn consume(
    generated: &Path,
    pki: &Pki,
    gateway: &str,
    consent: Option<&str>,
) -> Vec<serde_json::Value> {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(script("coverage_consumer.py"))
        .arg(generated)
        .arg(&pki.dir)
        .arg(gateway)
        .args(consent);
    let out = cmd.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_provider_and_consumer_onboard_and_call_through_the_gateway() {
    let pki = Pki::new();
    // `agency add` (the coverage on a law), then stubs from the contract,
    // then the fund's back-end with the certificate the command issued.
    let (config, upstream) = onboard_fund(&pki);

    // Stubs from the contract, with the annotations it imports.
    let generated = pki.root().join("generated");
    std::fs::create_dir_all(&generated).unwrap();
    let out = Command::new(python())
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(pki.root().join("contracts"))
        .arg("-I")
        .arg(proto_dir())
        .arg(format!("--python_out={}", generated.display()))
        .arg(format!("--grpc_python_out={}", generated.display()))
        .args([
            "agencies/socialsecurity/v1/coverage.proto",
            "jisr/annotations.proto",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "protoc: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let provider = Proc::spawn(
        "python-provider",
        Command::new(python())
            .arg(script("coverage_provider.py"))
            .arg(&generated)
            .arg(&pki.dir)
            .arg(&upstream)
            .arg(DOMAIN),
    );
    provider.wait_log("listening");

    // The operator's rules: the coverage on a law (added above), the care
    // on consent.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[[rule]]\nconsumer = \"education\"\nmethods = [\"ma.socialsecurity.v1.Coverage/ListReimbursements\"]\n\
         purposes = [\"school-grant\"]\nbasis = \"consent\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let gateway = Gateway::start("gateway", &config);
    let addr = gateway.addr.clone();

    let mut probe = tokio::process::Command::from(crate::support::proc::jisr());
    probe.args([
        "probe",
        "--gateway",
        &addr,
        "--pki",
        arg(&pki.dir),
        "--as",
        "education",
    ]);
    let out = probe.output().await.unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    // (The node's sample providers are not running here: their lines FAIL.)
    assert!(printed.contains("ok    accepted"), "{printed}");
    assert!(
        !printed.contains("FAIL  provider     `social-security`"),
        "{printed}"
    );
    assert!(printed.contains("ma.socialsecurity.v1.Coverage/ListReimbursements  (provider social-security, basis consent; send jisr-purpose: school-grant, jisr-consent)"), "{printed}");
    assert!(
        printed.contains(&format!(
            "ok    provider     `social-security` at {upstream}: the gateway reaches it"
        )),
        "{printed}"
    );

    // Without a consent: the coverage (a law) is answered, the care is not.
    let calls = consume(&generated, &pki, &addr, None).await;
    assert_eq!(calls[0]["covered"], true, "{calls:?}");
    assert_eq!(calls[0]["scheme"], "AMO for education", "{calls:?}");
    assert_eq!(calls[0]["valid_until"], "AB123456:2027-12-31", "{calls:?}");
    assert_eq!(calls[0]["basis"], "law:65-00", "{calls:?}");
    assert_eq!(calls[1]["code"], "PERMISSION_DENIED", "{calls:?}");
    assert!(
        calls[1]["message"]
            .as_str()
            .unwrap()
            .contains("jisr-consent"),
        "{calls:?}"
    );

    // The citizen consents (through the portal); the care is then answered.
    let out = crate::support::proc::jisr()
        .args([
            "consent",
            "grant",
            "--gateway",
            &addr,
            "--pki",
            arg(&pki.dir),
        ])
        .args([
            "--subject",
            "AB123456",
            "--consumer",
            "education",
            "--purpose",
            "school-grant",
        ])
        .args([
            "--method",
            "ma.socialsecurity.v1.Coverage/ListReimbursements",
            "--valid-for",
            "1h",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let consent = stdout.split_whitespace().next().unwrap().to_owned();
    let calls = consume(&generated, &pki, &addr, Some(&consent)).await;
    let items = calls[1]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{calls:?}"));
    assert_eq!(items.len(), 3, "{calls:?}");
    assert_eq!(items[0][0], "AB123456 to education", "{calls:?}");
    assert_eq!(items[2][1], 3000, "{calls:?}");
}
