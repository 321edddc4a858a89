//! The session paths the relay offers: an embedded iroh relay service on TCP (HTTPS, with the
//! relay's own pinned certificate), carrying end-to-end packets it cannot read between
//! endpoints it admitted, and QUIC address discovery on UDP, which tells an endpoint the
//! address its NAT shows the world so the two sides can punch through.
//!
//! Only endpoint ids that a side named for a running pairing are admitted ([`SessionAdmission`]),
//! so the relay is no free relay for strangers' traffic.
//!
//! The same HTTPS listener also takes signaling where UDP is blocked: an HTTP/1.1 upgrade at
//! [`protocol::SIGNAL_PATH`] hands the TLS stream to the rendezvous, which serves
//! it as it serves a QUIC signaling stream.

use crate::admission::{Admission, AdmissionTicket};
use iroh::EndpointId;
use iroh_relay::server::http_server::{Handlers, RelayService, TlsConfig};
use iroh_relay::server::{Access, AccessControl, ClientRequest, ConnectionId, Metrics};
use protocol::{SIGNAL_PATH, SIGNAL_UPGRADE};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use transport::identity::Identity;

/// A signaling stream that arrived over TCP: who sent it, the stream, and the admission ticket
/// that counts it against its address while it lives.
pub(crate) struct TcpSignaling {
    pub remote: SocketAddr,
    pub stream: hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>,
    pub ticket: Arc<AdmissionTicket>,
}

tokio::task_local! {
    /// The TCP connection a request came on, for the upgrade handler.
    static CONNECTION: (SocketAddr, Arc<AdmissionTicket>);
}

/// A TCP connection must complete TLS and the relay handshake this fast.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// Endpoint keys whose signatures the relay remembers having checked.
const KEY_CACHE_CAPACITY: usize = 1024;

/// The endpoint ids admitted to the relay path, each while something holds its guard.
#[derive(Debug, Default)]
pub(crate) struct SessionAdmission {
    admitted: Mutex<HashMap<EndpointId, usize>>,
}

/// Keeps one endpoint id admitted until dropped.
pub(crate) struct AdmittedEndpoint {
    id: EndpointId,
    admission: Arc<SessionAdmission>,
}

impl SessionAdmission {
    /// Admits `id` (32 bytes as the pairing named it) while the returned guard lives; `None`
    /// if the bytes are no valid endpoint id.
    pub(crate) fn admit(self: &Arc<Self>, id: &[u8; 32]) -> Option<AdmittedEndpoint> {
        let id = EndpointId::from_bytes(id).ok()?;
        tracing::info!(endpoint = %id.fmt_short(), "endpoint admitted to the relay path");
        *self.lock().entry(id).or_insert(0) += 1;
        Some(AdmittedEndpoint {
            id,
            admission: self.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EndpointId, usize>> {
        self.admitted.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_admitted(&self, id: &EndpointId) -> bool {
        self.lock().contains_key(id)
    }
}

impl Drop for AdmittedEndpoint {
    fn drop(&mut self) {
        let mut m = self.admission.lock();
        if let Some(n) = m.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.id);
            }
        }
    }
}

impl AccessControl for SessionAdmission {
    async fn on_connect(&self, request: &ClientRequest) -> Access {
        if self.is_admitted(&request.endpoint_id()) {
            Access::Allow
        } else {
            tracing::info!(endpoint = %request.endpoint_id().fmt_short(), "relay path refused to an endpoint no pairing named");
            Access::Deny {
                reason: Some("endpoint not admitted".into()),
            }
        }
    }

    fn on_disconnect(&self, _endpoint_id: EndpointId, _connection_id: ConnectionId) {}
}

/// The running path service.
pub(crate) struct PathService {
    relay: RelayService,
    tls: TlsConfig,
    admission: Arc<SessionAdmission>,
    /// Kept for its lifetime: the address discovery server.
    qad: Option<crate::address_discovery::AddressDiscovery>,
}

impl PathService {
    /// Starts the service with the relay's identity; address discovery on `qad` (UDP) if given,
    /// its connections counted against `limits`. Signaling streams upgraded from HTTPS go to
    /// `signaling`.
    pub(crate) async fn start(
        id: &Identity,
        qad: Option<SocketAddr>,
        limits: Admission,
        signaling: mpsc::Sender<TcpSignaling>,
    ) -> anyhow::Result<Self> {
        let tls = Arc::new(server_tls(id)?);
        let admission = Arc::new(SessionAdmission::default());
        let mut handlers = Handlers::default();
        // iroh's endpoints measure the relay's latency over HTTPS with this probe, also when
        // UDP is blocked.
        handlers.insert(
            (http::Method::GET, iroh_relay::http::RELAY_PROBE_PATH),
            Box::new(|_req, res| {
                res.status(200)
                    .body(Box::new(http_body_util::Full::new(bytes::Bytes::new())) as _)
                    .map_err(|e| Box::new(e) as _)
            }),
        );
        handlers.insert(
            (http::Method::GET, SIGNAL_PATH),
            Box::new(move |mut req, res| {
                let wants = req
                    .headers()
                    .get(http::header::UPGRADE)
                    .is_some_and(|v| v.as_bytes() == SIGNAL_UPGRADE.as_bytes());
                let conn = CONNECTION.try_with(|c| c.clone()).ok();
                let (true, Some((remote, ticket))) = (wants, conn) else {
                    return res
                        .status(400)
                        .body(Box::new(http_body_util::Full::new(bytes::Bytes::new())) as _)
                        .map_err(|e| Box::new(e) as _);
                };
                let upgrade = hyper::upgrade::on(&mut req);
                let signaling = signaling.clone();
                tokio::spawn(async move {
                    match upgrade.await {
                        Ok(up) => {
                            let stream = hyper_util::rt::TokioIo::new(up);
                            let s = TcpSignaling {
                                remote,
                                stream,
                                ticket,
                            };
                            if signaling.try_send(s).is_err() {
                                tracing::warn!(%remote, "signaling over TCP dropped: relay busy");
                            }
                        }
                        Err(e) => tracing::debug!(%remote, error = %e, "signaling upgrade failed"),
                    }
                });
                res.status(101)
                    .header(http::header::CONNECTION, "upgrade")
                    .header(http::header::UPGRADE, SIGNAL_UPGRADE)
                    .body(Box::new(http_body_util::Full::new(bytes::Bytes::new())) as _)
                    .map_err(|e| Box::new(e) as _)
            }),
        );
        let metrics = Arc::new(Metrics::default());
        crate::metrics::add_iroh_relay(metrics.clone());
        let relay = RelayService::new(
            handlers,
            Default::default(),
            None,
            iroh_relay::KeyCache::new(KEY_CACHE_CAPACITY),
            admission.clone(),
            metrics,
        );
        let qad = qad
            .map(|addr| {
                crate::address_discovery::AddressDiscovery::spawn(addr, (*tls).clone(), limits)
                    .map_err(|e| {
                        anyhow::anyhow!("cannot start address discovery on UDP {addr}: {e}")
                    })
            })
            .transpose()?;
        Ok(Self {
            relay,
            tls: TlsConfig::new(tls),
            admission,
            qad,
        })
    }

    /// Who may use the relay path.
    pub(crate) fn admission(&self) -> Arc<SessionAdmission> {
        self.admission.clone()
    }

    /// The UDP port of address discovery (0: off).
    pub(crate) fn qad_port(&self) -> u16 {
        self.qad.as_ref().map_or(0, |q| q.port())
    }

    /// Serves HTTPS connections from `listener`, each counted against its address.
    pub(crate) async fn serve_tcp(self: Arc<Self>, listener: TcpListener, limits: Admission) {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(ticket) = limits.admit(remote.ip()) else {
                tracing::debug!(%remote, "too many connections from this address");
                crate::metrics::metrics().throttle(crate::metrics::Throttle::Connection);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let service = self.clone();
            let ticket = Arc::new(ticket);
            tokio::spawn(CONNECTION.scope((remote, ticket), async move {
                service
                    .relay
                    .clone()
                    .handle_connection(stream, Some(service.tls.clone()), ESTABLISH_TIMEOUT)
                    .await;
            }));
        }
    }

    /// Disconnects every relayed endpoint.
    pub(crate) async fn shutdown(&self) {
        self.relay.shutdown().await;
    }
}

/// The relay's TLS server settings for HTTPS and address discovery: its own certificate, the
/// one agents and viewers pin.
pub(crate) fn server_tls(id: &Identity) -> anyhow::Result<rustls::ServerConfig> {
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])?
    .with_no_client_auth()
    .with_single_cert(id.chain.clone(), id.key.clone_key())?;
    // No ALPN: iroh's relay client offers none, and a list here would refuse other clients.
    tls.alpn_protocols.clear();
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_lasts_while_a_guard_lives() {
        let a = Arc::new(SessionAdmission::default());
        let key = iroh::SecretKey::from_bytes(&[9; 32]).public();
        let g1 = a.admit(key.as_bytes()).unwrap();
        let g2 = a.admit(key.as_bytes()).unwrap();
        assert!(a.is_admitted(&key));
        drop(g1);
        assert!(a.is_admitted(&key));
        drop(g2);
        assert!(!a.is_admitted(&key));
    }

    /// A stranger's endpoint gets no relay path; one a pairing named does, over the real
    /// TLS listener with the pinned certificate.
    #[tokio::test]
    async fn only_admitted_endpoints_get_the_relay_path() {
        use transport::config::RelayTrust;
        use transport::paths::{session_key, RelayPaths, SessionEndpoint};
        let id = Identity::generate("relay-test").unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let service = Arc::new(
            PathService::start(&id, None, Admission::new(4, 16), tx)
                .await
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            service
                .clone()
                .serve_tcp(listener, Admission::new(100, 100)),
        );
        let paths = RelayPaths::new(&addr, 0, RelayTrust::Pinned(id.fingerprint())).unwrap();
        let mut rng = rand_core::OsRng;

        let stranger = SessionEndpoint::bind(session_key(&mut rng), &paths, false, None)
            .await
            .unwrap();
        assert!(
            !stranger.relay_ready().await,
            "an endpoint no pairing named got the relay path"
        );

        let key = session_key(&mut rng);
        let _guard = service.admission().admit(key.public().as_bytes()).unwrap();
        let paired = SessionEndpoint::bind(key, &paths, false, None)
            .await
            .unwrap();
        assert!(
            paired.relay_ready().await,
            "an admitted endpoint got no relay path"
        );
    }
}
