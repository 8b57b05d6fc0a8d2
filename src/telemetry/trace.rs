//! One span per exchange, exported over OTLP. The caller's W3C
//! `traceparent` is its parent; the provider gets a `traceparent` naming
//! the exchange's span. Nothing here runs when export is off.

use crate::audit::record::Trail;
use crate::proto::jisr::audit::v1::Outcome;
use crate::refusal::Reason;
use http::{HeaderMap, HeaderValue};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, Span};

/// The span of one exchange, and the `traceparent` to send the provider.
#[derive(Debug)]
pub struct ExchangeSpan {
    span: Span,
    /// `traceparent` for the upstream request (this span as the parent).
    pub traceparent: HeaderValue,
    /// The trace id, lowercase hex.
    pub trace_id: String,
}

/// Starts the span of a call to `method` (a gRPC path).
pub(crate) fn start(tracer: &SdkTracer, method: &str, headers: &HeaderMap) -> ExchangeSpan {
    let parent = match parent(headers) {
        Some(remote) => Context::new().with_remote_span_context(remote),
        None => Context::new(),
    };
    let name = method.strip_prefix('/').unwrap_or(method).to_owned();
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .start_with_context(tracer, &parent);
    let cx = span.span_context();
    let trace_id = cx.trace_id().to_string();
    let text = format!(
        "00-{trace_id}-{}-{:02x}",
        cx.span_id(),
        cx.trace_flags().to_u8()
    );
    // Hex digits and dashes only: always a valid header value.
    let mut traceparent =
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    // New for every exchange: not worth a place in the provider's HPACK table.
    traceparent.set_sensitive(true);
    ExchangeSpan {
        span,
        traceparent,
        trace_id,
    }
}

impl ExchangeSpan {
    /// Names the exchange's facts and ends the span.
    pub fn end(
        mut self,
        trail: &Trail,
        reason: Option<Reason>,
        outcome: Outcome,
        grpc_status: i32,
    ) {
        let (service, rpc) = trail
            .method
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("", ""));
        let text = |key: &'static str, value: &str| KeyValue::new(key, value.to_owned());
        self.span.set_attributes([
            KeyValue::new("rpc.system", "grpc"),
            text("rpc.service", service),
            text("rpc.method", rpc),
            KeyValue::new("rpc.grpc.status_code", i64::from(grpc_status)),
            text("jisr.consumer", &trail.consumer),
            text("jisr.provider", &trail.provider),
            text("jisr.method", &trail.method),
            text("jisr.purpose", &trail.purpose),
            text("jisr.procedure", &trail.procedure),
            KeyValue::new("jisr.outcome", super::labels::outcome_label(outcome)),
            KeyValue::new("jisr.reason", reason.map_or("", |r| r.as_str())),
            text("jisr.request_id", &trail.request_id),
        ]);
        if let Some(reason) = reason {
            self.span.set_status(Status::error(reason.as_str()));
        }
        self.span.end();
    }
}

/// The caller's span context from a W3C `traceparent`
/// (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`); a malformed
/// one is ignored and the exchange starts a new trace.
pub fn parent(headers: &HeaderMap) -> Option<SpanContext> {
    let value = headers.get("traceparent")?.to_str().ok()?.trim();
    let mut parts = value.split('-');
    let version = parts.next()?;
    let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    // Version ff is invalid; version 00 has exactly four fields.
    if !hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace)
        .ok()
        .filter(|t| *t != TraceId::INVALID)?;
    let span_id = SpanId::from_hex(span)
        .ok()
        .filter(|s| *s != SpanId::INVALID)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(tp: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("traceparent", tp.parse().unwrap());
        h
    }

    #[test]
    fn a_valid_traceparent_is_the_parent() {
        let cx = parent(&headers(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ))
        .unwrap();
        assert_eq!(
            cx.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(cx.span_id().to_string(), "00f067aa0ba902b7");
        assert!(cx.is_sampled() && cx.is_remote());
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            assert!(parent(&headers(bad)).is_none(), "{bad}");
        }
    }
}
