//! A virtual UDP socket whose datagrams travel as QUIC DATAGRAM frames on the relay
//! connection. The end-to-end QUIC connection runs on it, so the relay forwards packets it
//! cannot read, and a later direct path can replace this socket without touching the session.

use bytes::Bytes;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Connection, UdpPoller};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Datagrams buffered between the relay connection and the end-to-end endpoint; beyond this
/// they are dropped, which QUIC's loss recovery treats like any lost packet.
const RECV_QUEUE: usize = 4096;

/// The virtual socket; one per session, on top of one relay connection.
pub struct TunnelSocket {
    relay: Connection,
    incoming: Mutex<mpsc::Receiver<Bytes>>,
}

impl fmt::Debug for TunnelSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TunnelSocket")
    }
}

impl TunnelSocket {
    /// Starts reading the relay connection's datagrams; must run inside a tokio runtime.
    pub fn new(relay: Connection) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(RECV_QUEUE);
        let reader = relay.clone();
        tokio::spawn(async move {
            while let Ok(d) = reader.read_datagram().await {
                if tx.try_send(d).is_err() && tx.is_closed() {
                    break;
                }
            }
        });
        Arc::new(Self {
            relay,
            incoming: Mutex::new(rx),
        })
    }

    /// The address the peer appears at; a fixed placeholder, as there is only one peer.
    pub fn peer_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 2], 2))
    }
}

#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        // DATAGRAM sends never block: quinn queues them and drops the oldest when full.
        Poll::Ready(Ok(()))
    }
}

impl AsyncUdpSocket for TunnelSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        match self
            .relay
            .send_datagram(Bytes::copy_from_slice(transmit.contents))
        {
            Ok(()) => Ok(()),
            Err(quinn::SendDatagramError::ConnectionLost(e)) => {
                Err(io::Error::new(io::ErrorKind::NotConnected, e))
            }
            // Too large or not supported: the packet is lost, as on a real path.
            Err(_) => Ok(()),
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut rx = self.incoming.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match rx.poll_recv(cx) {
                Poll::Ready(Some(d)) => {
                    if d.len() > bufs[0].len() {
                        continue;
                    }
                    bufs[0][..d.len()].copy_from_slice(&d);
                    meta[0] = RecvMeta {
                        addr: self.peer_addr(),
                        len: d.len(),
                        stride: d.len(),
                        ecn: None,
                        dst_ip: None,
                    };
                    return Poll::Ready(Ok(1));
                }
                // The relay connection is gone; the session notices through its idle timeout
                // or the relay connection's own close, so this socket just goes quiet.
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::from(([127, 0, 0, 1], 1)))
    }
}
