//! QUIC address discovery on UDP: an endpoint connects, and the relay tells it the address its
//! NAT shows the world (an observed-address report), so agent and viewer can punch through.
//!
//! iroh-relay's own server takes every connection, with no bound per address or in all. This
//! one is bounded as the signaling listener is: a QUIC Retry proves the source address first
//! (a forged address gets no handshake and uses up nobody's places), each connection is then
//! counted against its address and in all, a handshake has a few seconds, and a connection
//! lives a bounded time (the endpoint dials again when it wants a fresh report).

use crate::admission::Admission;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// ALPN of address discovery, as iroh's endpoints offer it.
const ALPN: &[u8] = iroh_relay::quic::ALPN_QUIC_ADDR_DISC;
/// How long a handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may stay open; iroh's endpoints keep theirs to hear of address
/// changes and dial again once it is closed.
const MAX_LIFETIME: Duration = Duration::from_secs(120);
/// An idle connection is dropped after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The running address discovery service; stops when dropped.
pub(crate) struct AddressDiscovery {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl AddressDiscovery {
    /// Listens on `addr` with the relay's TLS settings; connections count against `limits`.
    pub(crate) fn spawn(
        addr: SocketAddr,
        mut tls: rustls::ServerConfig,
        limits: Admission,
    ) -> anyhow::Result<Self> {
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = noq::crypto::rustls::QuicServerConfig::try_from(tls)?;
        let mut config = noq::ServerConfig::with_crypto(Arc::new(crypto));
        let transport = Arc::get_mut(&mut config.transport).expect("not shared yet");
        transport
            .max_concurrent_uni_streams(0u8.into())
            .max_concurrent_bidi_streams(0u8.into())
            .max_idle_timeout(Some(IDLE_TIMEOUT.try_into()?))
            .send_observed_address_reports(true);
        let endpoint = noq::Endpoint::server(config, addr)?;
        let port = endpoint.local_addr()?.port();
        let task = tokio::spawn(serve(endpoint, limits));
        Ok(Self { port, task })
    }

    /// The UDP port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for AddressDiscovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(endpoint: noq::Endpoint, limits: Admission) {
    // Owned here: dropping the service aborts every connection with it.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = connections.join_next() => {}
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let Some((incoming, place)) = limits.admit_quic(incoming) else { continue };
                connections.spawn(async move {
                    let _place = place;
                    let Ok(Ok(conn)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await else {
                        return;
                    };
                    if tokio::time::timeout(MAX_LIFETIME, conn.closed()).await.is_err() {
                        conn.close(
                            iroh_relay::quic::QUIC_ADDR_DISC_CLOSE_CODE,
                            iroh_relay::quic::QUIC_ADDR_DISC_CLOSE_REASON,
                        );
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use transport::identity::Identity;

    /// A client as iroh's endpoints are: pinned to the relay's certificate, offering the ALPN.
    fn client(id: &Identity) -> (noq::Endpoint, noq::ClientConfig) {
        let mut tls =
            rustls::ClientConfig::builder_with_provider(transport::pinning::crypto_provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(transport::pinning::PinnedCertificate::new(
                    id.fingerprint(),
                ))
                .with_no_client_auth();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = noq::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let endpoint = noq::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        (endpoint, noq::ClientConfig::new(Arc::new(crypto)))
    }

    /// Initial packets from forged addresses (replayed from sockets that never answer) get a
    /// Retry and take no place; real clients are counted, and one address gets no more than
    /// its places. Before, iroh-relay's listener took every connection from anyone.
    #[tokio::test]
    async fn forged_addresses_take_no_place_and_real_ones_are_bounded() {
        let id = Identity::generate("fernhilfe-relay").unwrap();
        let tls = crate::path_service::server_tls(&id).unwrap();
        let qad =
            AddressDiscovery::spawn("127.0.0.1:0".parse().unwrap(), tls, Admission::new(2, 8))
                .unwrap();
        let server = SocketAddr::from(([127, 0, 0, 1], qad.port()));

        // A real client's first datagram, caught on its way to a socket of ours.
        let catcher = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (ep, cfg) = client(&id);
        let _dialling = ep
            .connect_with(cfg, catcher.local_addr().unwrap(), "fernhilfe-relay")
            .unwrap();
        let mut initial = vec![0u8; 2048];
        let (n, _) = catcher.recv_from(&mut initial).await.unwrap();
        initial.truncate(n);
        // Replayed from five other ports of the address, as by a forger who never sees the
        // answers. Each would have held one of the address's places for the handshake time.
        let mut forgers = Vec::new();
        for _ in 0..5 {
            let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            s.send_to(&initial, server).await.unwrap();
            forgers.push(s);
        }
        // The address's two places are still free for real clients; a third is refused.
        let mut open = Vec::new();
        for _ in 0..2 {
            let (ep, cfg) = client(&id);
            let conn = ep
                .connect_with(cfg, server, "fernhilfe-relay")
                .unwrap()
                .await
                .expect("a real client is served");
            open.push((ep, conn));
        }
        let (ep, cfg) = client(&id);
        let third = ep
            .connect_with(cfg, server, "fernhilfe-relay")
            .unwrap()
            .await;
        assert!(
            third.is_err(),
            "a third connection from one address was served"
        );
        // The forgers' Initials came before the real clients': whatever the relay sent them
        // is in their sockets by now, and it is a Retry at most (a repeated Initial that
        // arrives while the first waits for its Retry gets nothing).
        let mut retries = 0;
        for s in &forgers {
            let mut buf = [0u8; 2048];
            while let Ok((n, _)) = s.try_recv_from(&mut buf) {
                // Long header, packet type Retry (0b11 in bits 4-5).
                assert_eq!(buf[0] & 0xf0, 0xf0, "not a Retry: {:x?}", &buf[..n.min(8)]);
                retries += 1;
            }
        }
        assert!(retries >= 1, "no forger got a Retry");
        // A place is given back when its connection ends.
        let (ep0, conn0) = open.remove(0);
        conn0.close(0u32.into(), b"done");
        ep0.wait_idle().await;
        let mut served = false;
        for _ in 0..50 {
            let (ep, cfg) = client(&id);
            if ep
                .connect_with(cfg, server, "fernhilfe-relay")
                .unwrap()
                .await
                .is_ok()
            {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(served, "the place was not given back");
    }
}
