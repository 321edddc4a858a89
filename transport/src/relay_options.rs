//! Which relay agent and viewer use and how they trust it: the same four options in both, from
//! the command line (or the environment) over the config file next to the binary, resolved and
//! checked here once.

use crate::config::RelayTrust;
use crate::signal_tcp::SignalTransport;
use protocol::fingerprint::CertFingerprint;
use std::path::PathBuf;

/// The relay options of the command line.
#[derive(clap::Args, Clone, Default, Debug)]
pub struct RelayArgs {
    /// Relay address host:port [default: from the config file next to the binary]
    #[arg(long, env = "FERNHILFE_RELAY")]
    pub relay: Option<String>,
    /// SHA-256 fingerprint of the relay certificate (as `fernhilfe-relay fingerprint` prints
    /// it) [default: from the config file]
    #[arg(long, env = "FERNHILFE_RELAY_FINGERPRINT")]
    pub relay_fingerprint: Option<String>,
    /// PEM file of CA certificates, for a relay with a CA-issued certificate (instead of a
    /// fingerprint)
    #[arg(long)]
    pub relay_ca: Option<PathBuf>,
    /// How to reach the relay: auto (QUIC, TLS over TCP if UDP is blocked), quic or tcp
    /// [default: auto, or the config file]
    #[arg(long)]
    pub relay_transport: Option<SignalTransport>,
}

/// The same keys as a config file holds them (`relay`, `relay_fingerprint`, `relay_ca`,
/// `relay_transport`).
#[derive(Clone, Default, Debug)]
pub struct RelayKeys {
    /// `relay = "host:port"`.
    pub relay: Option<String>,
    /// `relay_fingerprint = "…"`.
    pub relay_fingerprint: Option<String>,
    /// `relay_ca = "ca.pem"`.
    pub relay_ca: Option<PathBuf>,
    /// `relay_transport = "auto" | "quic" | "tcp"`.
    pub relay_transport: Option<SignalTransport>,
}

/// The relay to use, resolved.
#[derive(Clone, Debug)]
pub struct RelayChoice {
    /// host:port.
    pub address: String,
    /// How its certificate is checked.
    pub trust: RelayTrust,
    /// Over which transport signaling goes.
    pub signal: SignalTransport,
}

/// Why no relay can be used. In German and English: the agent shows it to the person at the PC.
#[derive(Debug, thiserror::Error)]
pub enum RelayOptionsError {
    /// No address anywhere.
    #[error("no relay address: pass --relay host:port or put `relay = \"host:port\"` in {file} next to the program / keine Relay-Adresse angegeben (bitte bei der IT die Konfigurationsdatei anfordern)")]
    NoAddress {
        /// The config file's name.
        file: String,
    },
    /// Neither a fingerprint nor a CA.
    #[error("the relay's certificate is not pinned: pass --relay-fingerprint (from `fernhilfe-relay fingerprint`) or --relay-ca, or put relay_fingerprint in {file} / Relay-Zertifikat nicht festgelegt")]
    NotPinned {
        /// The config file's name.
        file: String,
    },
    /// A fingerprint that is not one.
    #[error("the relay fingerprint is not valid: {0} / ungültiger Fingerabdruck des Relays")]
    BadFingerprint(String),
}

impl RelayArgs {
    /// These options over `file`'s keys (`file_name` names it in errors); a fingerprint wins
    /// over a CA file.
    pub fn resolve(
        &self,
        file: RelayKeys,
        file_name: &str,
    ) -> Result<RelayChoice, RelayOptionsError> {
        let Some(address) = self.relay.clone().or(file.relay) else {
            return Err(RelayOptionsError::NoAddress {
                file: file_name.to_owned(),
            });
        };
        let fingerprint = self.relay_fingerprint.clone().or(file.relay_fingerprint);
        let trust = match (fingerprint, self.relay_ca.clone().or(file.relay_ca)) {
            (Some(fp), _) => RelayTrust::Pinned(
                fp.parse::<CertFingerprint>()
                    .map_err(|e| RelayOptionsError::BadFingerprint(e.to_string()))?,
            ),
            (None, Some(ca)) => RelayTrust::CaFile(ca),
            (None, None) => {
                return Err(RelayOptionsError::NotPinned {
                    file: file_name.to_owned(),
                })
            }
        };
        Ok(RelayChoice {
            address,
            trust,
            signal: self
                .relay_transport
                .or(file.relay_transport)
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn the_command_line_wins_over_the_file_and_a_pin_is_required() {
        let file = RelayKeys {
            relay: Some("file.example:443".into()),
            relay_fingerprint: Some(FP.into()),
            relay_ca: None,
            relay_transport: Some(SignalTransport::Tcp),
        };
        let args = RelayArgs {
            relay: Some("cli.example:443".into()),
            ..RelayArgs::default()
        };
        let c = args.resolve(file.clone(), "x.toml").unwrap();
        assert_eq!(c.address, "cli.example:443");
        assert_eq!(c.signal, SignalTransport::Tcp);
        assert!(matches!(c.trust, RelayTrust::Pinned(_)));
        let unpinned = RelayKeys {
            relay_fingerprint: None,
            ..file
        };
        assert!(matches!(
            RelayArgs::default().resolve(unpinned, "x.toml"),
            Err(RelayOptionsError::NotPinned { .. })
        ));
        assert!(matches!(
            RelayArgs::default().resolve(RelayKeys::default(), "x.toml"),
            Err(RelayOptionsError::NoAddress { .. })
        ));
    }
}
