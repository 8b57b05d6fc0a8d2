//! The gateway's counters and histograms. Everything a call touches is
//! allocated when the gateway is built: one [`RouteMetrics`] per method
//! (its provider and method labels fixed), a dense array of counters per
//! (consumer, reason) and a histogram per outcome. A call costs an index
//! computation and a few relaxed atomic adds; no lock, no label string.

use super::histogram::Histogram;
use super::labels::{self, TlsFailure, OUTCOMES, SLOTS};
use crate::proto::jisr::audit::v1::Outcome;
use crate::proxy::refusal::Reason;
use opentelemetry::KeyValue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The label used for a consumer that is not declared in the configuration
/// (its certificate is valid, but no `[[agency]]` names it).
pub const OTHER_CONSUMER: &str = "other";

/// Counters of one method (or of calls to unknown methods).
#[derive(Debug)]
pub struct RouteMetrics {
    /// Provider label ("" for unknown methods).
    pub provider: String,
    /// Method label: `package.Service/Method`, or `unknown`.
    pub method: String,
    /// Exchanges by consumer slot × reason slot.
    counts: Box<[AtomicU64]>,
    /// Exchange latency by outcome (allowed, refused, failed).
    latency: [Histogram; 3],
    /// The provider's upstream-error counter.
    upstream_errors: Option<Arc<AtomicU64>>,
    /// OTLP attributes per outcome, built once.
    otel_attributes: [Box<[KeyValue]>; 3],
}

/// Instruments recorded on the call path when OTLP export is on.
#[derive(Debug)]
pub(crate) struct OtelInstruments {
    pub(crate) exchange_duration: opentelemetry::metrics::Histogram<f64>,
    pub(crate) consent_duration: opentelemetry::metrics::Histogram<f64>,
}

/// Every metric of a node.
#[derive(Debug)]
pub struct Metrics {
    consumers: HashMap<String, usize>,
    consumer_names: Vec<String>,
    /// Every method registered since start (kept across reloads, so a
    /// method's counters continue; a method dropped by a reload keeps its
    /// last values).
    routes: std::sync::RwLock<Vec<Arc<RouteMetrics>>>,
    unknown: Arc<RouteMetrics>,
    upstream_errors: Vec<(String, Arc<AtomicU64>)>,
    consent_check: Histogram,
    tls_failures: [AtomicU64; TlsFailure::ALL.len()],
    pub(crate) otel: OnceLock<OtelInstruments>,
    audit: OnceLock<Arc<crate::audit::AuditLog>>,
    gateway: OnceLock<GatewayState>,
}

/// What the gateway's reloads and upstream pools look like now, read when
/// metrics are exported (not on the call path).
#[derive(Debug, Clone)]
pub struct GatewayState {
    /// How reloads went.
    pub reload: Arc<crate::proxy::reload::ReloadStatus>,
    /// The current routing state, whose pools hold the breakers.
    pub routing: Arc<arc_swap::ArcSwap<crate::proxy::Routing>>,
}

impl Metrics {
    /// Metrics for these consumers (agency ids) and providers.
    pub fn new<'a>(
        consumers: impl IntoIterator<Item = &'a str>,
        providers: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut consumer_names: Vec<String> = consumers.into_iter().map(str::to_owned).collect();
        consumer_names.push(OTHER_CONSUMER.to_owned());
        let consumers = consumer_names
            .iter()
            .enumerate()
            .take(consumer_names.len() - 1)
            .map(|(i, name)| (name.clone(), i))
            .collect();
        let upstream_errors = providers
            .into_iter()
            .map(|p| (p.to_owned(), Arc::new(AtomicU64::new(0))))
            .collect();
        let mut metrics = Self {
            consumers,
            consumer_names,
            routes: Default::default(),
            unknown: Arc::new(RouteMetrics::placeholder()),
            upstream_errors,
            consent_check: Histogram::default(),
            tls_failures: Default::default(),
            otel: OnceLock::new(),
            audit: OnceLock::new(),
            gateway: OnceLock::new(),
        };
        metrics.unknown = Arc::new(metrics.route_metrics("", "unknown"));
        metrics
    }

    fn route_metrics(&self, provider: &str, method: &str) -> RouteMetrics {
        let cells = self.consumer_names.len() * SLOTS;
        let attributes = |outcome: Outcome| -> Box<[KeyValue]> {
            Box::new([
                KeyValue::new("provider", provider.to_owned()),
                KeyValue::new("method", method.to_owned()),
                KeyValue::new("outcome", labels::outcome_label(outcome)),
            ])
        };
        RouteMetrics {
            provider: provider.to_owned(),
            method: method.to_owned(),
            counts: (0..cells).map(|_| AtomicU64::new(0)).collect(),
            latency: Default::default(),
            upstream_errors: self
                .upstream_errors
                .iter()
                .find(|(p, _)| p == provider)
                .map(|(_, c)| c.clone()),
            otel_attributes: OUTCOMES.map(attributes),
        }
    }

    /// The handle a method's calls record into: registered on first use,
    /// the same one again when a reload routes the method anew.
    pub fn route(&self, provider: &str, method: &str) -> Arc<RouteMetrics> {
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = routes
            .iter()
            .find(|r| r.provider == provider && r.method == method)
        {
            return known.clone();
        }
        let route = Arc::new(self.route_metrics(provider, method));
        routes.push(route.clone());
        route
    }

    /// The registered methods and the unknown-method handle, at this moment.
    fn all_routes(&self) -> Vec<Arc<RouteMetrics>> {
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        routes
            .iter()
            .chain(std::iter::once(&self.unknown))
            .cloned()
            .collect()
    }

    /// The handle for calls to methods not in the catalogue.
    pub fn unknown_route(&self) -> &Arc<RouteMetrics> {
        &self.unknown
    }

    /// The counter slot of a consumer (one hash lookup).
    pub fn consumer_slot(&self, consumer: &str) -> usize {
        self.consumers
            .get(consumer)
            .copied()
            .unwrap_or(self.consumer_names.len() - 1)
    }

    /// Counts one exchange of `route` and its latency.
    pub fn exchange(
        &self,
        route: &RouteMetrics,
        consumer: usize,
        reason: Option<Reason>,
        elapsed: Duration,
    ) {
        let slot = labels::slot(reason);
        if let Some(cell) = route.counts.get(consumer * SLOTS + slot) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
        let outcome = labels::outcome_index(labels::outcome(reason));
        route.latency[outcome].record(elapsed);
        if reason == Some(Reason::ProviderUnavailable) {
            if let Some(errors) = &route.upstream_errors {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(otel) = self.otel.get() {
            otel.exchange_duration
                .record(elapsed.as_secs_f64(), &route.otel_attributes[outcome]);
        }
    }

    /// Records how long a consent check took.
    pub fn consent_check(&self, elapsed: Duration) {
        self.consent_check.record(elapsed);
        if let Some(otel) = self.otel.get() {
            otel.consent_duration.record(elapsed.as_secs_f64(), &[]);
        }
    }

    /// Names the reload status and routing state whose figures are exported.
    pub fn set_gateway(&self, state: GatewayState) {
        let _ = self.gateway.set(state);
    }

    /// The reload and upstream state, once the gateway is built.
    pub(crate) fn gateway(&self) -> Option<&GatewayState> {
        self.gateway.get()
    }

    /// Names the audit log whose writer figures are exported.
    pub fn set_audit_log(&self, log: Arc<crate::audit::AuditLog>) {
        let _ = self.audit.set(log);
    }

    /// The audit writer's figures, once the log is known.
    pub(crate) fn audit_stats(&self) -> Option<crate::audit::log::WriterStats> {
        self.audit.get().map(|log| log.stats())
    }

    /// Counts a refused TLS handshake.
    pub fn tls_failure(&self, code: TlsFailure) {
        self.tls_failures[code.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Every non-zero exchange counter: (consumer, route, reason, count).
    pub(crate) fn exchange_counts(&self) -> Vec<(&str, Arc<RouteMetrics>, Option<Reason>, u64)> {
        let mut out = Vec::new();
        for route in self.all_routes() {
            for (i, c) in route.counts.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    let consumer = self.consumer_names[i / SLOTS].as_str();
                    out.push((consumer, route.clone(), labels::reason_of(i % SLOTS), n));
                }
            }
        }
        out
    }

    /// Every route with its latency histograms by outcome.
    /// Every (route, outcome) whose latency histogram has samples; read the
    /// histogram with [`RouteMetrics::latency`].
    pub(crate) fn latencies(&self) -> Vec<(Arc<RouteMetrics>, Outcome)> {
        let mut out = Vec::new();
        for route in self.all_routes() {
            for (outcome, histogram) in OUTCOMES.iter().zip(route.latency.iter()) {
                if !histogram.is_empty() {
                    out.push((route.clone(), *outcome));
                }
            }
        }
        out
    }

    /// Upstream errors by provider.
    pub(crate) fn upstream_errors(&self) -> impl Iterator<Item = (&str, u64)> {
        self.upstream_errors
            .iter()
            .map(|(p, c)| (p.as_str(), c.load(Ordering::Relaxed)))
    }

    /// The consent-check latency histogram.
    pub(crate) fn consent_histogram(&self) -> &Histogram {
        &self.consent_check
    }

    /// Refused handshakes by code.
    pub(crate) fn tls_failures(&self) -> impl Iterator<Item = (TlsFailure, u64)> + '_ {
        TlsFailure::ALL.iter().map(|code| {
            (
                *code,
                self.tls_failures[code.index()].load(Ordering::Relaxed),
            )
        })
    }
}

impl RouteMetrics {
    /// The latency histogram of one outcome.
    pub(crate) fn latency(&self, outcome: Outcome) -> &Histogram {
        &self.latency[labels::outcome_index(outcome)]
    }

    fn placeholder() -> Self {
        Self {
            provider: String::new(),
            method: String::new(),
            counts: Box::new([]),
            latency: Default::default(),
            upstream_errors: None,
            otel_attributes: [Box::new([]), Box::new([]), Box::new([])],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_counted_under_its_consumer_and_reason() {
        let m = Metrics::new(["education", "tax"], ["civil-status"]);
        let route = m.route(
            "civil-status",
            "ma.civilstatus.v1.CivilStatus/GetBirthRecord",
        );
        let tax = m.consumer_slot("tax");
        m.exchange(
            &route,
            tax,
            Some(Reason::AccessDenied),
            Duration::from_millis(1),
        );
        m.exchange(
            &route,
            tax,
            Some(Reason::AccessDenied),
            Duration::from_millis(1),
        );
        m.exchange(
            &route,
            m.consumer_slot("nobody"),
            None,
            Duration::from_millis(1),
        );
        m.exchange(
            &route,
            tax,
            Some(Reason::ProviderUnavailable),
            Duration::ZERO,
        );
        let all = m.exchange_counts();
        let counts: Vec<_> = all
            .iter()
            .map(|(c, r, reason, n)| (*c, r.method.as_str(), *reason, *n))
            .collect();
        assert!(counts.contains(&(
            "tax",
            "ma.civilstatus.v1.CivilStatus/GetBirthRecord",
            Some(Reason::AccessDenied),
            2
        )));
        assert!(counts.contains(&(
            OTHER_CONSUMER,
            "ma.civilstatus.v1.CivilStatus/GetBirthRecord",
            None,
            1
        )));
        assert_eq!(counts.len(), 3);
        assert_eq!(
            m.upstream_errors().collect::<Vec<_>>(),
            [("civil-status", 1)]
        );
    }
}
