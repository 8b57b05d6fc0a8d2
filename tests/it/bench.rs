//! `jisr bench` against its own network (sample providers and a gateway as
//! separate processes): every call succeeds and the numbers are sane. No
//! timing assertions: a benchmark is not a timed test.

use crate::support::*;
use std::path::Path;

#[test]
fn bench_runs_real_calls_through_its_own_network() {
    let doc = json_output(jisr().args([
        "bench",
        "--requests",
        "200",
        "--connections",
        "2",
        "--in-flight",
        "8",
        "--warmup",
        "0s",
        "--json",
    ]));
    let jisr = &doc["jisr"];
    assert_eq!(jisr["errors"]["total"], 0, "{doc:#}");
    assert_eq!(jisr["requests"], 200, "{doc:#}");
    assert!(jisr["requests_per_s"].as_f64().unwrap() > 0.0, "{doc:#}");
    let p = &jisr["latency_us"];
    let [p50, p90, p99, p999] = ["p50", "p90", "p99", "p999"].map(|k| p[k].as_u64().unwrap());
    assert!(
        0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= p999,
        "{doc:#}"
    );
    // The gateway ran as its own process, so its memory is known.
    let rss = jisr["gateway"]["peak_rss_mb"].as_f64().unwrap();
    assert!(rss > 1.0 && rss < 1024.0, "{doc:#}");
    assert!(doc.get("nginx").is_none() && doc.get("direct").is_none());
    // The audit directory's fdatasync was probed around the rounds.
    for when in ["before", "after"] {
        let probe = &doc["load"]["fsync_probe_us"][when];
        let (p50, p99) = (probe["p50"].as_u64(), probe["p99"].as_u64());
        assert!(
            matches!((p50, p99), (Some(a), Some(b)) if a <= b),
            "{doc:#}"
        );
    }
}

#[test]
fn bench_compare_runs_real_calls_through_haproxy() {
    // nginx is left out: it is not among what scripts/test.sh installs.
    let doc = json_output(
        jisr()
            .args(["bench", "--compare", "--no-nginx", "--rounds", "1"])
            .args([
                "--requests",
                "100",
                "--connections",
                "1",
                "--in-flight",
                "4",
            ])
            .args(["--warmup", "0s", "--json"]),
    );
    // Every call went through haproxy (its own process, listening on its
    // own port) and came back answered by a provider.
    let haproxy = &doc["haproxy"];
    assert_eq!(haproxy["requests"], 100, "{doc:#}");
    assert_eq!(haproxy["errors"]["total"], 0, "{doc:#}");
    assert_eq!(haproxy["gateway"]["processes"], 1, "{doc:#}");
    assert!(haproxy["gateway"]["peak_rss_mb"].as_f64().unwrap() > 0.0);
    for name in ["direct", "jisr"] {
        assert_eq!(doc[name]["requests"], 100, "{doc:#}");
        assert_eq!(doc[name]["errors"]["total"], 0, "{doc:#}");
    }
    let ratio = doc["ratios"]["jisr_over_haproxy_throughput"].as_f64();
    assert!(ratio.is_some_and(|r| r > 0.0), "{doc:#}");
    assert!(doc["ratios"]["haproxy_added_p50_us"].is_i64(), "{doc:#}");
    assert_eq!(doc["skipped"]["nginx"], "left out (--no-nginx)", "{doc:#}");
    assert!(doc.get("nginx").is_none(), "{doc:#}");
    // The machine is named, so figures are not compared across CPUs blindly.
    assert!(doc["load"]["cpu"]
        .as_str()
        .is_some_and(|c| c.contains("cores")));
}

/// Runs `jisr bench` (40 calls, 1 connection × 4) against a named gateway;
/// returns the error count on its `jisr` line and the whole output.
fn bench_gateway(addr: &str, pki: &Path, extra: &[&str]) -> (Option<String>, String) {
    let out = jisr()
        .args(["bench", "--requests", "40", "--connections", "1"])
        .args(["--in-flight", "4", "--warmup", "0s", "--gateway", addr])
        .arg("--pki")
        .arg(pki)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("jisr "))
        .unwrap_or_else(|| panic!("no jisr line:\n{stdout}"));
    let errors = line.split_whitespace().nth(6).map(str::to_owned);
    (errors, stdout)
}

#[test]
fn bench_prints_a_table_for_a_named_gateway() {
    // Spawned: the bench names the gateway's process.
    let network = Network::spawn("", "");
    let (errors, stdout) = bench_gateway(&network.addr, &network.pki.dir, &[]);
    assert_eq!(errors.as_deref(), Some("0"), "{stdout}");
    // Found through its listening socket: the gateway is a local process.
    let pid = network.gateway.child.as_ref().unwrap().id();
    assert!(
        stdout.contains(&format!("gateway: process {pid}")),
        "{stdout}"
    );
    // A named gateway's audit disk is not the bench's: no probe line.
    assert!(!stdout.contains("fdatasync"), "{stdout}");
}

#[test]
fn bench_against_the_demo_grants_consents_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut demo, dir) = demo_serve(tmp.path());
    let addr = wait_for_file(&dir.join("gateway.addr"), &demo);
    let bench = |extra: &[&str]| bench_gateway(&addr, &dir.join("pki"), extra);
    // The demo's education rules rest on consent: without one, every call
    // is refused, and the report says why.
    let (errors, stdout) = bench(&[]);
    assert_eq!(errors.as_deref(), Some("40"), "{stdout}");
    assert!(stdout.contains("CONSENT_REQUIRED"), "{stdout}");
    // Granted through the portal first, every call goes through.
    let (errors, stdout) = bench(&["--consents-as", "portal"]);
    assert_eq!(errors.as_deref(), Some("0"), "{stdout}");
    let status = demo.terminate();
    assert!(status.success(), "{status:?}\n{}", demo.logs());
}

#[test]
fn consent_bench_measures_every_store_against_the_redis_floor() {
    let rows: Vec<serde_json::Value> = serde_json::from_value(json_output(
        jisr().args(["consent", "bench", "--count", "300", "--json"]),
    ))
    .unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    // redis-server is installed by the test command, so the Redis rows are there.
    assert_eq!(rows.len(), 5, "{names:?}");
    assert!(names[0].starts_with("embedded, unlimited"), "{names:?}");
    assert!(names[4].starts_with("redis PING"), "{names:?}");
    for row in &rows {
        let [p50, p99, p999, max] =
            ["p50_us", "p99_us", "p999_us", "max_us"].map(|k| row[k].as_f64().unwrap());
        assert!(
            0.0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max * 1.01,
            "{row}"
        );
        assert!(row["count"].as_u64().unwrap() >= 30, "{row}");
    }
}

/// `jisr audit bench-replicas` at a tiny size: three in-process replicas
/// over mutual TLS, every merged answer holds each replica's entries of the
/// citizen, the single-replica one only its own. No timing assertions.
#[test]
fn the_replicas_bench_merges_every_replicas_history() {
    let out = jisr()
        .args(["audit", "bench-replicas", "--entries", "1024"])
        .args(["--citizens", "64", "--queries", "20", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(doc["replicas"], 3, "{doc:#}");
    assert_eq!(doc["entries_per_replica"], 1024, "{doc:#}");
    // 1024 entries over 64 citizens: 16 each per replica, 48 merged.
    assert_eq!(doc["single"]["mean_results"], 16.0, "{doc:#}");
    assert_eq!(doc["merged"]["mean_results"], 48.0, "{doc:#}");
    for figure in ["merged", "single"] {
        let f = &doc[figure];
        let (p50, p99) = (f["p50_us"].as_u64().unwrap(), f["p99_us"].as_u64().unwrap());
        assert!(0 < p50 && p50 <= p99, "{doc:#}");
    }
}

/// `jisr bench --faults` with a few calls per fault: every call of each
/// fault gets that fault's refusal, the figures are there and ordered, and
/// the untouched route answered throughout. (How fast the refusals come is
/// what the benchmark reports, not what this test asserts.)
#[test]
fn bench_faults_refuses_every_call_with_the_faults_code_and_reports_its_times() {
    let doc = json_output(
        jisr()
            .args(["bench", "--faults", "--requests", "6", "--in-flight", "3"])
            .arg("--json"),
    );
    assert_eq!(doc["calls"], 6, "{doc:#}");
    assert_eq!(doc["in_flight"], 3, "{doc:#}");
    assert_eq!(
        doc["build"],
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let faults = doc["faults"].as_array().expect("a list of faults");
    let expected = [
        ("hung provider", "Unavailable/PROVIDER_TIMEOUT", Some(300)),
        ("open breaker", "Unavailable/PROVIDER_UNAVAILABLE", None),
        (
            "hung Redis (SIGSTOP)",
            "Unavailable/CONSENT_UNAVAILABLE",
            Some(250),
        ),
        ("killed Redis", "Unavailable/CONSENT_UNAVAILABLE", Some(250)),
    ];
    assert_eq!(faults.len(), expected.len(), "{doc:#}");
    for (fault, (name, code, bound)) in faults.iter().zip(expected) {
        assert_eq!(fault["fault"], name, "{doc:#}");
        assert_eq!(fault["expected"], code, "{fault:#}");
        assert_eq!(fault["configured_ms"].as_u64(), bound, "{fault:#}");
        // All six calls got the fault's refusal, and nothing else.
        let outcomes = fault["outcomes"].as_object().expect("outcomes");
        assert_eq!(outcomes.len(), 1, "{fault:#}");
        assert_eq!(outcomes[code], 6, "{fault:#}");
        let t = &fault["time_to_refusal_ms"];
        let [p50, p99, max] = ["p50", "p99", "max"].map(|k| t[k].as_f64().unwrap());
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{fault:#}");
        // A route's timeout is a floor (a refusal before it would be a bug).
        if name == "hung provider" {
            assert!(p50 >= 300.0, "{fault:#}");
        }
        let other = &fault["other_route"];
        assert_eq!(other["failed"], 0, "{fault:#}");
        assert!(other["ok"].as_u64().unwrap() >= 1, "{fault:#}");
        assert!(other["p50_ms"].as_f64().unwrap() > 0.0, "{fault:#}");
    }
}
