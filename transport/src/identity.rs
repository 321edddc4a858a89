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
    ///
    /// The key file is created exclusively (a hard link of a finished temp file fails if the
    /// name exists), so two relays starting at once on one state directory cannot end up with
    /// different keys: the one that loses loads the winner's.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<(Self, bool), TransportError> {
        let (cert_path, key_path) = (dir.join("relay-cert.pem"), dir.join("relay-key.pem"));
        if key_path.exists() {
            return Ok((Self::load_settled(&cert_path, &key_path)?, false));
        }
        std::fs::create_dir_all(dir)?;
        let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()])
            .map_err(|e| TransportError::Certificate(e.to_string()))?;
        // The certificate goes first, so whoever sees the key also finds its certificate.
        let cert_tmp = write_temp(&cert_path, ck.cert.pem().as_bytes(), 0o644)?;
        let won = create_private(&key_path, ck.key_pair.serialize_pem().as_bytes())?;
        if won {
            std::fs::rename(&cert_tmp, &cert_path)?;
        }
        let _ = std::fs::remove_file(&cert_tmp);
        Ok((Self::load_settled(&cert_path, &key_path)?, won))
    }

    /// Loads, giving a relay that is creating the pair right now a moment to finish.
    fn load_settled(cert: &Path, key: &Path) -> Result<Self, TransportError> {
        let mut tries = 0;
        loop {
            match Self::load(cert, key) {
                Err(_) if tries < 20 && !cert.exists() => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                r => return r,
            }
        }
    }
}

/// Writes `data` to a new, exclusively created temp file beside `path` with `mode`, synced;
/// returns its path.
fn write_temp(path: &Path, data: &[u8], mode: u32) -> std::io::Result<std::path::PathBuf> {
    let mut nonce = [0u8; 8];
    getrandom::getrandom(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", u64::from_be_bytes(nonce)));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp)?;
    std::io::Write::write_all(&mut f, data)?;
    f.sync_all()?;
    Ok(tmp)
}

/// Creates `path` with `data`, readable only by its owner, unless it exists: written to a temp
/// file, then linked into place, which fails if the name exists. So two processes creating a
/// key at once end up with one (the loser reads the winner's). True if this call created it.
pub fn create_private(path: &Path, data: &[u8]) -> std::io::Result<bool> {
    let tmp = write_temp(path, data, 0o600)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Replaces `path` atomically with `data` (exclusive temp file, then rename), readable only by
/// its owner: private keys, token hashes.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = write_temp(path, data, 0o600)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relays started at once on one state directory end up with one key between them.
    #[test]
    fn concurrent_first_starts_agree_on_one_key() {
        let dir = std::env::temp_dir().join(format!("fh-identity-{}", std::process::id()));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || Identity::load_or_create(&dir, "relay").unwrap())
            })
            .collect();
        let results: Vec<(Identity, bool)> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
        let fp = results[0].0.fingerprint();
        assert!(results.iter().all(|(id, _)| id.fingerprint() == fp));
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left behind");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
