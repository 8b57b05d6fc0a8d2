//! Reading and checking the PEM files of the TLS keys, so a bad file is
//! reported at its key by `jisr check-config`.

use super::Ctx;
use rustls::pki_types::pem::{Error as PemError, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::ops::Range;
use std::path::Path;

const READ_FIX: &str = "check the path (relative to the directory of this configuration file) and that the node's user may read the file";

fn read(ctx: &mut Ctx, key: &str, path: &Path, span: &Range<usize>) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(pem) => Some(pem),
        Err(e) => {
            ctx.error(
                span,
                format!("cannot read `{key}` file {}: {e}", path.display()),
                READ_FIX,
            );
            None
        }
    }
}

fn certificates(
    ctx: &mut Ctx,
    key: &str,
    path: &Path,
    span: &Range<usize>,
    fix: &str,
) -> Option<Vec<CertificateDer<'static>>> {
    let pem = read(ctx, key, path, span)?;
    let message = match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if !certs.is_empty() => return Some(certs),
        Ok(_) => format!("`{key}` file {} holds no PEM certificate", path.display()),
        Err(e) => format!("`{key}` file {} is not valid PEM ({e})", path.display()),
    };
    ctx.error(span, message, fix);
    None
}

/// The CA bundle: PEM certificates usable as trust anchors.
pub(super) fn check_ca(ctx: &mut Ctx, path: &Path, span: &Range<usize>) -> bool {
    const FIX: &str = "give the PEM bundle of the CA that issued the collector's certificate";
    let Some(certs) = certificates(ctx, "otlp_ca", path, span, FIX) else {
        return false;
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        if let Err(e) = roots.add(cert) {
            ctx.error(
                span,
                format!(
                    "`otlp_ca` file {} holds an unusable CA certificate ({e})",
                    path.display()
                ),
                FIX,
            );
            return false;
        }
    }
    true
}

/// The client certificate chain and its private key, which must match.
pub(super) fn check_identity(
    ctx: &mut Ctx,
    (cert, cert_span): (&Path, &Range<usize>),
    (key, key_span): (&Path, &Range<usize>),
) -> bool {
    let chain = certificates(
        ctx,
        "otlp_cert",
        cert,
        cert_span,
        "give the PEM certificate (chain, leaf first) the collector accepts as a client",
    );
    let Some(pem) = read(ctx, "otlp_key", key, key_span) else {
        return false;
    };
    let private = match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(private) => private,
        Err(e) => {
            let message = match e {
                PemError::NoItemsFound => {
                    format!("`otlp_key` file {} holds no PEM private key", key.display())
                }
                e => format!("`otlp_key` file {} is not valid PEM ({e})", key.display()),
            };
            ctx.error(
                key_span,
                message,
                "give the PEM private key of the certificate in `otlp_cert`",
            );
            return false;
        }
    };
    let Some(chain) = chain else {
        return false;
    };
    let provider = rustls::crypto::ring::default_provider();
    match rustls::sign::CertifiedKey::from_der(chain, private, &provider) {
        Ok(_) => true,
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            ctx.error(
                key_span,
                format!(
                    "the private key in `otlp_key` file {} does not match the certificate in `otlp_cert` file {}",
                    key.display(),
                    cert.display()
                ),
                "use the key file written together with that certificate",
            );
            false
        }
        Err(e) => {
            ctx.error(
                key_span,
                format!("`otlp_key` file {} cannot be used ({e})", key.display()),
                "use a PKCS#8 ECDSA P-256/P-384, Ed25519 or RSA key",
            );
            false
        }
    }
}
