//! The session-long compression context. Both sides keep one zstd stream for the whole session
//! (until a reset): each update's pixels are compressed and flushed as the next piece of that
//! stream, so they can refer to anything sent in the last 8 MiB — the glyph typed a second ago,
//! the toolbar sent with the first frame. VNC's Tight keeps its zlib streams the same way.

use crate::wire::DecodeError;
use zstd::stream::raw::{CParameter, DParameter, Decoder, Encoder, InBuffer, Operation, OutBuffer};

/// zstd level: level 1 already removes most of a desktop's redundancy at ~500 MB/s, and the
/// session-long window does the rest.
const LEVEL: i32 = 1;
/// The encoder's history: 8 MiB, a 1080p screen at 32 bits.
const WINDOW_LOG: u32 = 23;
/// The decoder refuses streams that need more history than this (bounds its memory).
const MAX_WINDOW_LOG: u32 = 23;

/// The agent's end of the pixel stream.
pub struct PixelCompressor {
    zstd: Encoder<'static>,
}

impl PixelCompressor {
    /// A fresh stream.
    pub fn new() -> Self {
        let mut zstd = Encoder::new(LEVEL).expect("zstd encoder with a valid level");
        zstd.set_parameter(CParameter::WindowLog(WINDOW_LOG))
            .expect("zstd window log in range");
        Self { zstd }
    }

    /// Compresses `data` as the next piece of the stream, flushed so the viewer can decode
    /// it without waiting for more.
    pub fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()) + 64);
        let mut input = InBuffer::around(data);
        loop {
            let mut output = OutBuffer::around(&mut out);
            self.zstd
                .run(&mut input, &mut output)
                .expect("zstd compression of an in-memory buffer");
            let remaining = if input.pos() == data.len() {
                self.zstd
                    .flush(&mut output)
                    .expect("zstd flush of an in-memory buffer")
            } else {
                1
            };
            if remaining == 0 && input.pos() == data.len() {
                return out;
            }
            out.reserve(out.capacity().max(4096));
        }
    }
}

impl Default for PixelCompressor {
    fn default() -> Self {
        Self::new()
    }
}

/// The viewer's end of the pixel stream.
pub struct PixelDecompressor {
    zstd: Decoder<'static>,
}

fn corrupt(reason: &'static str) -> DecodeError {
    DecodeError::Invalid {
        what: "pixel stream",
        reason,
    }
}

impl PixelDecompressor {
    /// A fresh stream.
    pub fn new() -> Self {
        let mut zstd = Decoder::new().expect("zstd decoder");
        zstd.set_parameter(DParameter::WindowLogMax(MAX_WINDOW_LOG))
            .expect("zstd window log in range");
        Self { zstd }
    }

    /// Decompresses the next piece of the stream into `out`, which it must fill exactly:
    /// a piece that yields less or more than the update's rectangles announce is refused
    /// (and leaves the stream unusable, so the session must end).
    pub fn decompress(&mut self, chunk: &[u8], out: &mut [u8]) -> Result<(), DecodeError> {
        let mut input = InBuffer::around(chunk);
        let mut output = OutBuffer::around(out);
        while input.pos() < chunk.len() {
            let before = (input.pos(), output.pos());
            self.zstd
                .run(&mut input, &mut output)
                .map_err(|_| corrupt("corrupt"))?;
            if (input.pos(), output.pos()) == before {
                return Err(corrupt("larger than announced"));
            }
        }
        if output.pos() != output.capacity() {
            return Err(corrupt("shorter than announced"));
        }
        // Whatever the decoder still holds would be more than announced.
        let mut probe = [0u8; 1];
        let mut probe_out = OutBuffer::around(&mut probe[..]);
        self.zstd
            .run(&mut InBuffer::around(&[]), &mut probe_out)
            .map_err(|_| corrupt("corrupt"))?;
        if probe_out.pos() != 0 {
            return Err(corrupt("larger than announced"));
        }
        Ok(())
    }
}

impl Default for PixelDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_pieces_refer_to_earlier_ones() {
        let mut c = PixelCompressor::new();
        let mut d = PixelDecompressor::new();
        let mut x = 0x2545_f491_u32;
        let glyph: Vec<u8> = (0..3000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let first = c.compress(&glyph);
        let again = c.compress(&glyph);
        assert!(
            first.len() > 2000,
            "noise does not compress: {}",
            first.len()
        );
        assert!(again.len() < 40, "a repeat costs {} bytes", again.len());
        for piece in [&first, &again] {
            let mut out = vec![0; glyph.len()];
            d.decompress(piece, &mut out).unwrap();
            assert_eq!(out, glyph);
        }
    }

    #[test]
    fn pieces_that_do_not_fill_the_announced_size_are_refused() {
        let mut c = PixelCompressor::new();
        let piece = c.compress(&[7; 1000]);
        let mut short = vec![0; 999];
        assert!(PixelDecompressor::new()
            .decompress(&piece, &mut short)
            .is_err());
        let mut long = vec![0; 1001];
        assert!(PixelDecompressor::new()
            .decompress(&piece, &mut long)
            .is_err());
        let mut exact = vec![0; 1000];
        PixelDecompressor::new()
            .decompress(&piece, &mut exact)
            .unwrap();
        assert!(PixelDecompressor::new()
            .decompress(&[0xFF; 32], &mut exact)
            .is_err());
    }
}
