//! OTLP export over gRPC: a tracer provider with a batch span exporter, and
//! a meter provider with a periodic exporter whose observable instruments
//! read the same atomic counters `/metrics` shows. Started only when
//! `telemetry.otlp_endpoint` is set; over TLS when it is `https://`, with
//! the CA and client certificate of `telemetry.otlp_ca`, `otlp_cert` and
//! `otlp_key` (checked when the configuration was loaded).
//!
//! The standard `OTEL_BSP_*` and `OTEL_METRIC_EXPORT_INTERVAL` variables
//! tune batching and the export interval (defaults 5 s and 60 s).

use super::histogram::BOUNDS_MICROS;
use super::labels;
use super::logged;
use super::metrics::{Metrics, OtelInstruments};
use crate::config::{OtlpTls, TelemetryConfig};
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::sync::Arc;

/// Why OTLP export could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up OTLP export to {endpoint}: {what}; check `telemetry.otlp_endpoint` (and, for https, `otlp_ca`, `otlp_cert`, `otlp_key`)")]
pub struct OtlpError {
    endpoint: String,
    what: String,
}

/// The running exporters (handles: clones share them).
#[derive(Debug, Clone)]
pub(crate) struct Otlp {
    pub(crate) tracer: SdkTracer,
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
}

impl Otlp {
    /// Starts the exporters towards `endpoint` (must run inside a Tokio
    /// runtime: the gRPC client lives on it). Connects lazily: a collector
    /// that is down loses telemetry, never calls.
    pub(crate) fn start(
        endpoint: &str,
        config: &TelemetryConfig,
        node: &str,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, OtlpError> {
        let error = |e: &dyn std::fmt::Display| OtlpError {
            endpoint: endpoint.to_owned(),
            what: e.to_string(),
        };
        let tls = match &config.otlp_tls {
            Some(tls) if endpoint.starts_with("https://") => {
                Some(client_tls(tls).map_err(|e| error(&e))?)
            }
            _ => None,
        };
        let resource = Resource::builder()
            .with_service_name("jisr")
            .with_attribute(KeyValue::new("service.instance.id", node.to_owned()))
            .build();
        let mut spans = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint);
        if let Some(tls) = &tls {
            spans = spans.with_tls_config(tls.clone());
        }
        let spans = spans.build().map_err(|e| error(&e))?;
        let tracer_provider = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_batch_exporter(logged::Spans::new(spans, endpoint))
            .build();
        let tracer = tracer_provider.tracer("jisr");
        let mut exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint);
        if let Some(tls) = tls {
            exporter = exporter.with_tls_config(tls);
        }
        let exporter = exporter.build().map_err(|e| error(&e))?;
        let meter_provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_periodic_exporter(logged::Metrics::new(exporter, endpoint))
            .build();
        register(&meter_provider, metrics);
        Ok(Self {
            tracer,
            tracer_provider,
            meter_provider,
        })
    }

    /// Exports what is pending and stops (at shutdown).
    pub(crate) fn shutdown(&self) {
        if let Err(e) = self.tracer_provider.shutdown() {
            tracing::warn!(error = %e, "OTLP trace export did not finish cleanly");
        }
        if let Err(e) = self.meter_provider.shutdown() {
            tracing::warn!(error = %e, "OTLP metric export did not finish cleanly");
        }
    }
}

/// The client TLS configuration towards the collector: trust `tls.ca` only
/// (no system roots), present the client certificate if configured. The
/// server name checked is the endpoint's host.
fn client_tls(tls: &OtlpTls) -> Result<tonic::transport::ClientTlsConfig, String> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let read = |key: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("cannot read `{key}` file {}: {e}", path.display()))
    };
    let mut config =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("otlp_ca", &tls.ca)?));
    if let Some((cert, key)) = &tls.client {
        config = config.identity(Identity::from_pem(
            read("otlp_cert", cert)?,
            read("otlp_key", key)?,
        ));
    }
    Ok(config)
}

/// The OTLP instruments. Counters are observable: their callbacks read the
/// atomics at export time, so the call path does nothing more for them.
/// Histograms have no observable form in OpenTelemetry, so the call path
/// records them too (only when export is on, with attributes built once).
fn register(provider: &SdkMeterProvider, metrics: &Arc<Metrics>) {
    let meter = provider.meter("jisr");
    let bounds: Vec<f64> = BOUNDS_MICROS.iter().map(|b| *b as f64 / 1e6).collect();
    let _ = metrics.otel.set(OtelInstruments {
        exchange_duration: meter
            .f64_histogram("jisr.exchange.duration")
            .with_unit("s")
            .with_description("Time from a call's arrival to its answer")
            .with_boundaries(bounds.clone())
            .build(),
        consent_duration: meter
            .f64_histogram("jisr.consent.check.duration")
            .with_unit("s")
            .with_description("Time a consent check took")
            .with_boundaries(bounds)
            .build(),
    });
    register_call_counters(&meter, metrics);
    register_audit_figures(&meter, metrics);
}

/// Exchanges, provider failures and refused TLS handshakes.
fn register_call_counters(meter: &Meter, metrics: &Arc<Metrics>) {
    let m = metrics.clone();
    let _exchanges = meter
        .u64_observable_counter("jisr.exchanges")
        .with_description("Exchanges by consumer, provider, method, outcome and reason")
        .with_callback(move |observer| {
            for (consumer, route, reason, n) in m.exchange_counts() {
                observer.observe(
                    n,
                    &[
                        KeyValue::new("consumer", consumer.to_string()),
                        KeyValue::new("provider", route.provider.clone()),
                        KeyValue::new("method", route.method.clone()),
                        KeyValue::new("outcome", labels::outcome_label(labels::outcome(reason))),
                        KeyValue::new("reason", reason.map_or("", |r| r.as_str())),
                    ],
                );
            }
        })
        .build();
    let m = metrics.clone();
    let _upstream = meter
        .u64_observable_counter("jisr.upstream.errors")
        .with_description("Calls a provider failed")
        .with_callback(move |observer| {
            for (provider, n) in m.upstream_errors() {
                observer.observe(n, &[KeyValue::new("provider", provider)]);
            }
        })
        .build();
    let m = metrics.clone();
    let _tls = meter
        .u64_observable_counter("jisr.tls.handshake.failures")
        .with_description("Refused consumer connections, by reason")
        .with_callback(move |observer| {
            for (code, n) in m.tls_failures() {
                observer.observe(n, &[KeyValue::new("reason", code.as_str())]);
            }
        })
        .build();
}

/// The audit writer's batches, entries, fsync latency and batch sizes.
fn register_audit_figures(meter: &Meter, metrics: &Arc<Metrics>) {
    let m = metrics.clone();
    let _audit = meter
        .u64_observable_counter("jisr.audit.batches")
        .with_description("Audit log group commits")
        .with_callback(move |observer| {
            if let Some(stats) = m.audit_stats() {
                observer.observe(stats.batches, &[]);
            }
        })
        .build();
    let m = metrics.clone();
    let _entries = meter
        .u64_observable_counter("jisr.audit.entries")
        .with_description("Audit entries made durable")
        .with_callback(move |observer| {
            if let Some(stats) = m.audit_stats() {
                observer.observe(stats.entries, &[]);
            }
        })
        .build();
    let m = metrics.clone();
    let _fsync = meter
        .f64_observable_gauge("jisr.audit.fsync.duration")
        .with_unit("s")
        .with_description("Audit fsync latency quantiles since start")
        .with_callback(move |observer| {
            if let Some(stats) = m.audit_stats() {
                for q in [0.5, 0.99, 1.0] {
                    let micros = stats.fsync_micros.value_at_quantile(q);
                    observer.observe(micros as f64 / 1e6, &[KeyValue::new("quantile", q)]);
                }
            }
        })
        .build();
    let m = metrics.clone();
    let _batch = meter
        .f64_observable_gauge("jisr.audit.batch.size")
        .with_description("Entries per audit group commit, quantiles since start")
        .with_callback(move |observer| {
            if let Some(stats) = m.audit_stats() {
                for q in [0.5, 0.99, 1.0] {
                    let n = stats.batch_sizes.value_at_quantile(q);
                    observer.observe(n as f64, &[KeyValue::new("quantile", q)]);
                }
            }
        })
        .build();
}
