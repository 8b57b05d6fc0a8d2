//! The gateway's reading of a caller's metadata (HTTP/2 headers straight
//! from the network): `jisr-*` values, `jisr-request-id`, `grpc-timeout`
//! and the W3C `traceparent`. Errors are refusals, never panics; a timeout
//! the gateway formats for a provider always parses back.
//!
//! `traceparent` is read twice, by the exchange's span
//! (`telemetry::trace::parent`) and by its audit record (`Trail::start`):
//! when the span takes the caller's trace as its parent, the record names
//! the same trace, and the context written back in the W3C form parses to
//! the same context.

#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use jisr::audit::record::Trail;
use jisr::gateway::metadata;
use jisr::telemetry::trace;
use libfuzzer_sys::fuzz_target;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

const NAMES: [HeaderName; 8] = [
    metadata::PURPOSE,
    metadata::PROCEDURE,
    metadata::OFFICIAL,
    metadata::REQUEST_ID,
    metadata::CONSENT,
    metadata::JUSTIFICATION,
    metadata::GRPC_TIMEOUT,
    TRACEPARENT,
];

fn traceparent(headers: &HeaderMap) {
    let Some(parent) = trace::parent(headers) else {
        return;
    };
    let trail = Trail::start("r", "consumer", "/s/m", headers);
    assert_eq!(trail.trace_id, parent.trace_id().to_string());
    let text = format!(
        "00-{}-{}-{:02x}",
        parent.trace_id(),
        parent.span_id(),
        parent.trace_flags().to_u8()
    );
    let mut again = HeaderMap::new();
    again.insert(
        TRACEPARENT,
        HeaderValue::from_str(&text).expect("hex and dashes"),
    );
    assert_eq!(trace::parent(&again), Some(parent), "{text}");
}

fuzz_target!(|data: &[u8]| {
    // Each value: one byte naming the header, one byte of length, the bytes.
    let mut headers = HeaderMap::new();
    let mut rest = data;
    while let [which, len, tail @ ..] = rest {
        let len = (*len as usize).min(tail.len());
        let (value, next) = tail.split_at(len);
        rest = next;
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(NAMES[*which as usize % NAMES.len()].clone(), value);
        }
    }
    let _ = metadata::request_id(&headers);
    let _ = metadata::call_metadata(&headers);
    traceparent(&headers);
    if let Ok(Some(timeout)) = metadata::grpc_timeout(&headers) {
        let formatted = metadata::format_timeout(timeout);
        let mut again = HeaderMap::new();
        again.insert(
            metadata::GRPC_TIMEOUT,
            HeaderValue::from_str(&formatted).expect("ASCII"),
        );
        assert!(
            matches!(metadata::grpc_timeout(&again), Ok(Some(_))),
            "{formatted} does not parse back"
        );
    }
});
