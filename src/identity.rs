//! Who is calling: the typed identities Jisr derives from SPIFFE-style URIs in
//! certificates (`spiffe://<trust-domain>/agency/<agency-id>` for agencies,
//! `spiffe://<trust-domain>/gateway/<node-id>` for gateway nodes). Parsing
//! happens once, at the TLS edge; everything downstream sees only these types.

use crate::refusal::{Reason, Refusal};
use std::fmt;
use std::sync::Arc;

/// Why a name or a certificate does not yield an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// An agency or node id with characters other than `a-z`, `0-9`, `-`.
    #[error("`{0}` is not a valid id: use 1 to 63 lowercase letters, digits and `-`, not starting or ending with `-`")]
    InvalidId(String),
    /// A trust domain that is not a lowercase DNS-like name.
    #[error(
        "`{0}` is not a valid trust domain: use a lowercase DNS name such as `interop.gov.ma`"
    )]
    InvalidTrustDomain(String),
    /// The certificate carries no `spiffe://` URI in its subject alternative names.
    #[error("the certificate has no spiffe:// URI in its subject alternative names; issue it with `spiffe://<trust-domain>/agency/<agency-id>`")]
    MissingSpiffeId,
    /// The certificate carries more than one `spiffe://` URI.
    #[error("the certificate has several spiffe:// URIs; an identity certificate must carry exactly one")]
    SeveralSpiffeIds,
    /// The URI names another trust domain.
    #[error("the certificate belongs to trust domain `{found}`, not `{expected}`")]
    ForeignTrustDomain {
        /// The trust domain in the certificate.
        found: String,
        /// The trust domain this node serves.
        expected: String,
    },
    /// The URI has an unexpected shape.
    #[error("`{0}` is not of the form spiffe://<trust-domain>/agency/<id> or spiffe://<trust-domain>/gateway/<id>")]
    MalformedSpiffeId(String),
    /// The certificate could not be parsed as X.509.
    #[error("the certificate is not valid X.509: {0}")]
    BadCertificate(String),
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An agency id such as `civil-status`: lowercase letters, digits and `-`.
///
/// Cheap to clone (shared string).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgencyId(Arc<str>);

impl AgencyId {
    /// Checks and wraps an agency id.
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        if valid_id(s) {
            Ok(Self(Arc::from(s)))
        } else {
            Err(IdentityError::InvalidId(s.to_owned()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AgencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgencyId({})", self.0)
    }
}

/// A trust domain such as `interop.gov.ma`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct TrustDomain(Arc<str>);

impl TrustDomain {
    /// Checks and wraps a trust domain name.
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        let ok = !s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        if ok {
            Ok(Self(Arc::from(s)))
        } else {
            Err(IdentityError::InvalidTrustDomain(s.to_owned()))
        }
    }

    /// The domain as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SPIFFE URI of an agency in this domain.
    pub fn agency_uri(&self, agency: &AgencyId) -> String {
        format!("spiffe://{}/agency/{}", self.0, agency)
    }

    /// The SPIFFE URI of a gateway node in this domain.
    pub fn gateway_uri(&self, node: &str) -> String {
        format!("spiffe://{}/gateway/{}", self.0, node)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The identity a certificate proves.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PeerIdentity {
    /// An agency's back-office system.
    Agency(AgencyId),
    /// A Jisr gateway node (its id follows the agency id rules).
    Gateway(AgencyId),
}

impl PeerIdentity {
    /// Parses a `spiffe://` URI and checks it belongs to `domain`.
    pub fn from_uri(uri: &str, domain: &TrustDomain) -> Result<Self, IdentityError> {
        let rest = uri
            .strip_prefix("spiffe://")
            .ok_or_else(|| IdentityError::MalformedSpiffeId(uri.to_owned()))?;
        let (found, path) = rest
            .split_once('/')
            .ok_or_else(|| IdentityError::MalformedSpiffeId(uri.to_owned()))?;
        if found != domain.as_str() {
            return Err(IdentityError::ForeignTrustDomain {
                found: found.to_owned(),
                expected: domain.as_str().to_owned(),
            });
        }
        let malformed = || IdentityError::MalformedSpiffeId(uri.to_owned());
        match path.split_once('/') {
            Some(("agency", id)) => Ok(Self::Agency(AgencyId::parse(id).map_err(|_| malformed())?)),
            Some(("gateway", id)) => {
                Ok(Self::Gateway(AgencyId::parse(id).map_err(|_| malformed())?))
            }
            _ => Err(malformed()),
        }
    }

    /// Reads the single `spiffe://` URI SAN of a DER certificate.
    pub fn from_cert_der(der: &[u8], domain: &TrustDomain) -> Result<Self, IdentityError> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        let mut uris = san
            .iter()
            .flat_map(|ext| ext.value.general_names.iter())
            .filter_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some(*uri),
                _ => None,
            });
        let uri = uris.next().ok_or(IdentityError::MissingSpiffeId)?;
        if uris.next().is_some() {
            return Err(IdentityError::SeveralSpiffeIds);
        }
        Self::from_uri(uri, domain)
    }
}

/// The authenticated caller of one of the gateway's own APIs, put in each
/// request's extensions by the gateway's dispatcher.
#[derive(Debug, Clone)]
pub struct Caller(pub AgencyId);

impl Caller {
    /// The caller of `request`. Without one the call did not come through
    /// the dispatcher's mutual TLS; `how_to_call` tells the caller how to
    /// reach the API instead, worded by each API for itself.
    pub fn of<T>(request: &tonic::Request<T>, how_to_call: &str) -> Result<AgencyId, Refusal> {
        request
            .extensions()
            .get::<Self>()
            .map(|c| c.0.clone())
            .ok_or_else(|| Refusal::new(Reason::NoCallerIdentity, how_to_call))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn td() -> TrustDomain {
        TrustDomain::parse("interop.gov.ma").unwrap()
    }

    #[test]
    fn agency_uri_round_trips() {
        let id = AgencyId::parse("civil-status").unwrap();
        let uri = td().agency_uri(&id);
        assert_eq!(uri, "spiffe://interop.gov.ma/agency/civil-status");
        assert_eq!(
            PeerIdentity::from_uri(&uri, &td()),
            Ok(PeerIdentity::Agency(id))
        );
    }

    #[test]
    fn foreign_domain_and_bad_shapes_are_refused() {
        assert!(matches!(
            PeerIdentity::from_uri("spiffe://evil.example/agency/tax", &td()),
            Err(IdentityError::ForeignTrustDomain { .. })
        ));
        for uri in [
            "https://interop.gov.ma/agency/tax",
            "spiffe://interop.gov.ma",
            "spiffe://interop.gov.ma/agency/",
            "spiffe://interop.gov.ma/agency/Tax",
            "spiffe://interop.gov.ma/agency/tax/extra",
            "spiffe://interop.gov.ma/citizen/tax",
        ] {
            assert!(
                matches!(
                    PeerIdentity::from_uri(uri, &td()),
                    Err(IdentityError::MalformedSpiffeId(_))
                ),
                "{uri}"
            );
        }
    }

    #[test]
    fn ids_follow_the_rules() {
        for ok in ["tax", "civil-status", "a1", "x"] {
            assert!(AgencyId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-tax",
            "tax-",
            "Tax",
            "tax_1",
            "tax.ma",
            &"a".repeat(64),
        ] {
            assert!(AgencyId::parse(bad).is_err(), "{bad}");
        }
        assert!(TrustDomain::parse("interop.gov.ma").is_ok());
        assert!(TrustDomain::parse("Interop.gov.ma").is_err());
        assert!(TrustDomain::parse("interop..ma").is_err());
    }

    #[test]
    fn the_caller_is_read_from_the_request_or_refused() {
        let agency = AgencyId::parse("tax").unwrap();
        let mut request = tonic::Request::new(());
        request.extensions_mut().insert(Caller(agency.clone()));
        assert_eq!(Caller::of(&request, "use mTLS").unwrap(), agency);

        let refusal = Caller::of(&tonic::Request::new(()), "use mTLS").unwrap_err();
        assert_eq!(refusal, Refusal::new(Reason::NoCallerIdentity, "use mTLS"));
    }

    proptest! {
        #[test]
        fn any_valid_id_round_trips(id in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?") {
            let agency = AgencyId::parse(&id).unwrap();
            let uri = td().agency_uri(&agency);
            prop_assert_eq!(PeerIdentity::from_uri(&uri, &td()), Ok(PeerIdentity::Agency(agency)));
        }
    }
}
