//! The signaling connection agent and viewer keep to the relay, and the pairing driver both run
//! over it: one copy of each, so the two sides cannot drift apart.
//!
//! Every wait here is bounded: a relay that stops answering costs at most [`SIGNAL_TIMEOUT`]
//! per message, never a hung agent.

use crate::config::RelayConnection;
use crate::framed::{send_frame, FramedRecv};
use crate::TransportError;
use protocol::pairing::{Pairing, PairingError, PairingProof, PairingStep};
use protocol::peer::PeerEndpoint;
use protocol::signaling::{FromRelay, Refusal, ToRelay, MAX_SIGNALING_LEN};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// The sending half of the signaling stream, whatever carries it.
pub type SignalSend = Box<dyn AsyncWrite + Send + Unpin>;
/// The receiving half of the signaling stream, whatever carries it.
pub type SignalRecv = Box<dyn AsyncRead + Send + Unpin>;

/// Longest wait for a signaling write, or for the peer's next pairing message.
pub const SIGNAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why no session endpoint could be made for a pairing.
#[derive(Debug, thiserror::Error)]
pub enum SessionEndpointError {
    /// The relay did not admit the endpoint.
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// The relay's address or trust is unusable for the paths.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The endpoint could not be bound.
    #[error(transparent)]
    Path(#[from] crate::paths::PathError),
}

/// Errors of the signaling connection.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the relay closed the connection / das Relay hat die Verbindung beendet")]
    Closed,
    #[error("the relay did not answer within {} s / das Relay antwortet nicht", SIGNAL_TIMEOUT.as_secs())]
    Timeout,
    #[error("unexpected message from the relay: {0}")]
    Unexpected(&'static str),
}

/// A connection to the relay with its signaling stream.
pub struct RelayClient {
    /// The QUIC connection, when the signaling runs over QUIC (not over TCP).
    quic: Option<RelayConnection>,
    send: SignalSend,
    recv: FramedRecv<SignalRecv>,
    /// Messages that arrived while waiting for another answer; read before the stream.
    pending: VecDeque<FromRelay>,
}

/// Most messages kept aside while waiting for an answer; a relay that sends more is broken.
const MAX_PENDING: usize = 16;
/// How long a failed write waits for the refusal that explains it.
const REFUSAL_WAIT: Duration = Duration::from_secs(2);

impl RelayClient {
    /// Opens the signaling stream on an established relay connection.
    pub async fn from_link(link: RelayConnection) -> Result<Self, SignalError> {
        let (send, recv) = tokio::time::timeout(SIGNAL_TIMEOUT, link.conn.open_bi())
            .await
            .map_err(|_| SignalError::Timeout)?
            .map_err(TransportError::from)?;
        Ok(Self {
            quic: Some(link),
            send: Box::new(send),
            recv: FramedRecv::new(Box::new(recv), MAX_SIGNALING_LEN),
            pending: VecDeque::new(),
        })
    }

    /// Signaling over an established byte stream (TLS over TCP).
    pub fn from_stream(send: SignalSend, recv: SignalRecv) -> Self {
        Self {
            quic: None,
            send,
            recv: FramedRecv::new(recv, MAX_SIGNALING_LEN),
            pending: VecDeque::new(),
        }
    }

    /// Whether signaling runs over TLS on TCP (UDP did not get through, or TCP was asked for).
    pub fn over_tcp(&self) -> bool {
        self.quic.is_none()
    }

    /// Sends one message; a relay that grants no flow-control credit times out.
    pub async fn send(&mut self, m: &ToRelay) -> Result<(), SignalError> {
        tokio::time::timeout(SIGNAL_TIMEOUT, send_frame(&mut self.send, &m.encode()))
            .await
            .map_err(|_| SignalError::Timeout)??;
        Ok(())
    }

    /// The next message; waits as long as it takes (wrap it in a timeout where that matters).
    /// Cancel-safe.
    pub async fn next(&mut self) -> Result<FromRelay, SignalError> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(m);
        }
        self.read().await
    }

    /// The next message from the stream itself, past the ones kept aside. Cancel-safe.
    async fn read(&mut self) -> Result<FromRelay, SignalError> {
        let frame = self.recv.next().await?.ok_or(SignalError::Closed)?;
        Ok(FromRelay::decode(&frame).map_err(TransportError::from)?)
    }

    /// The next message within [`SIGNAL_TIMEOUT`].
    pub async fn next_timely(&mut self) -> Result<FromRelay, SignalError> {
        tokio::time::timeout(SIGNAL_TIMEOUT, self.next())
            .await
            .map_err(|_| SignalError::Timeout)?
    }

    /// A fresh session endpoint for `pairing`: a new key, admitted by the relay to its path
    /// service for this pairing only (the pairing then confirms it to the peer), bound to use
    /// only the relay at `relay` trusted by `trust`. `accept`: the agent's side, which takes
    /// the connection; `stream_window` overrides the receive window (test viewers).
    pub async fn session_endpoint(
        &mut self,
        pairing: u64,
        relay: &str,
        trust: &crate::config::RelayTrust,
        accept: bool,
        stream_window: Option<u32>,
    ) -> Result<(crate::paths::SessionEndpoint, crate::paths::RelayPaths), SessionEndpointError>
    {
        let key = crate::paths::session_key(&mut rand_core::OsRng);
        let qad_port = self
            .admit_endpoint(pairing, *key.public().as_bytes())
            .await?;
        let paths = crate::paths::RelayPaths::new(relay, qad_port, trust.clone())?;
        let endpoint =
            crate::paths::SessionEndpoint::bind(key, &paths, accept, stream_window).await?;
        Ok((endpoint, paths))
    }

    /// Names this side's endpoint id for `pairing` and waits until the relay admitted it to
    /// its path service; returns the relay's address discovery port (0: none). Messages for
    /// the pairing that arrive meanwhile are kept for [`Self::next`].
    pub async fn admit_endpoint(&mut self, pairing: u64, id: [u8; 32]) -> Result<u16, SignalError> {
        if let Err(e) = self.send(&ToRelay::AdmitEndpoint { pairing, id }).await {
            // Refused meanwhile: the pairing's driver reads the refusal next.
            let r = self.refusal_after(e).await?;
            self.pending.push_back(FromRelay::Refused(r));
            return Ok(0);
        }
        let mut kept = Vec::new();
        let answer = loop {
            let m = tokio::time::timeout(SIGNAL_TIMEOUT, self.read())
                .await
                .map_err(|_| SignalError::Timeout)??;
            match m {
                FromRelay::EndpointAdmitted {
                    pairing: p,
                    qad_port,
                } if p == pairing => break Ok(qad_port),
                // The pairing's driver reads the refusal next and ends the pairing.
                r @ FromRelay::Refused(_) => {
                    kept.push(r);
                    break Ok(0);
                }
                other if kept.len() < MAX_PENDING => kept.push(other),
                _ => {
                    break Err(SignalError::Unexpected(
                        "too many messages before the admission",
                    ))
                }
            }
        };
        self.pending.extend(kept);
        answer
    }

    /// Hands the relay this side's proof for `pairing` and waits until the relay has seen the
    /// other side's equal proof and started the session; returns the relay's refusal otherwise.
    pub async fn confirm_pairing(
        &mut self,
        pairing: u64,
        proof: PairingProof,
    ) -> Result<Result<(), Refusal>, SignalError> {
        let proof = Some(proof);
        self.send(&ToRelay::PairingOutcome { pairing, proof })
            .await?;
        loop {
            match self.next_timely().await? {
                FromRelay::PairingSucceeded => return Ok(Ok(())),
                FromRelay::Refused(r) => return Ok(Err(r)),
                FromRelay::ViewerLeft { pairing: p } if p == pairing => {
                    return Ok(Err(Refusal::PeerLeft))
                }
                // Left over from an earlier pairing.
                FromRelay::ViewerLeft { .. } | FromRelay::Pairing { .. } => {}
                _ => return Err(SignalError::Unexpected("not a pairing result")),
            }
        }
    }

    /// A refusal kept aside while waiting for another answer, if any.
    fn kept_refusal(&mut self) -> Option<Refusal> {
        let at = self
            .pending
            .iter()
            .position(|m| matches!(m, FromRelay::Refused(_)))?;
        match self.pending.remove(at) {
            Some(FromRelay::Refused(r)) => Some(r),
            _ => None,
        }
    }

    /// After a failed write: the refusal the relay sent before it stopped reading, if it sent
    /// one within a moment, else the write's error.
    async fn refusal_after(&mut self, error: SignalError) -> Result<Refusal, SignalError> {
        if let Some(r) = self.kept_refusal() {
            return Ok(r);
        }
        match tokio::time::timeout(REFUSAL_WAIT, self.read()).await {
            Ok(Ok(FromRelay::Refused(r))) => Ok(r),
            _ => Err(error),
        }
    }

    /// Ends the signaling stream, telling the relay at once, and closes the connection once
    /// the relay has ended its side too (it does so after reading everything sent), or after
    /// a second: closing a QUIC connection at once would drop reports still in flight.
    pub async fn close(&mut self, reason: &[u8]) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.send.shutdown()).await;
        if let Some(link) = &self.quic {
            let recv = &mut self.recv;
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Ok(Some(_)) = recv.next().await {}
            })
            .await;
            link.close(reason).await;
        }
    }
}

/// How a pairing ended for this side, when the connection to the relay itself still works.
#[derive(Debug, PartialEq, Eq)]
pub enum PairingEnd {
    /// The peer proved the code; accept or dial only this endpoint, and hand the relay the
    /// proof (see [`RelayClient::confirm_pairing`]).
    Verified(PeerEndpoint, PairingProof),
    /// The peer's confirmation did not match: wrong code, or names told differently.
    WrongCode,
    /// The relay says the other side left, or the peer went quiet.
    PeerLeft,
    /// The relay refused (to the viewer: the agent's verdict, or the relay's own).
    Refused(Refusal),
}

/// Drives one pairing (number `pairing`) over the relay until it ends. `own` is this side's
/// endpoint; `first` is the message [`Pairing::start`] returned.
pub async fn drive_pairing(
    relay: &mut RelayClient,
    pairing_id: u64,
    mut pairing: Pairing,
    first: Vec<u8>,
    own: &PeerEndpoint,
) -> Result<PairingEnd, SignalError> {
    // The relay may have refused this pairing already (the agent put the try off, say) and
    // stopped reading: its refusal, not the failed write, is what happened.
    if let Some(r) = relay.kept_refusal() {
        return Ok(PairingEnd::Refused(r));
    }
    let sent = relay
        .send(&ToRelay::Pairing {
            pairing: pairing_id,
            msg: first,
        })
        .await;
    if let Err(e) = sent {
        return match relay.refusal_after(e).await {
            Ok(r) => Ok(PairingEnd::Refused(r)),
            Err(e) => Err(e),
        };
    }
    loop {
        let msg = match tokio::time::timeout(SIGNAL_TIMEOUT, relay.next()).await {
            Err(_) => return Ok(PairingEnd::PeerLeft),
            Ok(m) => m?,
        };
        match msg {
            FromRelay::Pairing { pairing: p, msg } if p == pairing_id => {
                match pairing.handle(&msg, own) {
                    Ok(PairingStep::Send(reply)) => {
                        relay
                            .send(&ToRelay::Pairing {
                                pairing: pairing_id,
                                msg: reply,
                            })
                            .await?
                    }
                    Ok(PairingStep::Wait) => {}
                    Ok(PairingStep::Verified { peer, reply, proof }) => {
                        if let Some(reply) = reply {
                            relay
                                .send(&ToRelay::Pairing {
                                    pairing: pairing_id,
                                    msg: reply,
                                })
                                .await?;
                        }
                        return Ok(PairingEnd::Verified(peer, proof));
                    }
                    Err(PairingError::WrongCode) => return Ok(PairingEnd::WrongCode),
                    // A malformed or misplaced message is a failed try too: it counts.
                    Err(e) => {
                        tracing::warn!(error = %e, "bad pairing message");
                        return Ok(PairingEnd::WrongCode);
                    }
                }
            }
            // Left over from an earlier pairing: not ours to answer.
            FromRelay::Pairing { .. } => {}
            FromRelay::ViewerLeft { pairing: p } if p == pairing_id => {
                return Ok(PairingEnd::PeerLeft)
            }
            FromRelay::ViewerLeft { .. } => {}
            FromRelay::Refused(Refusal::PeerLeft) => return Ok(PairingEnd::PeerLeft),
            FromRelay::Refused(r) => return Ok(PairingEnd::Refused(r)),
            _ => return Err(SignalError::Unexpected("not a pairing message")),
        }
    }
}
