//! Certificate checks by fingerprint: the relay's certificate as ops published it. No name
//! checks, no CA: the fingerprint is the identity. (Session peers authenticate by their iroh
//! endpoint ids, which the pairing confirms; no certificate of theirs is pinned here.)

use protocol::fingerprint::CertFingerprint;
use quinn::rustls::{
    self,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider},
    pki_types::{CertificateDer, ServerName, UnixTime},
    CertificateError, DigitallySignedStruct, SignatureScheme,
};
use std::sync::{Arc, Mutex};

/// Accepts exactly one certificate, by its SHA-256 fingerprint, and remembers what it saw.
#[derive(Debug)]
pub struct PinnedCertificate {
    expected: CertFingerprint,
    seen: Mutex<Option<CertFingerprint>>,
    provider: Arc<CryptoProvider>,
}

impl PinnedCertificate {
    /// Pins `expected`.
    pub fn new(expected: CertFingerprint) -> Arc<Self> {
        Arc::new(Self {
            expected,
            seen: Mutex::new(None),
            provider: crypto_provider(),
        })
    }

    /// The fingerprint the peer presented, if it did not match; for error messages.
    pub fn mismatch(&self) -> Option<CertFingerprint> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .filter(|s| *s != self.expected)
    }

    /// The pinned fingerprint.
    pub fn expected(&self) -> CertFingerprint {
        self.expected
    }

    fn algorithms(&self) -> &rustls::crypto::WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }

    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let got = CertFingerprint::of_der(cert);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(got);
        if got == self.expected {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
}

/// The crypto provider every Fernhilfe TLS config uses.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|_| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}
