//! OTLP exporters that say when export fails. The SDK's own diagnostics
//! are compiled out here (no `internal-logs`), so without this a collector
//! that is unreachable or whose certificate is not trusted would lose
//! telemetry silently. The first failure is logged at `warn` with its
//! cause, then nothing more until an export succeeds again (logged at
//! `info`): a collector that stays down does not flood the log.

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Whether the last export of one signal failed, and its log lines.
#[derive(Debug)]
struct Health {
    /// "traces" or "metrics".
    signal: &'static str,
    endpoint: String,
    failing: AtomicBool,
}

impl Health {
    fn new(signal: &'static str, endpoint: &str) -> Self {
        Self {
            signal,
            endpoint: endpoint.to_owned(),
            failing: AtomicBool::new(false),
        }
    }

    fn observe(&self, result: &OTelSdkResult) {
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(signal = self.signal, endpoint = %self.endpoint, "OTLP export works again");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        signal = self.signal,
                        endpoint = %self.endpoint,
                        error = %e,
                        "OTLP export failed; telemetry is lost until the collector is reachable and trusted (calls are not affected); check `telemetry.otlp_endpoint`, and for https `telemetry.otlp_ca` (and `otlp_cert`/`otlp_key` if the collector asks for a client certificate)"
                    );
                }
            }
        }
    }
}

/// A span exporter whose failures are logged.
#[derive(Debug)]
pub(super) struct Spans<E> {
    inner: E,
    health: Health,
}

impl<E> Spans<E> {
    pub(super) fn new(inner: E, endpoint: &str) -> Self {
        Self {
            inner,
            health: Health::new("traces", endpoint),
        }
    }
}

impl<E: SpanExporter> SpanExporter for Spans<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.health.observe(&result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// A metric exporter whose failures are logged.
#[derive(Debug)]
pub(super) struct Metrics<E> {
    inner: E,
    health: Health,
}

impl<E> Metrics<E> {
    pub(super) fn new(inner: E, endpoint: &str) -> Self {
        Self {
            inner,
            health: Health::new("metrics", endpoint),
        }
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Metrics<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.health.observe(&result);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
