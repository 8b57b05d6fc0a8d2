//! `jisr probe`, run as an agency runs it: the `jisr` binary, with the
//! agency's certificate files, against a real gateway over mutual TLS. Each
//! way a connection goes wrong is shown as its own `FAIL` with the fix.

use crate::support::echo::Echo;
use crate::support::proc::jisr;
use crate::support::*;
use std::path::Path;

/// Runs `jisr probe --gateway ADDR --pki DIR --as AGENCY extra…`; returns
/// whether it passed, and what it printed.
async fn probe(addr: &str, pki: &Path, agency: &str, extra: &[&str]) -> (bool, String) {
    let mut cmd = jisr();
    cmd.args(["probe", "--gateway", addr, "--pki"])
        .arg(pki)
        .args(["--as", agency])
        .args(extra);
    let out = tokio::process::Command::from(cmd).output().await.unwrap();
    outcome(&out)
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn path(pki: &Pki, file: &str) -> String {
    pki.dir.join(file).display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_shows_what_an_agency_may_call_and_which_provider_is_down() {
    let pki = Pki::new();
    let civil = Echo::start(&pki.dir, "civil-status").await;
    let tax = Echo::start(&pki.dir, "tax").await;
    let health = closed_port();
    let up = Upstreams {
        civil_status: civil.addr.to_string(),
        tax: tax.addr.to_string(),
        health: health.clone(),
    };
    let (_gateway, addr) = start_gateway(&pki, "gateway", &gateway_config(&pki, &up, "", ""));

    let (passed, text) = probe(&addr, &pki.dir, "tax", &[]).await;
    assert!(passed, "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    for line in [
        "ok    certificate  spiffe://interop.gov.ma/agency/tax, valid until",
        "ok    tls          the gateway is spiffe://interop.gov.ma/gateway/gw-1 (TLS 1.3",
        "ok    accepted     the gateway accepted the certificate and knows agency `tax`",
        "ok    call         grpc.health.v1.Health/Check: SERVING",
        "ok    rules        node gw-1 lets `tax` call 2 method(s):",
        "ma.civilstatus.v1.CivilStatus/GetFamilyRecord  (provider civil-status, basis law:cgi-art-22; send jisr-purpose: tax-household)",
        &format!("ok    provider     `civil-status` at {}: the gateway reaches it", civil.addr),
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }

    // `education` may call all three providers; health's back-end is down.
    let (passed, text) = probe(&addr, &pki.dir, "education", &[]).await;
    assert!(!passed, "{text}");
    assert!(
        text.contains(&format!(
            "ok    provider     `tax` at {}: the gateway reaches it",
            tax.addr
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("FAIL  provider     `health` at {health}: the gateway cannot reach it: cannot connect to {health}")),
        "{text}"
    );
    assert!(
        text.contains("fix: calls to it fail with PROVIDER_UNAVAILABLE"),
        "{text}"
    );

    // `cndp` is declared (an auditor) but no rule lets it call a method.
    let (passed, text) = probe(&addr, &pki.dir, "cndp", &[]).await;
    assert!(!passed, "{text}");
    assert!(text.contains("ok    accepted"), "{text}");
    assert!(
        text.contains("FAIL  rules        no rule on node gw-1 lets `cndp` call anything"),
        "{text}"
    );
    assert!(
        text.contains("fix: ask the node's operator for a [[rule]] with consumer = \"cndp\""),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_names_each_reason_a_connection_is_refused() {
    let pki = Pki::new();
    let up = Upstreams {
        civil_status: closed_port(),
        tax: closed_port(),
        health: closed_port(),
    };
    let (gateway, addr) = spawn_gateway(&pki, "gateway", &gateway_config(&pki, &up, "", ""));

    // An expired certificate: seen offline, then refused by the gateway.
    let (crt, key) = (path(&pki, "expired.crt"), path(&pki, "expired.key"));
    let (passed, text) = probe(
        &addr,
        &pki.dir,
        "education",
        &["--cert", &crt, "--key", &key],
    )
    .await;
    assert!(!passed, "{text}");
    assert!(
        text.contains("FAIL  certificate  `spiffe://interop.gov.ma/agency/education` expired on"),
        "{text}"
    );
    assert!(
        text.contains("FAIL  accepted     the gateway refused the certificate: it expired"),
        "{text}"
    );
    assert!(
        text.contains(
            "fix: ask the node's operator to renew it (`jisr agency add education --force`"
        ),
        "{text}"
    );
    gateway.wait_log("certificate expired");

    // A certificate from another CA.
    let (crt, key) = (path(&pki, "untrusted.crt"), path(&pki, "untrusted.key"));
    let (passed, text) = probe(
        &addr,
        &pki.dir,
        "education",
        &["--cert", &crt, "--key", &key],
    )
    .await;
    assert!(!passed, "{text}");
    assert!(text.contains("ok    tls"), "{text}");
    assert!(text.contains("FAIL  accepted     the gateway does not trust the CA that issued the certificate: it was issued by a different CA"), "{text}");

    // The agency trusts the wrong CA: the gateway's certificate fails.
    let ca = path(&pki, "untrusted-ca.crt");
    let (passed, text) = probe(&addr, &pki.dir, "education", &["--ca", &ca]).await;
    assert!(!passed, "{text}");
    assert!(
        text.contains(&format!(
            "FAIL  tls          the gateway's certificate is not issued by the CA in {ca}"
        )),
        "{text}"
    );
    assert!(
        text.contains("fix: use the platform CA the node's operator gave you"),
        "{text}"
    );

    // A valid certificate of an agency the configuration does not declare.
    let issued = jisr()
        .args(["pki", "issue", "--dir"])
        .arg(&pki.dir)
        .args(["--agency", "family-fund"])
        .output()
        .unwrap();
    assert!(issued.status.success(), "{issued:?}");
    let (passed, text) = probe(&addr, &pki.dir, "family-fund", &[]).await;
    assert!(!passed, "{text}");
    assert!(
        text.contains("ok    certificate  spiffe://interop.gov.ma/agency/family-fund"),
        "{text}"
    );
    assert!(text.contains("FAIL  accepted     the gateway accepted the certificate's chain, then closed the connection: agency `family-fund` is not declared on this node"), "{text}");
    assert!(
        text.contains("fix: ask the node's operator to declare it: `jisr agency add family-fund"),
        "{text}"
    );
    gateway.wait_log("the configuration does not declare it");

    // Nothing listening at the address.
    let nowhere = closed_port();
    let (passed, text) = probe(&nowhere, &pki.dir, "education", &[]).await;
    assert!(!passed, "{text}");
    assert!(
        text.contains(&format!("FAIL  tls          cannot connect to {nowhere}")),
        "{text}"
    );
}
