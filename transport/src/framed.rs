//! Length-prefixed messages on byte streams (QUIC streams, TLS over TCP): the IO half of
//! [`protocol::wire::FrameDecoder`].

use crate::TransportError;
use protocol::wire::{frame_prefix, FrameDecoder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads whole frames from a stream, refusing any longer than its bound.
pub struct FramedRecv<R> {
    stream: R,
    decoder: FrameDecoder,
    buf: Box<[u8]>,
}

impl<R: AsyncRead + Unpin> FramedRecv<R> {
    /// Wraps `stream`; frames longer than `max_len` end the stream with an error.
    pub fn new(stream: R, max_len: usize) -> Self {
        Self {
            stream,
            decoder: FrameDecoder::new(max_len),
            buf: vec![0; 64 * 1024].into_boxed_slice(),
        }
    }

    /// The next frame, or `None` when the peer finished the stream. Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        loop {
            if let Some(f) = self.decoder.next_frame()? {
                return Ok(Some(f));
            }
            match self.stream.read(&mut self.buf).await? {
                0 => return Ok(None),
                n => self.decoder.push(&self.buf[..n])?,
            }
        }
    }
}

/// Writes one frame; prefix and payload go out separately so a multi-megabyte screen update
/// is not copied just to put four bytes in front of it.
pub async fn send_frame<W: AsyncWrite + Unpin>(
    stream: &mut W,
    payload: &[u8],
) -> Result<(), TransportError> {
    stream.write_all(&frame_prefix(payload.len())).await?;
    stream.write_all(payload).await?;
    Ok(())
}
