//! `jisr bench --faults`: how long a call takes to be refused when
//! something behind the gateway fails, beside the bound configured for it,
//! and whether another route keeps answering meanwhile. The tests prove the
//! behaviour (the timeout fires, the breaker opens, Redis failing fails
//! closed); the times are measured here, where a loaded machine makes them
//! slower, not wrong.
//!
//! Four faults, each on real processes (`net`), in this order:
//!
//! - a hung provider: tax accepts every call and never answers; each call
//!   ends at the route's timeout with `PROVIDER_TIMEOUT`;
//! - an open breaker: health hangs the same way until its breaker opens;
//!   then each call is refused at once with `PROVIDER_UNAVAILABLE`, without
//!   reaching it;
//! - a hung Redis (SIGSTOP): a birth record on the citizen's consent waits
//!   for `consent.timeout_ms`, then `CONSENT_UNAVAILABLE` (fail closed);
//! - a killed Redis: the same refusal, as soon as the connection fails.
//!
//! During each, a family record (tax's, on a law: neither the hung
//! providers nor Redis) is read in a loop; its calls and their p50 show
//! that the fault stays on its route.

mod net;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use hdrhistogram::Histogram;
use tonic::Status;
use tonic_types::StatusExt as _;

use super::BenchArgs;
use net::FaultNetwork;

/// How long one call may take before the benchmark gives up on it (the
/// refusals measured take a fraction of this).
const CALL_LIMIT: Duration = Duration::from_secs(30);
/// Calls per fault unless `--requests` says otherwise.
const DEFAULT_CALLS: u64 = 50;
/// Calls a breaker may take to open (it opens after
/// [`net::BREAKER_FAILURES`]).
const TRIPS: u32 = 20;

/// The report, as `--json` prints it.
#[derive(Debug, serde::Serialize)]
pub(super) struct FaultReport {
    /// The CPU, as the other benchmarks give it.
    pub(super) cpu: Option<String>,
    /// `debug` or `release`: a debug build's figures are slower.
    pub(super) build: &'static str,
    /// Calls per fault.
    pub(super) calls: u64,
    /// Calls in flight at once.
    pub(super) in_flight: usize,
    /// One row per fault.
    pub(super) faults: Vec<FaultRow>,
}

/// One fault's figures.
#[derive(Debug, serde::Serialize)]
pub(super) struct FaultRow {
    /// Which fault.
    pub(super) fault: &'static str,
    /// What bounds its refusal, in words.
    pub(super) configured: String,
    /// That bound, ms (none for an open breaker: it refuses at once).
    pub(super) configured_ms: Option<u64>,
    /// The refusal every call should get, `code/REASON`.
    pub(super) expected: String,
    /// What the calls got, `code/REASON` (or `OK`) to how many.
    pub(super) outcomes: BTreeMap<String, u64>,
    /// From each call's start to its refusal, ms.
    pub(super) time_to_refusal_ms: Percentiles,
    /// The route no fault touches, meanwhile.
    pub(super) other_route: OtherRoute,
}

/// Percentiles, ms.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(super) struct Percentiles {
    /// Median.
    pub(super) p50: f64,
    /// 99th percentile.
    pub(super) p99: f64,
    /// Slowest.
    pub(super) max: f64,
}

/// The calls made on the untouched route during a fault.
#[derive(Debug, serde::Serialize)]
pub(super) struct OtherRoute {
    /// The method.
    pub(super) method: &'static str,
    /// Calls answered.
    pub(super) ok: u64,
    /// Calls that failed.
    pub(super) failed: u64,
    /// Median latency of the answered calls, ms.
    pub(super) p50_ms: f64,
}

/// Runs the four faults on a network of its own under `dir` and prints the
/// report; returns it.
pub(super) async fn run(args: &BenchArgs, dir: &Path) -> anyhow::Result<FaultReport> {
    let exe = std::env::current_exe()?;
    let mut network = FaultNetwork::start(dir, &exe).await?;
    let calls = args.requests.unwrap_or(DEFAULT_CALLS).max(1);
    let in_flight = args
        .in_flight
        .clamp(1, usize::try_from(calls).unwrap_or(usize::MAX));
    // Every route answers before any fault, or the figures would mean nothing.
    network
        .birth()
        .await
        .map_err(|s| unexpected("a birth record", &s))?;
    network
        .family()
        .await
        .map_err(|s| unexpected("a family record", &s))?;
    let run = Run {
        network: &network,
        calls,
        in_flight,
    };
    let mut faults = Vec::new();
    eprintln!("bench: faults: a hung provider");
    faults.push(run.hung_provider().await);
    eprintln!("bench: faults: an open breaker");
    faults.push(run.open_breaker().await?);
    eprintln!("bench: faults: a hung Redis (SIGSTOP)");
    network.redis.signal("STOP")?;
    let hung = run.redis("hung Redis (SIGSTOP)").await;
    network.redis.signal("CONT")?;
    faults.push(hung);
    eprintln!("bench: faults: a killed Redis");
    network.redis.kill()?;
    faults.push(run.redis("killed Redis").await);
    network.check_gateway()?;
    let report = FaultReport {
        cpu: super::args::cpu_model(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        calls,
        in_flight,
        faults,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(report)
}

fn unexpected(what: &str, status: &Status) -> anyhow::Error {
    anyhow::anyhow!(
        "before any fault, {what} through the benchmark's gateway failed: {}",
        key(&Err(status.clone()))
    )
}

/// The measurements, on one network.
struct Run<'a> {
    network: &'a FaultNetwork,
    calls: u64,
    in_flight: usize,
}

impl Run<'_> {
    async fn hung_provider(&self) -> FaultRow {
        let bound = net::ROUTE_TIMEOUT;
        let mut row = self.fault(|| self.network.tax_status()).await;
        row.fault = "hung provider";
        row.configured = format!("route timeout {} ms", bound.as_millis());
        row.configured_ms = Some(ms_u64(bound));
        row.expected = "Unavailable/PROVIDER_TIMEOUT".into();
        row
    }

    async fn open_breaker(&self) -> anyhow::Result<FaultRow> {
        let mut seen = Vec::new();
        for _ in 0..TRIPS {
            let got = key(&self.network.vaccinations().await);
            if got == "Unavailable/PROVIDER_UNAVAILABLE" {
                break;
            }
            seen.push(got);
        }
        anyhow::ensure!(
            seen.len() < TRIPS as usize,
            "health's breaker did not open after {TRIPS} calls to a provider that never answers; they got {seen:?}"
        );
        let mut row = self.fault(|| self.network.vaccinations()).await;
        row.fault = "open breaker";
        row.configured = format!(
            "breaker: {} timeouts open it for {} s",
            net::BREAKER_FAILURES,
            net::BREAKER_COOLDOWN.as_secs()
        );
        row.expected = "Unavailable/PROVIDER_UNAVAILABLE".into();
        Ok(row)
    }

    async fn redis(&self, fault: &'static str) -> FaultRow {
        let bound = net::CONSENT_TIMEOUT;
        let mut row = self.fault(|| self.network.birth()).await;
        row.fault = fault;
        row.configured = format!("consent.timeout_ms {}", bound.as_millis());
        row.configured_ms = Some(ms_u64(bound));
        row.expected = "Unavailable/CONSENT_UNAVAILABLE".into();
        row
    }

    /// `self.calls` calls of `call`, `self.in_flight` at a time, while the
    /// untouched route is read in a loop.
    async fn fault<F, Fut>(&self, call: F) -> FaultRow
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), Status>>,
    {
        let done = AtomicBool::new(false);
        let faulted = async {
            let timed = futures_util::stream::iter(0..self.calls)
                .map(|_| timed(call()))
                .buffer_unordered(self.in_flight)
                .collect::<Vec<_>>()
                .await;
            done.store(true, Ordering::Release);
            timed
        };
        let (timed, other_route) = tokio::join!(faulted, self.other_route(&done));
        let mut outcomes = BTreeMap::new();
        let mut refusals = histogram();
        for (took, got) in timed {
            if got != "OK" {
                refusals.saturating_record(micros(took));
            }
            *outcomes.entry(got).or_default() += 1;
        }
        FaultRow {
            fault: "",
            configured: String::new(),
            configured_ms: None,
            expected: String::new(),
            outcomes,
            time_to_refusal_ms: percentiles(&refusals),
            other_route,
        }
    }

    /// Family records, one at a time, until `done` (and at least one).
    async fn other_route(&self, done: &AtomicBool) -> OtherRoute {
        let (mut ok, mut failed) = (0, 0);
        let mut latency = histogram();
        while ok + failed == 0 || !done.load(Ordering::Acquire) {
            let (took, got) = timed(self.network.family()).await;
            if got == "OK" {
                ok += 1;
                latency.saturating_record(micros(took));
            } else {
                failed += 1;
            }
        }
        OtherRoute {
            method: "ma.civilstatus.v1.CivilStatus/GetFamilyRecord",
            ok,
            failed,
            p50_ms: percentiles(&latency).p50,
        }
    }
}

/// How long `call` took and what it got, bounded by [`CALL_LIMIT`].
async fn timed(call: impl Future<Output = Result<(), Status>>) -> (Duration, String) {
    let started = Instant::now();
    let got = match tokio::time::timeout(CALL_LIMIT, call).await {
        Ok(result) => key(&result),
        Err(_) => format!("no answer within {} s", CALL_LIMIT.as_secs()),
    };
    (started.elapsed(), got)
}

/// `OK`, or the refusal's gRPC code and `ErrorInfo` reason.
fn key(result: &Result<(), Status>) -> String {
    match result {
        Ok(()) => "OK".into(),
        Err(status) => {
            let reason = status
                .get_details_error_info()
                .map(|info| info.reason)
                .unwrap_or_default();
            format!("{:?}/{reason}", status.code())
        }
    }
}

fn histogram() -> Histogram<u64> {
    // Three significant figures up to an hour always make a histogram.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn ms_u64(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let ms = |us: u64| us as f64 / 1e3;
    Percentiles {
        p50: ms(h.value_at_quantile(0.50)),
        p99: ms(h.value_at_quantile(0.99)),
        max: ms(h.max()),
    }
}

/// The report as a table.
fn table(r: &FaultReport) -> String {
    let mut out = format!(
        "time to refusal: {} calls per fault, {} in flight; {} build; CPU: {}\n",
        r.calls,
        r.in_flight,
        r.build,
        r.cpu.as_deref().unwrap_or("unknown")
    );
    out.push_str(&format!(
        "{:<22} {:<46} {:>8} {:>8} {:>8}  {:<40} {}\n",
        "fault",
        "configured",
        "p50 ms",
        "p99 ms",
        "max ms",
        "refusals",
        "other route: ok/failed, p50 ms"
    ));
    for f in &r.faults {
        let got: Vec<String> = f
            .outcomes
            .iter()
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect();
        let t = f.time_to_refusal_ms;
        out.push_str(&format!(
            "{:<22} {:<46} {:>8.1} {:>8.1} {:>8.1}  {:<40} {}/{}, {:.1}\n",
            f.fault,
            f.configured,
            t.p50,
            t.p99,
            t.max,
            got.join(", "),
            f.other_route.ok,
            f.other_route.failed,
            f.other_route.p50_ms
        ));
    }
    out
}
