//! Signaling over TLS on TCP, for networks that block UDP: the same framed messages as over
//! QUIC, on an HTTP/1.1 upgrade at the relay's HTTPS port (the port its relay path uses), so
//! one TLS listener with the one pinned certificate serves both.
//!
//! [`connect_signaling`] picks the transport: QUIC first, and TCP too when QUIC has not
//! answered within [`QUIC_HEAD_START`] or failed, whichever connects first wins.

use crate::config::{
    connect_relay, pin_mismatch, relay_host, relay_tls, RelayTrust, CONNECT_TIMEOUT,
};
use crate::relay_client::{RelayClient, SignalError};
use crate::TransportError;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use protocol::{SIGNAL_PATH, SIGNAL_UPGRADE};
/// How long QUIC may take before TCP is tried alongside it, as Happy Eyeballs (RFC 8305)
/// races address families: QUIC answers within one round trip wherever UDP passes, and on a
/// link so slow that it does not, TCP winning the race is no harm.
pub const QUIC_HEAD_START: Duration = Duration::from_millis(300);
/// Longest HTTP response head accepted before the upgrade.
const MAX_RESPONSE_HEAD: usize = 4096;

/// Which transport signaling uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalTransport {
    /// QUIC, and TLS over TCP if QUIC does not get through quickly.
    #[default]
    Auto,
    /// Only QUIC over UDP.
    Quic,
    /// Only TLS over TCP (for networks known to block UDP).
    Tcp,
}

impl std::str::FromStr for SignalTransport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "quic" => Ok(Self::Quic),
            "tcp" => Ok(Self::Tcp),
            other => Err(format!(
                "unknown relay transport '{other}' (auto, quic, tcp)"
            )),
        }
    }
}

/// Connects to the relay's signaling at `addr` over `how`.
pub async fn connect_signaling(
    addr: &str,
    trust: &RelayTrust,
    how: SignalTransport,
) -> Result<RelayClient, SignalError> {
    match how {
        SignalTransport::Quic => quic(addr, trust).await,
        SignalTransport::Tcp => tcp(addr, trust).await,
        SignalTransport::Auto => {
            let q = quic(addr, trust);
            tokio::pin!(q);
            let quic_error = tokio::select! {
                r = &mut q => match r {
                    Ok(c) => return Ok(c),
                    // A wrong relay certificate is not a blocked network: say so.
                    Err(e @ SignalError::Transport(TransportError::FingerprintMismatch { .. } | TransportError::UntrustedRelay(_))) => return Err(e),
                    Err(e) => Some(e),
                },
                _ = tokio::time::sleep(QUIC_HEAD_START) => None,
            };
            let t = tcp(addr, trust);
            tokio::pin!(t);
            match quic_error {
                Some(qe) => t.await.map_err(|te| both_failed(addr, qe, te)),
                None => tokio::select! {
                    r = &mut q => match r {
                        Ok(c) => Ok(c),
                        Err(qe) => t.await.map_err(|te| both_failed(addr, qe, te)),
                    },
                    r = &mut t => match r {
                        Ok(c) => {
                            tracing::info!("signaling over TCP: QUIC did not answer in time");
                            Ok(c)
                        }
                        Err(te) => q.await.map_err(|qe| both_failed(addr, qe, te)),
                    },
                },
            }
        }
    }
}

fn both_failed(addr: &str, quic: SignalError, tcp: SignalError) -> SignalError {
    // Each attempt's own Unreachable already names the address and the advice: keep only
    // its reason, so the message says them once.
    let reason = |e: SignalError| match e {
        SignalError::Transport(TransportError::Unreachable { reason, .. }) => reason,
        other => other.to_string(),
    };
    SignalError::Transport(TransportError::Unreachable {
        addr: addr.to_owned(),
        reason: format!(
            "over QUIC/UDP: {}; over TLS/TCP: {}",
            reason(quic),
            reason(tcp)
        ),
    })
}

async fn quic(addr: &str, trust: &RelayTrust) -> Result<RelayClient, SignalError> {
    RelayClient::from_link(connect_relay(addr, trust).await?).await
}

/// Signaling over TLS on TCP at `addr`, upgraded from HTTPS.
pub async fn tcp(addr: &str, trust: &RelayTrust) -> Result<RelayClient, SignalError> {
    let (r, w) = tokio::io::split(upgraded_stream(addr, trust).await?);
    Ok(RelayClient::from_stream(Box::new(w), Box::new(r)))
}

/// The relay's pinned TLS stream at `addr`, upgraded to signaling and not yet used (tests
/// also send hostile bytes on it).
pub async fn upgraded_stream(
    addr: &str,
    trust: &RelayTrust,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, SignalError> {
    let unreachable = |reason: String| {
        SignalError::Transport(TransportError::Unreachable {
            addr: addr.to_owned(),
            reason,
        })
    };
    let host = relay_host(addr);
    let (tls, pin) = relay_tls(trust)?;
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| unreachable(format!("bad host name ({e})")))?;
    let connect = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| unreachable(format!("TCP: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let mut stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .map_err(|e| {
                SignalError::Transport(
                    pin_mismatch(pin.as_ref())
                        .unwrap_or_else(|| TransportError::UntrustedRelay(e.to_string())),
                )
            })?;
        let request = format!(
            "GET {SIGNAL_PATH} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: {SIGNAL_UPGRADE}\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(TransportError::from)?;
        // Byte by byte, so not one byte of the signaling after the head is read here.
        let mut head = Vec::with_capacity(256);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= MAX_RESPONSE_HEAD {
                return Err(unreachable("the relay's HTTP answer is too long".into()));
            }
            let b = stream.read_u8().await.map_err(TransportError::from)?;
            head.push(b);
        }
        let status = head.split(|b| *b == b'\r').next().unwrap_or_default();
        if !status.starts_with(b"HTTP/1.1 101") {
            return Err(unreachable(format!(
                "the relay did not take signaling over TCP ({})",
                String::from_utf8_lossy(status)
            )));
        }
        Ok(stream)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| {
            unreachable(format!(
                "no answer over TCP within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
}
