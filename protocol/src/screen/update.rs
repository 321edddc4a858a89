//! One screen update on the wire:
//!
//! ```text
//! seq u64 · width u16 · height u16 · flags u8 (bit 0: reset)
//! cursor position (tag, x i16, y i16) · cursor shape (tag, w, h, hot_x, hot_y, rgba blob)
//! copy count u8, each: src_x src_y dst_x dst_y w h (u16)      — applied first, in order
//! rect count u32, each: x y w h (u16) · kind u8 (0 lossless, 1 solid + u32, 2 palette + n u8 + n×RGB)
//! stream chunk (blob): the next piece of the session's pixel stream
//! ```
//!
//! A reset update starts a new pixel stream and a black screen; every other update continues
//! the stream, so updates must be applied in order, none skipped.

use super::{CursorShape, CursorUpdate, Rect, MAX_CURSOR_EDGE, MAX_SCREEN_EDGE};
use super::{MAX_SCREEN_PIXELS, TILE};
use crate::wire::{DecodeError, Reader, Writer};

/// Most copy operations one update carries.
pub const MAX_COPIES: usize = 16;
/// Most colours a palette rectangle has.
pub const MAX_PALETTE: usize = 16;
/// The rectangles of one update cover at most this many screens' worth of pixels (an encoder
/// sends at most one per tile): the bound on what a decoder unpacks.
const MAX_AREA_SCREENS: usize = 1;

const FLAG_RESET: u8 = 1;

/// A region the viewer copies from another place of its own screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyRect {
    pub src_x: u16,
    pub src_y: u16,
    pub dst: Rect,
}

/// How a rectangle's pixels travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RectPixels {
    /// Every pixel has this colour (0x00RRGGBB).
    Solid(u32),
    /// Up to 16 colours (0x00RRGGBB); the indices, packed, are in the pixel stream.
    Palette(Vec<u32>),
    /// The pixels, predicted and as residuals, are in the pixel stream.
    Lossless,
}

/// One rectangle of an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRect {
    pub rect: Rect,
    pub pixels: RectPixels,
}

/// A screen update as it travels; the pixel stream is still compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenUpdate {
    /// Sequence number, acknowledged by the viewer.
    pub seq: u64,
    pub width: u16,
    pub height: u16,
    /// Starts a new pixel stream and a black screen.
    pub reset: bool,
    pub cursor: CursorUpdate,
    pub copies: Vec<CopyRect>,
    pub rects: Vec<UpdateRect>,
    /// This update's piece of the compressed pixel stream.
    pub stream_chunk: Vec<u8>,
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

fn read_rect(r: &mut Reader<'_>, width: usize, height: usize) -> Result<Rect, DecodeError> {
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

fn read_colour(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    let [a, b, c] = r.array::<3>()?;
    Ok(u32::from_be_bytes([0, a, b, c]))
}

impl ScreenUpdate {
    /// Bytes of the decompressed pixel stream this update's rectangles take.
    pub fn stream_len(&self) -> usize {
        self.rects
            .iter()
            .map(|r| super::rect_codec::stream_len(r.rect, &r.pixels))
            .sum()
    }

    /// Encodes the update.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.seq)
            .u16(self.width)
            .u16(self.height)
            .u8(if self.reset { FLAG_RESET } else { 0 });
        match self.cursor.position {
            Some((x, y)) => w.u8(1).i16(x).i16(y),
            None => w.u8(0),
        };
        match &self.cursor.shape {
            Some(s) => w
                .u8(1)
                .u16(s.width)
                .u16(s.height)
                .u16(s.hot_x)
                .u16(s.hot_y)
                .blob(&s.rgba),
            None => w.u8(0),
        };
        w.u8(self.copies.len() as u8);
        for c in &self.copies {
            w.u16(c.src_x)
                .u16(c.src_y)
                .u16(c.dst.x)
                .u16(c.dst.y)
                .u16(c.dst.w)
                .u16(c.dst.h);
        }
        w.u32(self.rects.len() as u32);
        for r in &self.rects {
            w.u16(r.rect.x).u16(r.rect.y).u16(r.rect.w).u16(r.rect.h);
            match &r.pixels {
                RectPixels::Lossless => w.u8(0),
                RectPixels::Solid(c) => w.u8(1).bytes(&c.to_be_bytes()[1..]),
                RectPixels::Palette(colours) => {
                    w.u8(2).u8(colours.len() as u8);
                    for c in colours {
                        w.bytes(&c.to_be_bytes()[1..]);
                    }
                    &mut w
                }
            };
        }
        w.blob(&self.stream_chunk);
        w.finish()
    }

    /// Decodes an update; every size, count and position is checked against the announced
    /// screen before anything is allocated.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let seq = r.u64()?;
        let (width, height) = (r.u16()?, r.u16()?);
        check_screen(width, height)?;
        let (w, h) = (width as usize, height as usize);
        let flags = r.u8()?;
        if flags & !FLAG_RESET != 0 {
            return Err(DecodeError::Invalid {
                what: "update flags",
                reason: "unknown flag",
            });
        }
        let position = match r.u8()? {
            0 => None,
            1 => Some((r.i16()?, r.i16()?)),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "cursor position",
                    tag,
                })
            }
        };
        let shape = match r.u8()? {
            0 => None,
            1 => Some(read_cursor(&mut r)?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "cursor shape",
                    tag,
                })
            }
        };
        let copy_count = r.u8()? as usize;
        if copy_count > MAX_COPIES {
            return Err(DecodeError::TooLarge {
                what: "copy count",
                len: copy_count,
                max: MAX_COPIES,
            });
        }
        let mut copies = Vec::with_capacity(copy_count);
        for _ in 0..copy_count {
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
        let max_rects = w.div_ceil(TILE) * h.div_ceil(TILE);
        let count = r.u32()? as usize;
        if count > max_rects {
            return Err(DecodeError::TooLarge {
                what: "rectangle count",
                len: count,
                max: max_rects,
            });
        }
        // Each rectangle takes at least 9 bytes: refuse counts the message cannot hold.
        if count * 9 > r.remaining() {
            return Err(DecodeError::Truncated {
                needed: count * 9 - r.remaining(),
            });
        }
        let mut rects = Vec::with_capacity(count);
        let mut area = 0usize;
        for _ in 0..count {
            let rect = read_rect(&mut r, w, h)?;
            if rect.w as usize > TILE || rect.h as usize > TILE {
                return Err(DecodeError::Invalid {
                    what: "rectangle",
                    reason: "larger than a tile",
                });
            }
            area += rect.w as usize * rect.h as usize;
            if area > MAX_AREA_SCREENS * w * h {
                return Err(DecodeError::Invalid {
                    what: "rectangles",
                    reason: "cover more than the screen",
                });
            }
            let pixels = match r.u8()? {
                0 => RectPixels::Lossless,
                1 => RectPixels::Solid(read_colour(&mut r)?),
                2 => {
                    let n = r.u8()? as usize;
                    if !(2..=MAX_PALETTE).contains(&n) {
                        return Err(DecodeError::Invalid {
                            what: "palette",
                            reason: "not 2 to 16 colours",
                        });
                    }
                    let colours = (0..n)
                        .map(|_| read_colour(&mut r))
                        .collect::<Result<Vec<_>, _>>()?;
                    RectPixels::Palette(colours)
                }
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "rectangle kind",
                        tag,
                    })
                }
            };
            rects.push(UpdateRect { rect, pixels });
        }
        let stream_chunk = r.blob("pixel stream", buf.len())?.to_vec();
        r.finish()?;
        Ok(Self {
            seq,
            width,
            height,
            reset: flags & FLAG_RESET != 0,
            cursor: CursorUpdate { position, shape },
            copies,
            rects,
            stream_chunk,
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
