//! The load generator: K mutual-TLS HTTP/2 connections × C calls in flight,
//! each call a real `GetBirthRecord` or `GetTaxStatus` made with the
//! generated tonic stubs, as the agency whose certificate the client holds,
//! for the baccalauréat purpose. Latencies go into one HDR histogram per
//! worker, merged at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use std::collections::HashMap;
use tokio::time::Instant;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};
use tonic_types::StatusExt as _;

use crate::proto::ma::civilstatus::v1::civil_status_client::CivilStatusClient;
use crate::proto::ma::civilstatus::v1::GetBirthRecordRequest;
use crate::proto::ma::tax::v1::tax_records_client::TaxRecordsClient;
use crate::proto::ma::tax::v1::GetTaxStatusRequest;
use crate::tools::samples::dataset;

/// The purpose every call declares: the rule that lets `education` read
/// birth records and tax standing.
pub(crate) const PURPOSE: &str = "bac-candidature";
/// Highest latency the histograms hold (longer calls are clamped to it).
const MAX_LATENCY_US: u64 = 60_000_000;

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Stop {
    /// After this many calls (all workers together).
    Count(u64),
    /// After this long.
    After(Duration),
}

/// The shape of the load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// Calls in flight on each connection.
    pub(crate) in_flight: usize,
    /// When to stop.
    pub(crate) stop: Stop,
    /// Calls per second over all workers; `None` for as fast as possible.
    pub(crate) rate: Option<f64>,
}

/// Where the two methods are sent: one channel (HTTP/2 connection) per
/// slot. Through a gateway both lists hold the same channels; calling the
/// providers directly, each provider has its own.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    civil_status: Vec<Channel>,
    tax: Vec<Channel>,
    /// The consent to name for each citizen, where rules rest on consent.
    consents: Arc<HashMap<String, String>>,
}

impl Endpoints {
    /// Sends each citizen's consent id in `jisr-consent`.
    pub(crate) fn with_consents(mut self, consents: Arc<HashMap<String, String>>) -> Self {
        self.consents = consents;
        self
    }

    /// `connections` connections to one gateway (or proxy) at `addr`.
    pub(crate) async fn gateway(
        addr: &str,
        tls: &ClientTlsConfig,
        connections: usize,
    ) -> anyhow::Result<Self> {
        let channels = connect(addr, tls, connections).await?;
        Ok(Self {
            civil_status: channels.clone(),
            tax: channels,
            consents: Arc::default(),
        })
    }

    /// `connections` connections to each provider.
    pub(crate) async fn providers(
        civil_status: &str,
        tax: &str,
        tls: &ClientTlsConfig,
        connections: usize,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            civil_status: connect(civil_status, tls, connections).await?,
            tax: connect(tax, tls, connections).await?,
            consents: Arc::default(),
        })
    }

    fn connections(&self) -> usize {
        self.civil_status.len().min(self.tax.len())
    }
}

async fn connect(
    addr: &str,
    tls: &ClientTlsConfig,
    connections: usize,
) -> anyhow::Result<Vec<Channel>> {
    let endpoint = Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls.clone())?
        .tcp_nodelay(true);
    let mut channels = Vec::with_capacity(connections);
    // Each `connect` opens its own HTTP/2 connection.
    for _ in 0..connections.max(1) {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to {addr}: {e:?}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// A failed call, by gRPC code and `ErrorInfo` reason ("" when none).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ErrorKey {
    /// The gRPC code, as tonic names it (e.g. `Unavailable`).
    pub(crate) code: String,
    /// The `google.rpc.ErrorInfo` reason.
    pub(crate) reason: String,
}

impl ErrorKey {
    fn of(status: &Status) -> Self {
        Self {
            code: format!("{:?}", status.code()),
            reason: status
                .get_details_error_info()
                .map(|info| info.reason)
                .unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for ErrorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.reason.is_empty() {
            f.write_str(&self.code)
        } else {
            write!(f, "{}/{}", self.code, self.reason)
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Latency of the successful calls, µs.
    pub(crate) latency: Histogram<u64>,
    /// Failed calls.
    pub(crate) errors: BTreeMap<ErrorKey, u64>,
    /// From the first call's start to the last call's end.
    pub(crate) elapsed: Duration,
}

impl Outcome {
    /// An empty outcome, to merge rounds into.
    pub(crate) fn empty() -> Self {
        Self {
            latency: new_histogram(),
            errors: BTreeMap::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// Adds another run's calls and time to this one.
    pub(crate) fn merge(&mut self, other: &Outcome) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        for (key, n) in &other.errors {
            *self.errors.entry(key.clone()).or_default() += n;
        }
        self.elapsed += other.elapsed;
    }
}

pub(crate) fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits: valid bounds, so this cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Hands out call numbers and, when rate-limited, their scheduled start.
struct Schedule {
    next: AtomicU64,
    start: Instant,
    stop: Stop,
    interval: Option<Duration>,
}

impl Schedule {
    /// The next call's number and start time, or `None` once the run is over.
    fn take(&self) -> Option<(u64, Option<Instant>)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let at = self.interval.map(|i| self.start + i.mul_f64(n as f64));
        match self.stop {
            Stop::Count(total) if n >= total => None,
            Stop::After(d) if at.unwrap_or_else(Instant::now) >= self.start + d => None,
            _ => Some((n, at)),
        }
    }
}

/// Runs `load` against `endpoints` and returns what it measured.
pub(crate) async fn run(endpoints: &Endpoints, load: Load) -> Outcome {
    let citizens: Arc<[&'static str]> = dataset::citizen_ids()
        .filter(|id| dataset::birth_record(id).is_some() && dataset::tax_status(id, 0).is_some())
        .collect();
    let schedule = Arc::new(Schedule {
        next: AtomicU64::new(0),
        start: Instant::now(),
        stop: load.stop,
        interval: load
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r)),
    });
    let connections = endpoints.connections();
    let mut workers = Vec::with_capacity(connections * load.in_flight);
    for w in 0..connections * load.in_flight.max(1) {
        let slot = w % connections;
        let worker = Worker {
            civil_status: CivilStatusClient::new(endpoints.civil_status[slot].clone()),
            tax: TaxRecordsClient::new(endpoints.tax[slot].clone()),
            citizens: citizens.clone(),
            consents: endpoints.consents.clone(),
            schedule: schedule.clone(),
        };
        workers.push(tokio::spawn(worker.run()));
    }
    let mut outcome = Outcome::empty();
    for worker in workers {
        // A worker only panics on a bug; its calls are then missing.
        if let Ok(part) = worker.await {
            outcome.merge(&part);
        }
    }
    outcome.elapsed = schedule.start.elapsed();
    outcome
}

struct Worker {
    civil_status: CivilStatusClient<Channel>,
    tax: TaxRecordsClient<Channel>,
    citizens: Arc<[&'static str]>,
    consents: Arc<HashMap<String, String>>,
    schedule: Arc<Schedule>,
}

impl Worker {
    async fn run(mut self) -> Outcome {
        let mut outcome = Outcome::empty();
        while let Some((n, scheduled)) = self.schedule.take() {
            if let Some(at) = scheduled {
                tokio::time::sleep_until(at).await;
            }
            // Rate-limited, latency counts from the scheduled start, so a
            // stalled target is not excused by the calls it held back.
            let began = scheduled.unwrap_or_else(Instant::now);
            match self.call(n).await {
                Ok(()) => {
                    let us = began.elapsed().as_micros();
                    let us = u64::try_from(us).unwrap_or(MAX_LATENCY_US);
                    outcome
                        .latency
                        .saturating_record(us.clamp(1, MAX_LATENCY_US));
                }
                Err(status) => *outcome.errors.entry(ErrorKey::of(&status)).or_default() += 1,
            }
        }
        outcome
    }

    /// Call `n`: even numbers read a birth record, odd ones a tax status,
    /// cycling through the citizens the dataset knows.
    async fn call(&mut self, n: u64) -> Result<(), Status> {
        let citizen_id = self.citizens[(n / 2) as usize % self.citizens.len()].to_owned();
        let consent = self.consents.get(&citizen_id).cloned();
        if n.is_multiple_of(2) {
            let request = with_purpose(Request::new(GetBirthRecordRequest { citizen_id }), consent);
            self.civil_status.get_birth_record(request).await?;
        } else {
            let request = with_purpose(
                Request::new(GetTaxStatusRequest {
                    citizen_id,
                    fiscal_year: 0,
                }),
                consent,
            );
            self.tax.get_tax_status(request).await?;
        }
        Ok(())
    }
}

fn with_purpose<T>(mut request: Request<T>, consent: Option<String>) -> Request<T> {
    let md = request.metadata_mut();
    md.insert("jisr-purpose", MetadataValue::from_static(PURPOSE));
    if let Some(value) = consent.and_then(|c| MetadataValue::try_from(c).ok()) {
        md.insert("jisr-consent", value);
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_calls_errors_and_time() {
        let key = ErrorKey {
            code: "Unavailable".into(),
            reason: "upstream-unavailable".into(),
        };
        let mut a = Outcome::empty();
        a.latency.record(100).unwrap();
        a.errors.insert(key.clone(), 2);
        a.elapsed = Duration::from_secs(1);
        let mut b = Outcome::empty();
        b.latency.record(300).unwrap();
        b.errors.insert(key.clone(), 1);
        b.elapsed = Duration::from_secs(2);
        a.merge(&b);
        assert_eq!(a.latency.len(), 2);
        assert_eq!(a.errors[&key], 3);
        assert_eq!(a.elapsed, Duration::from_secs(3));
        assert_eq!(key.to_string(), "Unavailable/upstream-unavailable");
    }

    #[tokio::test]
    async fn the_schedule_stops_after_the_count_and_paces_a_rate() {
        let counted = Schedule {
            next: AtomicU64::new(0),
            start: Instant::now(),
            stop: Stop::Count(3),
            interval: None,
        };
        let taken: Vec<u64> = std::iter::from_fn(|| counted.take().map(|(n, _)| n)).collect();
        assert_eq!(taken, [0, 1, 2]);

        let start = Instant::now();
        let paced = Schedule {
            next: AtomicU64::new(0),
            start,
            stop: Stop::After(Duration::from_secs(1)),
            interval: Some(Duration::from_millis(250)),
        };
        let times: Vec<Duration> =
            std::iter::from_fn(|| paced.take().and_then(|(_, at)| at).map(|at| at - start))
                .collect();
        assert_eq!(times.len(), 4, "{times:?}");
        assert_eq!(times[3], Duration::from_millis(750));
    }
}
