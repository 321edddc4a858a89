//! QUIC and TLS settings for the two kinds of connection: to the relay, and end to end.

use crate::identity::Identity;
use crate::pinning::{crypto_provider, PinnedCertificate};
use crate::TransportError;
use protocol::fingerprint::CertFingerprint;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::rustls::{self, pki_types::pem::PemObject, pki_types::CertificateDer, RootCertStore};
use quinn::{
    ClientConfig, Connection, Endpoint, IdleTimeout, ServerConfig, TransportConfig, VarInt,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long a connection may be silent before it is dead; keep-alives go at a third of it,
/// well under the NAT timeouts of school firewalls (often 30 s for UDP).
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Connecting to the relay gives up after this long with a clear error.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// UDP payload of the relay connection: large enough that a 1,200-byte end-to-end QUIC
/// packet fits in one relay DATAGRAM frame, and small enough for a 1,500-byte path.
const RELAY_INITIAL_MTU: u16 = 1452;

/// How agent and viewer recognise the relay.
#[derive(Debug, Clone)]
pub enum RelayTrust {
    /// The SHA-256 fingerprint of the relay's self-signed certificate.
    Pinned(CertFingerprint),
    /// A PEM file of CA certificates, for relays with a CA-issued certificate.
    CaFile(PathBuf),
}

/// The signaling connection's transport: one stream, no datagrams (sessions run on their own
/// connection since the paths moved to iroh, so the relay accepts none).
fn relay_transport() -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.max_idle_timeout(Some(
        IdleTimeout::try_from(IDLE_TIMEOUT).expect("idle timeout fits"),
    ))
    .keep_alive_interval(Some(KEEP_ALIVE))
    .initial_mtu(RELAY_INITIAL_MTU)
    .datagram_receive_buffer_size(None)
    .max_concurrent_uni_streams(VarInt::from_u32(0))
    .max_concurrent_bidi_streams(VarInt::from_u32(1));
    Arc::new(t)
}

/// A TLS 1.3 client configuration that checks the server with `verifier`.
fn tls13_client(
    verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
) -> Result<
    rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    TransportError,
> {
    Ok(
        rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier),
    )
}

fn quic_client(
    mut tls: rustls::ClientConfig,
    alpn: &[u8],
    transport: Arc<TransportConfig>,
) -> Result<ClientConfig, TransportError> {
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic =
        QuicClientConfig::try_from(tls).map_err(|e| TransportError::Certificate(e.to_string()))?;
    let mut c = ClientConfig::new(Arc::new(quic));
    c.transport_config(transport);
    Ok(c)
}

fn quic_server(
    mut tls: rustls::ServerConfig,
    alpn: &[u8],
    transport: Arc<TransportConfig>,
) -> Result<ServerConfig, TransportError> {
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic =
        QuicServerConfig::try_from(tls).map_err(|e| TransportError::Certificate(e.to_string()))?;
    let mut s = ServerConfig::with_crypto(Arc::new(quic));
    s.transport_config(transport);
    Ok(s)
}

/// The relay's QUIC server configuration for signaling.
pub fn relay_server_config(id: &Identity) -> Result<ServerConfig, TransportError> {
    let tls = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(id.chain.clone(), id.key.clone_key())?;
    quic_server(tls, protocol::RELAY_ALPN, relay_transport())
}

/// A connection to the relay with the endpoint that drives it.
pub struct RelayConnection {
    pub endpoint: Endpoint,
    pub conn: Connection,
}

impl RelayConnection {
    /// Closes the connection and waits (briefly) until the relay was told, so it forgets this
    /// client at once instead of after the idle timeout.
    pub async fn close(&self, reason: &[u8]) {
        self.conn.close(0u32.into(), reason);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// The client configuration for a relay connection that checks the certificate per `trust`;
/// with a pin, also the verifier, which can tell a mismatch apart from other failures.
pub fn relay_client_config(
    trust: &RelayTrust,
) -> Result<(ClientConfig, Option<Arc<PinnedCertificate>>), TransportError> {
    let (tls, pin) = relay_tls(trust)?;
    Ok((
        quic_client(tls, protocol::RELAY_ALPN, relay_transport())?,
        pin,
    ))
}

/// The TLS client settings that check the relay per `trust`, for QUIC and TCP alike; with a
/// pin, also the verifier, which can tell a mismatch apart from other failures.
pub(crate) fn relay_tls(
    trust: &RelayTrust,
) -> Result<(rustls::ClientConfig, Option<Arc<PinnedCertificate>>), TransportError> {
    Ok(match trust {
        RelayTrust::Pinned(fp) => {
            let pin = PinnedCertificate::new(*fp);
            (tls13_client(pin.clone())?.with_no_client_auth(), Some(pin))
        }
        RelayTrust::CaFile(path) => (ca_client_tls(path)?, None),
    })
}

/// The error to report when the TLS handshake with the relay failed and `pin` saw another
/// certificate than the pinned one.
pub(crate) fn pin_mismatch(pin: Option<&Arc<PinnedCertificate>>) -> Option<TransportError> {
    let pin = pin?;
    let got = pin.mismatch()?;
    Some(TransportError::FingerprintMismatch {
        expected: pin.expected().to_string(),
        got: got.to_string(),
    })
}

/// The host part of `addr` (`host:port`, `[v6]:port`): the name the relay's certificate is
/// checked for.
pub(crate) fn relay_host(addr: &str) -> String {
    addr.rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']))
        .unwrap_or(addr)
        .to_owned()
}

/// A TLS client configuration that checks the relay against the CA certificates in `path`.
fn ca_client_tls(path: &std::path::Path) -> Result<rustls::ClientConfig, TransportError> {
    let mut roots = RootCertStore::empty();
    for cert in ca_file_roots(path)? {
        roots
            .add(cert)
            .map_err(|e| TransportError::Certificate(e.to_string()))?;
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The CA certificates in the PEM file `path`.
pub fn ca_file_roots(
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    CertificateDer::pem_file_iter(path)
        .map_err(|e| TransportError::Certificate(format!("{}: {e}", path.display())))?
        .map(|c| c.map_err(|e| TransportError::Certificate(format!("{}: {e}", path.display()))))
        .collect()
}

/// Connects to the relay at `addr` (`host:port`), checking its certificate per `trust`.
pub async fn connect_relay(
    addr: &str,
    trust: &RelayTrust,
) -> Result<RelayConnection, TransportError> {
    connect_relay_from(addr, trust, None).await
}

/// As [`connect_relay`], from the local address `bind` (any, if `None`).
pub async fn connect_relay_from(
    addr: &str,
    trust: &RelayTrust,
    bind: Option<SocketAddr>,
) -> Result<RelayConnection, TransportError> {
    let unreachable = |reason: String| TransportError::Unreachable {
        addr: addr.to_owned(),
        reason,
    };
    let target: SocketAddr = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| unreachable(format!("address does not resolve ({e})")))?
        .next()
        .ok_or_else(|| unreachable("address does not resolve".into()))?;
    let host = relay_host(addr);
    let (config, pin) = relay_client_config(trust)?;
    let bind: SocketAddr = bind.unwrap_or_else(|| {
        if target.is_ipv6() {
            "[::]:0".parse().expect("literal")
        } else {
            "0.0.0.0:0".parse().expect("literal")
        }
    });
    let mut endpoint = crate::plain_udp::client_endpoint(bind)?;
    endpoint.set_default_client_config(config);
    let connecting = endpoint.connect(target, &host)?;
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => Err(unreachable(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Ok(conn)) => Ok(RelayConnection { endpoint, conn }),
        Ok(Err(e)) => match pin_mismatch(pin.as_ref()) {
            Some(mismatch) => Err(mismatch),
            // QUIC carries TLS alerts as transport error codes 0x100-0x1ff.
            None if matches!(&e, quinn::ConnectionError::TransportError(t) if (0x100..0x200).contains(&u64::from(t.code))) => {
                Err(TransportError::UntrustedRelay(e.to_string()))
            }
            None => Err(unreachable(e.to_string())),
        },
    }
}
