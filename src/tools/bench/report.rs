//! Turning measurements into the table and the JSON document: percentiles
//! from the HDR histograms, throughput, the proxy's CPU and memory, and the
//! ratios between targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::disk::Fsync;
use super::load::Outcome;
use super::procs::ProcStats;

/// Latency percentiles, µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Percentiles {
    pub(crate) p50: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) p999: u64,
}

impl Percentiles {
    /// The percentiles of `h` (all zero when it is empty).
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        // Each value is the highest equivalent of its bucket, so a reported
        // percentile is never lower than the true one.
        let at = |q: f64| h.highest_equivalent(h.value_at_quantile(q));
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
        }
    }
}

/// One target's line of the report.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    /// `direct`, `jisr`, `nginx` or `haproxy`.
    pub(crate) name: &'static str,
    /// Successful calls.
    pub(crate) ok: u64,
    /// Successful calls per second of measured time.
    pub(crate) requests_per_s: f64,
    /// Latency of the successful calls.
    pub(crate) latency: Percentiles,
    /// Failed calls by `Code/reason`.
    pub(crate) errors: BTreeMap<String, u64>,
    /// The proxy's CPU time and peak RSS, when it is a process we can see.
    pub(crate) proxy: Option<ProcStats>,
    /// Says what `proxy` measured when that is not obvious.
    pub(crate) note: Option<String>,
}

impl Summary {
    /// Summarises merged rounds; `proxy` is the CPU spent during them.
    pub(crate) fn new(name: &'static str, outcome: &Outcome, proxy: Option<ProcStats>) -> Self {
        let ok = outcome.latency.len();
        let secs = outcome.elapsed.as_secs_f64();
        Self {
            name,
            ok,
            requests_per_s: if secs > 0.0 { ok as f64 / secs } else { 0.0 },
            latency: Percentiles::of(&outcome.latency),
            errors: outcome
                .errors
                .iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect(),
            proxy,
            note: None,
        }
    }

    /// Failed calls, all reasons together.
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The proxy's CPU time per successful call, µs.
    pub(super) fn cpu_us_per_call(&self) -> Option<f64> {
        let proxy = self.proxy.as_ref()?;
        (self.ok > 0).then(|| proxy.cpu.as_secs_f64() * 1e6 / self.ok as f64)
    }

    fn to_json(&self) -> Value {
        let mut value = json!({
            "requests": self.ok,
            "requests_per_s": round(self.requests_per_s, 1),
            "latency_us": {
                "p50": self.latency.p50,
                "p90": self.latency.p90,
                "p99": self.latency.p99,
                "p999": self.latency.p999,
            },
            "errors": {
                "total": self.error_count(),
                "by_reason": self.errors,
            },
        });
        if let Some(proxy) = &self.proxy {
            value["gateway"] = json!({
                "cpu_s": round(proxy.cpu.as_secs_f64(), 3),
                "cpu_us_per_request": self.cpu_us_per_call().map(|c| round(c, 1)),
                "peak_rss_mb": round(proxy.peak_rss_kb as f64 / 1024.0, 1),
                "processes": proxy.processes,
            });
        }
        if let Some(note) = &self.note {
            value["note"] = json!(note);
        }
        value
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// How the load was shaped, for the header and the JSON.
#[derive(Debug, Clone)]
pub(crate) struct LoadLine {
    pub(crate) connections: usize,
    pub(crate) in_flight: usize,
    /// "10s per round" or "200 requests per round".
    pub(crate) amount: String,
    pub(crate) rounds: u32,
    pub(crate) rate: Option<f64>,
    /// The machine's CPU model and core count, so figures from different
    /// machines are not compared as if alike.
    pub(crate) cpu: Option<String>,
    /// The audit disk's `fdatasync` latency before and after the rounds
    /// (own network only).
    pub(crate) fsync: [Option<Fsync>; 2],
}

/// The whole report: the load, one summary per target, and targets that
/// could not be measured with the reason.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) load: LoadLine,
    pub(crate) targets: Vec<Summary>,
    pub(crate) skipped: Vec<(&'static str, String)>,
}

/// Ratios between Jisr and the other targets.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Ratios {
    pub(crate) jisr_over_nginx: Option<f64>,
    pub(crate) jisr_over_haproxy: Option<f64>,
    pub(crate) jisr_over_direct: Option<f64>,
    /// p50 added over calling the provider directly, µs (may be negative).
    pub(crate) jisr_added_p50_us: Option<i64>,
    pub(crate) nginx_added_p50_us: Option<i64>,
    pub(crate) haproxy_added_p50_us: Option<i64>,
}

impl Report {
    pub(super) fn get(&self, name: &str) -> Option<&Summary> {
        self.targets.iter().find(|t| t.name == name)
    }

    pub(crate) fn ratios(&self) -> Ratios {
        let (direct, jisr) = (self.get("direct"), self.get("jisr"));
        let (nginx, haproxy) = (self.get("nginx"), self.get("haproxy"));
        let over = |a: Option<&Summary>, b: Option<&Summary>| {
            let (a, b) = (a?, b?);
            (b.requests_per_s > 0.0).then(|| a.requests_per_s / b.requests_per_s)
        };
        let added = |t: Option<&Summary>| {
            let (t, d) = (t?, direct?);
            Some(t.latency.p50 as i64 - d.latency.p50 as i64)
        };
        Ratios {
            jisr_over_nginx: over(jisr, nginx),
            jisr_over_haproxy: over(jisr, haproxy),
            jisr_over_direct: over(jisr, direct),
            jisr_added_p50_us: added(jisr),
            nginx_added_p50_us: added(nginx),
            haproxy_added_p50_us: added(haproxy),
        }
    }

    /// The report as a table, with ratios and error details.
    pub(crate) fn table(&self) -> String {
        let mut out = self.load_line();
        self.write_rows(&mut out);
        self.write_ratios(&mut out);
        for t in &self.targets {
            for (reason, n) in &t.errors {
                let _ = writeln!(out, "{}: {n} × {reason}", t.name);
            }
            if let Some(note) = &t.note {
                let _ = writeln!(out, "{}: {note}", t.name);
            }
        }
        out
    }

    /// What load was applied, and the disk's fsync time when measured.
    fn load_line(&self) -> String {
        let load = &self.load;
        let mut out = format!(
            "load: {} connections × {} in flight, {}, {} round{}{}\n\n",
            load.connections,
            load.in_flight,
            load.amount,
            load.rounds,
            if load.rounds == 1 { "" } else { "s" },
            load.rate
                .map(|r| format!(", rate {r}/s"))
                .unwrap_or_default(),
        );
        if let Some(cpu) = &load.cpu {
            out.insert_str(out.len() - 1, &format!("cpu: {cpu}\n"));
        }
        if let Some(line) = fsync_line(&load.fsync) {
            out.insert_str(out.len() - 1, &line);
        }
        out
    }

    /// One row per target measured, then the targets skipped and why.
    fn write_rows(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "{:<8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8} {:>10} {:>8}",
            "target",
            "req/s",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "p99.9 µs",
            "errors",
            "cpu s",
            "cpu µs/req",
            "peak MB"
        );
        for t in &self.targets {
            let dash = || "-".to_owned();
            let (cpu, per, rss) = match &t.proxy {
                Some(p) => (
                    format!("{:.2}", p.cpu.as_secs_f64()),
                    t.cpu_us_per_call().map_or_else(dash, |c| format!("{c:.1}")),
                    format!("{:.1}", p.peak_rss_kb as f64 / 1024.0),
                ),
                None => (dash(), dash(), dash()),
            };
            let _ = writeln!(
                out,
                "{:<8} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8} {:>10} {:>8}",
                t.name,
                t.requests_per_s,
                t.latency.p50,
                t.latency.p90,
                t.latency.p99,
                t.latency.p999,
                t.error_count(),
                cpu,
                per,
                rss
            );
        }
        for (name, why) in &self.skipped {
            let _ = writeln!(out, "{name:<8} skipped: {why}");
        }
    }

    fn write_ratios(&self, out: &mut String) {
        let ratios = self.ratios();
        let mut lines = Vec::new();
        if let Some(r) = ratios.jisr_over_nginx {
            lines.push(format!("Jisr/nginx throughput {r:.2}×"));
        }
        if let Some(r) = ratios.jisr_over_haproxy {
            lines.push(format!("Jisr/HAProxy throughput {r:.2}×"));
        }
        if let Some(r) = ratios.jisr_over_direct {
            lines.push(format!("Jisr/direct throughput {r:.2}×"));
        }
        if let Some(us) = ratios.jisr_added_p50_us {
            lines.push(format!("p50 added over direct: Jisr {us:+} µs"));
        }
        if let Some(us) = ratios.nginx_added_p50_us {
            lines.push(format!("nginx {us:+} µs"));
        }
        if let Some(us) = ratios.haproxy_added_p50_us {
            lines.push(format!("HAProxy {us:+} µs"));
        }
        if !lines.is_empty() {
            let _ = writeln!(out, "\n{}", lines.join(", "));
        }
    }

    /// The report as JSON: one object per target under its name.
    pub(crate) fn json(&self) -> Value {
        let load = &self.load;
        let mut doc = json!({
            "load": {
                "connections": load.connections,
                "in_flight_per_connection": load.in_flight,
                "amount": load.amount,
                "rounds": load.rounds,
                "rate_per_s": load.rate,
                "cpu": load.cpu,
            },
        });
        let probe = |f: &Option<Fsync>| f.map(|f| json!({"p50": f.p50_us, "p99": f.p99_us}));
        if load.fsync.iter().any(Option::is_some) {
            doc["load"]["fsync_probe_us"] = json!({
                "before": probe(&load.fsync[0]),
                "after": probe(&load.fsync[1]),
            });
        }
        for t in &self.targets {
            doc[t.name] = t.to_json();
        }
        let ratios = self.ratios();
        doc["ratios"] = json!({
            "jisr_over_nginx_throughput": ratios.jisr_over_nginx.map(|r| round(r, 3)),
            "jisr_over_haproxy_throughput": ratios.jisr_over_haproxy.map(|r| round(r, 3)),
            "jisr_over_direct_throughput": ratios.jisr_over_direct.map(|r| round(r, 3)),
            "jisr_added_p50_us": ratios.jisr_added_p50_us,
            "nginx_added_p50_us": ratios.nginx_added_p50_us,
            "haproxy_added_p50_us": ratios.haproxy_added_p50_us,
        });
        if !self.skipped.is_empty() {
            doc["skipped"] = self
                .skipped
                .iter()
                .map(|(name, why)| (name.to_string(), json!(why)))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        doc
    }
}

/// The line saying how fast the audit disk synced around the rounds.
fn fsync_line(fsync: &[Option<Fsync>; 2]) -> Option<String> {
    if fsync.iter().all(Option::is_none) {
        return None;
    }
    let show = |f: &Option<Fsync>| {
        f.map_or_else(
            || "unknown".to_owned(),
            |f| format!("{} / {}", f.p50_us, f.p99_us),
        )
    };
    Some(format!(
        "disk (audit log's directory): fdatasync p50 / p99 µs {} before the rounds, {} after; every answer through Jisr waits for one, and a busy disk (other processes' writes) slows it\n",
        show(&fsync[0]),
        show(&fsync[1])
    ))
}

/// "10s" or "1.5s" for a duration given on the command line.
pub(crate) fn seconds(d: Duration) -> String {
    format!("{}s", round(d.as_secs_f64(), 3))
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::load::ErrorKey;
    use super::*;

    pub(in crate::tools::bench) fn outcome(
        latencies: impl IntoIterator<Item = u64>,
        secs: u64,
    ) -> Outcome {
        let mut o = Outcome::empty();
        for us in latencies {
            o.latency.record(us).unwrap();
        }
        o.elapsed = Duration::from_secs(secs);
        o
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let o = outcome(1..=10_000, 1);
        let p = Percentiles::of(&o.latency);
        // Three significant digits: within 0.1 % above the exact value.
        let near = |got: u64, want: u64| got >= want && got <= want + want / 1000 + 1;
        assert!(near(p.p50, 5_000), "{p:?}");
        assert!(near(p.p90, 9_000), "{p:?}");
        assert!(near(p.p99, 9_900), "{p:?}");
        assert!(near(p.p999, 9_990), "{p:?}");
        assert_eq!(
            Percentiles::of(&Outcome::empty().latency),
            Percentiles::default()
        );
    }

    #[test]
    fn percentiles_see_the_tail() {
        // 999 fast calls and one stall: only p99.9 sees it.
        let o = outcome(std::iter::repeat_n(100, 998).chain([50_000, 50_000]), 1);
        let p = Percentiles::of(&o.latency);
        assert_eq!((p.p50, p.p99), (100, 100));
        assert!(p.p999 >= 50_000, "{p:?}");
    }

    /// direct 4,000 calls at 1 ms, Jisr 3,000 at 1.5 ms (2 refused; 1.5 s
    /// of CPU, 20 MB), nginx 2,000 at 3 ms, each over 1 s.
    pub(in crate::tools::bench) fn report() -> Report {
        let direct = Summary::new(
            "direct",
            &outcome(std::iter::repeat_n(1_000, 4_000), 1),
            None,
        );
        let mut jisr_outcome = outcome(std::iter::repeat_n(1_500, 3_000), 1);
        jisr_outcome.errors.insert(
            ErrorKey {
                code: "PermissionDenied".into(),
                reason: "no-rule".into(),
            },
            2,
        );
        let stats = ProcStats {
            cpu: Duration::from_millis(1_500),
            peak_rss_kb: 20 * 1024,
            processes: 1,
        };
        let jisr = Summary::new("jisr", &jisr_outcome, Some(stats));
        let nginx = Summary::new(
            "nginx",
            &outcome(std::iter::repeat_n(3_000, 2_000), 1),
            None,
        );
        Report {
            load: LoadLine {
                connections: 4,
                in_flight: 64,
                amount: "1s per round".into(),
                rounds: 3,
                rate: None,
                cpu: None,
                fsync: [None, None],
            },
            targets: vec![direct, jisr, nginx],
            skipped: Vec::new(),
        }
    }

    /// HAProxy: 5,000 calls at 1.2 ms over 1 s (Jisr carries 0.6× of it).
    pub(in crate::tools::bench) fn haproxy() -> Summary {
        Summary::new(
            "haproxy",
            &outcome(std::iter::repeat_n(1_200, 5_000), 1),
            None,
        )
    }

    #[test]
    fn ratios_compare_jisr_with_nginx_and_direct() {
        let r = report().ratios();
        assert_eq!(r.jisr_over_nginx, Some(1.5));
        assert_eq!(r.jisr_over_direct, Some(0.75));
        let (j, n) = (r.jisr_added_p50_us.unwrap(), r.nginx_added_p50_us.unwrap());
        assert!((499..=502).contains(&j), "{r:?}");
        assert!((1_999..=2_004).contains(&n), "{r:?}");
    }

    #[test]
    fn the_table_has_a_line_per_target_and_the_ratios() {
        let table = report().table();
        assert!(table.starts_with("load: 4 connections × 64 in flight, 1s per round, 3 rounds\n"));
        let jisr = table.lines().find(|l| l.starts_with("jisr ")).unwrap();
        let cols: Vec<&str> = jisr.split_whitespace().collect();
        assert_eq!(cols[1], "3000", "{table}");
        assert_eq!(cols[6], "2", "{table}");
        assert_eq!(&cols[7..], ["1.50", "500.0", "20.0"], "{table}");
        assert!(table.contains("Jisr/nginx throughput 1.50×"), "{table}");
        assert!(table.contains("Jisr/direct throughput 0.75×"), "{table}");
        assert!(
            table.contains("jisr: 2 × PermissionDenied/no-rule"),
            "{table}"
        );
        let nginx = table.lines().find(|l| l.starts_with("nginx ")).unwrap();
        let cols: Vec<&str> = nginx.split_whitespace().collect();
        assert_eq!(&cols[7..], ["-", "-", "-"], "{nginx:?}");
    }

    #[test]
    fn haproxy_gets_a_row_a_ratio_a_verdict_and_a_json_object() {
        let mut r = report();
        r.load.cpu = Some("Example CPU @ 3.00GHz × 2 cores".into());
        r.targets.push(haproxy());
        assert_eq!(r.ratios().jisr_over_haproxy, Some(0.6));
        let table = r.table();
        assert!(
            table.lines().nth(1) == Some("cpu: Example CPU @ 3.00GHz × 2 cores"),
            "{table}"
        );
        let row = table.lines().find(|l| l.starts_with("haproxy ")).unwrap();
        assert_eq!(row.split_whitespace().nth(1), Some("5000"), "{table}");
        assert!(table.contains("Jisr/HAProxy throughput 0.60×"), "{table}");
        assert!(table.contains("HAProxy +"), "{table}");
        let verdicts = r.verdicts();
        assert!(
            verdicts
                .iter()
                .any(|v| v.contains("0.75× HAProxy throughput: NOT met (0.60×)")),
            "{verdicts:?}"
        );
        let doc = r.json();
        assert_eq!(doc["haproxy"]["requests"], 5_000);
        assert_eq!(doc["ratios"]["jisr_over_haproxy_throughput"], 0.6);
        assert_eq!(doc["load"]["cpu"], "Example CPU @ 3.00GHz × 2 cores");
    }

    #[test]
    fn the_json_has_an_object_per_target() {
        let mut report = report();
        report.skipped.push(("nginx", "not installed".into()));
        let doc = report.json();
        assert_eq!(doc["jisr"]["requests_per_s"], 3000.0);
        assert!(doc["jisr"]["latency_us"]["p50"].as_u64().unwrap() >= 1_500);
        assert_eq!(doc["jisr"]["errors"]["total"], 2);
        assert_eq!(
            doc["jisr"]["errors"]["by_reason"]["PermissionDenied/no-rule"],
            2
        );
        assert_eq!(doc["jisr"]["gateway"]["peak_rss_mb"], 20.0);
        assert_eq!(doc["jisr"]["gateway"]["cpu_us_per_request"], 500.0);
        assert!(doc["direct"].get("gateway").is_none());
        assert_eq!(doc["ratios"]["jisr_over_nginx_throughput"], 1.5);
        assert_eq!(doc["skipped"]["nginx"], "not installed");
        assert_eq!(doc["load"]["in_flight_per_connection"], 64);
    }

    #[test]
    fn the_fsync_probe_shows_under_the_load_line_and_in_the_json() {
        let mut r = report();
        r.load.fsync = [
            Some(Fsync {
                p50_us: 260,
                p99_us: 1200,
            }),
            None,
        ];
        let table = r.table();
        let mut lines = table.lines();
        assert!(lines.next().unwrap().starts_with("load: "), "{table}");
        let disk = lines.next().unwrap();
        assert!(
            disk.contains("260 / 1200 before the rounds, unknown after"),
            "{table}"
        );
        assert_eq!(lines.next(), Some(""), "{table}");
        let doc = r.json();
        assert_eq!(doc["load"]["fsync_probe_us"]["before"]["p99"], 1200);
        assert!(doc["load"]["fsync_probe_us"]["after"].is_null());
        // Without a probe (an external gateway) neither appears.
        let plain = report();
        assert!(plain.table().lines().nth(1) == Some(""));
        assert!(plain.json()["load"].get("fsync_probe_us").is_none());
    }
}
