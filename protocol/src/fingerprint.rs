//! SHA-256 fingerprints of certificates, the form in which peers pin each other.

use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint(pub [u8; 32]);

/// A fingerprint string that is not 32 hex bytes.
#[derive(Debug, Error)]
#[error("certificate fingerprint must be 64 hex digits (colons allowed), as `fernhilfe-relay fingerprint` prints it")]
pub struct FingerprintError;

impl CertFingerprint {
    /// Fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
}

impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({self})")
    }
}

impl FromStr for CertFingerprint {
    type Err = FingerprintError;
    fn from_str(s: &str) -> Result<Self, FingerprintError> {
        let hex: String = s
            .chars()
            .filter(|c| *c != ':' && !c.is_whitespace())
            .collect();
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(FingerprintError);
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| FingerprintError)?;
        }
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let f = CertFingerprint::of_der(b"cert");
        assert_eq!(f.to_string().parse::<CertFingerprint>().unwrap(), f);
        assert_eq!(
            f.to_string()
                .replace(':', "")
                .to_lowercase()
                .parse::<CertFingerprint>()
                .unwrap(),
            f
        );
        assert!("abc".parse::<CertFingerprint>().is_err());
    }
}
