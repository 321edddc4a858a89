//! One screen update on the wire. Everything that repeats from update to update — where the
//! rectangles are, their colours, their pixels — travels inside the session's two compressed
//! streams (see [`super::pixel_stream`]), so a keystroke costs a handful of bytes; only what
//! the decoder needs before it can decompress stays outside:
//!
//! ```text
//! flags u8 (bit 0 reset, 1 cursor position, 2 cursor shape, 3 copies, 4 acknowledge me)
//! seq varint
//! [reset]    width u16 · height u16
//! [position] x i16 · y i16
//! [shape]    w u16 · h u16 · hot_x u16 · hot_y u16 · rgba blob
//! [copies]   count u8, each: src_x src_y dst_x dst_y w h (u16)   — applied first, in order
//! rect count varint
//! shapes: length once decompressed varint · compressed length varint · the compressed piece
//! photo:  length once decompressed varint · the rest: the compressed piece
//! ```
//!
//! The shapes piece holds each rectangle's header, and the pixels of solid and palette
//! rectangles; the photo piece the pixels of the others, in the same order (see
//! [`super::rect_codec`]). A reset update starts new streams and a black screen; every other
//! update continues them, so updates must be applied in order, none skipped.

use super::rect_codec::MAX_RECT_HEADER;
use super::{CursorShape, CursorUpdate, Rect, MAX_CURSOR_EDGE, MAX_SCREEN_EDGE};
use super::{MAX_SCREEN_PIXELS, TILE};
use crate::wire::{DecodeError, Reader, Writer};

/// Most copy operations one update carries.
pub const MAX_COPIES: usize = 16;

const FLAG_RESET: u8 = 1;
const FLAG_POSITION: u8 = 2;
const FLAG_SHAPE: u8 = 4;
const FLAG_COPIES: u8 = 8;
/// The viewer acknowledges this update (see [`super::pacing`]); the agent sets it after encoding.
const FLAG_ACK: u8 = 16;

/// Marks an encoded update as one the viewer must acknowledge (the pacing decides after
/// encoding, when the update's size is known).
pub(crate) fn request_ack(encoded: &mut [u8]) {
    if let Some(flags) = encoded.first_mut() {
        *flags |= FLAG_ACK;
    }
}

/// Whether an encoded update asks for an acknowledgement.
#[cfg(test)]
pub(crate) fn asks_ack(encoded: &[u8]) -> bool {
    encoded.first().is_some_and(|f| f & FLAG_ACK != 0)
}

/// A region the viewer copies from another place of its own screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyRect {
    pub src_x: u16,
    pub src_y: u16,
    pub dst: Rect,
}

/// This update's piece of one of the session's compressed streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamPiece {
    /// Bytes once decompressed.
    pub len: usize,
    /// The compressed bytes.
    pub chunk: Vec<u8>,
}

/// A screen update as it travels; the rectangles are still inside the compressed streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenUpdate {
    /// Sequence number, acknowledged by the viewer when [`Self::ack_requested`].
    pub seq: u64,
    /// Whether the viewer acknowledges this update.
    pub ack_requested: bool,
    /// Set on a reset: the new screen size; the stream starts again and the screen is black.
    pub reset: Option<(u16, u16)>,
    pub cursor: CursorUpdate,
    pub copies: Vec<CopyRect>,
    pub rect_count: usize,
    /// Rectangle headers, solid and palette pixels.
    pub shapes: StreamPiece,
    /// Lossless and lossy pixels.
    pub photo: StreamPiece,
}

/// Checks a screen size against the decoder's limits.
pub fn check_screen(width: u16, height: u16) -> Result<(), DecodeError> {
    if width == 0 || height == 0 || width > MAX_SCREEN_EDGE || height > MAX_SCREEN_EDGE {
        return Err(DecodeError::Invalid {
            what: "screen size",
            reason: "edge out of range",
        });
    }
    if width as usize * height as usize > MAX_SCREEN_PIXELS {
        return Err(DecodeError::Invalid {
            what: "screen size",
            reason: "more than 8K pixels",
        });
    }
    Ok(())
}

/// Most rectangles an update for a screen of this size may carry: one per tile.
pub fn max_rects(width: usize, height: usize) -> usize {
    width.div_ceil(TILE) * height.div_ceil(TILE)
}

/// Most bytes the decompressed pieces of one update may hold together: every tile's header
/// and every pixel once, losslessly. Bounds what a decoder unpacks.
pub fn max_stream_len(width: usize, height: usize) -> usize {
    max_rects(width, height) * MAX_RECT_HEADER + width * height * 3
}

fn write_varint(w: &mut Writer, mut v: u64) {
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            w.u8(byte);
            return;
        }
        w.u8(byte | 0x80);
    }
}

fn read_varint(r: &mut Reader<'_>, what: &'static str) -> Result<u64, DecodeError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = r.u8()?;
        v |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DecodeError::Invalid {
        what,
        reason: "varint longer than 64 bits",
    })
}

/// Reads a varint that must not exceed `max`.
fn read_bounded(r: &mut Reader<'_>, what: &'static str, max: usize) -> Result<usize, DecodeError> {
    let len = read_varint(r, what)?;
    if len > max as u64 {
        return Err(DecodeError::TooLarge {
            what,
            len: usize::try_from(len).unwrap_or(usize::MAX),
            max,
        });
    }
    Ok(len as usize)
}

/// Reads a rectangle and checks it lies inside the screen.
pub fn read_rect(r: &mut Reader<'_>, width: usize, height: usize) -> Result<Rect, DecodeError> {
    let rect = Rect {
        x: r.u16()?,
        y: r.u16()?,
        w: r.u16()?,
        h: r.u16()?,
    };
    if !rect.inside(width, height) {
        return Err(DecodeError::Invalid {
            what: "rectangle",
            reason: "empty or outside the screen",
        });
    }
    Ok(rect)
}

impl ScreenUpdate {
    /// Encodes the update.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let mut flags = 0;
        for (set, flag) in [
            (self.reset.is_some(), FLAG_RESET),
            (self.cursor.position.is_some(), FLAG_POSITION),
            (self.cursor.shape.is_some(), FLAG_SHAPE),
            (!self.copies.is_empty(), FLAG_COPIES),
            (self.ack_requested, FLAG_ACK),
        ] {
            if set {
                flags |= flag;
            }
        }
        w.u8(flags);
        write_varint(&mut w, self.seq);
        if let Some((width, height)) = self.reset {
            w.u16(width).u16(height);
        }
        if let Some((x, y)) = self.cursor.position {
            w.i16(x).i16(y);
        }
        if let Some(s) = &self.cursor.shape {
            w.u16(s.width)
                .u16(s.height)
                .u16(s.hot_x)
                .u16(s.hot_y)
                .blob(&s.rgba);
        }
        if !self.copies.is_empty() {
            w.u8(self.copies.len() as u8);
            for c in &self.copies {
                w.u16(c.src_x)
                    .u16(c.src_y)
                    .u16(c.dst.x)
                    .u16(c.dst.y)
                    .u16(c.dst.w)
                    .u16(c.dst.h);
            }
        }
        write_varint(&mut w, self.rect_count as u64);
        write_varint(&mut w, self.shapes.len as u64);
        write_varint(&mut w, self.shapes.chunk.len() as u64);
        w.bytes(&self.shapes.chunk);
        write_varint(&mut w, self.photo.len as u64);
        w.bytes(&self.photo.chunk);
        w.finish()
    }

    /// Decodes an update for a screen of `current` size (`None` before the first reset); every
    /// size, count and position is checked before anything is allocated.
    pub fn decode(buf: &[u8], current: Option<(u16, u16)>) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let flags = r.u8()?;
        if flags & !(FLAG_RESET | FLAG_POSITION | FLAG_SHAPE | FLAG_COPIES | FLAG_ACK) != 0 {
            return Err(DecodeError::Invalid {
                what: "update flags",
                reason: "unknown flag",
            });
        }
        let seq = read_varint(&mut r, "sequence number")?;
        let reset = if flags & FLAG_RESET != 0 {
            let (width, height) = (r.u16()?, r.u16()?);
            check_screen(width, height)?;
            Some((width, height))
        } else {
            None
        };
        let Some((width, height)) = reset.or(current) else {
            return Err(DecodeError::Invalid {
                what: "screen update",
                reason: "continues a stream that never started",
            });
        };
        let (w, h) = (width as usize, height as usize);
        let position = if flags & FLAG_POSITION != 0 {
            Some((r.i16()?, r.i16()?))
        } else {
            None
        };
        let shape = if flags & FLAG_SHAPE != 0 {
            Some(read_cursor(&mut r)?)
        } else {
            None
        };
        let mut copies = Vec::new();
        if flags & FLAG_COPIES != 0 {
            let count = r.u8()? as usize;
            if count == 0 || count > MAX_COPIES {
                return Err(DecodeError::Invalid {
                    what: "copy count",
                    reason: "not 1 to 16",
                });
            }
            for _ in 0..count {
                let (src_x, src_y) = (r.u16()?, r.u16()?);
                let dst = read_rect(&mut r, w, h)?;
                let src = Rect {
                    x: src_x,
                    y: src_y,
                    ..dst
                };
                if !src.inside(w, h) {
                    return Err(DecodeError::Invalid {
                        what: "copy",
                        reason: "source outside the screen",
                    });
                }
                copies.push(CopyRect { src_x, src_y, dst });
            }
        }
        let rect_count = read_bounded(&mut r, "rectangle count", max_rects(w, h))?;
        let max = max_stream_len(w, h);
        let shapes_len = read_bounded(&mut r, "shapes stream", max)?;
        let left = r.remaining();
        let chunk_len = read_bounded(&mut r, "shapes piece", left)?;
        let shapes = StreamPiece {
            len: shapes_len,
            chunk: r.bytes(chunk_len)?.to_vec(),
        };
        let photo_len = read_bounded(&mut r, "photo stream", max - shapes_len)?;
        let photo = StreamPiece {
            len: photo_len,
            chunk: r.bytes(r.remaining())?.to_vec(),
        };
        Ok(Self {
            seq,
            ack_requested: flags & FLAG_ACK != 0,
            reset,
            cursor: CursorUpdate { position, shape },
            copies,
            rect_count,
            shapes,
            photo,
        })
    }
}

fn read_cursor(r: &mut Reader<'_>) -> Result<CursorShape, DecodeError> {
    let (cw, ch, hx, hy) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    if cw == 0 || ch == 0 || cw > MAX_CURSOR_EDGE || ch > MAX_CURSOR_EDGE || hx >= cw || hy >= ch {
        return Err(DecodeError::Invalid {
            what: "cursor",
            reason: "size or hotspot out of range",
        });
    }
    let rgba = r.blob("cursor image", cw as usize * ch as usize * 4)?;
    if rgba.len() != cw as usize * ch as usize * 4 {
        return Err(DecodeError::Invalid {
            what: "cursor",
            reason: "image size does not match",
        });
    }
    Ok(CursorShape {
        width: cw,
        height: ch,
        hot_x: hx,
        hot_y: hy,
        rgba: rgba.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_roundtrip_and_overlong_ones_are_refused() {
        for v in [0u64, 1, 127, 128, 300, 1 << 40, u64::MAX] {
            let mut w = Writer::new();
            write_varint(&mut w, v);
            let bytes = w.finish();
            assert_eq!(read_varint(&mut Reader::new(&bytes), "v").unwrap(), v);
        }
        assert!(read_varint(&mut Reader::new(&[0xFF; 11]), "v").is_err());
    }
}
