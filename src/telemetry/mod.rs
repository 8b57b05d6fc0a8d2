//! Telemetry: what operators see of the gateway. Counters and latency
//! histograms of every exchange ([`metrics`]), served as Prometheus text on
//! the admin listener ([`admin`]) with health and readiness ([`ready`]);
//! one OpenTelemetry span per exchange and the same metrics over OTLP/gRPC
//! when `telemetry.otlp_endpoint` is set (`otlp`, [`trace`]).
//!
//! The exchange path touches this module twice: [`Telemetry::span`] when a
//! call arrives (nothing at all when export is off) and
//! [`metrics::Metrics::exchange`] when its audit entry is settled (a few
//! relaxed atomic adds into counters resolved when the routing state was
//! built, at start or by a reload).

pub mod admin;
pub mod agencies;
mod bus;
pub mod histogram;
pub mod labels;
mod logged;
pub mod metrics;
mod otlp;
pub mod prometheus;
pub mod ready;
pub mod trace;
pub mod view;
pub mod witness;

pub use agencies::AgencyLabels;
pub use labels::TlsFailure;
pub use metrics::{Metrics, RouteMetrics};
pub use otlp::OtlpError;
pub use ready::Readiness;
pub use trace::ExchangeSpan;
pub use view::{GatewayView, InstanceFigures, Probe, ProviderFigures, ReloadFigures};

use crate::config::TelemetryConfig;
use std::sync::Arc;
use tokio::sync::watch;

/// A node's telemetry: metrics, readiness and, when configured, OTLP export.
#[derive(Debug)]
pub struct Telemetry {
    metrics: Arc<Metrics>,
    otlp: Option<otlp::Otlp>,
    ready: Readiness,
    stop: watch::Sender<bool>,
}

impl Telemetry {
    /// Starts telemetry for node `node` (OTLP export if configured; must
    /// run inside a Tokio runtime then).
    pub fn start(
        config: &TelemetryConfig,
        node: &str,
        metrics: Metrics,
        ready: Readiness,
    ) -> Result<Self, OtlpError> {
        let metrics = Arc::new(metrics);
        let otlp = match &config.otlp_endpoint {
            Some(endpoint) => {
                let otlp = otlp::Otlp::start(endpoint, config, node, &metrics)?;
                let tls = config.otlp_tls.as_ref();
                tracing::info!(
                    %endpoint,
                    ca = ?tls.map(|t| &t.ca),
                    client_certificate = ?tls.and_then(|t| t.client.as_ref()).map(|(cert, _)| cert),
                    "exporting traces and metrics over OTLP/gRPC"
                );
                Some(otlp)
            }
            None => None,
        };
        Ok(Self {
            metrics,
            otlp,
            ready,
            stop: watch::channel(false).0,
        })
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// What readiness looks at.
    pub fn ready(&self) -> &Readiness {
        &self.ready
    }

    /// The span of a call that just arrived, or `None` when traces are not
    /// exported (the call then does no span work at all).
    pub fn span(&self, method: &str, headers: &http::HeaderMap) -> Option<ExchangeSpan> {
        let otlp = self.otlp.as_ref()?;
        Some(trace::start(&otlp.tracer, method, headers))
    }

    /// The Prometheus text of every metric, with readiness as `checks` found.
    pub fn prometheus(&self, checks: &[ready::Check]) -> String {
        let audit = self.metrics.audit_stats().unwrap_or_default();
        let mut out = prometheus::render(
            &self.metrics,
            &audit,
            self.ready.audit_up().is_ok(),
            prometheus::Readiness {
                ready: ready::is_ready(checks),
                consent_store_up: ready::consent_store_up(checks),
            },
        );
        if let Some(overview) = self.ready.witnessing() {
            witness::lines(&mut out, &overview);
        }
        out
    }

    /// Resolves to `true` once the node has shut down.
    pub(crate) fn stopped(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// At shutdown: exports what is pending and stops the admin listener.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        if let Some(otlp) = self.otlp.clone() {
            // The SDK's shutdown blocks until its exporter threads are done.
            let _ = tokio::task::spawn_blocking(move || otlp.shutdown()).await;
        }
    }
}
