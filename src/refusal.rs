//! Refusals: the one place where a reason to refuse a call becomes a gRPC
//! status with a stable `google.rpc.ErrorInfo` reason (domain `jisr`) and a
//! message that tells the caller what to do. Internal details go to the log.
//!
//! The exchange path and the gateway's own APIs (audit, consents, bus) refuse
//! through the same [`Reason`], so a reason code means one thing to callers
//! wherever they meet it.

use std::collections::HashMap;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every refusal.
pub const DOMAIN: &str = "jisr";

/// Stable reason codes, as they appear in `ErrorInfo.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No rule lets the consumer call the method.
    AccessDenied,
    /// The `jisr-purpose` metadata is missing.
    PurposeRequired,
    /// A rule exists, but not for the declared purpose.
    PurposeNotAllowed,
    /// The path is not in the catalogue.
    UnknownMethod,
    /// The method's call shape is not carried by the gateway.
    UnsupportedStreaming,
    /// The request is malformed (metadata or body).
    InvalidRequest,
    /// The request message exceeds the configured limit.
    MessageTooLarge,
    /// The provider could not be reached or failed at transport level.
    ProviderUnavailable,
    /// The caller's deadline passed.
    DeadlineExceeded,
    /// The exchange could not be recorded, so no data is released.
    AuditUnavailable,
    /// The rule's basis is consent and no valid consent was named.
    ConsentRequired,
    /// The named consent was revoked.
    ConsentRevoked,
    /// The named consent expired, is not valid yet, or has no uses left.
    ConsentExpired,
    /// The consent is for another purpose or procedure.
    PurposeMismatch,
    /// The consent is about another citizen than the request.
    SubjectMismatch,
    /// The consent store cannot be reached: the call is refused (fail closed).
    ConsentUnavailable,
    /// A break-glass call without `jisr-justification`.
    JustificationRequired,
    /// The consumer exceeded its `[[rate_limit]]`.
    RateLimited,
    /// The provider already has `max_in_flight` calls in flight: the call is
    /// shed rather than queued.
    Overloaded,
    /// The provider did not answer within the route's timeout.
    ProviderTimeout,
    /// A call to one of the gateway's own APIs reached it without a caller
    /// identity. Same text as [`Reason::AccessDenied`], so clients match one
    /// reason for "not let in", but `UNAUTHENTICATED`: who is calling is
    /// unknown, which is not the same as being known and not allowed.
    NoCallerIdentity,
    /// A published event's `subject` differs from the citizen id inside the
    /// event. Same text as [`Reason::SubjectMismatch`] (the request names
    /// two citizens at once), but `INVALID_ARGUMENT`: the publisher's request
    /// contradicts itself and is fixed by resending it, whereas on the
    /// exchange path a consent about another citizen is a matter of
    /// permission.
    EventSubjectMismatch,
    /// What the request names (an audit entry, a consent) does not exist.
    NotFound,
    /// A proof was asked for tree sizes the audit log cannot prove.
    OutOfRange,
    /// The audit entry is not covered by a signed checkpoint yet; one is
    /// signed within a second, so retrying succeeds.
    NotYetCheckpointed,
    /// The bus has no topic of that name.
    UnknownTopic,
    /// The agency named does not subscribe to the topic.
    UnknownSubscription,
    /// The bus store cannot be reached.
    BusUnavailable,
}

impl Reason {
    /// The reason code text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessDenied => "ACCESS_DENIED",
            Self::PurposeRequired => "PURPOSE_REQUIRED",
            Self::PurposeNotAllowed => "PURPOSE_NOT_ALLOWED",
            Self::UnknownMethod => "UNKNOWN_METHOD",
            Self::UnsupportedStreaming => "UNSUPPORTED_STREAMING",
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::MessageTooLarge => "MESSAGE_TOO_LARGE",
            Self::ProviderUnavailable => "PROVIDER_UNAVAILABLE",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::AuditUnavailable => "AUDIT_UNAVAILABLE",
            Self::ConsentRequired => "CONSENT_REQUIRED",
            Self::ConsentRevoked => "CONSENT_REVOKED",
            Self::ConsentExpired => "CONSENT_EXPIRED",
            Self::PurposeMismatch => "PURPOSE_MISMATCH",
            Self::SubjectMismatch => "SUBJECT_MISMATCH",
            Self::ConsentUnavailable => "CONSENT_UNAVAILABLE",
            Self::JustificationRequired => "JUSTIFICATION_REQUIRED",
            Self::RateLimited => "RATE_LIMITED",
            Self::Overloaded => "OVERLOADED",
            Self::ProviderTimeout => "PROVIDER_TIMEOUT",
            Self::NoCallerIdentity => "ACCESS_DENIED",
            Self::EventSubjectMismatch => "SUBJECT_MISMATCH",
            Self::NotFound => "NOT_FOUND",
            Self::OutOfRange => "OUT_OF_RANGE",
            Self::NotYetCheckpointed => "NOT_YET_CHECKPOINTED",
            Self::UnknownTopic => "UNKNOWN_TOPIC",
            Self::UnknownSubscription => "UNKNOWN_SUBSCRIPTION",
            Self::BusUnavailable => "BUS_UNAVAILABLE",
        }
    }

    /// The gRPC code that goes with the reason.
    pub fn code(self) -> Code {
        match self {
            Self::AccessDenied
            | Self::PurposeRequired
            | Self::PurposeNotAllowed
            | Self::ConsentRequired
            | Self::ConsentRevoked
            | Self::ConsentExpired
            | Self::PurposeMismatch
            | Self::SubjectMismatch
            | Self::JustificationRequired => Code::PermissionDenied,
            Self::UnknownMethod | Self::UnsupportedStreaming => Code::Unimplemented,
            Self::InvalidRequest | Self::EventSubjectMismatch => Code::InvalidArgument,
            Self::MessageTooLarge | Self::RateLimited => Code::ResourceExhausted,
            Self::ProviderUnavailable
            | Self::AuditUnavailable
            | Self::ConsentUnavailable
            | Self::Overloaded
            | Self::ProviderTimeout
            | Self::BusUnavailable => Code::Unavailable,
            Self::DeadlineExceeded => Code::DeadlineExceeded,
            Self::NoCallerIdentity => Code::Unauthenticated,
            Self::NotFound | Self::UnknownTopic | Self::UnknownSubscription => Code::NotFound,
            Self::OutOfRange => Code::OutOfRange,
            Self::NotYetCheckpointed => Code::FailedPrecondition,
        }
    }
}

/// A refused call: the reason and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable reason.
    pub reason: Reason,
    /// What went wrong and what to do, for the caller.
    pub message: String,
    /// When retrying may succeed (`google.rpc.RetryInfo`), if known.
    pub retry_after: Option<std::time::Duration>,
}

impl Refusal {
    /// A refusal with its message.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same refusal with a retry hint.
    #[must_use]
    pub fn retry_after(mut self, delay: std::time::Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// The gRPC status carrying the `ErrorInfo` detail (and `RetryInfo` when
    /// a retry hint is set). An empty `request_id` leaves the `ErrorInfo`
    /// metadata empty: the gateway's own APIs have no exchange request id.
    pub fn to_status(&self, request_id: &str) -> tonic::Status {
        let mut metadata = HashMap::new();
        if !request_id.is_empty() {
            metadata.insert("request_id".to_owned(), request_id.to_owned());
        }
        let mut details = ErrorDetails::with_error_info(self.reason.as_str(), DOMAIN, metadata);
        if let Some(delay) = self.retry_after {
            details.set_retry_info(Some(delay));
        }
        tonic::Status::with_error_details(self.reason.code(), self.message.clone(), details)
    }
}

/// How long to wait before retrying, as a refusal's message says it
/// ("retry in 200 ms", "retry in 12 s"): the same delay as the binary
/// `RetryInfo` detail, for callers whose client does not decode details.
/// Rounded up, so a caller who waits what it reads is never early.
pub fn retry_in(delay: std::time::Duration) -> String {
    let ms = delay.as_nanos().div_ceil(1_000_000).max(1);
    if ms < 10_000 {
        format!("retry in {ms} ms")
    } else {
        format!("retry in {} s", ms.div_ceil(1000))
    }
}

impl From<Refusal> for tonic::Status {
    /// A refusal by one of the gateway's own APIs, which name no request id.
    fn from(refusal: Refusal) -> Self {
        refusal.to_status("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_error_info() {
        let refusal = Refusal::new(Reason::AccessDenied, "ask the operator");
        let status = refusal.to_status("req-1");
        assert_eq!(status.code(), Code::PermissionDenied);
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(info.reason, "ACCESS_DENIED");
        assert_eq!(info.domain, "jisr");
        assert_eq!(
            info.metadata.get("request_id").map(String::as_str),
            Some("req-1")
        );
        assert!(status.get_details_retry_info().is_none());
    }

    #[test]
    fn retry_delays_read_in_milliseconds_or_seconds_rounded_up() {
        use std::time::Duration;
        assert_eq!(retry_in(Duration::from_millis(200)), "retry in 200 ms");
        assert_eq!(retry_in(Duration::from_micros(1)), "retry in 1 ms");
        assert_eq!(retry_in(Duration::from_micros(1500)), "retry in 2 ms");
        assert_eq!(retry_in(Duration::from_millis(9_999)), "retry in 9999 ms");
        assert_eq!(retry_in(Duration::from_millis(59_001)), "retry in 60 s");
    }

    #[test]
    fn shed_and_limited_calls_carry_a_retry_hint() {
        let delay = std::time::Duration::from_millis(250);
        for (reason, code) in [
            (Reason::RateLimited, Code::ResourceExhausted),
            (Reason::Overloaded, Code::Unavailable),
            (Reason::ProviderTimeout, Code::Unavailable),
        ] {
            let status = Refusal::new(reason, "retry later")
                .retry_after(delay)
                .to_status("r");
            assert_eq!(status.code(), code);
            let retry = status.get_details_retry_info().expect("retry info");
            assert_eq!(retry.retry_delay, Some(delay));
            assert_eq!(
                status.get_details_error_info().unwrap().reason,
                reason.as_str()
            );
        }
    }

    /// Every reason with the gRPC code and text its doc comment promises.
    #[rustfmt::skip]
    const TABLE: [(Reason, Code, &str); 28] = [
        (Reason::AccessDenied,          Code::PermissionDenied,   "ACCESS_DENIED"),
        (Reason::PurposeRequired,       Code::PermissionDenied,   "PURPOSE_REQUIRED"),
        (Reason::PurposeNotAllowed,     Code::PermissionDenied,   "PURPOSE_NOT_ALLOWED"),
        (Reason::UnknownMethod,         Code::Unimplemented,      "UNKNOWN_METHOD"),
        (Reason::UnsupportedStreaming,  Code::Unimplemented,      "UNSUPPORTED_STREAMING"),
        (Reason::InvalidRequest,        Code::InvalidArgument,    "INVALID_REQUEST"),
        (Reason::MessageTooLarge,       Code::ResourceExhausted,  "MESSAGE_TOO_LARGE"),
        (Reason::ProviderUnavailable,   Code::Unavailable,        "PROVIDER_UNAVAILABLE"),
        (Reason::DeadlineExceeded,      Code::DeadlineExceeded,   "DEADLINE_EXCEEDED"),
        (Reason::AuditUnavailable,      Code::Unavailable,        "AUDIT_UNAVAILABLE"),
        (Reason::ConsentRequired,       Code::PermissionDenied,   "CONSENT_REQUIRED"),
        (Reason::ConsentRevoked,        Code::PermissionDenied,   "CONSENT_REVOKED"),
        (Reason::ConsentExpired,        Code::PermissionDenied,   "CONSENT_EXPIRED"),
        (Reason::PurposeMismatch,       Code::PermissionDenied,   "PURPOSE_MISMATCH"),
        (Reason::SubjectMismatch,       Code::PermissionDenied,   "SUBJECT_MISMATCH"),
        (Reason::ConsentUnavailable,    Code::Unavailable,        "CONSENT_UNAVAILABLE"),
        (Reason::JustificationRequired, Code::PermissionDenied,   "JUSTIFICATION_REQUIRED"),
        (Reason::RateLimited,           Code::ResourceExhausted,  "RATE_LIMITED"),
        (Reason::Overloaded,            Code::Unavailable,        "OVERLOADED"),
        (Reason::ProviderTimeout,       Code::Unavailable,        "PROVIDER_TIMEOUT"),
        (Reason::NoCallerIdentity,      Code::Unauthenticated,    "ACCESS_DENIED"),
        (Reason::EventSubjectMismatch,  Code::InvalidArgument,    "SUBJECT_MISMATCH"),
        (Reason::NotFound,              Code::NotFound,           "NOT_FOUND"),
        (Reason::OutOfRange,            Code::OutOfRange,         "OUT_OF_RANGE"),
        (Reason::NotYetCheckpointed,    Code::FailedPrecondition, "NOT_YET_CHECKPOINTED"),
        (Reason::UnknownTopic,          Code::NotFound,           "UNKNOWN_TOPIC"),
        (Reason::UnknownSubscription,   Code::NotFound,           "UNKNOWN_SUBSCRIPTION"),
        (Reason::BusUnavailable,        Code::Unavailable,        "BUS_UNAVAILABLE"),
    ];

    /// The row of each reason in [`TABLE`]. Exhaustive on purpose: a new
    /// reason does not compile until it has a row.
    fn row(reason: Reason) -> usize {
        match reason {
            Reason::AccessDenied => 0,
            Reason::PurposeRequired => 1,
            Reason::PurposeNotAllowed => 2,
            Reason::UnknownMethod => 3,
            Reason::UnsupportedStreaming => 4,
            Reason::InvalidRequest => 5,
            Reason::MessageTooLarge => 6,
            Reason::ProviderUnavailable => 7,
            Reason::DeadlineExceeded => 8,
            Reason::AuditUnavailable => 9,
            Reason::ConsentRequired => 10,
            Reason::ConsentRevoked => 11,
            Reason::ConsentExpired => 12,
            Reason::PurposeMismatch => 13,
            Reason::SubjectMismatch => 14,
            Reason::ConsentUnavailable => 15,
            Reason::JustificationRequired => 16,
            Reason::RateLimited => 17,
            Reason::Overloaded => 18,
            Reason::ProviderTimeout => 19,
            Reason::NoCallerIdentity => 20,
            Reason::EventSubjectMismatch => 21,
            Reason::NotFound => 22,
            Reason::OutOfRange => 23,
            Reason::NotYetCheckpointed => 24,
            Reason::UnknownTopic => 25,
            Reason::UnknownSubscription => 26,
            Reason::BusUnavailable => 27,
        }
    }

    #[test]
    fn every_reason_maps_to_its_documented_code_and_text() {
        for (i, (reason, code, text)) in TABLE.into_iter().enumerate() {
            assert_eq!(row(reason), i, "{reason:?} is not in its row");
            assert_eq!(reason.code(), code, "{reason:?}");
            assert_eq!(reason.as_str(), text, "{reason:?}");
            let status = Refusal::new(reason, "what to do").to_status("req-7");
            assert_eq!(status.code(), code, "{reason:?}");
            assert_eq!(status.message(), "what to do");
            let info = status.get_details_error_info().expect("error info");
            assert_eq!(info.reason, text);
            assert_eq!(info.domain, DOMAIN);
            assert_eq!(info.domain, "jisr");
            assert!(status.get_details_retry_info().is_none(), "{reason:?}");
        }
    }

    #[test]
    fn one_text_with_two_codes_is_two_reasons() {
        assert_eq!(
            Reason::NoCallerIdentity.as_str(),
            Reason::AccessDenied.as_str()
        );
        assert_ne!(Reason::NoCallerIdentity.code(), Reason::AccessDenied.code());
        assert_eq!(
            Reason::EventSubjectMismatch.as_str(),
            Reason::SubjectMismatch.as_str()
        );
        assert_ne!(
            Reason::EventSubjectMismatch.code(),
            Reason::SubjectMismatch.code()
        );
    }

    #[test]
    fn the_gateway_apis_status_names_no_request_id() {
        let status = tonic::Status::from(Refusal::new(Reason::UnknownTopic, "no topic `x`"));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "no topic `x`");
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(info.reason, "UNKNOWN_TOPIC");
        assert_eq!(info.domain, "jisr");
        assert!(info.metadata.is_empty());
        let direct = Refusal::new(Reason::UnknownTopic, "no topic `x`").to_status("");
        assert_eq!(status.details(), direct.details());
    }

    #[test]
    fn a_retry_hint_survives_the_conversion_without_request_id() {
        let delay = std::time::Duration::from_secs(1);
        let status = tonic::Status::from(
            Refusal::new(Reason::BusUnavailable, "retry shortly").retry_after(delay),
        );
        assert_eq!(status.code(), Code::Unavailable);
        let retry = status.get_details_retry_info().expect("retry info");
        assert_eq!(retry.retry_delay, Some(delay));
    }

    /// `PermissionDenied` → `PERMISSION_DENIED`, as the docs write codes.
    fn screaming(code: Code) -> String {
        let mut out = String::new();
        for (i, c) in format!("{code:?}").chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }

    /// The refusal table of docs/onboarding.md ("Read refusals") names
    /// every reason an exchange can end with, each with its code.
    #[test]
    fn the_onboarding_guide_lists_every_exchange_refusal_with_its_code() {
        let guide = include_str!("../docs/onboarding.md");
        let rows: Vec<(&str, &str)> = guide
            .lines()
            .filter_map(|line| {
                let mut cells = line.split('|').map(str::trim).skip(1);
                let reason = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                reason
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_')
                    .then_some((reason, code))
            })
            .collect();
        for (reason, code) in &rows {
            assert!(
                TABLE
                    .iter()
                    .any(|(_, c, text)| text == reason && &screaming(*c) == code),
                "the guide says {reason} is {code}"
            );
        }
        let not_on_exchanges = [
            Reason::NoCallerIdentity,
            Reason::EventSubjectMismatch,
            Reason::NotFound,
            Reason::OutOfRange,
            Reason::NotYetCheckpointed,
            Reason::UnknownTopic,
            Reason::UnknownSubscription,
            Reason::BusUnavailable,
        ];
        for (reason, _, text) in TABLE {
            if !not_on_exchanges.contains(&reason) {
                assert!(
                    rows.iter().any(|(r, _)| r == &text),
                    "{text} is missing from the guide's refusal table"
                );
            }
        }
    }
}
