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
    Connection(#[from] quinn::ConnectionError),
    #[error("could not connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("stream read failed: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("stream write failed: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("peer sent a malformed message: {0}")]
    Decode(#[from] protocol::wire::DecodeError),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] quinn::rustls::Error),
    #[error("certificate error: {0}")]
    Certificate(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
