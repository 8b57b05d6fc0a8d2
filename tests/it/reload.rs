//! Hot reload: rules, contracts and certificates change on SIGHUP or when
//! the files change; calls in flight and under load are not lost; an
//! invalid configuration is rejected with its reason and the old one stays.
//! Every gateway here is a `jisr serve` process: reloads follow SIGHUP, and
//! their outcome is read in the process's log.

use crate::routing::spawned_echo_network;
use crate::support::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Code;

/// The purpose and rule a reload adds for a new consumer, `employment`.
const EMPLOYMENT_MAY_READ_BIRTHS: &str = r#"
[[purpose]]
code = "job-seeker"
description = "Job seeker registration"

[[rule]]
consumer = "employment"
methods = ["ma.civilstatus.v1.CivilStatus/GetBirthRecord"]
purposes = ["job-seeker"]
basis = "law:65-99"
"#;

/// A rule letting `health` read birth records.
const HEALTH_RULE: &str = r#"
[[purpose]]
code = "care"
description = "Care"

[[rule]]
consumer = "health"
methods = ["ma.civilstatus.v1.CivilStatus/GetBirthRecord"]
purposes = ["care"]
basis = "law:65-00"
"#;

fn config_path(pki: &Pki) -> std::path::PathBuf {
    pki.root().join("gateway.toml")
}

/// Rewrites the gateway's config file with `f` applied, atomically (as
/// deployment tools do), so a poll never reads half a file.
fn edit(pki: &Pki, f: impl FnOnce(String) -> String) {
    let path = config_path(pki);
    let text = std::fs::read_to_string(&path).unwrap();
    let new = f(text.clone());
    assert_ne!(new, text, "test bug: the edit changed nothing");
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, new).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

/// Waits (bounded) until the log has `n` occurrences of `needle`.
fn wait_count(gw: &Proc, needle: &str, n: usize) {
    let start = Instant::now();
    while gw.count_log(needle) < n {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "fewer than {n} `{needle}` in:\n{}",
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_during_load_loses_no_call() {
    let (pki, gw, addr, echos) = spawned_echo_network("reload_poll_ms = 0", "").await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    // Calls answered either way: what the reloads wait for.
    let made = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (ch, stop, done, made) =
                (education.clone(), stop.clone(), done.clone(), made.clone());
            tokio::spawn(async move {
                let mut errors = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    // Slow answers keep calls in flight across each swap.
                    let call = RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature")
                        .with("x-echo-delay-ms", "30");
                    match call_raw(&ch, call).await {
                        Ok(_) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(status) => errors.push(status),
                    }
                    made.fetch_add(1, Ordering::Relaxed);
                }
                errors
            })
        })
        .collect();
    // Five reloads under load, alternating between two valid configurations:
    // the second adds a rule and a route timeout, and changes civil-status's
    // connections, so its pool (serving the load) is replaced while calls
    // are in flight on the old one.
    let upstream = format!("upstream = \"{}\"", echos[0].addr);
    for i in 1..=5 {
        edit(&pki, |text| {
            if i % 2 == 1 {
                format!("{text}{HEALTH_RULE}\n[[route]]\nmethods = [\"ma.tax.v1.TaxRecords/*\"]\ntimeout_ms = 2000\n")
                    .replacen(&upstream, &format!("{upstream}\nconnections = 3"), 1)
            } else {
                text.split(HEALTH_RULE).next().unwrap().replacen(
                    &format!("{upstream}\nconnections = 3"),
                    &upstream,
                    1,
                )
            }
        });
        gw.hangup();
        wait_count(&gw, "configuration reloaded", i);
        // Calls run on the new state before the next swap: a few answered
        // since the reload (counted, not timed).
        let since = made.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(15);
        while made.load(Ordering::Relaxed) < since + 8 {
            assert!(
                Instant::now() < deadline,
                "no calls answered after reload {i}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut lost = Vec::new();
    for w in workers {
        lost.extend(w.await.unwrap());
    }
    let completed = done.load(Ordering::Relaxed);
    assert!(lost.is_empty(), "calls lost across reloads: {lost:?}");
    assert!(
        completed >= 20,
        "too few calls to mean anything: {completed}"
    );
    assert_eq!(gw.count_log("configuration reload rejected"), 0);
    let opened = gw.count_log("upstream connection opened provider=civil-status");
    eprintln!(
        "{completed} calls across 5 reloads, none lost; civil-status connections opened: {opened}"
    );
    assert!(
        opened > 2,
        "the changed pool was not replaced: {opened} connections opened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_rule_applies_on_sighup() {
    let (pki, gw, addr, _echos) = spawned_echo_network("reload_poll_ms = 0", "").await;
    let health = channel(&addr, &pki.files("health")).await.unwrap();
    let call = || RawCall::new(BIRTH, birth(CITIZEN), "care");
    let (code, reason, _) = framed_status(call_raw(&health, call()).await);
    assert_eq!(
        (code, reason.as_str()),
        (Code::PermissionDenied, "ACCESS_DENIED")
    );
    edit(&pki, |text| text + HEALTH_RULE);
    gw.hangup();
    gw.wait_log("configuration reloaded");
    // The same connection: the new rule applies to the next call.
    call_raw(&health, call())
        .await
        .expect("allowed after reload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_is_rejected_and_the_old_one_stays() {
    let (pki, gw, addr, _echos) = spawned_echo_network("reload_poll_ms = 0", "").await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    // A rule naming a method no contract provides.
    edit(&pki, |text| {
        text + "\n[[rule]]\nconsumer = \"education\"\nmethods = [\"ma.tax.v1.TaxRecords/GetTaxStatuss\"]\npurposes = [\"bac-candidature\"]\nbasis = \"law:55-19\"\n"
    });
    gw.hangup();
    let logs = gw.wait_log("configuration reload rejected");
    assert!(logs.contains("GetTaxStatuss"), "{logs}");
    assert!(
        logs.contains("gateway.toml:"),
        "the reason is located in the file: {logs}"
    );
    call_raw(
        &education,
        RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
    )
    .await
    .expect("the previous configuration still serves");
    // A setting only a restart applies is refused too, and named.
    edit(&pki, |text| {
        text.split("\n[[rule]]\nconsumer = \"education\"\nmethods = [\"ma.tax.v1.TaxRecords/GetTaxStatuss\"]")
            .next()
            .unwrap()
            .replace("drain_timeout_ms = 5000", "drain_timeout_ms = 6000")
    });
    gw.hangup();
    wait_count(&gw, "configuration reload rejected", 2);
    assert!(gw.logs().contains("drain_timeout_ms"), "{}", gw.logs());
    // A route timeout for a method no contract provides.
    edit(&pki, |text| {
        text.replace("drain_timeout_ms = 6000", "drain_timeout_ms = 5000")
            + "\n[[route]]\nmethods = [\"ma.tax.v1.TaxRecords/GetTaxStatu\"]\ntimeout_ms = 100\n"
    });
    gw.hangup();
    wait_count(&gw, "configuration reload rejected", 3);
    assert!(
        gw.logs()
            .contains("the route names `ma.tax.v1.TaxRecords/GetTaxStatu`"),
        "{}",
        gw.logs()
    );
    // Operators see the rejections in the metrics too.
    let admin = admin_addr(&pki, "gateway", &gw);
    assert_eq!(
        admin::wait_metric(&admin, "jisr_config_reload_failures_total").await,
        "jisr_config_reload_failures_total 3"
    );
    assert_eq!(
        admin::wait_metric(&admin, "jisr_config_last_reload_ok").await,
        "jisr_config_last_reload_ok 0"
    );
    call_raw(
        &education,
        RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_is_onboarded_when_the_file_changes() {
    let (pki, gw, addr, echos) = spawned_echo_network("reload_poll_ms = 100", "").await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let body = vaccination(CITIZEN);
    let call = || RawCall::new(VACCINATION, body.clone(), "bac-candidature");
    call_raw(&education, call()).await.expect("served at start");
    let admin = admin_addr(&pki, "gateway", &gw);
    let routable = || async {
        let (_, body) = admin::get(&admin, "/readyz").await;
        body.split(" method(s) routable")
            .next()
            .and_then(|s| s.rsplit(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("{body}"))
    };
    let before = routable().await;
    let contract = "contracts = [\"agencies/health/v1/health.proto\"]";
    let in_rule = ", \"ma.health.v1.HealthRecords/GetVaccinationRecord\"";
    // Off-board health's contract (and the rule entry naming its method),
    // by editing the file only: no signal.
    edit(&pki, |text| {
        text.replacen(contract, "", 1).replacen(in_rule, "", 1)
    });
    wait_count(&gw, "configuration reloaded", 1);
    let (code, reason, _) = framed_status(call_raw(&education, call()).await);
    assert_eq!(
        (code, reason.as_str()),
        (Code::Unimplemented, "UNKNOWN_METHOD")
    );
    // Readiness reports what the reloaded configuration serves.
    assert!(
        routable().await < before,
        "readiness still counts the off-boarded methods"
    );
    // And onboard it again.
    let upstream = format!("upstream = \"{}\"", echos[2].addr);
    edit(&pki, |text| {
        text.replacen(&upstream, &format!("{upstream}\n{contract}"), 1)
            .replacen(
                "\"ma.tax.v1.TaxRecords/GetTaxStatus\"]",
                &format!("\"ma.tax.v1.TaxRecords/GetTaxStatus\"{in_rule}]"),
                1,
            )
    });
    wait_count(&gw, "configuration reloaded", 2);
    call_raw(&education, call())
        .await
        .expect("the contract is served after the reload");
    assert_eq!(
        gw.count_log("configuration reload rejected"),
        0,
        "{}",
        gw.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_added_by_reload_refuses_new_handshakes_of_the_revoked_certificate() {
    let (pki, gw, addr, _echos) = spawned_echo_network("reload_poll_ms = 0", "").await;
    // The revoked fixture is let in while no CRL is configured...
    let before = channel(&addr, &pki.files("revoked")).await.unwrap();
    call_raw(
        &before,
        RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
    )
    .await
    .expect("an education certificate, not yet known to be revoked");
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let key_line = format!("key = \"{}/gateway.key\"", pki.dir.display());
    edit(&pki, |text| {
        text.replacen(
            &key_line,
            &format!("{key_line}\ncrls = [\"{}/ca.crl\"]", pki.dir.display()),
            1,
        )
    });
    gw.hangup();
    gw.wait_log("configuration reloaded");
    // ...and refused at the next handshake once the reload adds the CRL.
    let refused = match channel(&addr, &pki.files("revoked")).await {
        Err(_) => true,
        // With TLS 1.3 the client may finish its side of the handshake
        // before the gateway refuses its certificate; the call then fails.
        // (This identity is allowed the call: any error is the handshake.)
        Ok(ch) => call_raw(&ch, RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"))
            .await
            .is_err(),
    };
    assert!(
        refused,
        "the revoked certificate was let in after the reload"
    );
    gw.wait_log("certificate revoked");
    // Connections opened before the reload keep working; upstream pools
    // were rebuilt with the new TLS files and still reach the providers.
    call_raw(
        &education,
        RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
    )
    .await
    .expect("an open connection survives the reload");
    let fresh = channel(&addr, &pki.files("education")).await.unwrap();
    call_raw(
        &fresh,
        RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
    )
    .await
    .unwrap();
}

/// A contract for the `employment` agency added by a reload.
const EMPLOYMENT_PROTO: &str = r#"syntax = "proto3";
package ma.employment.v1;
import "jisr/annotations.proto";
service Jobs {
  option (jisr.default_category) = SOCIAL;
  rpc GetRegistration(RegistrationRequest) returns (Registration);
}
message RegistrationRequest { string citizen_id = 1 [(jisr.subject) = true]; }
message Registration { bool registered = 1; }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_added_by_reload_is_counted_under_its_own_name() {
    let (pki, gw, addr, _echos) = spawned_echo_network("reload_poll_ms = 0", "").await;
    let admin = admin_addr(&pki, "gateway", &gw);
    let domain = jisr::identity::TrustDomain::parse(DOMAIN).unwrap();
    let agency = jisr::identity::AgencyId::parse("employment").unwrap();
    jisr::tools::pki::issue_agency(&pki.dir, Some(&domain), &agency).unwrap();
    let contracts = pki.root().join("contracts");
    std::fs::create_dir_all(contracts.join("employment/v1")).unwrap();
    std::fs::write(
        contracts.join("employment/v1/employment.proto"),
        EMPLOYMENT_PROTO,
    )
    .unwrap();
    let call = || RawCall::new(BIRTH, birth(CITIZEN), "job-seeker");
    let metric = |consumer: &str, outcome: &str, reason: &str| {
        format!("jisr_exchanges_total{{consumer=\"{consumer}\",provider=\"civil-status\",method=\"ma.civilstatus.v1.CivilStatus/GetBirthRecord\",outcome=\"{outcome}\",reason=\"{reason}\"}}")
    };
    // Not declared yet: its certificate is valid, but its connection is
    // refused before any request (issue 19) and counted.
    // Bounded: the channel may keep reconnecting to a gateway that closes
    // each connection after the handshake; no answer is a refusal too.
    let attempt = async {
        match channel(&addr, &pki.files("employment")).await {
            Ok(employment) => call_raw(&employment, call()).await.is_err(),
            Err(_) => true,
        }
    };
    let refused = tokio::time::timeout(std::time::Duration::from_secs(10), attempt)
        .await
        .unwrap_or(true);
    assert!(refused, "an undeclared agency must not be served");
    // Counted once per connection: the channel opens a new one each time
    // the call finds the last closed, so the count is at least 1.
    let undeclared = "jisr_tls_handshake_failures_total{reason=\"undeclared_agency\"} ";
    let (_, text) = admin::get(&admin, "/metrics").await;
    let count = text
        .lines()
        .find_map(|l| l.strip_prefix(undeclared))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(count.is_some_and(|n| n >= 1), "{text}");
    assert!(!text.contains("employment"), "{text}");

    // The reload declares `employment` as a consumer with a rule, and as a
    // provider (with a contract and an upstream where nothing listens).
    edit(&pki, |text| {
        let include = format!("include = [\"{}\"]", proto_dir().display());
        let text = text.replace(
            &include,
            &format!(
                "include = [\"{}\", \"{}\"]",
                proto_dir().display(),
                contracts.display()
            ),
        );
        text + r#"
[[agency]]
id = "employment"
upstream = "127.0.0.1:9"
contracts = ["employment/v1/employment.proto"]

[[rule]]
consumer = "education"
methods = ["ma.employment.v1.Jobs/GetRegistration"]
purposes = ["bac-candidature"]
basis = "law:55-19"
"# + EMPLOYMENT_MAY_READ_BIRTHS
    });
    gw.hangup();
    gw.wait_log("configuration reloaded");
    let employment = channel(&addr, &pki.files("employment")).await.unwrap();
    for _ in 0..2 {
        call_raw(&employment, call())
            .await
            .expect("allowed after reload");
    }
    let (_, text) = admin::get(&admin, "/metrics").await;
    assert!(
        text.contains(&format!("{} 2", metric("employment", "allowed", ""))),
        "the new agency is not counted under its own name:\n{text}"
    );
    assert!(!text.contains(&metric("other", "allowed", "")), "{text}");
    // What was counted before the reload stays.
    assert!(text.contains(undeclared), "{text}");
    assert!(
        text.contains("jisr_upstream_errors_total{provider=\"employment\"} 0"),
        "the new provider has no upstream-error counter:\n{text}"
    );
    // A call to an unknown method is counted under its name too.
    let unknown = RawCall::new("/ma.nothing.v1.Nothing/Get", birth(CITIZEN), "job-seeker");
    let (_, reason, _) = framed_status(call_raw(&employment, unknown).await);
    assert_eq!(reason, "UNKNOWN_METHOD");
    // The new provider's failures are counted under its name.
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let to_employment = RawCall::new(
        "/ma.employment.v1.Jobs/GetRegistration",
        birth(CITIZEN),
        "bac-candidature",
    );
    let (_, reason, _) = framed_status(call_raw(&education, to_employment).await);
    assert_eq!(reason, "PROVIDER_UNAVAILABLE");
    let (_, text) = admin::get(&admin, "/metrics").await;
    for line in [
        "jisr_exchanges_total{consumer=\"employment\",provider=\"\",method=\"unknown\",outcome=\"refused\",reason=\"UNKNOWN_METHOD\"} 1",
        "jisr_exchanges_total{consumer=\"education\",provider=\"employment\",method=\"ma.employment.v1.Jobs/GetRegistration\",outcome=\"failed\",reason=\"PROVIDER_UNAVAILABLE\"} 1",
        "jisr_upstream_errors_total{provider=\"employment\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_added_by_reload_has_its_own_label_in_otlp_metrics() {
    let collector = crate::support::otlp::Collector::start().await;
    let otlp = format!(
        "\n[telemetry]\notlp_endpoint = \"http://{}\"\n",
        collector.addr
    );
    let pki = Pki::new();
    let cs = echo::Echo::start(&pki.dir, "civil-status").await;
    let up = Upstreams {
        civil_status: cs.addr.to_string(),
        tax: "127.0.0.1:9".into(),
        health: "127.0.0.1:9".into(),
    };
    let config = gateway_config(&pki, &up, "reload_poll_ms = 0", &otlp);
    let (gw, addr) = spawn_gateway_env(
        &pki,
        "gateway",
        &config,
        &[("OTEL_METRIC_EXPORT_INTERVAL", "200")],
    );
    let domain = jisr::identity::TrustDomain::parse(DOMAIN).unwrap();
    let agency = jisr::identity::AgencyId::parse("employment").unwrap();
    jisr::tools::pki::issue_agency(&pki.dir, Some(&domain), &agency).unwrap();
    edit(&pki, |text| {
        text + "\n[[agency]]\nid = \"employment\"\n" + EMPLOYMENT_MAY_READ_BIRTHS
    });
    gw.hangup();
    gw.wait_log("configuration reloaded");
    let employment = channel(&addr, &pki.files("employment")).await.unwrap();
    call_raw(
        &employment,
        RawCall::new(BIRTH, birth(CITIZEN), "job-seeker"),
    )
    .await
    .expect("allowed after reload");
    let allowed = collector
        .wait_sum(
            "jisr.exchanges",
            &[("consumer", "employment"), ("outcome", "allowed")],
        )
        .await;
    assert_eq!(allowed, 1);
    drop(employment);
}
