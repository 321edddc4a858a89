//! The session-long compression contexts. Both sides keep two zstd streams for the whole
//! session (until a reset): each update's bytes are compressed and flushed as the next piece of
//! its stream, so they can refer to anything sent in the last 8 MiB — the glyph typed a second
//! ago, the toolbar sent with the first frame. VNC's Tight keeps its zlib streams the same way.
//!
//! Two streams, because their bytes want different effort ([`StreamKind`]): text and window
//! chrome are few bytes that repeat in pieces of two or three (a glyph's row, bit-packed, at
//! whatever bit offset the column puts it), which only zstd's strongest strategy finds, while
//! photo residuals are most of the bytes and need speed (zstd 19 runs at a few MB/s, a video's
//! residuals are hundreds of kB a frame). One stream at the fast setting sent a recorded
//! terminal scroll with 39 % more bytes than the two (`protocol/examples/replay_frames.rs`).

use crate::wire::DecodeError;
use zstd::stream::raw::{CParameter, DParameter, Decoder, Encoder, InBuffer, Operation, OutBuffer};

/// Which of an update's two streams a compressor feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Rectangle headers, colours and palette indices: zstd level 19 (it also takes matches of
    /// 3 bytes), with its match tables cut to 64K entries, so it costs the memory of a fast
    /// stream (on the recorded scroll: 0.8 ms more encoding per update on average).
    Shapes,
    /// Residuals of photo-like rectangles: zstd level 1, which removes most of their
    /// redundancy at ~500 MB/s; the session-long window does the rest.
    Photo,
}

/// Log2 of the shapes stream's match table sizes.
const SHAPES_TABLE_LOG: u32 = 16;
/// The encoder's history: 8 MiB, a 1080p screen at 32 bits.
const WINDOW_LOG: u32 = 23;
/// The decoder refuses streams that need more history than this (bounds its memory).
const MAX_WINDOW_LOG: u32 = 23;

/// The agent's end of a pixel stream.
pub struct PixelCompressor {
    zstd: Encoder<'static>,
}

impl PixelCompressor {
    /// A fresh stream of this kind.
    pub fn new(kind: StreamKind) -> Self {
        let level = match kind {
            StreamKind::Shapes => 19,
            StreamKind::Photo => 1,
        };
        let mut zstd = Encoder::new(level).expect("zstd encoder with a valid level");
        zstd.set_parameter(CParameter::WindowLog(WINDOW_LOG))
            .expect("zstd window log in range");
        if kind == StreamKind::Shapes {
            for p in [
                CParameter::HashLog(SHAPES_TABLE_LOG),
                CParameter::ChainLog(SHAPES_TABLE_LOG),
            ] {
                zstd.set_parameter(p).expect("zstd table size in range");
            }
        }
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

/// The viewer's end of a pixel stream (of either kind).
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
        for kind in [StreamKind::Shapes, StreamKind::Photo] {
            let mut c = PixelCompressor::new(kind);
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
            assert!(first.len() > 2000, "noise compressed: {}", first.len());
            assert!(again.len() < 40, "{kind:?}: a repeat costs {}", again.len());
            for piece in [&first, &again] {
                let mut out = vec![0; glyph.len()];
                d.decompress(piece, &mut out).unwrap();
                assert_eq!(out, glyph);
            }
        }
    }

    #[test]
    fn the_shapes_stream_finds_text_the_photo_stream_misses() {
        // Lines of text as a terminal scrolls them in: words of a small vocabulary in a 6-pixel
        // font, each line's 13 rows bit-packed, so a word's bytes depend on its bit offset.
        let words = [
            "the ", "work ", "license ", "program ", "of ", "to ", "you ", "and ",
        ];
        let glyph_row = |c: u8, row: u32| (u32::from(c).wrapping_mul(2_654_435_761) >> row) & 0x3F;
        let mut seed = 7u32;
        let lines: Vec<Vec<u8>> = (0..30)
            .map(|_| {
                let mut text = Vec::new();
                while text.len() < 70 {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    text.extend_from_slice(words[(seed >> 16) as usize % words.len()].as_bytes());
                }
                let mut packed = Vec::new();
                for row in 0..13 {
                    let (mut acc, mut bits) = (0u32, 0);
                    for &c in &text {
                        acc = (acc << 6) | glyph_row(c, row);
                        bits += 6;
                        while bits >= 8 {
                            packed.push((acc >> (bits - 8)) as u8);
                            bits -= 8;
                        }
                    }
                }
                packed
            })
            .collect();
        let size = |kind| {
            let mut c = PixelCompressor::new(kind);
            lines.iter().map(|l| c.compress(l).len()).sum::<usize>()
        };
        let (shapes, photo) = (size(StreamKind::Shapes), size(StreamKind::Photo));
        assert!(shapes * 10 < photo * 8, "shapes {shapes} photo {photo}");
    }

    #[test]
    fn pieces_that_do_not_fill_the_announced_size_are_refused() {
        let mut c = PixelCompressor::new(StreamKind::Photo);
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
