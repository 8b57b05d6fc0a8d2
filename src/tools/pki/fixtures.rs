//! Deliberately broken certificates for the tests: each one must be refused
//! by the TLS edge, for a reason the refusal message names.

use std::path::{Path, PathBuf};

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, RevocationReason, RevokedCertParams,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::{
    ca_params, gen_err, leaf_params, load_ca, local_sans, new_key, valid_from_now, write_file,
    write_leaf, PkiError,
};
use crate::identity::{AgencyId, TrustDomain};

/// The agency every fixture claims to be.
const AGENCY: &str = "education";

/// Writes the test fixtures into `dir`, which must hold a PKI from
/// [`super::init`] (its `ca.key` signs most fixtures). Returns the written
/// paths.
///
/// - `untrusted-ca.crt`, `untrusted.crt`/`.key`: an `education` agency
///   certificate from a second CA that nobody trusts;
/// - `expired.crt`/`.key`: validity ended yesterday;
/// - `not-yet-valid.crt`/`.key`: validity starts tomorrow;
/// - `no-san.crt`/`.key`: signed by the CA but without a SPIFFE URI;
/// - `foreign.crt`/`.key`: `spiffe://other.example/agency/education`;
/// - `revoked.crt`/`.key`: otherwise valid, but listed in `ca.crl`, a CRL
///   signed by the CA.
pub fn fixtures(dir: &Path, domain: &TrustDomain) -> Result<Vec<PathBuf>, PkiError> {
    let issuer = load_ca(dir)?;
    // AGENCY is a constant valid id.
    let agency = AgencyId::parse(AGENCY).map_err(|e| PkiError::BadCa {
        path: dir.to_owned(),
        detail: e.to_string(),
    })?;
    let uri = domain.agency_uri(&agency);
    let now = OffsetDateTime::now_utc();
    let cn = format!("{AGENCY} (Jisr test fixture)");
    let mut written = Vec::new();

    // A second CA, whose key is thrown away: only its certificate is needed.
    let untrusted_key = new_key("the untrusted CA key")?;
    let untrusted_params = ca_params("Jisr untrusted test CA");
    let untrusted_ca = untrusted_params
        .self_signed(&untrusted_key)
        .map_err(gen_err("the untrusted CA"))?;
    written.push(write_file(
        &dir.join("untrusted-ca.crt"),
        untrusted_ca.pem().as_bytes(),
        false,
    )?);
    let untrusted = Issuer::new(untrusted_params, untrusted_key);
    let params = leaf_params(&cn, Some(&uri), local_sans(), valid_from_now())?;
    written.extend(write_leaf(dir, "untrusted", &params, &untrusted)?);

    let expired = (now - Duration::days(30), now - Duration::days(1));
    let params = leaf_params(&cn, Some(&uri), local_sans(), expired)?;
    written.extend(write_leaf(dir, "expired", &params, &issuer)?);

    let future = (now + Duration::days(1), now + Duration::days(30));
    let params = leaf_params(&cn, Some(&uri), local_sans(), future)?;
    written.extend(write_leaf(dir, "not-yet-valid", &params, &issuer)?);

    let params = leaf_params(&cn, None, local_sans(), valid_from_now())?;
    written.extend(write_leaf(dir, "no-san", &params, &issuer)?);

    let foreign_uri = format!("spiffe://other.example/agency/{AGENCY}");
    let params = leaf_params(&cn, Some(&foreign_uri), local_sans(), valid_from_now())?;
    written.extend(write_leaf(dir, "foreign", &params, &issuer)?);

    let params = leaf_params(&cn, Some(&uri), local_sans(), valid_from_now())?;
    written.extend(write_leaf(dir, "revoked", &params, &issuer)?);
    let serial = params
        .serial_number
        .unwrap_or_else(|| SerialNumber::from(0u64));
    written.push(write_crl(dir, &issuer, serial, now)?);
    Ok(written)
}

/// Writes `ca.crl`, revoking the certificate with `serial`.
fn write_crl(
    dir: &Path,
    issuer: &Issuer<'_, rcgen::KeyPair>,
    serial: SerialNumber,
    now: OffsetDateTime,
) -> Result<PathBuf, PkiError> {
    let params = CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: now + Duration::days(super::LEAF_DAYS),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: serial,
            revocation_time: now - Duration::minutes(30),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params
        .signed_by(issuer)
        .map_err(gen_err("the CRL ca.crl"))?;
    let pem = crl.pem().map_err(gen_err("the CRL ca.crl"))?;
    write_file(&dir.join("ca.crl"), pem.as_bytes(), false)
}
