//! The gateway's counters and histograms. Everything a call touches is
//! allocated when a configuration is loaded (at start or by a reload): one
//! [`RouteMetrics`] per method (its provider and method labels fixed), a
//! dense array of counters per (consumer, reason) and a histogram per
//! outcome. A call costs an index computation and a few relaxed atomic
//! adds; no lock, no label string.
//!
//! A reload that declares new consumers gives each method it routes a new
//! generation of counters with room for them ([`Metrics::route`]); the
//! generation it replaces stays linked to it, since calls in flight may
//! still count there, and the export adds the generations up.

use super::agencies::{AgencyLabels, Registry, OTHER_SLOT};
use super::histogram::Histogram;
use super::labels::{self, TlsFailure, OUTCOMES, SLOTS};
use super::view::GatewayView;
use crate::proto::jisr::audit::v1::Outcome;
use crate::refusal::Reason;
use arc_swap::ArcSwap;
use opentelemetry::KeyValue;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

pub use super::agencies::OTHER_CONSUMER;

/// Counters of one method (or of calls to unknown methods).
#[derive(Debug)]
pub struct RouteMetrics {
    /// Provider label ("" for unknown methods).
    pub provider: String,
    /// Method label: `package.Service/Method`, or `unknown`.
    pub method: String,
    /// Exchanges by consumer slot × reason slot, for the consumer slots
    /// known when this generation was made.
    counts: Box<[AtomicU64]>,
    /// The generation this one replaced (calls in flight may still count
    /// there): exports add it in.
    earlier: Option<Arc<RouteMetrics>>,
    /// Exchange latency by outcome (allowed, refused, failed), shared by
    /// every generation.
    latency: Arc<[Histogram; 3]>,
    /// The provider's upstream-error counter.
    upstream_errors: Option<Arc<AtomicU64>>,
    /// OTLP attributes per outcome, built once.
    otel_attributes: [Box<[KeyValue]>; 3],
}

/// One exchange counter: (consumer, route, reason, count).
pub(crate) type ExchangeCount = (Arc<str>, Arc<RouteMetrics>, Option<Reason>, u64);

/// Instruments recorded on the call path when OTLP export is on.
#[derive(Debug)]
pub(crate) struct OtelInstruments {
    pub(crate) exchange_duration: opentelemetry::metrics::Histogram<f64>,
    pub(crate) consent_duration: opentelemetry::metrics::Histogram<f64>,
}

/// Every metric of a node.
#[derive(Debug)]
pub struct Metrics {
    /// Every consumer slot and provider counter since start.
    registry: RwLock<Registry>,
    /// The labels of the configuration in force: what the call path reads.
    in_force: ArcSwap<AgencyLabels>,
    /// Every method registered since start, latest generation (kept across
    /// reloads, so a method's counters continue; a method dropped by a
    /// reload keeps its last values).
    routes: RwLock<Vec<Arc<RouteMetrics>>>,
    unknown: ArcSwap<RouteMetrics>,
    consent_check: Histogram,
    tls_failures: [AtomicU64; TlsFailure::ALL.len()],
    pub(crate) otel: OnceLock<OtelInstruments>,
    audit: OnceLock<Arc<crate::audit::AuditLog>>,
    bus: OnceLock<Arc<crate::bus::Figures>>,
    gateway: OnceLock<Arc<dyn GatewayView>>,
    /// Open client connections on each lane, once the lanes run.
    lanes: OnceLock<Vec<Arc<AtomicUsize>>>,
    /// The agencies' certificates as the node saw them.
    certificates: Arc<crate::tls::seen::SeenCertificates>,
}

impl Metrics {
    /// Metrics for these consumers (agency ids) and providers, in force at once.
    pub fn new<'a>(
        consumers: impl IntoIterator<Item = &'a str>,
        providers: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut registry = Registry::default();
        let in_force = registry.declare(consumers, providers);
        let unknown = RouteMetrics::new("", "unknown", &registry, None);
        Self {
            registry: RwLock::new(registry),
            in_force: ArcSwap::from_pointee(in_force),
            routes: Default::default(),
            unknown: ArcSwap::from_pointee(unknown),
            consent_check: Histogram::default(),
            tls_failures: Default::default(),
            otel: OnceLock::new(),
            audit: OnceLock::new(),
            bus: OnceLock::new(),
            gateway: OnceLock::new(),
            lanes: OnceLock::new(),
            certificates: Arc::default(),
        }
    }

    /// The agencies' certificates seen at handshakes (callers' on the
    /// listener, providers' when the node connects to them).
    pub fn certificates(&self) -> &Arc<crate::tls::seen::SeenCertificates> {
        &self.certificates
    }

    /// Declares the agencies `config` names, so that the methods registered
    /// next ([`Metrics::route`]) have counters for them. The labels take
    /// effect once put in force with [`Metrics::use_labels`], when the
    /// routing state built from `config` is.
    pub fn declare(&self, config: &crate::config::Config) -> Arc<AgencyLabels> {
        let (consumers, providers) = AgencyLabels::of_config(config);
        let mut registry = self.registry.write().unwrap_or_else(|e| e.into_inner());
        let labels = registry.declare(consumers, providers);
        let unknown = self.unknown.load_full();
        if unknown.slots() < registry.slots() {
            self.unknown.store(Arc::new(RouteMetrics::new(
                "",
                "unknown",
                &registry,
                Some(unknown),
            )));
        }
        Arc::new(labels)
    }

    /// Puts the agency labels of a configuration in force (when its routing
    /// state is swapped in).
    pub fn use_labels(&self, labels: Arc<AgencyLabels>) {
        self.in_force.store(labels);
    }

    /// The handle a method's calls record into: registered on first use,
    /// the same one again when a reload routes the method anew, or a new
    /// generation of it when consumers were declared since.
    pub fn route(&self, provider: &str, method: &str) -> Arc<RouteMetrics> {
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        let known = routes
            .iter()
            .position(|r| r.provider == provider && r.method == method);
        match known {
            Some(i) if routes[i].slots() >= registry.slots() => routes[i].clone(),
            Some(i) => {
                let next = Arc::new(RouteMetrics::new(
                    provider,
                    method,
                    &registry,
                    Some(routes[i].clone()),
                ));
                routes[i] = next.clone();
                next
            }
            None => {
                let route = Arc::new(RouteMetrics::new(provider, method, &registry, None));
                routes.push(route.clone());
                route
            }
        }
    }

    /// The registered methods and the unknown-method handle, at this moment.
    fn all_routes(&self) -> Vec<Arc<RouteMetrics>> {
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        routes
            .iter()
            .cloned()
            .chain(std::iter::once(self.unknown.load_full()))
            .collect()
    }

    /// The handle for calls to methods not in the catalogue.
    pub fn unknown_route(&self) -> Arc<RouteMetrics> {
        self.unknown.load_full()
    }

    /// The counter slot of a consumer in the configuration in force (one
    /// hash lookup).
    pub fn consumer_slot(&self, consumer: &str) -> usize {
        self.in_force.load().slot(consumer)
    }

    /// Counts one exchange of `route` and its latency. A consumer slot
    /// declared after `route` was made (a call that started before a
    /// reload) counts under `other`, as the consumer was when it started.
    pub fn exchange(
        &self,
        route: &RouteMetrics,
        consumer: usize,
        reason: Option<Reason>,
        elapsed: Duration,
    ) {
        let cell = labels::slot(reason).and_then(|slot| {
            route
                .counts
                .get(consumer * SLOTS + slot)
                .or_else(|| route.counts.get(OTHER_SLOT * SLOTS + slot))
        });
        if let Some(cell) = cell {
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

    /// Names what shows the gateway's reloads and provider pools, whose
    /// figures are exported.
    pub fn set_gateway(&self, view: Arc<dyn GatewayView>) {
        let _ = self.gateway.set(view);
    }

    /// The reloads and provider pools, once the gateway is built.
    pub(crate) fn gateway(&self) -> Option<&dyn GatewayView> {
        self.gateway.get().map(|view| &**view)
    }

    /// Names each lane's open-connection count, exported as a gauge.
    pub fn set_lanes(&self, open: Vec<Arc<AtomicUsize>>) {
        let _ = self.lanes.set(open);
    }

    /// Open client connections per lane (empty before the lanes run).
    pub(crate) fn lane_connections(&self) -> Vec<usize> {
        self.lanes.get().map_or_else(Vec::new, |open| {
            open.iter().map(|n| n.load(Ordering::Relaxed)).collect()
        })
    }

    /// Names the audit log whose writer figures are exported.
    pub fn set_audit_log(&self, log: Arc<crate::audit::AuditLog>) {
        let _ = self.audit.set(log);
    }

    /// Names the bus whose figures are exported.
    pub fn set_bus(&self, figures: Arc<crate::bus::Figures>) {
        let _ = self.bus.set(figures);
    }

    /// The bus's figures, once the bus is built.
    pub(crate) fn bus(&self) -> Option<&crate::bus::Figures> {
        self.bus.get().map(|f| &**f)
    }

    /// The audit writer's figures, once the log is known.
    pub(crate) fn audit_stats(&self) -> Option<crate::audit::log::WriterStats> {
        self.audit.get().map(|log| log.stats())
    }

    /// Counts a refused TLS handshake.
    pub fn tls_failure(&self, code: TlsFailure) {
        self.tls_failures[code.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Every non-zero exchange counter: (consumer, route, reason, count),
    /// each generation of a method added up.
    pub(crate) fn exchange_counts(&self) -> Vec<ExchangeCount> {
        let routes = self.all_routes();
        let names = {
            let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
            registry.names().to_vec()
        };
        let mut out = Vec::new();
        for route in routes {
            for i in 0..route.counts.len() {
                let n = route.total(i);
                if n > 0 {
                    let Some(consumer) = names.get(i / SLOTS) else {
                        continue;
                    };
                    out.push((
                        consumer.clone(),
                        route.clone(),
                        labels::reason_of(i % SLOTS),
                        n,
                    ));
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

    /// Upstream errors by provider: the providers in force, and any other
    /// that counted errors before a reload dropped it.
    pub(crate) fn upstream_errors(&self) -> Vec<(String, u64)> {
        let in_force = self.in_force.load();
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        registry.upstream_error_counts(&in_force)
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

    /// A generation of counters with a slot for every consumer of
    /// `registry`, continuing `earlier` if given.
    fn new(
        provider: &str,
        method: &str,
        registry: &Registry,
        earlier: Option<Arc<RouteMetrics>>,
    ) -> Self {
        let cells = registry.slots() * SLOTS;
        let attributes = |outcome: Outcome| -> Box<[KeyValue]> {
            Box::new([
                KeyValue::new("provider", provider.to_owned()),
                KeyValue::new("method", method.to_owned()),
                KeyValue::new("outcome", labels::outcome_label(outcome)),
            ])
        };
        Self {
            provider: provider.to_owned(),
            method: method.to_owned(),
            counts: (0..cells).map(|_| AtomicU64::new(0)).collect(),
            latency: earlier
                .as_ref()
                .map_or_else(Default::default, |e| e.latency.clone()),
            earlier,
            upstream_errors: registry.upstream_errors(provider),
            otel_attributes: OUTCOMES.map(attributes),
        }
    }

    /// How many consumer slots this generation counts.
    fn slots(&self) -> usize {
        self.counts.len() / SLOTS
    }

    /// Counter `cell` added up over this generation and the earlier ones.
    fn total(&self, cell: usize) -> u64 {
        let mut n = 0;
        let mut generation = Some(self);
        while let Some(g) = generation {
            n += g.counts.get(cell).map_or(0, |c| c.load(Ordering::Relaxed));
            generation = g.earlier.as_deref();
        }
        n
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
            .map(|(c, r, reason, n)| (&**c, r.method.as_str(), *reason, *n))
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
        assert_eq!(m.upstream_errors(), [("civil-status".to_owned(), 1)]);
    }

    fn config(agencies: &str) -> crate::config::Config {
        let text = format!(
            "[node]\nid = \"gw-1\"\ntrust_domain = \"interop.gov.ma\"\nlisten = \"127.0.0.1:8443\"\n\n[tls]\nca = \"ca.crt\"\ncert = \"gw.crt\"\nkey = \"gw.key\"\n{agencies}"
        );
        crate::config::Config::from_toml(&text, std::path::Path::new("/etc/jisr/jisr.toml"))
            .unwrap()
    }

    fn count(m: &Metrics, consumer: &str, method: &str) -> u64 {
        m.exchange_counts()
            .iter()
            .filter(|(c, r, _, _)| &**c == consumer && r.method == method)
            .map(|(_, _, _, n)| n)
            .sum()
    }

    #[test]
    fn a_consumer_declared_by_a_reload_gets_its_own_label() {
        const BIRTH: &str = "ma.civilstatus.v1.CivilStatus/GetBirthRecord";
        let m = Metrics::new(["tax"], ["civil-status"]);
        let before = m.route("civil-status", BIRTH);
        let unknown_before = m.unknown_route();
        m.exchange(&before, m.consumer_slot("employment"), None, Duration::ZERO);
        assert_eq!(count(&m, OTHER_CONSUMER, BIRTH), 1);

        // A reload declares `employment` and a new provider; its routing
        // state registers the method again.
        let reloaded = config(
            "[[agency]]\nid = \"tax\"\n\n[[agency]]\nid = \"employment\"\nupstream = \"127.0.0.1:9\"\ncontracts = [\"a.proto\"]\n",
        );
        let labels = m.declare(&reloaded);
        let after = m.route("civil-status", BIRTH);
        assert!(!Arc::ptr_eq(&before, &after), "a new generation");
        assert!(Arc::ptr_eq(&after, &m.route("civil-status", BIRTH)));
        // Not in force until the routing state is swapped in.
        assert_eq!(m.consumer_slot("employment"), OTHER_SLOT);
        m.use_labels(labels);
        let employment = m.consumer_slot("employment");
        assert_ne!(employment, OTHER_SLOT);
        m.exchange(&after, employment, None, Duration::ZERO);
        // A call that started on the old routing state and ends now counts
        // under `other`, as it started, and in the old generation.
        m.exchange(&before, employment, None, Duration::ZERO);
        m.exchange(&before, m.consumer_slot("tax"), None, Duration::ZERO);
        m.exchange(&after, m.consumer_slot("tax"), None, Duration::ZERO);
        m.exchange(
            &m.unknown_route(),
            employment,
            Some(Reason::UnknownMethod),
            Duration::ZERO,
        );
        assert!(!Arc::ptr_eq(&unknown_before, &m.unknown_route()));
        assert_eq!(count(&m, "employment", BIRTH), 1);
        assert_eq!(count(&m, OTHER_CONSUMER, BIRTH), 2);
        assert_eq!(count(&m, "tax", BIRTH), 2);
        assert_eq!(count(&m, "employment", "unknown"), 1);
        // Latency is one histogram across generations.
        assert_eq!(after.latency(Outcome::Allowed).snapshot().count, 5);
        assert_eq!(
            m.upstream_errors(),
            [("employment".to_owned(), 0)],
            "civil-status is no longer named and counted nothing"
        );

        // A reload that drops `employment` counts it under `other` again.
        m.use_labels(m.declare(&config("[[agency]]\nid = \"tax\"\n")));
        assert_eq!(m.consumer_slot("employment"), OTHER_SLOT);
    }
}
