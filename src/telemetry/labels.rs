//! Label values fixed at build time: refusal reasons as dense indexes (so a
//! counter cell is an array slot, not a map lookup), outcomes, and the TLS
//! handshake failure codes.

use crate::proto::jisr::audit::v1::Outcome;
use crate::refusal::Reason;
use rustls::{CertificateError, Error};

/// Every reason an exchange can end with, in slot order (slot 0 is "no
/// reason": allowed).
pub(crate) const REASONS: [Reason; 20] = [
    Reason::AccessDenied,
    Reason::PurposeRequired,
    Reason::PurposeNotAllowed,
    Reason::UnknownMethod,
    Reason::UnsupportedStreaming,
    Reason::InvalidRequest,
    Reason::MessageTooLarge,
    Reason::ProviderUnavailable,
    Reason::DeadlineExceeded,
    Reason::AuditUnavailable,
    Reason::ConsentRequired,
    Reason::ConsentRevoked,
    Reason::ConsentExpired,
    Reason::PurposeMismatch,
    Reason::SubjectMismatch,
    Reason::ConsentUnavailable,
    Reason::JustificationRequired,
    Reason::RateLimited,
    Reason::Overloaded,
    Reason::ProviderTimeout,
];

/// Counter slots per consumer and method: "allowed" plus one per reason.
pub(crate) const SLOTS: usize = REASONS.len() + 1;

/// The counter slot of an ending, `None` for a reason no exchange ends
/// with. The match is exhaustive on purpose: a new reason does not compile
/// until it has a slot or is said not to need one.
pub(crate) fn slot(reason: Option<Reason>) -> Option<usize> {
    let Some(reason) = reason else {
        return Some(0);
    };
    let index = match reason {
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
        // Only the gateway's own APIs (audit, consents, bus) refuse with
        // these, and their calls are not exchanges: giving them slots would
        // add a counter cell per consumer and method that stays zero.
        Reason::NoCallerIdentity
        | Reason::EventSubjectMismatch
        | Reason::NotFound
        | Reason::OutOfRange
        | Reason::NotYetCheckpointed
        | Reason::UnknownTopic
        | Reason::UnknownSubscription
        | Reason::BusUnavailable => return None,
    };
    Some(1 + index)
}

/// The reason in a slot (`None` for slot 0).
pub(crate) fn reason_of(slot: usize) -> Option<Reason> {
    slot.checked_sub(1).and_then(|i| REASONS.get(i).copied())
}

/// How an exchange ended, from its reason: the provider answered
/// (`Allowed`), Jisr refused it (`Refused`: nothing reached the provider),
/// or the provider or the audit log failed it (`Failed`).
pub fn outcome(reason: Option<Reason>) -> Outcome {
    match reason {
        None => Outcome::Allowed,
        Some(
            Reason::ProviderUnavailable
            | Reason::DeadlineExceeded
            | Reason::AuditUnavailable
            | Reason::ProviderTimeout,
        ) => Outcome::Failed,
        Some(_) => Outcome::Refused,
    }
}

/// Outcome label text, also used by the exchange log line.
pub fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allowed => "allowed",
        Outcome::Refused => "refused",
        Outcome::Failed => "failed",
        Outcome::Unspecified => "-",
    }
}

/// Index of an outcome in per-outcome arrays (allowed, refused, failed).
pub(crate) fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Allowed | Outcome::Unspecified => 0,
        Outcome::Refused => 1,
        Outcome::Failed => 2,
    }
}

/// The outcomes in [`outcome_index`] order.
pub(crate) const OUTCOMES: [Outcome; 3] = [Outcome::Allowed, Outcome::Refused, Outcome::Failed];

/// Why a TLS handshake (or the identity check right after it) failed, as a
/// short metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The client sent no certificate.
    NoCertificate,
    /// Certificate expired or not yet valid.
    Expired,
    /// Not issued by the configured CA.
    UnknownIssuer,
    /// Revoked, or its revocation status is unknown.
    Revoked,
    /// Bad signature, encoding or key usage.
    BadCertificate,
    /// The SPIFFE identity check refused it (wrong trust domain, kind, …).
    Identity,
    /// A valid agency certificate for an agency the configuration does not
    /// declare: refused once the handshake is done, before any request.
    Undeclared,
    /// Not TLS 1.3 with ALPN h2, or malformed handshake messages.
    Protocol,
    /// The peer sent an alert.
    Alert,
    /// The peer closed the connection before the handshake completed.
    Closed,
    /// The handshake did not complete within its time limit.
    Timeout,
    /// Anything else.
    Other,
}

impl TlsFailure {
    /// Every code, in label order.
    pub const ALL: [TlsFailure; 12] = [
        Self::NoCertificate,
        Self::Expired,
        Self::UnknownIssuer,
        Self::Revoked,
        Self::BadCertificate,
        Self::Identity,
        Self::Undeclared,
        Self::Protocol,
        Self::Alert,
        Self::Closed,
        Self::Timeout,
        Self::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoCertificate => "no_certificate",
            Self::Expired => "expired",
            Self::UnknownIssuer => "unknown_issuer",
            Self::Revoked => "revoked",
            Self::BadCertificate => "bad_certificate",
            Self::Identity => "identity",
            Self::Undeclared => "undeclared_agency",
            Self::Protocol => "protocol",
            Self::Alert => "alert",
            Self::Closed => "closed",
            Self::Timeout => "timeout",
            Self::Other => "other",
        }
    }

    /// The code of an error returned by the TLS acceptor.
    pub fn of(err: &std::io::Error) -> Self {
        let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
            return match err.kind() {
                std::io::ErrorKind::UnexpectedEof => Self::Closed,
                std::io::ErrorKind::TimedOut => Self::Timeout,
                _ => Self::Other,
            };
        };
        match tls {
            Error::NoCertificatesPresented => Self::NoCertificate,
            Error::InvalidCertificate(e) => match e {
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => Self::Expired,
                CertificateError::UnknownIssuer => Self::UnknownIssuer,
                CertificateError::Revoked | CertificateError::UnknownRevocationStatus => {
                    Self::Revoked
                }
                CertificateError::ApplicationVerificationFailure | CertificateError::Other(_) => {
                    Self::Identity
                }
                _ => Self::BadCertificate,
            },
            Error::AlertReceived(_) => Self::Alert,
            Error::NoApplicationProtocol
            | Error::PeerIncompatible(_)
            | Error::InvalidMessage(_)
            | Error::InappropriateHandshakeMessage { .. } => Self::Protocol,
            _ => Self::Other,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_slot_and_back() {
        for (i, reason) in REASONS.iter().enumerate() {
            assert_eq!(slot(Some(*reason)), Some(i + 1), "{reason:?}");
            assert_eq!(reason_of(i + 1), Some(*reason));
        }
        assert_eq!(slot(None), Some(0));
        assert_eq!(reason_of(0), None);
    }

    #[test]
    fn reasons_of_the_gateway_apis_alone_have_no_slot() {
        for reason in [
            Reason::NoCallerIdentity,
            Reason::EventSubjectMismatch,
            Reason::NotFound,
            Reason::OutOfRange,
            Reason::NotYetCheckpointed,
            Reason::UnknownTopic,
            Reason::UnknownSubscription,
            Reason::BusUnavailable,
        ] {
            assert_eq!(slot(Some(reason)), None, "{reason:?}");
            assert!(!REASONS.contains(&reason), "{reason:?}");
        }
    }

    #[test]
    fn tls_failure_codes_index_their_list() {
        for (i, code) in TlsFailure::ALL.iter().enumerate() {
            assert_eq!(code.index(), i);
        }
    }

    #[test]
    fn provider_and_audit_failures_are_failed_not_refused() {
        assert_eq!(outcome(None), Outcome::Allowed);
        assert_eq!(outcome(Some(Reason::ProviderUnavailable)), Outcome::Failed);
        assert_eq!(outcome(Some(Reason::AuditUnavailable)), Outcome::Failed);
        assert_eq!(outcome(Some(Reason::AccessDenied)), Outcome::Refused);
    }
}
