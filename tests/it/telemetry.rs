//! Telemetry, black-box: `/metrics` counts exchanges under their reason,
//! `/healthz` and `/readyz` say what is wrong, an exchange's span reaches an
//! in-test OTLP collector with its attributes and the caller's span as
//! parent (and the provider gets the exchange's span as its parent), the
//! OTLP metrics carry the same counts, JSON logs hold one line per
//! exchange and never the citizen id.

use crate::routing::{echo_network, spawned_echo_network};
use crate::support::otlp::{attribute, hex, Collector};
use crate::support::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_refused_call_under_its_reason() {
    let (pki, gw, addr, _echos) = echo_network("", "").await;
    let admin = gw.admin.clone();
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let tax = channel(&addr, &pki.files("tax")).await.unwrap();
    for _ in 0..2 {
        let refused = call_raw(
            &tax,
            RawCall::new(VACCINATION, vaccination(CITIZEN), "tax-household"),
        )
        .await;
        assert_eq!(framed_status(refused).1, "ACCESS_DENIED");
    }
    call_raw(
        &education,
        RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
    )
    .await
    .unwrap();

    // Counted before the answer leaves: no wait needed.
    let (status, text) = admin::get(&admin, "/metrics").await;
    assert_eq!(status, 200);
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
            .to_owned()
    };
    assert_eq!(
        line("jisr_exchanges_total{consumer=\"tax\",provider=\"health\",method=\"ma.health.v1.HealthRecords/GetVaccinationRecord\",outcome=\"refused\",reason=\"ACCESS_DENIED\"}"),
        "jisr_exchanges_total{consumer=\"tax\",provider=\"health\",method=\"ma.health.v1.HealthRecords/GetVaccinationRecord\",outcome=\"refused\",reason=\"ACCESS_DENIED\"} 2"
    );
    assert!(line("jisr_exchanges_total{consumer=\"education\",provider=\"civil-status\",method=\"ma.civilstatus.v1.CivilStatus/GetBirthRecord\",outcome=\"allowed\",reason=\"\"}").ends_with(" 1"));
    assert!(line("jisr_exchange_duration_seconds_count{provider=\"health\",method=\"ma.health.v1.HealthRecords/GetVaccinationRecord\",outcome=\"refused\"}").ends_with(" 2"));
    assert!(line("jisr_exchange_duration_seconds_bucket{provider=\"civil-status\",method=\"ma.civilstatus.v1.CivilStatus/GetBirthRecord\",outcome=\"allowed\",le=\"+Inf\"}").ends_with(" 1"));
    // Three entries were made durable, in at least one group commit.
    assert!(line("jisr_audit_entries_total").ends_with(" 3"), "{text}");
    assert!(!line("jisr_audit_fsync_duration_seconds_count").ends_with(" 0"));
    assert_eq!(line("jisr_audit_up"), "jisr_audit_up 1");
    assert_eq!(
        line("jisr_upstream_errors_total{provider=\"civil-status\"}"),
        "jisr_upstream_errors_total{provider=\"civil-status\"} 0"
    );

    // Refused handshakes are counted by reason (the server may count just
    // after the client sees the alert, hence the wait).
    handshake_once(&addr, &pki.files("expired")).await;
    admin::wait_metric(
        &admin,
        "jisr_tls_handshake_failures_total{reason=\"expired\"} 1",
    )
    .await;
    handshake_once(&addr, &pki.files("untrusted")).await;
    admin::wait_metric(
        &admin,
        "jisr_tls_handshake_failures_total{reason=\"unknown_issuer\"} 1",
    )
    .await;
}

/// One TLS handshake with `files`' certificate, then one read (where TLS
/// 1.3 reports the server's refusal of a client certificate). Unlike a
/// tonic channel, it does not reconnect in the background.
async fn handshake_once(addr: &str, files: &jisr::tls::TlsFiles) {
    use jisr::identity::{AgencyId, PeerIdentity, TrustDomain};
    use tokio::io::AsyncReadExt as _;
    let domain = TrustDomain::parse(DOMAIN).unwrap();
    let gateway = PeerIdentity::Gateway(AgencyId::parse("gw-1").unwrap());
    let config = jisr::tls::client_config(files, &domain, gateway).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    if let Ok(mut tls) = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
    {
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await;
        assert!(
            !matches!(read, Ok(Ok(n)) if n > 0),
            "the gateway accepted a refused certificate"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_say_what_they_checked() {
    let (_pki, gw, _addr, _echos) = echo_network("", "").await;
    let admin = gw.admin.clone();
    assert_eq!(
        admin::get(&admin, "/healthz").await,
        (200, "ok\n".to_owned())
    );
    let (status, body) = admin::get(&admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ready\n"), "{body}");
    for check in [
        "certificates: node certificate valid",
        "catalogue: ",
        "audit: ",
    ] {
        assert!(body.contains(check), "{check} missing from:\n{body}");
    }
    assert!(!body.contains("redis"), "no Redis is configured:\n{body}");
    let (status, body) = admin::get(&admin, "/nope").await;
    assert_eq!(status, 404);
    assert!(body.contains("/metrics, /healthz and /readyz"), "{body}");
}

/// The consent store's Redis down narrows what the node serves but does not
/// make it unready: law-based exchanges keep flowing (a load balancer that
/// dropped every replica would refuse those too). Changed in issue 16: a
/// Redis down used to answer 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_redis() {
    use crate::consent::{call, grant, portal, reason_of};
    use crate::consent_redis::{consent_gateway, law_based};
    let mut redis = crate::support::redis_server::Redis::start();
    let (pki, gw, addr, _echos) = consent_gateway(&redis.url()).await;
    let admin = gw.admin.clone();
    let (status, body) = admin::get(&admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ok   consent store: answers"), "{body}");
    admin::wait_metric(&admin, "jisr_consent_store_up 1").await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let mut portal = portal(&addr, &pki).await;
    let hour = Duration::from_secs(3600);
    let id = grant(&mut portal, "AB123456", "school-enrolment", 0, hour).await;

    redis.kill();
    // Polled: readiness shows the background probe's last answer (changed
    // in issue 16: the first /readyz after the kill used to say DOWN).
    let (status, body) = admin::wait_readyz(&admin, "DOWN consent store: ").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ready\n"), "{body}");
    assert!(
        body.contains("DOWN consent store: calls and grants on a consent basis are refused (CONSENT_UNAVAILABLE); law-based exchanges are served; "),
        "{body}"
    );
    admin::wait_metric(&admin, "jisr_consent_store_up 0").await;
    let (_, metrics) = admin::get(&admin, "/metrics").await;
    assert!(metrics.contains("\njisr_ready 1\n"), "{metrics}");
    call_raw(&education, law_based())
        .await
        .expect("a law-based call with Redis down");
    assert_eq!(
        reason_of(&education, call("school-enrolment", "AB123456", Some(&id))).await,
        (tonic::Code::Unavailable, "CONSENT_UNAVAILABLE".into())
    );

    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = admin::get(&admin, "/readyz").await;
        assert_eq!(status, 200, "{body}");
        if body.contains("ok   consent store: answers") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the consent check did not come back up:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin::wait_metric(&admin, "jisr_consent_store_up 1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_span_reaches_the_collector_with_its_attributes_and_parent() {
    let collector = Collector::start().await;
    let pki = Pki::new();
    let cs = echo::Echo::start(&pki.dir, "civil-status").await;
    let health = echo::Echo::start(&pki.dir, "health").await;
    let up = Upstreams {
        civil_status: cs.addr.to_string(),
        tax: "127.0.0.1:9".into(),
        health: health.addr.to_string(),
    };
    let config = format!(
        "{}\n[telemetry]\notlp_endpoint = \"http://{}\"\n",
        gateway_config(&pki, &up, "", ""),
        collector.addr
    );
    // Spawned: the OTLP SDK reads OTEL_* from the process environment.
    let (_gw, addr) = spawn_gateway_env(
        &pki,
        "gateway",
        &config,
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ],
    );
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let call = RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature")
        .with("traceparent", &format!("00-{trace}-{caller_span}-01"))
        .with("jisr-request-id", "req-trace-1")
        .with("jisr-procedure", "bac-2026");
    let (_, md) = call_raw(&education, call).await.unwrap();
    // The provider was called with the exchange's span as parent.
    let sent = md
        .get("x-echo-traceparent")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", trace, "01"),
        "{sent}"
    );
    assert_ne!(
        parts[2], caller_span,
        "the provider must get the gateway's span, not the caller's"
    );

    let span = collector
        .wait_span("of the allowed call", |s| hex(&s.trace_id) == trace)
        .await;
    assert_eq!(hex(&span.parent_span_id), caller_span);
    assert_eq!(hex(&span.span_id), parts[2]);
    assert_eq!(span.name, "ma.civilstatus.v1.CivilStatus/GetBirthRecord");
    assert_eq!(span.kind, 2, "SPAN_KIND_SERVER");
    for (key, value) in [
        ("jisr.consumer", "education"),
        ("jisr.provider", "civil-status"),
        ("jisr.method", BIRTH),
        ("jisr.purpose", "bac-candidature"),
        ("jisr.procedure", "bac-2026"),
        ("jisr.outcome", "allowed"),
        ("jisr.reason", ""),
        ("jisr.request_id", "req-trace-1"),
        ("rpc.system", "grpc"),
        ("rpc.service", "ma.civilstatus.v1.CivilStatus"),
        ("rpc.method", "GetBirthRecord"),
        ("rpc.grpc.status_code", "0"),
    ] {
        assert_eq!(
            attribute(&span.attributes, key).as_deref(),
            Some(value),
            "{key} in {span:#?}"
        );
    }
    assert!(
        !format!("{span:?}").contains(CITIZEN),
        "the citizen id must not be in a span"
    );

    // A refused call without a traceparent starts a trace of its own.
    let tax = channel(&addr, &pki.files("tax")).await.unwrap();
    let refused = call_raw(
        &tax,
        RawCall::new(VACCINATION, vaccination(CITIZEN), "tax-household")
            .with("jisr-request-id", "req-trace-2"),
    )
    .await;
    assert_eq!(framed_status(refused).1, "ACCESS_DENIED");
    let span = collector
        .wait_span("of the refused call", |s| {
            attribute(&s.attributes, "jisr.request_id").as_deref() == Some("req-trace-2")
        })
        .await;
    assert!(span.parent_span_id.is_empty(), "{span:#?}");
    assert_eq!(
        attribute(&span.attributes, "jisr.reason").as_deref(),
        Some("ACCESS_DENIED")
    );
    assert_eq!(
        attribute(&span.attributes, "jisr.outcome").as_deref(),
        Some("refused")
    );
    assert_eq!(
        span.status.as_ref().map(|s| s.code),
        Some(2),
        "STATUS_CODE_ERROR"
    );

    // The same counts arrive as OTLP metrics.
    let refused = collector
        .wait_sum(
            "jisr.exchanges",
            &[
                ("consumer", "tax"),
                ("reason", "ACCESS_DENIED"),
                ("outcome", "refused"),
            ],
        )
        .await;
    assert_eq!(refused, 1);
    collector.wait_sum("jisr.audit.entries", &[]).await;
    drop(education);
    drop(tax);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_line_per_exchange_and_no_citizen_id() {
    let (pki, mut gw, addr, _echos) =
        spawned_echo_network("", "\n[telemetry]\nlog_format = \"json\"\n").await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    call_raw(
        &education,
        RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature").with("jisr-request-id", "req-log-1"),
    )
    .await
    .unwrap();
    let refused = call_raw(
        &education,
        RawCall::new(BIRTH, birth(CITIZEN), "tax-household").with("jisr-request-id", "req-log-2"),
    )
    .await;
    assert_eq!(framed_status(refused).1, "PURPOSE_NOT_ALLOWED");
    gw.wait_log("req-log-2");
    drop(education);
    assert!(gw.terminate().success());
    let logs = gw.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let exchanges: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "exchange")
        .collect();
    assert_eq!(exchanges.len(), 2, "{logs}");
    assert_eq!(exchanges[0]["level"], "INFO");
    assert_eq!(exchanges[0]["fields"]["request_id"], "req-log-1");
    assert_eq!(exchanges[0]["fields"]["outcome"], "allowed");
    assert_eq!(exchanges[1]["fields"]["request_id"], "req-log-2");
    assert_eq!(exchanges[1]["fields"]["reason"], "PURPOSE_NOT_ALLOWED");
    assert!(
        !logs.contains(CITIZEN),
        "a log line holds the citizen id:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serve_writes_the_admin_address() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut demo, dir) = demo_serve(tmp.path());
    let admin = wait_for_file(&dir.join("admin.addr"), &demo);
    wait_for_file(&dir.join("consent.id"), &demo);
    let (status, body) = admin::get(&admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    // The consent grant is an audit entry.
    let line = admin::wait_metric(&admin, "jisr_audit_entries_total").await;
    assert_ne!(line, "jisr_audit_entries_total 0");
    assert!(demo.terminate().success());
}

/// A small ext4 file system on a loop device whose backing file lives on a
/// tiny tmpfs: once the tmpfs is full, every block the file system writes
/// fails, so `fsync` returns EIO — a real failing disk.
struct FailingDisk {
    back: std::path::PathBuf,
    mnt: std::path::PathBuf,
    loop_dev: String,
}

impl FailingDisk {
    fn mount(root: &std::path::Path) -> Self {
        let back = root.join("disk-back");
        let mnt = root.join("disk");
        std::fs::create_dir_all(&back).unwrap();
        std::fs::create_dir_all(&mnt).unwrap();
        let sh = |args: &[&str]| {
            let out = std::process::Command::new(args[0])
                .args(&args[1..])
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        let back_s = back.to_str().unwrap();
        sh(&["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", back_s]);
        let image = back.join("disk.img");
        let image_s = image.to_str().unwrap();
        sh(&["truncate", "-s", "64M", image_s]);
        sh(&[
            "mkfs.ext4",
            "-q",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1",
            image_s,
        ]);
        let loop_dev = sh(&["losetup", "-f", "--show", image_s]);
        let disk = Self {
            back,
            mnt,
            loop_dev,
        };
        sh(&["mount", &disk.loop_dev, disk.mnt.to_str().unwrap()]);
        disk
    }

    /// Fills the tmpfs under the loop device. Every block of the image is
    /// given back first (punched out): the audit log overwrites padding it
    /// wrote ahead, whose blocks would otherwise still be there to take
    /// the writes, so that fsync would keep succeeding.
    fn break_it(&self) {
        let image = self.back.join("disk.img");
        let punched = std::process::Command::new("fallocate")
            .args(["--punch-hole", "--offset", "0", "--length", "64MiB"])
            .arg(&image)
            .status()
            .unwrap();
        assert!(punched.success(), "fallocate --punch-hole failed");
        let filler = self.back.join("filler");
        let _ = std::fs::write(filler, vec![0u8; 16 * 1024 * 1024]);
    }
}

impl Drop for FailingDisk {
    fn drop(&mut self) {
        let run = |args: &[&str]| {
            let _ = std::process::Command::new(args[0])
                .args(&args[1..])
                .output();
        };
        run(&["umount", "-l", self.mnt.to_str().unwrap()]);
        run(&["losetup", "-d", &self.loop_dev]);
        run(&["umount", "-l", self.back.to_str().unwrap()]);
    }
}

/// On a real failing disk. A loop device needs root: `scripts/test.sh` runs
/// this as root; elsewhere it is listed as ignored (audit_faults.rs proves
/// the same with the audit writer's fault hook, without root).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (a loop device); scripts/test.sh runs it as root"]
async fn an_audit_log_stopped_by_an_fsync_failure_makes_the_node_not_ready_as_root() {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    assert!(
        root,
        "this test fails a real disk through a loop device, which needs root: \
         run it as root (scripts/test.sh does when it runs as root)"
    );
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let pki = Pki::new();
    let disk = FailingDisk::mount(pki.root());
    let cs = echo::Echo::start(&pki.dir, "civil-status").await;
    let up = Upstreams {
        civil_status: cs.addr.to_string(),
        tax: "127.0.0.1:9".into(),
        health: "127.0.0.1:9".into(),
    };
    let config = format!(
        "{}\n[audit]\ndir = \"{}/audit\"\n",
        gateway_config(&pki, &up, "", ""),
        disk.mnt.display()
    );
    let (mut gw, addr) = spawn_gateway(&pki, "gateway", &config);
    let admin = admin_addr(&pki, "gateway", &gw);
    let client = channel(&addr, &pki.files("education")).await.unwrap();
    let call = || RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature");
    call_raw(&client, call()).await.unwrap();
    assert_eq!(admin::get(&admin, "/readyz").await.0, 200);
    let health = || async {
        HealthClient::new(client.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    };
    assert_eq!(health().await, 1, "SERVING");

    disk.break_it();
    let mut refused = None;
    for _ in 0..200 {
        if let Err(status) = call_raw(&client, call()).await {
            refused = Some(status);
            break;
        }
    }
    let status = refused.expect("calls kept succeeding on a failing disk");
    let (code, reason) = (status.code(), crate::support::client::reason(&status));
    assert_eq!(
        (code, reason.as_str()),
        (tonic::Code::Unavailable, "AUDIT_UNAVAILABLE")
    );
    gw.wait_log("audit log stopped taking entries");

    let start = std::time::Instant::now();
    loop {
        let (status, body) = admin::get(&admin, "/readyz").await;
        if status == 503 {
            assert!(body.contains("FAIL audit: the audit log stopped"), "{body}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still ready:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin::wait_metric(&admin, "jisr_audit_up 0").await;
    let start = std::time::Instant::now();
    while health().await != 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "grpc.health still SERVING after the audit log stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(client);
    gw.kill();
}

/// A gateway exporting to `collector` over TLS with the `[telemetry]`
/// lines `tls`, whose export runs every 100–200 ms.
fn tls_exporting_gateway(
    pki: &Pki,
    collector: &Collector,
    tls: &str,
    up: &Upstreams,
) -> (Proc, String) {
    let config = format!(
        "{}\n[telemetry]\notlp_endpoint = \"https://{}\"\n{tls}\n",
        gateway_config(pki, up, "", ""),
        collector.addr
    );
    spawn_gateway_env(
        pki,
        "gateway",
        &config,
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ],
    )
}

/// Echo providers for the TLS export tests (tax is unused).
async fn echoes(pki: &Pki) -> (echo::Echo, Upstreams) {
    let cs = echo::Echo::start(&pki.dir, "civil-status").await;
    let up = Upstreams {
        civil_status: cs.addr.to_string(),
        tax: "127.0.0.1:9".into(),
        health: "127.0.0.1:9".into(),
    };
    (cs, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_tls_collector_trusting_the_node_ca_by_default() {
    let pki = Pki::new();
    let (_cs, up) = echoes(&pki).await;
    // A collector certificate from the platform CA (for 127.0.0.1).
    let collector = Collector::start_tls(&pki.files("cndp"), None).await;
    let (gw, addr) = tls_exporting_gateway(&pki, &collector, "", &up);
    gw.wait_log("exporting traces and metrics over OTLP/gRPC");
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let call =
        RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature").with("jisr-request-id", "req-tls-1");
    call_raw(&education, call).await.unwrap();
    collector
        .wait_span("over TLS", |s| {
            attribute(&s.attributes, "jisr.request_id").as_deref() == Some("req-tls-1")
        })
        .await;
    collector.wait_sum("jisr.audit.entries", &[]).await;
    assert_eq!(gw.count_log("OTLP export failed"), 0, "{}", gw.logs());
    drop(education);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_collector_that_requires_a_client_certificate() {
    let pki = Pki::new();
    let (_cs, up) = echoes(&pki).await;
    let ca = pki.dir.join("ca.crt");
    let collector = Collector::start_tls(&pki.files("cndp"), Some(&ca)).await;
    let tls = format!(
        "otlp_ca = \"{0}/ca.crt\"\notlp_cert = \"{0}/gateway.crt\"\notlp_key = \"{0}/gateway.key\"",
        pki.dir.display()
    );
    let (gw, addr) = tls_exporting_gateway(&pki, &collector, &tls, &up);
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let call = RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature")
        .with("jisr-request-id", "req-mtls-1");
    call_raw(&education, call).await.unwrap();
    collector
        .wait_span("over mutual TLS", |s| {
            attribute(&s.attributes, "jisr.request_id").as_deref() == Some("req-mtls-1")
        })
        .await;
    assert_eq!(gw.count_log("OTLP export failed"), 0, "{}", gw.logs());
    drop(education);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_the_otlp_ca_does_not_trust_loses_telemetry_not_calls() {
    let pki = Pki::new();
    let (_cs, up) = echoes(&pki).await;
    let collector = Collector::start_tls(&pki.files("cndp"), None).await;
    // The wrong CA: the collector's certificate is from the platform CA.
    let tls = format!("otlp_ca = \"{}/untrusted-ca.crt\"", pki.dir.display());
    let (gw, addr) = tls_exporting_gateway(&pki, &collector, &tls, &up);
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    for i in 0..3 {
        let call = RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature")
            .with("jisr-request-id", &format!("req-untrusted-{i}"));
        call_raw(&education, call)
            .await
            .expect("telemetry never blocks a call");
    }
    let logs = gw.wait_log("OTLP export failed");
    let line = logs
        .lines()
        .find(|l| l.contains("OTLP export failed"))
        .unwrap();
    assert!(line.contains("otlp_ca"), "{line}");
    assert!(
        line.to_lowercase().contains("certificate"),
        "the cause is not in the log line: {line}"
    );
    assert_eq!(collector.spans(), 0);
    // Logged once per signal, not at every attempt: the exporters try
    // again (each try a connection the collector accepts), the log does not
    // grow with them.
    collector
        .wait_connections(collector.connections() + 6)
        .await;
    assert!(gw.count_log("OTLP export failed") <= 2, "{}", gw.logs());
    drop(education);
}
