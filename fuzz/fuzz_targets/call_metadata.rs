//! The gateway's reading of a caller's metadata (HTTP/2 headers straight
//! from the network): `jisr-*` values, `jisr-request-id` and
//! `grpc-timeout`. Errors are refusals, never panics; a timeout the gateway
//! formats for a provider always parses back.

#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use jisr::gateway::metadata;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 8] = [
    metadata::PURPOSE,
    metadata::PROCEDURE,
    metadata::OFFICIAL,
    metadata::REQUEST_ID,
    metadata::CONSENT,
    metadata::JUSTIFICATION,
    metadata::GRPC_TIMEOUT,
    "traceparent",
];

fuzz_target!(|data: &[u8]| {
    // Each value: one byte naming the header, one byte of length, the bytes.
    let mut headers = HeaderMap::new();
    let mut rest = data;
    while let [which, len, tail @ ..] = rest {
        let len = (*len as usize).min(tail.len());
        let (value, next) = tail.split_at(len);
        rest = next;
        if let Ok(value) = HeaderValue::from_bytes(value) {
            let name = HeaderName::from_static(NAMES[*which as usize % NAMES.len()]);
            headers.append(name, value);
        }
    }
    let _ = metadata::request_id(&headers);
    let _ = metadata::call_metadata(&headers);
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
