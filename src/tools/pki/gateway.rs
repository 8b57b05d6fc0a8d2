//! Gateway certificates: one per replica, each naming its node id in its
//! SPIFFE id (`spiffe://<td>/gateway/<node-id>`), issued by an existing CA
//! whose trust domain is read from the CA itself.

use std::path::{Path, PathBuf};

use rcgen::{Issuer, KeyPair, SanType};
use x509_parser::extensions::GeneralName;

use super::{host_san, leaf_params, load_ca, local_sans, valid_from_now, write_leaf, PkiError};
use crate::identity::{AgencyId, TrustDomain};

/// What `jisr pki init` names its CA: `Jisr development CA (<trust domain>)`.
const CA_NAME: (&str, &str) = ("Jisr development CA (", ")");

/// Issues the certificate of gateway node `node` with the CA in `dir`, as
/// `gateway-<node>.crt`/`.key` (replacing an earlier one, which is how it
/// is renewed). The trust domain is the CA's (see [`resolve_domain`]). `hosts` are
/// extra DNS names or IP addresses (e.g. the pod's stable name). Returns
/// the written paths.
pub fn issue_gateway(
    dir: &Path,
    domain: Option<&TrustDomain>,
    node: &AgencyId,
    hosts: &[String],
) -> Result<Vec<PathBuf>, PkiError> {
    let issuer = load_ca(dir)?;
    let domain = resolve_domain(dir, domain)?;
    let hosts = hosts
        .iter()
        .map(|h| host_san(h))
        .collect::<Result<_, _>>()?;
    let stem = format!("gateway-{node}");
    write_gateway(dir, &stem, (&domain, node), hosts, &issuer)
}

/// The trust domain to issue a certificate in with the CA in `dir`: the
/// CA's own, read from its name. A `given` domain must match it (a typo
/// would issue a certificate every gateway of the CA's domain refuses); it
/// is used as is only for a CA whose name does not say its domain.
pub fn resolve_domain(dir: &Path, given: Option<&TrustDomain>) -> Result<TrustDomain, PkiError> {
    match (ca_trust_domain(dir), given) {
        (Ok(ca), Some(given)) if &ca != given => Err(PkiError::DomainMismatch {
            given: given.clone(),
            ca,
            path: dir.join("ca.crt"),
        }),
        (Ok(ca), _) => Ok(ca),
        (Err(PkiError::UnknownTrustDomain(_)), Some(given)) => Ok(given.clone()),
        (Err(e), _) => Err(e),
    }
}

/// The trust domain of the CA in `dir`, read from the CA certificate:
/// its name as `jisr pki init` writes it, else (a CA made otherwise, e.g.
/// with openssl) its SPIFFE URI SAN (`spiffe://<trust domain>`, as the
/// SPIFFE X.509 profile gives signing certificates). A CA with a URI name
/// constraint is refused whatever it says: rustls-webpki, the nodes'
/// certificate check, does not process URI name constraints and fails
/// closed, so every certificate issued under it would be refused at the
/// handshake.
pub fn ca_trust_domain(dir: &Path) -> Result<TrustDomain, PkiError> {
    let path = dir.join("ca.crt");
    let pem = std::fs::read(&path).map_err(|source| PkiError::Read {
        path: path.clone(),
        source,
    })?;
    let unknown = || PkiError::UnknownTrustDomain(path.clone());
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).map_err(|_| unknown())?;
    let cert = pem.parse_x509().map_err(|_| unknown())?;
    let named = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .and_then(|name| name.strip_prefix(CA_NAME.0)?.strip_suffix(CA_NAME.1));
    let san = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|name| match name {
                GeneralName::URI(uri) => uri.strip_prefix("spiffe://"),
                _ => None,
            })
        });
    let uri_constraint = cert.name_constraints().ok().flatten().and_then(|nc| {
        let subtrees = nc
            .value
            .permitted_subtrees
            .iter()
            .chain(&nc.value.excluded_subtrees);
        subtrees.flatten().find_map(|subtree| match subtree.base {
            GeneralName::URI(uri) => Some(uri.to_owned()),
            _ => None,
        })
    });
    if let Some(constraint) = uri_constraint {
        return Err(PkiError::UriNameConstraint { path, constraint });
    }
    named
        .or(san)
        .map(|domain| domain.trim_end_matches('/'))
        .and_then(|domain| TrustDomain::parse(domain).ok())
        .ok_or_else(unknown)
}

/// Writes `<stem>.crt`/`.key` for gateway `node` of `domain`.
pub(super) fn write_gateway(
    dir: &Path,
    stem: &str,
    (domain, node): (&TrustDomain, &AgencyId),
    hosts: Vec<SanType>,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<Vec<PathBuf>, PkiError> {
    let uri = domain.gateway_uri(node.as_str());
    let mut sans = local_sans();
    sans.extend(hosts);
    let params = leaf_params(
        &format!("{node} (Jisr gateway)"),
        Some(&uri),
        sans,
        valid_from_now(),
    )?;
    write_leaf(dir, stem, &params, issuer)
}
