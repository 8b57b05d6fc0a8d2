//! `jisr probe --config FILE --provider AGENCY`, run as a node's operator
//! runs it: the `jisr` binary, with the gateway's configuration and
//! certificate, against real sample providers (`jisr sample-provider`
//! processes) over mutual TLS. The sample passes every step; each way an
//! instance goes wrong is its own `FAIL` with the fix.

use crate::docs::copy_dir;
use crate::support::proc::jisr;
use crate::support::*;
use std::path::Path;

/// Runs `jisr probe --config FILE --provider AGENCY`; whether it passed,
/// and what it printed.
async fn probe(config: &Path, agency: &str) -> (bool, String) {
    let mut cmd = jisr();
    cmd.args(["probe", "--config"])
        .arg(config)
        .args(["--provider", agency]);
    let out = tokio::process::Command::from(cmd).output().await.unwrap();
    outcome(&out)
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The standard test configuration with `civil-status` at `instances`.
fn config(pki: &Pki, name: &str, instances: &[&str]) -> std::path::PathBuf {
    let up = Upstreams {
        civil_status: "civil-status.invalid:1".into(),
        tax: closed_port(),
        health: closed_port(),
    };
    let list: Vec<String> = instances.iter().map(|i| format!("\"{i}\"")).collect();
    let text = gateway_config(pki, &up, "", "").replace(
        "upstream = \"civil-status.invalid:1\"",
        &format!("upstream = [{}]", list.join(", ")),
    );
    write_config(pki, name, &text)
}

/// The lines of `text` from `instance ADDR` to the next instance.
fn instance<'a>(text: &'a str, addr: &str) -> &'a str {
    let start = text
        .find(&format!("instance {addr}\n"))
        .unwrap_or_else(|| panic!("no instance {addr} in:\n{text}"));
    let rest = &text[start + 1..];
    let end = rest.find("\ninstance ").map_or(rest.len(), |e| e + 1);
    &text[start..start + 1 + end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_probe_passes_the_sample_and_names_each_broken_instance() {
    let pki = Pki::new();
    let (_good, good) = start_provider(&pki, "civil-status");
    let path = config(&pki, "good", &[&good]);
    let (passed, text) = probe(&path, "civil-status").await;
    assert!(passed, "{text}");
    for line in [
        "probing provider `civil-status` from node gw-1 (spiffe://interop.gov.ma/gateway/gw-1, ",
        &format!("ok    tcp          connected to {good}"),
        &format!(
            "ok    tls          TLS 1.3, the provider's certificate chains to {}",
            pki.dir.join("ca.crt").display()
        ),
        "ok    identity     the provider is spiffe://interop.gov.ma/agency/civil-status",
        "ok    alpn         h2 (gRPC over HTTP/2)",
        "ok    accepted     the provider accepted the gateway's certificate (spiffe://interop.gov.ma/gateway/gw-1)",
        "ok    health       grpc.health.v1.Health/Check: SERVING",
        "ok    contract     server reflection offers the contract's 3 method(s) of ma.civilstatus.v1.CivilStatus",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(!text.contains("FAIL") && !text.contains("warn"), "{text}");

    // Three broken instances beside the good one: a back-end with a
    // certificate from another development CA (same CA name), one with
    // another agency's certificate, and an address nobody listens on.
    let other = Pki::new();
    let (_foreign, foreign) = start_provider(&other, "civil-status");
    let (_tax, wrong_id) = start_provider(&pki, "tax");
    let closed = closed_port();
    let path = config(&pki, "broken", &[&good, &foreign, &wrong_id, &closed]);
    let (passed, text) = probe(&path, "civil-status").await;
    assert!(!passed, "{text}");
    assert!(!instance(&text, &good).contains("FAIL"), "{text}");

    let part = instance(&text, &foreign);
    assert!(
        part.contains(&format!("ok    tcp          connected to {foreign}")),
        "{part}"
    );
    assert!(part.contains(&format!("FAIL  tls          the provider's certificate is issued by a different CA than this node's `[tls] ca` ({})", pki.dir.join("ca.crt").display())), "{part}");
    assert!(
        part.contains("fix: the back-end must present a certificate issued from"),
        "{part}"
    );
    assert!(
        part.contains("`jisr agency add civil-status --force` issues one"),
        "{part}"
    );

    let part = instance(&text, &wrong_id);
    assert!(part.contains("ok    tls"), "{part}");
    assert!(part.contains(&format!("FAIL  identity     the back-end at {wrong_id} presents spiffe://interop.gov.ma/agency/tax, but the configuration expects spiffe://interop.gov.ma/agency/civil-status there")), "{part}");
    assert!(
        part.contains("fix: give that back-end `civil-status`'s certificate"),
        "{part}"
    );

    let part = instance(&text, &closed);
    assert!(
        part.contains(&format!("FAIL  tcp          cannot connect to {closed}: ")),
        "{part}"
    );
    assert!(
        part.contains(&format!(
            "fix: check that `civil-status`'s back-end is running and listening on {closed}"
        )),
        "{part}"
    );
}

/// The configuration's contract has a method the deployed back-end does
/// not (a newer contract than the provider runs): its reflection says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_probe_names_a_contract_method_the_provider_lacks() {
    let pki = Pki::new();
    let (_good, good) = start_provider(&pki, "civil-status");
    let proto = pki.root().join("proto");
    copy_dir(&proto_dir().join("agencies"), &proto.join("agencies"));
    let contract = proto.join("agencies/civilstatus/v1/civilstatus.proto");
    let text = std::fs::read_to_string(&contract).unwrap();
    let newer = text.replacen(
        "  rpc GetBirthRecord(",
        "  rpc GetDeathRecord(GetBirthRecordRequest) returns (BirthRecord);\n  rpc GetBirthRecord(",
        1,
    );
    assert_ne!(newer, text, "test bug: the contract changed");
    std::fs::write(&contract, newer).unwrap();
    let config = std::fs::read_to_string(config(&pki, "newer", &[&good])).unwrap();
    let config = config.replace(
        &format!("include = [\"{}\"]", proto_dir().display()),
        &format!("include = [\"{}\"]", proto.display()),
    );
    let path = write_config(&pki, "newer", &config);

    let (passed, text) = probe(&path, "civil-status").await;
    assert!(!passed, "{text}");
    assert!(
        text.contains("ok    health       grpc.health.v1.Health/Check: SERVING"),
        "{text}"
    );
    assert!(text.contains("FAIL  contract     the provider does not implement `ma.civilstatus.v1.CivilStatus/GetDeathRecord` of its contract"), "{text}");
    assert!(
        text.contains("fix: deploy the back-end version that implements the contract"),
        "{text}"
    );
    assert_eq!(text.matches("FAIL").count(), 1, "{text}");
}
