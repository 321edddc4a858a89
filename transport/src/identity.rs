//! Certificates and keys: the relay's long-lived one, kept in its state directory, and the
//! throwaway one each agent and viewer makes for a single session.

use crate::TransportError;
use protocol::fingerprint::CertFingerprint;
use quinn::rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::path::Path;

/// A certificate chain with its private key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// A fresh self-signed certificate for `name`.
    pub fn generate(name: &str) -> Result<Self, TransportError> {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()])
            .map_err(|e| TransportError::Certificate(e.to_string()))?;
        let key = PrivateKeyDer::try_from(ck.key_pair.serialize_der())
            .map_err(|e| TransportError::Certificate(e.to_string()))?;
        Ok(Self {
            chain: vec![ck.cert.der().clone()],
            key,
        })
    }

    /// SHA-256 fingerprint of the leaf certificate, the value peers pin.
    pub fn fingerprint(&self) -> CertFingerprint {
        CertFingerprint::of_der(&self.chain[0])
    }

    /// Clones the identity (keys are needed by more than one TLS config).
    pub fn clone_key(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }

    /// Loads `cert.pem`/`key.pem` style files.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TransportError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TransportError::Certificate(format!("{}: {e}", cert.display())))?;
        if chain.is_empty() {
            return Err(TransportError::Certificate(format!(
                "{}: no certificate in file",
                cert.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| TransportError::Certificate(format!("{}: {e}", key.display())))?;
        Ok(Self { chain, key })
    }

    /// Loads the identity kept in `dir`, or creates and stores a new self-signed one.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<(Self, bool), TransportError> {
        let (cert_path, key_path) = (dir.join("relay-cert.pem"), dir.join("relay-key.pem"));
        if cert_path.exists() && key_path.exists() {
            return Ok((Self::load(&cert_path, &key_path)?, false));
        }
        std::fs::create_dir_all(dir)?;
        let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()])
            .map_err(|e| TransportError::Certificate(e.to_string()))?;
        write_private(&key_path, ck.key_pair.serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, ck.cert.pem())?;
        Ok((Self::load(&cert_path, &key_path)?, true))
    }
}

/// Writes a file only its owner can read (private keys, token hashes).
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        std::io::Write::write_all(&mut f, data)?;
        f.sync_all()?;
    }
    std::fs::rename(tmp, path)
}
