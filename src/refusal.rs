//! Refusals: the one place where a reason to refuse a call becomes a gRPC
//! status with a stable `google.rpc.ErrorInfo` reason (domain `jisr`) and a
//! message that tells the caller what to do. Internal details go to the log.

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
            Self::InvalidRequest => Code::InvalidArgument,
            Self::MessageTooLarge | Self::RateLimited => Code::ResourceExhausted,
            Self::ProviderUnavailable
            | Self::AuditUnavailable
            | Self::ConsentUnavailable
            | Self::Overloaded
            | Self::ProviderTimeout => Code::Unavailable,
            Self::DeadlineExceeded => Code::DeadlineExceeded,
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

    /// The gRPC status carrying the `ErrorInfo` detail.
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
}
