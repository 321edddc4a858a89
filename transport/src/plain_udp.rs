//! The relay connection's UDP socket, with a plain fallback for platforms that refuse quinn's
//! optimised one.
//!
//! quinn-udp sets ECN, packet-info and dual-stack options on every socket and gives up when
//! one is refused. Real Windows and Linux take them all; Wine (Debian 12's Wine 8 fails quinn-udp's
//! socket setup with OS error 10045) and locked-down Windows builds do not.
//! Sending and receiving need none of those options, so the fallback is a plain
//! `tokio::net::UdpSocket`: one datagram per call, no ECN, no local-address info. The session
//! endpoints (iroh's noq-udp) already degrade on their own and need nothing from here.

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Endpoint, EndpointConfig, TokioRuntime, UdpPoller};
use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// A client endpoint on `bind`: quinn's own socket where the platform takes it, else a
/// [`PlainUdpSocket`], with a warning that says so.
pub fn client_endpoint(bind: SocketAddr) -> io::Result<Endpoint> {
    match Endpoint::client(bind) {
        Ok(endpoint) => Ok(endpoint),
        Err(refused) => {
            let socket = PlainUdpSocket::bind(bind).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("{e} (quinn's own socket failed too: {refused})"),
                )
            })?;
            tracing::warn!(
                %refused,
                "this system refuses quinn's optimised UDP socket options; using a plain UDP socket (no ECN)"
            );
            plain_endpoint(socket)
        }
    }
}

/// A client endpoint on `socket`.
fn plain_endpoint(socket: PlainUdpSocket) -> io::Result<Endpoint> {
    Endpoint::new_with_abstract_socket(
        EndpointConfig::default(),
        None,
        Arc::new(socket),
        Arc::new(TokioRuntime),
    )
}

/// A UDP socket that sends and receives one datagram at a time and asks the OS for nothing else.
pub struct PlainUdpSocket {
    io: tokio::net::UdpSocket,
    /// Whether a failed send was logged already (once is evidence enough; not per packet).
    send_error_logged: AtomicBool,
}

impl PlainUdpSocket {
    /// Binds a non-blocking socket on `addr` in the current tokio runtime.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            io: tokio::net::UdpSocket::from_std(socket)?,
            send_error_logged: AtomicBool::new(false),
        })
    }
}

impl fmt::Debug for PlainUdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainUdpSocket")
            .field("local", &self.io.local_addr().ok())
            .finish()
    }
}

impl AsyncUdpSocket for PlainUdpSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Writable {
            socket: self,
            wait: None,
        })
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        // max_transmit_segments() is 1, so quinn never hands over a GSO batch.
        match self.io.try_send_to(transmit.contents, transmit.destination) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(e),
            // As quinn-udp does: a send error (unreachable network, full buffers, a firewall's
            // refusal) loses this datagram, which QUIC resends; handed to quinn, it would stop
            // the connection's driver for good.
            Err(e) => {
                if !self.send_error_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%e, to = %transmit.destination, "sending a UDP datagram failed; QUIC will resend");
                }
                Ok(())
            }
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(slot)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        loop {
            ready!(self.io.poll_recv_ready(cx))?;
            match self.io.try_recv_from(buf) {
                Ok((len, addr)) => {
                    *slot = RecvMeta {
                        addr,
                        len,
                        stride: len,
                        ecn: None,
                        dst_ip: None,
                    };
                    return Poll::Ready(Ok(1));
                }
                // A readiness event can be spurious; poll again so the waker is registered.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }
}

/// A future that resolves when the socket can take a datagram.
type WritableWait = Pin<Box<dyn Future<Output = io::Result<()>> + Send + Sync>>;

/// quinn's wait for room to send. Each poller keeps a wait of its own, so every task that
/// waits is woken (the socket's `poll_send_ready` would remember only the last waker).
struct Writable {
    socket: Arc<PlainUdpSocket>,
    wait: Option<WritableWait>,
}

impl fmt::Debug for Writable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Writable")
    }
}

impl UdpPoller for Writable {
    fn poll_writable(mut self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let socket = this.socket.clone();
        let wait = this
            .wait
            .get_or_insert_with(|| Box::pin(async move { socket.io.writable().await }));
        let ready = ready!(wait.as_mut().poll(cx));
        this.wait = None;
        Poll::Ready(ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{relay_client_config, relay_server_config, RelayTrust};
    use crate::identity::Identity;

    /// The plain socket alone carries a pinned QUIC handshake and a stream both ways, as it
    /// must where it is the only socket (Wine).
    #[tokio::test]
    async fn plain_socket_carries_a_pinned_quic_connection() {
        let id = Identity::generate("relay.test").unwrap();
        let server = Endpoint::server(
            relay_server_config(&id).unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let server_addr = server.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            let conn = server.accept().await.unwrap().await.unwrap();
            let (mut send, mut recv) = conn.accept_bi().await.unwrap();
            let got = recv.read_to_end(1 << 20).await.unwrap();
            send.write_all(&got).await.unwrap();
            send.finish().unwrap();
            conn.closed().await;
        });

        let socket = PlainUdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut client = plain_endpoint(socket).unwrap();
        let (config, _) = relay_client_config(&RelayTrust::Pinned(id.fingerprint())).unwrap();
        client.set_default_client_config(config);
        let conn = client
            .connect(server_addr, "relay.test")
            .unwrap()
            .await
            .unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        // Larger than one datagram, so both directions need many packets and acknowledgements.
        let message: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        send.write_all(&message).await.unwrap();
        send.finish().unwrap();
        let back = recv.read_to_end(1 << 20).await.unwrap();
        assert_eq!(back, message);
        conn.close(0u32.into(), b"done");
        echo.await.unwrap();
    }

    /// Where quinn's own socket works, the endpoint is quinn's, on the address asked for.
    #[tokio::test]
    async fn client_endpoint_binds_where_asked() {
        let ep = client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(ep.local_addr().unwrap().ip().is_loopback());
    }
}
