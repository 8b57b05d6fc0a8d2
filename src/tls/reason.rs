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
        #[allow(deprecated)] // rustls still returns it for some algorithms.
        CertificateError::UnsupportedSignatureAlgorithm => WEAK_SIGNATURE.into(),
        CertificateError::UnsupportedSignatureAlgorithmContext {
            signature_algorithm_id,
            ..
        } => match weak_algorithm(signature_algorithm_id) {
            Some(name) => format!("certificate signed with {name}, a weak algorithm Jisr does not accept; reissue it signed with SHA-256 or stronger"),
            None => WEAK_SIGNATURE.into(),
        },
        CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "certificate signature algorithm does not match its issuer's key; reissue it from the CA in `[tls] ca`".into()
        }
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
            } else if let Some(webpki::Error::CaUsedAsEndEntity) = inner.downcast_ref() {
                CA_AS_CLIENT.into()
            } else {
                format!("certificate invalid: {other}")
            }
        }
        other => format!("certificate invalid: {other}"),
    }
}

/// A signature algorithm outside the accepted ones, when it is not named.
const WEAK_SIGNATURE: &str = "certificate signed with an algorithm Jisr does not accept (such as SHA-1 or MD5); reissue it signed with SHA-256 or stronger";
/// webpki's `CaUsedAsEndEntity`.
const CA_AS_CLIENT: &str = "CA certificate used as a client: present the agency's own certificate, issued by the CA, not the CA's";

/// The name of a weak signature algorithm from its DER object identifier
/// (as rustls reports it), if it is one of the usual ones.
fn weak_algorithm(id: &[u8]) -> Option<&'static str> {
    // OID contents (after tag and length): 1.2.840.113549.1.1.{4,5},
    // 1.2.840.10045.4.1, 1.3.14.3.2.29.
    const KNOWN: [(&[u8], &str); 4] = [
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05],
            "SHA-1 (sha1WithRSAEncryption)",
        ),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04],
            "MD5 (md5WithRSAEncryption)",
        ),
        (
            &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01],
            "SHA-1 (ecdsa-with-SHA1)",
        ),
        (
            &[0x2b, 0x0e, 0x03, 0x02, 0x1d],
            "SHA-1 (sha1WithRSASignature)",
        ),
    ];
    KNOWN
        .iter()
        .find(|(oid, _)| id.windows(oid.len()).any(|w| w == *oid))
        .map(|(_, name)| *name)
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
pub(crate) fn rfc3339(t: UnixTime) -> String {
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

#[cfg(test)]
mod tests {
    /// Every reason text the code can log, as written in the source: the
    /// string literals of the functions above and of `PeerRefused`.
    fn reasons_in_code() -> Vec<String> {
        let reason = include_str!("reason.rs");
        let verify = include_str!("verify.rs");
        let start = reason.find("fn tls_reason").expect("tls_reason");
        let end = reason.find("fn alert_reason").expect("alert_reason");
        let mut texts = literals(&reason[start..end]);
        let refused = verify.find("enum PeerRefused").expect("PeerRefused");
        let refused_end = verify[refused..].find("\n}").expect("end") + refused;
        texts.extend(literals(&verify[refused..refused_end]));
        texts
    }

    /// The string literals in `code`, escapes undone.
    fn literals(code: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = code;
        while let Some(open) = rest.find('"') {
            let after = &rest[open + 1..];
            let mut text = String::new();
            let mut chars = after.char_indices();
            let mut close = after.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => text.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        close = i;
                        break;
                    }
                    c => text.push(c),
                }
            }
            out.push(text);
            rest = &after[(close + 1).min(after.len())..];
        }
        out
    }

    /// The longest run of a format string between `{…}` placeholders.
    fn fixed_part(text: &str) -> String {
        let mut parts = vec![String::new()];
        let mut depth = 0;
        for c in text.chars() {
            match c {
                '{' => {
                    depth += 1;
                    parts.push(String::new());
                }
                '}' => depth -= 1,
                c if depth == 0 => parts.last_mut().expect("one part").push(c),
                _ => {}
            }
        }
        parts
            .into_iter()
            .map(|p| p.trim().to_owned())
            .max_by_key(String::len)
            .unwrap_or_default()
    }

    #[test]
    fn every_reason_the_code_logs_is_in_the_docs_table() {
        let docs = include_str!("../../docs/operations.md");
        let start = docs
            .find("## What a refused handshake logs")
            .expect("section");
        let end = docs[start..].find("\n## ").expect("next section") + start;
        let table: String = docs[start..end]
            .lines()
            .filter(|l| l.starts_with('|'))
            .collect::<Vec<_>>()
            .join("\n");
        let reasons: Vec<String> = reasons_in_code()
            .iter()
            .map(|r| fixed_part(r))
            // Short literals are not reasons (`"agencies"`, OIDs' names).
            .filter(|r| r.len() >= 12 && r.contains(' '))
            .collect();
        assert!(reasons.len() >= 20, "too few reasons found: {reasons:?}");
        let missing: Vec<_> = reasons
            .iter()
            .filter(|r| !table.contains(r.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "reasons logged by src/tls but missing from the table in docs/operations.md \"What a refused handshake logs\": {missing:#?}"
        );
    }
}
