//! The agencies' certificates as the node has seen them: each caller's
//! client certificate at the handshake on the node's listener, and each
//! provider's server certificate when the node connects to it. The latest
//! one seen per agency and side is kept, for the console's warning of
//! certificates about to expire.

use crate::identity::AgencyId;
use rustls::pki_types::CertificateDer;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Where the node saw an agency's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// The agency called the node (its client certificate).
    Caller,
    /// The node called the agency as a provider (its server certificate).
    Provider,
}

impl Side {
    /// How the console names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Caller => "as a caller, on this node's listener",
            Self::Provider => "as a provider, when this node called it",
        }
    }
}

/// One certificate seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Its not-after date, in seconds since the Unix epoch.
    pub not_after: i64,
    /// Its subject's common name, as a reminder of which one it is.
    pub subject: String,
    /// When the node last saw it, in seconds since the Unix epoch.
    pub last_seen: i64,
}

/// The latest certificate seen from each agency, by side.
#[derive(Debug, Default)]
pub struct SeenCertificates {
    latest: Mutex<BTreeMap<(AgencyId, Side), Seen>>,
}

impl SeenCertificates {
    /// Notes that `agency` presented `cert` (already verified by the
    /// handshake) on `side`. A certificate that cannot be read is skipped:
    /// the handshake accepted it, so that cannot happen in practice.
    pub fn saw(&self, agency: &AgencyId, side: Side, cert: &CertificateDer<'_>) {
        let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
            return;
        };
        let subject = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        let seen = Seen {
            not_after: parsed.validity().not_after.timestamp(),
            subject,
            last_seen: time::OffsetDateTime::now_utc().unix_timestamp(),
        };
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((agency.clone(), side), seen);
    }

    /// Every certificate seen, by agency then side.
    pub fn all(&self) -> Vec<(AgencyId, Side, Seen)> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((agency, side), seen)| (agency.clone(), *side, seen.clone()))
            .collect()
    }
}
