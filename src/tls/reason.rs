//! One-line, human reasons for failed handshakes, for the log lines that say
//! why a peer was refused (or why a provider refused us).

use std::io;

use rustls::pki_types::UnixTime;
use rustls::{AlertDescription, CertificateError, Error};

use super::verify::PeerRefused;
use crate::identity::IdentityError;

/// A one-line human reason for a failed handshake, from the `io::Error`
/// tokio-rustls returns (its inner error is usually a `rustls::Error`), e.g.
/// "certificate expired (not after 2026-01-01T00:00:00Z)" or
/// "certificate revoked".
pub fn handshake_failure_reason(err: &io::Error) -> String {
    if let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
        return tls_reason(tls);
    }
    match err.kind() {
        io::ErrorKind::UnexpectedEof => {
            "the peer closed the connection during the handshake".into()
        }
        io::ErrorKind::TimedOut => "the handshake timed out".into(),
        _ => format!("handshake failed: {err}"),
    }
}

fn tls_reason(err: &Error) -> String {
    match err {
        Error::InvalidCertificate(e) => certificate_reason(e),
        Error::NoCertificatesPresented => "no client certificate presented".into(),
        Error::AlertReceived(alert) => alert_reason(*alert),
        Error::NoApplicationProtocol => {
            "no common application protocol (Jisr speaks gRPC over HTTP/2, ALPN \"h2\")".into()
        }
        Error::PeerIncompatible(e) => {
            format!("the peer is incompatible ({e:?}); Jisr requires TLS 1.3")
        }
        Error::InvalidMessage(_) | Error::InappropriateHandshakeMessage { .. } => {
            format!("not a TLS 1.3 handshake ({err}); is the peer speaking plain HTTP?")
        }
        other => format!("TLS error: {other}"),
    }
}

fn certificate_reason(err: &CertificateError) -> String {
    match err {
        CertificateError::ExpiredContext { not_after, .. } => {
            format!("certificate expired (not after {})", rfc3339(*not_after))
        }
        CertificateError::Expired => "certificate expired".into(),
        CertificateError::NotValidYetContext { not_before, .. } => {
            format!(
                "certificate not yet valid (not before {})",
                rfc3339(*not_before)
            )
        }
        CertificateError::NotValidYet => "certificate not yet valid".into(),
        CertificateError::UnknownIssuer => {
            "certificate not issued by a trusted CA (unknown issuer)".into()
        }
        CertificateError::Revoked => "certificate revoked".into(),
        CertificateError::UnknownRevocationStatus => {
            "certificate revocation status unknown (no CRL from its issuer is configured)".into()
        }
        CertificateError::ExpiredRevocationList
        | CertificateError::ExpiredRevocationListContext { .. } => {
            "the configured CRL is out of date; fetch a fresh one from the CA".into()
        }
        // webpki checks a signature only against a trusted CA of the
        // issuer's name: failing, the certificate comes from another CA of
        // that name (every `jisr pki init` CA is named after its domain).
        CertificateError::BadSignature => "certificate issued by a different CA (its signature does not verify with the key of the trusted CA of the same name, e.g. another development CA); issue it from the CA in `[tls] ca`".into(),
        CertificateError::BadEncoding => "certificate is not valid X.509".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "certificate not valid for this use (check its extended key usage)".into()
        }
        CertificateError::ApplicationVerificationFailure => {
            "certificate refused by Jisr's identity check".into()
        }
        CertificateError::Other(other) => {
            let inner: &(dyn std::error::Error + 'static) = &*other.0;
            if let Some(e) = inner.downcast_ref::<IdentityError>() {
                identity_reason(e)
            } else if let Some(e) = inner.downcast_ref::<PeerRefused>() {
                e.to_string()
            } else {
                format!("certificate invalid: {other}")
            }
        }
        other => format!("certificate invalid: {other}"),
    }
}

fn identity_reason(err: &IdentityError) -> String {
    match err {
        IdentityError::MissingSpiffeId => {
            "certificate has no spiffe:// URI in its subject alternative names".into()
        }
        IdentityError::SeveralSpiffeIds => "certificate has several spiffe:// URIs".into(),
        IdentityError::ForeignTrustDomain { found, expected } => {
            format!("foreign trust domain `{found}` (this node serves `{expected}`)")
        }
        IdentityError::MalformedSpiffeId(uri) => {
            format!("certificate has a malformed SPIFFE id `{uri}`")
        }
        other => format!("certificate refused: {other}"),
    }
}

fn alert_reason(alert: AlertDescription) -> String {
    let what = match alert {
        AlertDescription::CertificateExpired => "our certificate expired",
        AlertDescription::CertificateRevoked => "our certificate is revoked",
        AlertDescription::UnknownCA => "our certificate is not from a CA it trusts",
        AlertDescription::BadCertificate
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::CertificateUnknown
        | AlertDescription::AccessDenied => "it refused our certificate",
        AlertDescription::CertificateRequired => "it requires a client certificate",
        AlertDescription::ProtocolVersion => "it does not support TLS 1.3",
        AlertDescription::NoApplicationProtocol => "it does not speak HTTP/2 (ALPN \"h2\")",
        other => return format!("the peer aborted the handshake (alert {other:?})"),
    };
    format!("the peer aborted the handshake: {what}")
}

/// `2026-01-01T00:00:00Z`, without depending on `time`'s formatting feature.
fn rfc3339(t: UnixTime) -> String {
    let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{secs} seconds after 1970"),
    }
}
