//! The `jisr-*` request metadata and the gRPC deadline header.
//!
//! The names are [`HeaderName`]s built at compile time: looking one up in a
//! header map by `&str` would parse and hash the text again on every call.

use crate::refusal::{Reason, Refusal};
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};
use std::time::Duration;

/// Purpose code of the call (required).
pub const PURPOSE: HeaderName = HeaderName::from_static("jisr-purpose");
/// Administrative procedure id (optional).
pub const PROCEDURE: HeaderName = HeaderName::from_static("jisr-procedure");
/// The officer at the consumer (optional).
pub const OFFICIAL: HeaderName = HeaderName::from_static("jisr-official");
/// Correlation id; generated when absent and echoed back.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("jisr-request-id");
/// The consent the call relies on, where the rule's basis is consent.
pub const CONSENT: HeaderName = HeaderName::from_static("jisr-consent");
/// Why an emergency (break-glass) call is made.
pub const JUSTIFICATION: HeaderName = HeaderName::from_static("jisr-justification");
/// Set by the gateway towards the provider: the authenticated consumer.
pub const CONSUMER: HeaderName = HeaderName::from_static("jisr-consumer");
/// Set by the gateway towards the consumer: the basis the call was granted on.
pub const BASIS: HeaderName = HeaderName::from_static("jisr-basis");
/// gRPC deadline header.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

const MAX_LEN: usize = 128;

/// The metadata of one call, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallMetadata {
    /// `jisr-purpose`.
    pub purpose: String,
    /// `jisr-procedure`, if sent.
    pub procedure: Option<String>,
    /// `jisr-official`, if sent.
    pub official: Option<String>,
    /// `jisr-consent`, if sent.
    pub consent: Option<String>,
    /// `jisr-justification`, if sent (free text, printable ASCII).
    pub justification: Option<String>,
}

/// The request id: the caller's `jisr-request-id` if well-formed, else a new one.
pub fn request_id(headers: &HeaderMap) -> Result<String, Refusal> {
    match headers.get(REQUEST_ID) {
        None => Ok(new_request_id()),
        Some(value) => {
            let text = value.to_str().ok().filter(|t| valid_token(t, MAX_LEN));
            text.map(str::to_owned).ok_or_else(|| {
                Refusal::new(
                    Reason::InvalidRequest,
                    "`jisr-request-id` must be 1 to 128 characters among letters, digits and `-_.:`; send a valid id or none (the gateway then makes one)",
                )
            })
        }
    }
}

/// A `jisr-request-id` value, marked never to be indexed by HPACK: each
/// call's id is new, so adding it to the peers' header tables would only
/// evict entries that repeat (purpose, consumer, content type). `None` if
/// `id` is not a valid header value.
pub fn request_id_value(id: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(id).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The request id as a header value (never indexed, see
/// [`request_id_value`]); the id was validated or made by the gateway, so
/// the fallback is never sent in practice.
pub(crate) fn request_id_header(id: &str) -> HeaderValue {
    request_id_value(id).unwrap_or_else(|| HeaderValue::from_static("invalid"))
}

/// A header value from text the gateway produced or validated.
pub(crate) fn header(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// A random 128-bit id in hex.
pub fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Reads and checks the `jisr-*` metadata of a call.
pub fn call_metadata(headers: &HeaderMap) -> Result<CallMetadata, Refusal> {
    let purpose = match optional(headers, &PURPOSE)? {
        Some(p) => p,
        None => {
            return Err(Refusal::new(
                Reason::PurposeRequired,
                "every call must state its purpose: set the `jisr-purpose` metadata to the purpose code of your procedure",
            ))
        }
    };
    Ok(CallMetadata {
        purpose,
        procedure: optional(headers, &PROCEDURE)?,
        official: optional(headers, &OFFICIAL)?,
        consent: optional(headers, &CONSENT)?,
        justification: justification(headers)?,
    })
}

fn optional(headers: &HeaderMap, name: &HeaderName) -> Result<Option<String>, Refusal> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(text) if valid_token(text, MAX_LEN) => Ok(Some(text.to_owned())),
        _ => Err(Refusal::new(
            Reason::InvalidRequest,
            format!("metadata `{name}` must be 1 to {MAX_LEN} characters among letters, digits and `-_.:`; fix the value your client sends"),
        )),
    }
}

fn justification(headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    let Some(value) = headers.get(JUSTIFICATION) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(text) if (10..=512).contains(&text.trim().len()) => Ok(Some(text.trim().to_owned())),
        _ => Err(Refusal::new(
            Reason::InvalidRequest,
            "`jisr-justification` must be 10 to 512 printable ASCII characters saying why the emergency access is needed",
        )),
    }
}

fn valid_token(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Parses a `grpc-timeout` value such as `100m` or `5S`.
pub fn grpc_timeout(headers: &HeaderMap) -> Result<Option<Duration>, Refusal> {
    let Some(value) = headers.get(GRPC_TIMEOUT) else {
        return Ok(None);
    };
    parse_timeout(value.as_bytes()).map(Some).ok_or_else(|| {
        Refusal::new(
            Reason::InvalidRequest,
            "`grpc-timeout` is malformed: use at most 8 digits followed by one of H, M, S, m, u, n",
        )
    })
}

fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Formats a duration as a `grpc-timeout` value, rounding up.
pub fn format_timeout(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 100_000_000 {
        format!("{}u", micros.max(1))
    } else {
        format!("{}m", d.as_millis().min(99_999_999))
    }
}

/// A trailers-only gRPC response for a refused call, echoing the request id.
pub fn refusal_response<B: Default>(refusal: &Refusal, request_id: &str) -> http::Response<B> {
    let mut response = refusal.to_status(request_id).into_http::<B>();
    if let Some(value) = request_id_value(request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_response_is_trailers_only_and_echoes_the_request_id() {
        let refusal = Refusal::new(Reason::AccessDenied, "ask the operator");
        let response = refusal_response::<()>(&refusal, "req-1");
        assert_eq!(response.headers()["grpc-status"], "7");
        assert_eq!(response.headers()["jisr-request-id"], "req-1");
    }

    #[test]
    fn timeouts_parse_and_format() {
        assert_eq!(parse_timeout(b"100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout(b"m"), None);
        assert_eq!(parse_timeout(b"123456789m"), None);
        assert_eq!(parse_timeout(b"10x"), None);
        let d = Duration::from_millis(1500);
        assert_eq!(parse_timeout(format_timeout(d).as_bytes()), Some(d));
        let long = Duration::from_secs(3600);
        assert_eq!(parse_timeout(format_timeout(long).as_bytes()), Some(long));
    }

    #[test]
    fn purpose_is_required_and_checked() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            call_metadata(&headers).unwrap_err().reason,
            Reason::PurposeRequired
        );
        headers.insert(PURPOSE, "bac candidature".parse().unwrap());
        assert_eq!(
            call_metadata(&headers).unwrap_err().reason,
            Reason::InvalidRequest
        );
        headers.insert(PURPOSE, "bac-candidature".parse().unwrap());
        headers.insert(OFFICIAL, "agent-42".parse().unwrap());
        let md = call_metadata(&headers).unwrap();
        assert_eq!(md.purpose, "bac-candidature");
        assert_eq!(md.official.as_deref(), Some("agent-42"));
        assert_eq!(md.procedure, None);
    }

    #[test]
    fn request_ids_are_echoed_or_made() {
        let mut headers = HeaderMap::new();
        assert_eq!(request_id(&headers).unwrap().len(), 32);
        headers.insert(REQUEST_ID, "abc-1".parse().unwrap());
        assert_eq!(request_id(&headers).unwrap(), "abc-1");
        headers.insert(REQUEST_ID, "a b".parse().unwrap());
        assert!(request_id(&headers).is_err());
    }

    #[test]
    fn request_id_values_are_never_indexed() {
        let value = request_id_value("abc-1").unwrap();
        assert_eq!(value, "abc-1");
        assert!(
            value.is_sensitive(),
            "HPACK must not add per-call ids to its table"
        );
        assert!(request_id_value("line\nbreak").is_none());
    }
}
