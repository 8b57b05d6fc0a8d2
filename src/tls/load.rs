//! Reading a node's PEM files: every failure names the file and what it
//! was for, so an operator knows which one to fix.

use std::fs;
use std::path::{Path, PathBuf};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use super::{FileRole, TlsError, TlsFiles};

pub(super) fn read(role: FileRole, path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        role,
        path: path.to_owned(),
        source,
    })
}

fn pem_error(role: FileRole, path: &Path, err: &rustls::pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        role,
        path: path.to_owned(),
        detail: err.to_string(),
    }
}

/// All PEM items of type `T` in `path`; an error if there are none.
pub(super) fn load_all<T: PemObject>(role: FileRole, path: &Path) -> Result<Vec<T>, TlsError> {
    let pem = read(role, path)?;
    let items = T::pem_slice_iter(&pem)
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| pem_error(role, path, &e))?;
    if items.is_empty() {
        return Err(TlsError::Empty {
            role,
            path: path.to_owned(),
        });
    }
    Ok(items)
}

pub(super) fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_all::<CertificateDer<'static>>(FileRole::Ca, path)? {
        roots.add(cert).map_err(|e| TlsError::BadCa {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    }
    Ok(roots)
}

pub(super) fn load_crls(
    paths: &[PathBuf],
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut crls = Vec::new();
    for path in paths {
        for crl in load_all::<CertificateRevocationListDer<'static>>(FileRole::Crl, path)? {
            // Parse here so a broken CRL is reported with its file name;
            // rustls would only say that one of them is invalid.
            x509_parser::parse_x509_crl(&crl).map_err(|e| TlsError::BadCrl {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            // And as webpki will use it (a delta CRL, say, is not supported).
            webpki::OwnedCertRevocationList::from_der(&crl).map_err(|e| TlsError::BadCrl {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            crls.push(crl);
        }
    }
    Ok(crls)
}

/// The certificate chain and key of `files`, checked to belong together.
pub(super) fn certified_key(
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = load_all::<CertificateDer<'static>>(FileRole::Cert, &files.cert)?;
    let pem = read(FileRole::Key, &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            role: FileRole::Key,
            path: files.key.clone(),
        },
        e => pem_error(FileRole::Key, &files.key, &e),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::KeyMismatch {
                key: files.key.clone(),
                cert: files.cert.clone(),
            }
        }
        e => TlsError::BadKey {
            path: files.key.clone(),
            detail: e.to_string(),
        },
    })
}
