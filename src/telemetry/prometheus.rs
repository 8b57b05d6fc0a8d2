//! The Prometheus text exposition (format 0.0.4) of a node's metrics, as
//! served on the admin listener's `/metrics`.

use super::histogram::{Snapshot, BOUNDS_MICROS};
use super::labels;
use super::metrics::Metrics;
use super::view::{GatewayView, ProviderFigures};
use crate::audit::log::WriterStats;
use std::fmt::Write as _;

/// Reloads, and each provider pool's load, shedding and breakers.
fn gateway_lines(out: &mut String, gateway: &dyn GatewayView) {
    reload_lines(out, gateway);
    let stats = gateway.providers();
    pool_lines(out, &stats);
    instance_lines(out, &stats);
}

fn reload_lines(out: &mut String, gateway: &dyn GatewayView) {
    let reload = gateway.reloads();
    header(
        out,
        "jisr_config_reloads_total",
        "counter",
        "Configuration reloads applied since start.",
    );
    let _ = writeln!(out, "jisr_config_reloads_total {}", reload.reloads);
    header(
        out,
        "jisr_config_reload_failures_total",
        "counter",
        "Configuration reloads rejected since start (the previous configuration stayed; the reason is in the log).",
    );
    let _ = writeln!(out, "jisr_config_reload_failures_total {}", reload.failures);
    header(
        out,
        "jisr_config_last_reload_ok",
        "gauge",
        "1 unless the last reload attempt was rejected.",
    );
    let _ = writeln!(
        out,
        "jisr_config_last_reload_ok {}",
        u8::from(reload.last_ok)
    );
}

/// Each provider pool's load and shedding.
fn pool_lines(out: &mut String, stats: &[ProviderFigures]) {
    header(
        out,
        "jisr_upstream_in_flight",
        "gauge",
        "Calls in flight to a provider now.",
    );
    for s in stats {
        let _ = writeln!(
            out,
            "jisr_upstream_in_flight{{provider=\"{}\"}} {}",
            escape(&s.provider),
            s.in_flight
        );
    }
    header(
        out,
        "jisr_upstream_shed_total",
        "counter",
        "Calls refused with OVERLOADED because the provider's max_in_flight were in flight.",
    );
    for s in stats {
        let _ = writeln!(
            out,
            "jisr_upstream_shed_total{{provider=\"{}\"}} {}",
            escape(&s.provider),
            s.shed
        );
    }
}

/// Each provider instance's breaker.
fn instance_lines(out: &mut String, stats: &[ProviderFigures]) {
    header(
        out,
        "jisr_upstream_instance_ejected",
        "gauge",
        "1 while a provider instance is ejected by its breaker (open or probing), else 0.",
    );
    for s in stats {
        for i in &s.instances {
            let ejected = u8::from(i.ejected);
            let _ = writeln!(
                out,
                "jisr_upstream_instance_ejected{{provider=\"{}\",instance=\"{}\",state=\"{}\"}} {ejected}",
                escape(&s.provider),
                escape(&i.addr),
                i.state
            );
        }
    }
    header(
        out,
        "jisr_upstream_ejections_total",
        "counter",
        "Times a provider instance was ejected.",
    );
    for s in stats {
        for i in &s.instances {
            let _ = writeln!(
                out,
                "jisr_upstream_ejections_total{{provider=\"{}\",instance=\"{}\"}} {}",
                escape(&s.provider),
                escape(&i.addr),
                i.ejections
            );
        }
    }
}

/// What `/readyz` found, for the gauges that show it.
#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    /// Whether the node is ready.
    pub ready: bool,
    /// Whether the shared consent store answers, when there is one.
    pub consent_store_up: Option<bool>,
}

/// Renders every metric. `audit` is the audit writer's figures and whether
/// the log still takes entries.
pub fn render(
    metrics: &Metrics,
    audit: &WriterStats,
    audit_up: bool,
    readiness: Readiness,
) -> String {
    let mut out = String::with_capacity(8 * 1024);
    exchange_lines(&mut out, metrics);
    latency_lines(&mut out, metrics);
    upstream_error_lines(&mut out, metrics);
    if let Some(gateway) = metrics.gateway() {
        gateway_lines(&mut out, gateway);
    }
    consent_and_tls_lines(&mut out, metrics);
    audit_lines(&mut out, audit, audit_up);
    if let Some(bus) = metrics.bus().filter(|b| !b.is_empty()) {
        super::bus::lines(&mut out, bus, crate::consent::artefact::now_micros());
    }
    header(
        &mut out,
        "jisr_ready",
        "gauge",
        "1 when /readyz answers ready.",
    );
    let _ = writeln!(out, "jisr_ready {}", u8::from(readiness.ready));
    if let Some(up) = readiness.consent_store_up {
        header(
            &mut out,
            "jisr_consent_store_up",
            "gauge",
            "1 when the shared consent store (Redis) answers; at 0, calls and grants on a consent basis are refused with CONSENT_UNAVAILABLE.",
        );
        let _ = writeln!(out, "jisr_consent_store_up {}", u8::from(up));
    }
    out
}

/// Exchanges by consumer, route and outcome, and each lane's connections.
fn exchange_lines(out: &mut String, metrics: &Metrics) {
    header(
        out,
        "jisr_exchanges_total",
        "counter",
        "Exchanges by consumer, provider, method, outcome and reason (reason empty when allowed).",
    );
    for (consumer, route, reason, n) in metrics.exchange_counts() {
        let _ = writeln!(
            out,
            "jisr_exchanges_total{{consumer=\"{}\",provider=\"{}\",method=\"{}\",outcome=\"{}\",reason=\"{}\"}} {n}",
            escape(&consumer),
            escape(&route.provider),
            escape(&route.method),
            labels::outcome_label(labels::outcome(reason)),
            reason.map_or("", |r| r.as_str()),
        );
    }
    let lanes = metrics.lane_connections();
    if !lanes.is_empty() {
        header(
            out,
            "jisr_lane_connections",
            "gauge",
            "Client connections open on each lane (a thread serving its connections on its own runtime).",
        );
        for (lane, open) in lanes.iter().enumerate() {
            let _ = writeln!(out, "jisr_lane_connections{{lane=\"{lane}\"}} {open}");
        }
    }
}

fn latency_lines(out: &mut String, metrics: &Metrics) {
    header(
        out,
        "jisr_exchange_duration_seconds",
        "histogram",
        "Time from a call's arrival to its answer (after its audit entry is durable), by provider, method and outcome.",
    );
    for (route, outcome) in metrics.latencies() {
        let histogram = route.latency(outcome);
        let labels = format!(
            "provider=\"{}\",method=\"{}\",outcome=\"{}\"",
            escape(&route.provider),
            escape(&route.method),
            labels::outcome_label(outcome)
        );
        histogram_lines(
            out,
            "jisr_exchange_duration_seconds",
            &labels,
            &histogram.snapshot(),
        );
    }
}

fn upstream_error_lines(out: &mut String, metrics: &Metrics) {
    header(
        out,
        "jisr_upstream_errors_total",
        "counter",
        "Calls a provider failed (unreachable, failed TLS check, non-gRPC answer, broken or oversized answer).",
    );
    for (provider, n) in metrics.upstream_errors() {
        let _ = writeln!(
            out,
            "jisr_upstream_errors_total{{provider=\"{}\"}} {n}",
            escape(&provider)
        );
    }
}

fn consent_and_tls_lines(out: &mut String, metrics: &Metrics) {
    header(
        out,
        "jisr_consent_check_duration_seconds",
        "histogram",
        "Time a consent check took (store read, and use count when limited).",
    );
    histogram_lines(
        out,
        "jisr_consent_check_duration_seconds",
        "",
        &metrics.consent_histogram().snapshot(),
    );
    header(
        out,
        "jisr_tls_handshake_failures_total",
        "counter",
        "Refused consumer connections, by reason.",
    );
    for (code, n) in metrics.tls_failures() {
        let _ = writeln!(
            out,
            "jisr_tls_handshake_failures_total{{reason=\"{}\"}} {n}",
            code.as_str()
        );
    }
}

fn audit_lines(out: &mut String, audit: &WriterStats, up: bool) {
    header(
        out,
        "jisr_audit_up",
        "gauge",
        "1 while the audit log takes entries; 0 once it stopped (e.g. after an fsync failure).",
    );
    let _ = writeln!(out, "jisr_audit_up {}", u8::from(up));
    header(out, "jisr_audit_batches_total", "counter", "Group commits.");
    let _ = writeln!(out, "jisr_audit_batches_total {}", audit.batches);
    header(
        out,
        "jisr_audit_entries_total",
        "counter",
        "Entries made durable.",
    );
    let _ = writeln!(out, "jisr_audit_entries_total {}", audit.entries);
    header(
        out,
        "jisr_audit_batch_size",
        "histogram",
        "Entries per group commit.",
    );
    let bounds = [1u64, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384];
    for bound in bounds {
        let _ = writeln!(
            out,
            "jisr_audit_batch_size_bucket{{le=\"{bound}\"}} {}",
            audit.batch_sizes.count_between(0, bound)
        );
    }
    hdr_tail(out, "jisr_audit_batch_size", &audit.batch_sizes, 1.0);
    header(
        out,
        "jisr_audit_fsync_duration_seconds",
        "histogram",
        "fsync latency of the audit log's group commits.",
    );
    for bound in BOUNDS_MICROS {
        let _ = writeln!(
            out,
            "jisr_audit_fsync_duration_seconds_bucket{{le=\"{}\"}} {}",
            seconds(bound),
            audit.fsync_micros.count_between(0, bound)
        );
    }
    hdr_tail(
        out,
        "jisr_audit_fsync_duration_seconds",
        &audit.fsync_micros,
        1e-6,
    );
    if let Some(archive) = &audit.archive {
        archive_lines(out, archive);
    }
}

/// The audit archive's figures (only when `[audit] archive_dir` is set).
fn archive_lines(out: &mut String, archive: &crate::audit::log::archive::ArchiveStats) {
    header(
        out,
        "jisr_audit_archive_lag_segments",
        "gauge",
        "Full audit segments not yet copied to archive_dir (the tail segment, never archived until sealed, is not counted).",
    );
    let _ = writeln!(
        out,
        "jisr_audit_archive_lag_segments {}",
        archive.lag_segments
    );
    header(
        out,
        "jisr_audit_archive_failures_total",
        "counter",
        "Audit archive copies that failed (each is retried; the log goes on).",
    );
    let _ = writeln!(
        out,
        "jisr_audit_archive_failures_total {}",
        archive.failures
    );
}

/// `+Inf`, `_sum` and `_count` of an hdrhistogram (its sum is estimated from
/// the mean: hdrhistogram keeps no exact sum).
fn hdr_tail(out: &mut String, name: &str, h: &hdrhistogram::Histogram<u64>, scale: f64) {
    let count = h.len();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {}", h.mean() * count as f64 * scale);
    let _ = writeln!(out, "{name}_count {count}");
}

fn histogram_lines(out: &mut String, name: &str, labels: &str, s: &Snapshot) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (bound, n) in BOUNDS_MICROS.iter().zip(s.cumulative) {
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{}\"}} {n}",
            seconds(*bound)
        );
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", s.count);
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(
        out,
        "{name}_sum{braces} {}",
        s.sum_micros as f64 / 1_000_000.0
    );
    let _ = writeln!(out, "{name}_count{braces} {}", s.count);
}

fn seconds(micros: u64) -> String {
    format!("{}", micros as f64 / 1_000_000.0)
}

pub(super) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Label values are ids and paths checked at load, but escape anyway.
pub(super) fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal::Reason;
    use std::time::Duration;

    #[test]
    fn a_refusal_shows_under_its_reason_and_histograms_are_cumulative() {
        let m = Metrics::new(["tax"], ["health"]);
        let route = m.route("health", "ma.health.v1.HealthRecords/GetVaccinationRecord");
        m.exchange(
            &route,
            m.consumer_slot("tax"),
            Some(Reason::AccessDenied),
            Duration::from_micros(300),
        );
        let readiness = Readiness {
            ready: true,
            consent_store_up: Some(false),
        };
        let text = render(&m, &WriterStats::default(), true, readiness);
        assert!(text.contains(
            "jisr_exchanges_total{consumer=\"tax\",provider=\"health\",method=\"ma.health.v1.HealthRecords/GetVaccinationRecord\",outcome=\"refused\",reason=\"ACCESS_DENIED\"} 1"
        ), "{text}");
        assert!(text.contains("jisr_exchange_duration_seconds_bucket{provider=\"health\",method=\"ma.health.v1.HealthRecords/GetVaccinationRecord\",outcome=\"refused\",le=\"0.00025\"} 0"), "{text}");
        assert!(text.contains("jisr_exchange_duration_seconds_bucket{provider=\"health\",method=\"ma.health.v1.HealthRecords/GetVaccinationRecord\",outcome=\"refused\",le=\"0.0005\"} 1"), "{text}");
        assert!(
            text.contains("jisr_consent_check_duration_seconds_count 0"),
            "{text}"
        );
        assert!(text.contains("jisr_audit_up 1"), "{text}");
        assert!(text.contains("\njisr_ready 1\n"), "{text}");
        assert!(text.contains("\njisr_consent_store_up 0\n"), "{text}");
        assert!(
            !text.contains("jisr_audit_archive"),
            "no archive, no archive metrics: {text}"
        );
        let audit = WriterStats {
            archive: Some(crate::audit::log::archive::ArchiveStats {
                lag_segments: 2,
                failures: 3,
                ..Default::default()
            }),
            ..WriterStats::default()
        };
        let text = render(&m, &audit, true, readiness);
        assert!(
            text.contains("jisr_audit_archive_lag_segments 2\n"),
            "{text}"
        );
        assert!(
            text.contains("jisr_audit_archive_failures_total 3\n"),
            "{text}"
        );
    }
}
