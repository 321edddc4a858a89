//! The IO that agent, viewer and relay share: QUIC endpoints, certificate identities and
//! pinning, length-prefixed streams, signaling over QUIC or TLS/TCP, and the session's iroh
//! endpoints. One copy, used by all three binaries.

pub mod client_file;
pub mod config;
pub mod framed;
pub mod identity;
pub mod paths;
pub mod pinning;
pub mod plain_udp;
pub mod relay_client;
pub mod relay_options;
pub mod signal_tcp;

pub use quinn;

/// Errors of the transport layer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot reach the relay at {addr}: {reason}. Check the address and port, and that UDP to it is not blocked")]
    Unreachable { addr: String, reason: String },
    #[error("the relay's certificate fingerprint is {got}, but {expected} was expected: this is not your relay, or its key changed. Ask the relay's operators for the fingerprint (`fernhilfe-relay fingerprint`)")]
    FingerprintMismatch { expected: String, got: String },
    #[error("the relay's certificate is not trusted ({0}): check that --relay-ca names the CA that issued it, or pin it with --relay-fingerprint")]
    UntrustedRelay(String),
    #[error("connection failed: {0}")]
    Connection(quinn::ConnectionError),
    /// The peer closed the connection; what it said with it is only logged (see
    /// [`TransportError::closed_by_peer`]).
    #[error("the other side closed the connection (code {code})")]
    ClosedByPeer { code: u64 },
    #[error("could not connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("stream read failed: {0}")]
    Read(quinn::ReadError),
    #[error("stream write failed: {0}")]
    Write(quinn::WriteError),
    #[error("peer sent a malformed message: {0}")]
    Decode(#[from] protocol::wire::DecodeError),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] quinn::rustls::Error),
    #[error("certificate error: {0}")]
    Certificate(String),
    #[error("I/O error: {0}")]
    Io(std::io::Error),
    /// The end-to-end connection failed other than by the peer's close.
    #[error("end-to-end connection failed: {0}")]
    EndToEnd(iroh::endpoint::ConnectionError),
}

/// Most characters of a peer's close reason that reach the log.
const MAX_PEER_WORDS: usize = 80;

impl TransportError {
    /// A peer closed the connection with `code` and `reason`. The reason is the peer's own
    /// text: a hostile relay or peer could make it say anything ("call this number"), so no
    /// window and no error message shows it; the log keeps it, bounded and marked as the
    /// peer's words.
    pub fn closed_by_peer(code: u64, reason: &[u8]) -> Self {
        let words: String = String::from_utf8_lossy(reason)
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_PEER_WORDS)
            .collect();
        tracing::info!(code, peer_words = %words, "the peer closed the connection");
        TransportError::ClosedByPeer { code }
    }
}

impl From<quinn::ConnectionError> for TransportError {
    fn from(e: quinn::ConnectionError) -> Self {
        match e {
            quinn::ConnectionError::ApplicationClosed(c) => {
                Self::closed_by_peer(c.error_code.into_inner(), &c.reason)
            }
            quinn::ConnectionError::ConnectionClosed(c) => {
                Self::closed_by_peer(u64::from(c.error_code), &c.reason)
            }
            other => TransportError::Connection(other),
        }
    }
}

impl From<quinn::ReadError> for TransportError {
    fn from(e: quinn::ReadError) -> Self {
        match e {
            quinn::ReadError::ConnectionLost(c) => c.into(),
            other => TransportError::Read(other),
        }
    }
}

impl From<quinn::WriteError> for TransportError {
    fn from(e: quinn::WriteError) -> Self {
        match e {
            quinn::WriteError::ConnectionLost(c) => c.into(),
            other => TransportError::Write(other),
        }
    }
}

/// The close behind an end-to-end (iroh) stream error, if a peer's close it is.
fn iroh_close(e: &(dyn std::error::Error + 'static)) -> Option<TransportError> {
    use iroh::endpoint::{ConnectionError, ReadError, WriteError};
    let conn = e
        .downcast_ref::<ConnectionError>()
        .or_else(|| match e.downcast_ref::<ReadError>() {
            Some(ReadError::ConnectionLost(c)) => Some(c),
            _ => None,
        })
        .or_else(|| match e.downcast_ref::<WriteError>() {
            Some(WriteError::ConnectionLost(c)) => Some(c),
            _ => None,
        })?;
    match conn {
        ConnectionError::ApplicationClosed(c) => Some(TransportError::closed_by_peer(
            c.error_code.into_inner(),
            &c.reason,
        )),
        ConnectionError::ConnectionClosed(c) => Some(TransportError::closed_by_peer(
            u64::from(c.error_code),
            &c.reason,
        )),
        _ => None,
    }
}

impl From<iroh::endpoint::ConnectionError> for TransportError {
    fn from(e: iroh::endpoint::ConnectionError) -> Self {
        iroh_close(&e).unwrap_or(TransportError::EndToEnd(e))
    }
}

/// An error's message with a peer's close reason left out: where anything along `e`'s
/// chain is a peer's close, what [`TransportError::ClosedByPeer`] says; else `e` itself.
pub fn without_peer_words(e: &(dyn std::error::Error + 'static)) -> String {
    let mut next = Some(e);
    while let Some(err) = next {
        // An I/O error's source() skips the error it wraps: look at that one too.
        let wrapped = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        for candidate in std::iter::once(err).chain(wrapped) {
            if let Some(closed) = iroh_close(candidate) {
                return closed.to_string();
            }
            if let Some(c) = candidate.downcast_ref::<quinn::ConnectionError>() {
                return TransportError::from(c.clone()).to_string();
            }
        }
        next = err.source();
    }
    e.to_string()
}

impl From<std::io::Error> for TransportError {
    fn from(e: std::io::Error) -> Self {
        // Streams report their errors as I/O errors that carry the QUIC error inside.
        if let Some(inner) = e.get_ref() {
            if let Some(r) = inner.downcast_ref::<quinn::ReadError>() {
                return r.clone().into();
            }
            if let Some(w) = inner.downcast_ref::<quinn::WriteError>() {
                return w.clone().into();
            }
            if let Some(closed) = iroh_close(inner) {
                return closed;
            }
        }
        TransportError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iroh::endpoint::{ApplicationClose, ConnectionError, VarInt};

    /// The end-to-end peer closes with words of its own: neither the error nor a message along
    /// its chain says them (before, `open_bi()?` and `accept_uni()` passed them on verbatim).
    #[test]
    fn an_end_to_end_peers_close_reason_never_reaches_a_message() {
        let closed = ConnectionError::ApplicationClosed(ApplicationClose {
            error_code: VarInt::from_u32(7),
            reason: bytes::Bytes::from_static(b"Schulleitung: Code an 0170 1234567"),
        });
        assert!(closed.to_string().contains("0170"), "the test's premise");
        let said = TransportError::from(closed.clone()).to_string();
        assert_eq!(said, "the other side closed the connection (code 7)");
        let wrapped = std::io::Error::other(closed);
        assert!(!without_peer_words(&wrapped).contains("0170"));
        assert!(!TransportError::from(wrapped).to_string().contains("0170"));
    }
}
