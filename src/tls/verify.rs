//! Certificate verifiers that add the SPIFFE identity check to rustls's
//! chain validation, so a wrong peer is refused during the handshake rather
//! than after it.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, RootCertStore,
    SignatureScheme,
};

use super::Accept;
use crate::identity::{PeerIdentity, TrustDomain};

/// A certificate that is valid and names a peer of this trust domain, but
/// not the peer expected here.
#[derive(Debug, thiserror::Error)]
pub(super) enum PeerRefused {
    /// A client of a kind this server does not accept.
    #[error("{found} may not connect here: only {allowed} may")]
    WrongKind {
        /// The identity the client proved.
        found: String,
        /// Who the server accepts.
        allowed: &'static str,
    },
    /// An RSA key shorter than Jisr accepts (its handshake signature would
    /// otherwise fail as a bare bad signature).
    #[error("certificate has a weak key: RSA of {bits} bits; Jisr requires at least {MIN_RSA_BITS} (use `jisr pki` or your CA to issue a new key and certificate)")]
    WeakKey {
        /// The key's modulus length.
        bits: usize,
    },
    /// A server other than the one the client meant to reach.
    #[error("unexpected server: it is {found}, not {expected}")]
    NotExpected {
        /// The identity the server proved.
        found: String,
        /// The identity the client expected.
        expected: String,
    },
}

/// The shortest RSA key accepted, in bits.
pub(super) const MIN_RSA_BITS: usize = 2048;

/// The key length of a certificate's RSA key shorter than
/// [`MIN_RSA_BITS`]; `None` for a longer one, another kind, or a
/// certificate that does not parse (the chain check then says why).
fn weak_rsa_bits(cert: &CertificateDer<'_>) -> Option<usize> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    use x509_parser::public_key::PublicKey;
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
    match parsed.public_key().parsed().ok()? {
        PublicKey::RSA(rsa) if rsa.key_size() < MIN_RSA_BITS => Some(rsa.key_size()),
        _ => None,
    }
}

/// `agency `tax`` / `gateway node `gw-1``, for messages.
pub(super) fn describe(id: &PeerIdentity) -> String {
    match id {
        PeerIdentity::Agency(a) => format!("agency `{a}`"),
        PeerIdentity::Gateway(g) => format!("gateway node `{g}`"),
    }
}

/// Wraps an error so rustls carries it to the handshake's caller intact
/// (see `handshake_failure_reason`, which downcasts it back).
fn refuse(err: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(err))))
}

/// rustls's WebPKI client verifier (chain, validity, CRLs), followed by the
/// SPIFFE check of the leaf.
#[derive(Debug)]
pub(super) struct SpiffeClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    domain: TrustDomain,
    accept: Accept,
}

impl SpiffeClientVerifier {
    pub(super) fn new(
        inner: Arc<dyn ClientCertVerifier>,
        domain: TrustDomain,
        accept: Accept,
    ) -> Self {
        Self {
            inner,
            domain,
            accept,
        }
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if let Some(bits) = weak_rsa_bits(end_entity) {
            return Err(refuse(PeerRefused::WeakKey { bits }));
        }
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let identity = PeerIdentity::from_cert_der(end_entity, &self.domain).map_err(refuse)?;
        let allowed = match (self.accept, &identity) {
            (Accept::Agencies | Accept::AgenciesAndPeers, PeerIdentity::Agency(_))
            | (Accept::Gateways | Accept::AgenciesAndPeers, PeerIdentity::Gateway(_)) => {
                return Ok(verified)
            }
            (Accept::Agencies, _) => "agencies",
            (Accept::Gateways, _) => "gateway nodes",
        };
        Err(refuse(PeerRefused::WrongKind {
            found: describe(&identity),
            allowed,
        }))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Verifies a server's chain against the CA and then its SPIFFE identity.
///
/// rustls's `WebPkiServerVerifier` also insists that the certificate names
/// the DNS name or IP address dialled. Jisr identifies servers by SPIFFE URI
/// instead (a provider's address comes from configuration and may be a load
/// balancer or a bare IP), so the server name is deliberately ignored and the
/// URI compared with the expected identity. When CRLs are configured, the
/// whole chain is checked against them, as for agencies' client
/// certificates: a revoked certificate, or one whose issuer has no CRL, is
/// refused.
#[derive(Debug)]
pub(super) struct SpiffeServerVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    domain: TrustDomain,
    /// `None` accepts any identity of the trust domain (`jisr probe`, which
    /// then reports the identity it found).
    expect: Option<PeerIdentity>,
    crls: Arc<[webpki::CertRevocationList<'static>]>,
    /// Where a provider's accepted certificate is noted, if anywhere.
    pub(super) seen: Option<Arc<super::seen::SeenCertificates>>,
}

impl SpiffeServerVerifier {
    pub(super) fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
        domain: TrustDomain,
        expect: Option<PeerIdentity>,
        crls: Arc<[webpki::CertRevocationList<'static>]>,
    ) -> Self {
        Self {
            roots,
            provider,
            domain,
            expect,
            crls,
            seen: None,
        }
    }

    /// Chain and revocation check through webpki, which rustls's
    /// server-certificate helper does not offer with CRLs.
    fn verify_chain_and_revocation(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(pki_error)?;
        let crls: Vec<&webpki::CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = webpki::RevocationOptionsBuilder::new(&crls)
            .map_err(|_| Error::General("no CRL to check against".into()))?
            .with_depth(webpki::RevocationCheckDepth::Chain)
            .with_status_policy(webpki::UnknownStatusPolicy::Deny)
            .build();
        cert.verify_for_usage(
            self.provider.signature_verification_algorithms.all,
            &self.roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            Some(revocation),
            None,
        )
        .map(drop)
        .map_err(pki_error)
    }
}

/// A webpki error as the rustls error a handshake reports (the reasons
/// `handshake_failure_reason` names).
fn pki_error(e: webpki::Error) -> Error {
    use webpki::Error as E;
    let kind = match e {
        E::BadDer | E::BadDerTime | E::TrailingData(_) => CertificateError::BadEncoding,
        E::CertNotValidYet { .. } => CertificateError::NotValidYet,
        E::CertExpired { .. } | E::InvalidCertValidity => CertificateError::Expired,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::CertRevoked => CertificateError::Revoked,
        E::UnknownRevocationStatus => CertificateError::UnknownRevocationStatus,
        E::CrlExpired { .. } => CertificateError::ExpiredRevocationList,
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    Error::InvalidCertificate(kind)
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self.crls.is_empty() {
            let cert = ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                &self.roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        } else {
            self.verify_chain_and_revocation(end_entity, intermediates, now)?;
        }
        let identity = PeerIdentity::from_cert_der(end_entity, &self.domain).map_err(refuse)?;
        match &self.expect {
            Some(expect) if &identity != expect => {
                return Err(refuse(PeerRefused::NotExpected {
                    found: describe(&identity),
                    expected: describe(expect),
                }));
            }
            _ => {}
        }
        if let (Some(seen), PeerIdentity::Agency(agency)) = (&self.seen, &identity) {
            seen.saw(agency, super::seen::Side::Provider, end_entity);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        // Unreachable in practice: the configuration allows TLS 1.3 only.
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
