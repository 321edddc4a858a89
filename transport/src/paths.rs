//! The session's end-to-end connection and the paths under it, on iroh.
//!
//! Each side binds an [`iroh::Endpoint`] per session with a fresh key. The pairing confirms each
//! side's endpoint id under the code's key ([`protocol::pairing`]), so the agent accepts only
//! the viewer's id and the viewer dials only the agent's: iroh's TLS proves the id on every
//! path. The connection starts on our relay's path (HTTPS/WebSocket over TCP, which passes
//! firewalls that block UDP) and moves to a direct UDP path when hole punching works, without
//! the session noticing.
//!
//! No third-party services: the endpoint knows only our relay (whose certificate is pinned as
//! for the control connection), resolves its name with the operating system, does no DNS or
//! pkarr address lookup of endpoints, and has no port mapping.

use crate::config::RelayTrust;
use crate::pinning::PinnedCertificate;
use crate::TransportError;
use iroh::dns::{BoxIter, DnsError, DnsResolver, Resolver, TxtRecordData};
use iroh::endpoint::{presets, IdleTimeout, QuicTransportConfig, VarInt};
use iroh::tls::CaTlsConfig;
use iroh::{
    Endpoint, EndpointAddr, EndpointId, RelayConfig, RelayMap, RelayMode, RelayUrl, SecretKey,
    TransportAddr,
};
use protocol::peer::{PathKind, PeerEndpoint, MAX_DIRECT_ADDRS};
use std::future::{Future, IntoFuture};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use iroh::endpoint::{Connection, RecvStream, SendStream};

/// How long the session may be silent on every path before it is dead; keep-alives go well
/// under the UDP timeouts of school NATs, so a punched hole stays open.
const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(20);
const SESSION_KEEP_ALIVE: Duration = Duration::from_secs(5);
/// The viewer's receive windows: room for a few full-screen updates in flight.
const SESSION_STREAM_WINDOW: u32 = 16 << 20;
/// The agent's: it receives only control messages (at most 1 KiB each), and what it has not
/// read yet is all a viewer can queue at the PC. A flooding viewer with 16 MiB of room and a
/// few lost packets left so many gaps in the agent's stream buffer that its QUIC stack closed
/// the connection ("too many gaps in stream buffer") in a test; with this window the gaps
/// stay few and the flood waits at the viewer.
const AGENT_STREAM_WINDOW: u32 = 64 << 10;
/// A direct path that stops answering is given up after this long and the session goes on
/// over the relay path. iroh's 15 s suits a file transfer; a technician whose typing freezes
/// for 15 s thinks the session is dead. Probes every second cost ~50 bytes/s per path.
const PATH_IDLE_TIMEOUT: Duration = Duration::from_secs(3);
const PATH_KEEP_ALIVE: Duration = Duration::from_secs(1);
/// How long binding waits for the relay path to come up before the pairing goes on without it.
const RELAY_ONLINE_WAIT: Duration = Duration::from_secs(5);
/// Longest wait for the end-to-end handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// End-to-end handshakes the agent runs at once; more are refused until one ends. Only the
/// viewer's can succeed, so a few suffice to keep it from queueing behind strays.
pub const HANDSHAKES_AT_ONCE: usize = 8;

/// Where the relay's path service is, as agent and viewer reach it.
#[derive(Debug, Clone)]
pub struct RelayPaths {
    /// `https://host:port`: the relay path (TCP) and its probes.
    pub url: RelayUrl,
    /// UDP port of the relay's address discovery (0: none).
    pub qad_port: u16,
    /// How the relay's certificate is checked, as for the control connection.
    pub trust: RelayTrust,
}

impl RelayPaths {
    /// The relay at `addr` (`host:port`, the address of the control connection; the path
    /// service listens on the same TCP port).
    pub fn new(addr: &str, qad_port: u16, trust: RelayTrust) -> Result<Self, TransportError> {
        let url: RelayUrl = format!("https://{addr}")
            .parse()
            .map_err(|e| TransportError::Certificate(format!("relay address {addr}: {e}")))?;
        Ok(Self {
            url,
            qad_port,
            trust,
        })
    }
}

/// Makes a session key from 32 random bytes the caller provides.
pub fn session_key(rng: &mut impl rand_core::CryptoRngCore) -> SecretKey {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    SecretKey::from_bytes(&bytes)
}

/// One side's endpoint for one session.
pub struct SessionEndpoint {
    ep: Endpoint,
}

/// Why the end-to-end connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("could not open the session endpoint: {0}")]
    Bind(String),
    #[error("the peer did not open the encrypted connection within {} s", HANDSHAKE_TIMEOUT.as_secs())]
    Timeout,
    #[error("the end-to-end connection failed: {0}")]
    Connect(String),
    #[error("the peer's endpoint id is not valid")]
    BadId,
}

impl SessionEndpoint {
    /// Binds an endpoint with `key` that uses only `relay`; `accept` makes it take the
    /// session's connections (the agent, with the small windows of control messages).
    /// `stream_window` overrides the receive window
    /// (tests play a viewer that grants the agent no room).
    pub async fn bind(
        key: SecretKey,
        relay: &RelayPaths,
        accept: bool,
        stream_window: Option<u32>,
    ) -> Result<Self, PathError> {
        let window = stream_window.unwrap_or(if accept {
            AGENT_STREAM_WINDOW
        } else {
            SESSION_STREAM_WINDOW
        });
        let transport = QuicTransportConfig::builder()
            .max_idle_timeout(Some(
                IdleTimeout::try_from(SESSION_IDLE_TIMEOUT).expect("idle timeout fits"),
            ))
            .keep_alive_interval(SESSION_KEEP_ALIVE)
            .default_path_keep_alive_interval(PATH_KEEP_ALIVE)
            .default_path_max_idle_timeout(PATH_IDLE_TIMEOUT)
            .max_concurrent_uni_streams(VarInt::from_u32(1))
            .max_concurrent_bidi_streams(VarInt::from_u32(1))
            .stream_receive_window(VarInt::from_u32(window))
            .receive_window(VarInt::from_u32(window.saturating_mul(2)))
            .send_window(32 << 20)
            .build();
        let quic = (relay.qad_port != 0).then(|| iroh_relay::RelayQuicConfig::new(relay.qad_port));
        let map = RelayMap::from(RelayConfig::new(relay.url.clone(), quic));
        let mut builder = Endpoint::builder(presets::Minimal)
            .dns_resolver(DnsResolver::custom(SystemResolver))
            .secret_key(key)
            .relay_mode(RelayMode::Custom(map))
            .ca_tls_config(ca_tls(&relay.trust).map_err(|e| PathError::Bind(e.to_string()))?)
            .transport_config(transport);
        if accept {
            builder = builder.alpns(vec![protocol::SESSION_ALPN.to_vec()]);
        }
        // Benchmarks of the relay path on loopback, where a direct path always forms: an
        // endpoint without UDP sockets can only be reached over the relay.
        #[cfg(feature = "test-aids")]
        if std::env::var_os("FERNHILFE_TEST_RELAY_ONLY").is_some() {
            builder = builder.clear_ip_transports();
        }
        let ep = builder
            .bind()
            .await
            .map_err(|e| PathError::Bind(e.to_string()))?;
        Ok(Self { ep })
    }

    /// Waits (at most a few seconds) until the endpoint holds its relay connection. Until then
    /// a handshake packet sent over the relay is lost and costs a full retransmission timeout
    /// (1 s): the agent waits before it lets the relay tell the viewer to dial, the viewer
    /// before it dials. Not waited for in `bind`, so a wrong code costs no wait. Says whether
    /// it came up.
    pub async fn relay_ready(&self) -> bool {
        let up = tokio::time::timeout(RELAY_ONLINE_WAIT, self.ep.online())
            .await
            .is_ok();
        if !up {
            tracing::warn!("relay path not up after {RELAY_ONLINE_WAIT:?}; going on without it");
        }
        up
    }

    /// This side's id and direct addresses, for the pairing confirmation.
    pub fn peer_endpoint(&self) -> PeerEndpoint {
        let addr = self.ep.addr();
        let direct_addrs = addr
            .ip_addrs()
            .copied()
            .filter(|a| !a.ip().is_unspecified())
            .take(MAX_DIRECT_ADDRS)
            .collect();
        PeerEndpoint {
            id: *self.ep.id().as_bytes(),
            direct_addrs,
        }
    }

    /// Waits for the connection from `peer` (the id the pairing confirmed); connections from
    /// any other id are closed unread. Handshakes run side by side (up to
    /// [`HANDSHAKES_AT_ONCE`]): one that stalls, say a stray or hostile Initial packet from the
    /// school's LAN, must not hold up the viewer's behind it.
    pub async fn accept_from(&self, peer: &PeerEndpoint) -> Result<Connection, PathError> {
        let expected = EndpointId::from_bytes(&peer.id).map_err(|_| PathError::BadId)?;
        // Dropped on return: handshakes still running are aborted.
        let mut handshakes = tokio::task::JoinSet::new();
        tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            loop {
                tokio::select! {
                    incoming = self.ep.accept() => {
                        let incoming = incoming
                            .ok_or_else(|| PathError::Connect("endpoint closed".into()))?;
                        if handshakes.len() >= HANDSHAKES_AT_ONCE {
                            tracing::warn!("too many end-to-end handshakes at once: one refused");
                            incoming.refuse();
                            continue;
                        }
                        handshakes.spawn(incoming.into_future());
                    }
                    Some(done) = handshakes.join_next() => match done {
                        Ok(Ok(conn)) if conn.remote_id() == expected => return Ok(conn),
                        Ok(Ok(conn)) => {
                            tracing::warn!("connection from an endpoint the pairing did not confirm, closed");
                            conn.close(VarInt::from_u32(2), b"not paired");
                        }
                        Ok(Err(e)) => tracing::info!(error = %e, "end-to-end handshake failed"),
                        Err(e) => tracing::warn!(error = %e, "end-to-end handshake task failed"),
                    },
                }
            }
        })
        .await
        .map_err(|_| PathError::Timeout)?
    }

    /// Dials `peer` (the id the pairing confirmed) over the relay and its direct addresses.
    pub async fn connect_to(
        &self,
        peer: &PeerEndpoint,
        relay: &RelayPaths,
    ) -> Result<Connection, PathError> {
        let id = EndpointId::from_bytes(&peer.id).map_err(|_| PathError::BadId)?;
        let addr = EndpointAddr::new(id)
            .with_relay_url(relay.url.clone())
            .with_addrs(peer.direct_addrs.iter().map(|a| TransportAddr::Ip(*a)));
        tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            self.ep.connect(addr, protocol::SESSION_ALPN),
        )
        .await
        .map_err(|_| PathError::Timeout)?
        .map_err(|e| PathError::Connect(crate::without_peer_words(&e)))
    }

    /// Closes every connection and the endpoint, waiting at most `limit`.
    pub async fn close(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.ep.close()).await;
    }
}

/// Resolves the relay's name with the operating system (hosts file, the school's DNS), as the
/// signaling connection does. iroh's own resolver reads only the nameservers and falls back to
/// public resolvers; a school network may have no internet, and the name is ours to resolve.
#[derive(Debug, Clone, Copy)]
struct SystemResolver;

type Lookup<T> = Pin<Box<dyn Future<Output = Result<BoxIter<T>, DnsError>> + Send + 'static>>;

impl SystemResolver {
    fn lookup<T: Send + 'static>(host: String, pick: fn(IpAddr) -> Option<T>) -> Lookup<T> {
        Box::pin(async move {
            let found: Vec<T> = match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(addrs) => addrs.filter_map(|a| pick(a.ip())).collect(),
                Err(e) => {
                    tracing::warn!(%host, error = %e, "cannot resolve the relay's name");
                    Vec::new()
                }
            };
            Ok(Box::new(found.into_iter()) as BoxIter<T>)
        })
    }
}

impl Resolver for SystemResolver {
    fn lookup_ipv4(&self, host: String) -> Lookup<Ipv4Addr> {
        Self::lookup(host, |ip| match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
    }

    fn lookup_ipv6(&self, host: String) -> Lookup<Ipv6Addr> {
        Self::lookup(host, |ip| match ip {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        })
    }

    /// No TXT lookups: endpoints are found through the pairing, never through DNS.
    fn lookup_txt(&self, _host: String) -> Lookup<TxtRecordData> {
        Box::pin(async { Ok(Box::new(std::iter::empty()) as BoxIter<TxtRecordData>) })
    }

    fn clear_cache(&self) {}

    fn reset(&self) -> Box<dyn Resolver> {
        Box::new(*self)
    }
}

fn ca_tls(trust: &RelayTrust) -> Result<CaTlsConfig, TransportError> {
    Ok(match trust {
        RelayTrust::Pinned(fp) => {
            let fp = *fp;
            CaTlsConfig::custom_server_cert_verifier(Arc::new(move |_provider| {
                let v: Arc<dyn rustls::client::danger::ServerCertVerifier> =
                    PinnedCertificate::new(fp);
                Ok(v)
            }))
        }
        RelayTrust::CaFile(path) => CaTlsConfig::custom_roots(crate::config::ca_file_roots(path)?),
    })
}

/// The round-trip time over the relay path, while the connection still holds one (also when
/// the data goes direct).
pub fn relay_rtt(conn: &Connection) -> Option<Duration> {
    conn.paths()
        .iter()
        .find(|p| !matches!(p.remote_addr(), TransportAddr::Ip(_)))
        .map(|p| p.rtt())
}

/// Where a session's path is watched from (agent and viewer alike): what it is now, and
/// whether it changed since it was last reported.
#[derive(Debug, Default)]
pub struct PathWatch {
    last: Option<PathKind>,
}

/// The path a session takes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathNow {
    /// Relayed, direct or direct in the LAN.
    pub kind: PathKind,
    /// Its round-trip time in milliseconds.
    pub rtt_ms: u32,
    /// Whether it differs from the path last looked at (then it is to be shown and reported).
    pub changed: bool,
}

impl PathWatch {
    /// Looks at the path `conn` takes; `None` while it has none.
    pub fn look(&mut self, conn: &Connection) -> Option<PathNow> {
        let (kind, rtt) = current_path(conn)?;
        let changed = self.last != Some(kind);
        self.last = Some(kind);
        Some(PathNow {
            kind,
            rtt_ms: rtt.as_millis().min(u128::from(u32::MAX)) as u32,
            changed,
        })
    }
}

impl PathNow {
    /// The report for the session record.
    pub fn report(&self) -> protocol::signaling::ToRelay {
        protocol::signaling::ToRelay::PathReport {
            path: self.kind,
            rtt_ms: self.rtt_ms,
        }
    }
}

/// The path a connection's data takes now, and its round-trip time.
pub fn current_path(conn: &Connection) -> Option<(PathKind, Duration)> {
    let paths = conn.paths();
    let selected = paths.iter().find(|p| p.is_selected())?;
    let kind = match selected.remote_addr() {
        TransportAddr::Ip(remote) => match selected.local_addr() {
            iroh::endpoint::LocalTransportAddr::Ip(Some(local))
                if same_network(*local, remote.ip()) =>
            {
                PathKind::DirectLan
            }
            _ => PathKind::Direct,
        },
        _ => PathKind::Relayed,
    };
    Some((kind, selected.rtt()))
}

/// Whether two addresses share a local network (IPv4 /24, IPv6 /64): a direct path between
/// them does not cross a NAT.
fn same_network(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets()[..3] == b.octets()[..3],
        (IpAddr::V6(a), IpAddr::V6(b)) => a.octets()[..8] == b.octets()[..8],
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_is_same_subnet_only() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(same_network(ip("10.1.0.2"), ip("10.1.0.3")));
        assert!(!same_network(ip("10.1.0.2"), ip("203.0.113.2")));
        assert!(same_network(ip("2001:db8::1"), ip("2001:db8::2")));
        assert!(!same_network(ip("2001:db8::1"), ip("10.1.0.2")));
    }

    /// A stranger on the LAN starts a handshake with the agent's session endpoint and vanishes
    /// (its packets reach the agent, the agent's answers go nowhere). The viewer who dials
    /// next is still accepted at once: before, the agent sat in the stranger's handshake until
    /// the end-to-end wait ran out, and the session failed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_handshake_does_not_hold_up_the_viewer() {
        use std::net::SocketAddr;
        let trust = RelayTrust::Pinned(("AA:".repeat(31) + "AA").parse().unwrap());
        // No relay answers here: the test runs on direct paths only.
        let relay = RelayPaths::new("127.0.0.1:9", 0, trust).unwrap();
        let bind = |accept| {
            SessionEndpoint::bind(session_key(&mut rand_core::OsRng), &relay, accept, None)
        };
        let (agent, viewer, stranger) = (
            bind(true).await.unwrap(),
            bind(false).await.unwrap(),
            bind(false).await.unwrap(),
        );
        let loopback = |ep: &SessionEndpoint| -> SocketAddr {
            let port = ep
                .ep
                .bound_sockets()
                .into_iter()
                .find(|a| a.is_ipv4())
                .expect("an IPv4 socket")
                .port();
            SocketAddr::from((Ipv4Addr::LOCALHOST, port))
        };
        let agent_addr = loopback(&agent);
        let at = |addr: SocketAddr| PeerEndpoint {
            id: agent.peer_endpoint().id,
            direct_addrs: vec![addr],
        };
        // The stranger's packets pass a one-way forwarder: to the agent, never back.
        let one_way = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let one_way_addr = one_way.local_addr().unwrap();
        let (answered_tx, answered) = tokio::sync::oneshot::channel();
        let forwarder = tokio::spawn(async move {
            let mut answered_tx = Some(answered_tx);
            let mut buf = vec![0u8; 65536];
            loop {
                let (n, from) = one_way.recv_from(&mut buf).await.unwrap();
                if from == agent_addr {
                    // The agent took up the stranger's handshake.
                    if let Some(tx) = answered_tx.take() {
                        let _ = tx.send(());
                    }
                } else {
                    one_way.send_to(&buf[..n], agent_addr).await.unwrap();
                }
            }
        });
        let stranger_relay = relay.clone();
        let stranger_at = at(one_way_addr);
        let stranger_dial = tokio::spawn(async move {
            let _ = stranger.connect_to(&stranger_at, &stranger_relay).await;
        });
        let viewer_id = viewer.peer_endpoint();
        let (accepted, dialled) = tokio::join!(agent.accept_from(&viewer_id), async {
            tokio::time::timeout(Duration::from_secs(10), answered)
                .await
                .expect("the agent answers the stranger's Initial")
                .unwrap();
            viewer.connect_to(&at(agent_addr), &relay).await
        });
        assert!(dialled.is_ok(), "the viewer could not connect: {dialled:?}");
        let conn = accepted.expect("the agent accepts the viewer behind the stalled handshake");
        assert_eq!(conn.remote_id(), viewer.ep.id());
        stranger_dial.abort();
        forwarder.abort();
    }
}
