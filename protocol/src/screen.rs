//! The screen codec: the screen is cut into 64×64 tiles; an update carries only the tiles that
//! differ from what the viewer already has, single-colour tiles as their colour and the rest as
//! one zstd stream of 24-bit pixels, delta-coded along each row (lossless, so text stays sharp). A static screen yields no
//! update at all. The cursor travels beside the pixels, so the viewer draws it on top.

use crate::wire::{DecodeError, Reader, Writer};

/// Edge length of a tile in pixels.
pub const TILE: usize = 64;
/// Largest screen edge accepted (8K); bounds every allocation a decoder makes.
pub const MAX_SCREEN_EDGE: u16 = 8192;
/// Largest screen area accepted: 7680×4320.
pub const MAX_SCREEN_PIXELS: usize = 7680 * 4320;
/// Largest cursor edge.
pub const MAX_CURSOR_EDGE: u16 = 256;
/// zstd level: level 1 already removes most of a desktop's redundancy at ~500 MB/s.
const ZSTD_LEVEL: i32 = 1;

/// A captured screen: 32-bit BGRX pixels, `stride` bytes per row, as scrap and GDI deliver them.
pub struct FrameView<'a> {
    pub width: usize,
    pub height: usize,
    pub stride: usize,
    pub bgrx: &'a [u8],
}

/// The cursor's picture: straight RGBA, with its hotspot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorShape {
    pub width: u16,
    pub height: u16,
    pub hot_x: u16,
    pub hot_y: u16,
    pub rgba: Vec<u8>,
}

/// Where the cursor's hotspot is, and what it looks like (shape only when it changed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CursorUpdate {
    pub position: Option<(i16, i16)>,
    pub shape: Option<CursorShape>,
}

/// How a tile's pixels travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TilePixels {
    /// Every pixel has this colour (0x00RRGGBB).
    Solid(u32),
    /// The tile's pixels are the next `w*h*3` bytes (RGB) of the update's packed stream.
    Packed,
}

/// One tile of an update, at a position on the tile grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tile {
    pub x: u16,
    pub y: u16,
    pub pixels: TilePixels,
}

/// A decoded screen update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenUpdate {
    /// Sequence number, acknowledged by the viewer.
    pub seq: u64,
    pub width: u16,
    pub height: u16,
    pub cursor: CursorUpdate,
    pub tiles: Vec<Tile>,
    /// RGB bytes of all `Packed` tiles, in tile order, rows top to bottom; each pixel is stored
    /// as its difference to the pixel on its left (the first of a row against black), which
    /// turns gradients and photos into small numbers zstd compresses far better.
    pub packed: Vec<u8>,
}

fn tile_rect(width: usize, height: usize, x: usize, y: usize) -> (usize, usize) {
    ((width - x).min(TILE), (height - y).min(TILE))
}

fn check_screen(width: u16, height: u16) -> Result<(), DecodeError> {
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

/// Produces updates against the last frame the viewer was sent.
#[derive(Default)]
pub struct TileEncoder {
    width: usize,
    height: usize,
    /// The last frame sent, packed BGRX with stride `width*4`.
    sent: Vec<u8>,
    cursor_pos: Option<(i16, i16)>,
    cursor_shape: Option<CursorShape>,
    seq: u64,
}

impl TileEncoder {
    /// A new encoder; its first update is the whole screen.
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes what changed since the last update; `None` when nothing did.
    pub fn encode(
        &mut self,
        frame: &FrameView<'_>,
        cursor_pos: Option<(i16, i16)>,
        cursor_shape: Option<&CursorShape>,
    ) -> Option<Vec<u8>> {
        let (w, h) = (frame.width, frame.height);
        assert!(
            frame.stride >= w * 4 && frame.bgrx.len() >= frame.stride * (h.max(1) - 1) + w * 4,
            "frame buffer smaller than its size"
        );
        let resized = w != self.width || h != self.height;
        if resized {
            self.width = w;
            self.height = h;
            self.sent = vec![0; w * h * 4];
        }
        let mut tiles = Vec::new();
        let mut raw = Vec::new();
        for ty in (0..h).step_by(TILE) {
            for tx in (0..w).step_by(TILE) {
                let (tw, th) = tile_rect(w, h, tx, ty);
                let changed = resized
                    || (0..th).any(|r| {
                        let src = &frame.bgrx[(ty + r) * frame.stride + tx * 4..][..tw * 4];
                        let old = &self.sent[((ty + r) * w + tx) * 4..][..tw * 4];
                        src != old
                    });
                if !changed {
                    continue;
                }
                let first = &frame.bgrx[ty * frame.stride + tx * 4..][..4];
                let mut solid = true;
                for r in 0..th {
                    let src = &frame.bgrx[(ty + r) * frame.stride + tx * 4..][..tw * 4];
                    self.sent[((ty + r) * w + tx) * 4..][..tw * 4].copy_from_slice(src);
                    solid = solid && src.chunks_exact(4).all(|p| p[..3] == first[..3]);
                }
                let pixels = if solid {
                    TilePixels::Solid(u32::from_be_bytes([0, first[2], first[1], first[0]]))
                } else {
                    for r in 0..th {
                        let src = &frame.bgrx[(ty + r) * frame.stride + tx * 4..][..tw * 4];
                        let mut prev = [0u8; 3];
                        for p in src.chunks_exact(4) {
                            let px = [p[2], p[1], p[0]];
                            raw.extend_from_slice(&[
                                px[0].wrapping_sub(prev[0]),
                                px[1].wrapping_sub(prev[1]),
                                px[2].wrapping_sub(prev[2]),
                            ]);
                            prev = px;
                        }
                    }
                    TilePixels::Packed
                };
                tiles.push(Tile {
                    x: tx as u16,
                    y: ty as u16,
                    pixels,
                });
            }
        }
        let new_shape = cursor_shape.filter(|s| self.cursor_shape.as_ref() != Some(*s));
        let pos_changed = cursor_pos != self.cursor_pos;
        if tiles.is_empty() && new_shape.is_none() && !pos_changed {
            return None;
        }
        self.cursor_pos = cursor_pos;
        if let Some(s) = new_shape {
            self.cursor_shape = Some(s.clone());
        }
        self.seq += 1;
        let update = ScreenUpdate {
            seq: self.seq,
            width: w as u16,
            height: h as u16,
            cursor: CursorUpdate {
                position: cursor_pos,
                shape: new_shape.cloned(),
            },
            tiles,
            packed: raw,
        };
        Some(update.encode())
    }

    /// Sequence number of the last update produced.
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// Forgets what was sent, so the next update is the whole screen again.
    pub fn reset(&mut self) {
        self.width = 0;
        self.height = 0;
    }
}

impl ScreenUpdate {
    /// Encodes the update, compressing the packed pixels.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.seq).u16(self.width).u16(self.height);
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
        w.u32(self.tiles.len() as u32);
        for t in &self.tiles {
            w.u16(t.x).u16(t.y);
            match t.pixels {
                TilePixels::Solid(c) => w.u8(1).u32(c),
                TilePixels::Packed => w.u8(0),
            };
        }
        let z = zstd::bulk::compress(&self.packed, ZSTD_LEVEL)
            .expect("zstd compression of an in-memory buffer");
        w.blob(&z);
        w.finish()
    }

    /// Decodes an update; sizes are checked against the announced screen before anything is
    /// allocated or decompressed.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let seq = r.u64()?;
        let (width, height) = (r.u16()?, r.u16()?);
        check_screen(width, height)?;
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
            1 => {
                let (cw, ch, hx, hy) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
                if cw == 0
                    || ch == 0
                    || cw > MAX_CURSOR_EDGE
                    || ch > MAX_CURSOR_EDGE
                    || hx >= cw
                    || hy >= ch
                {
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
                Some(CursorShape {
                    width: cw,
                    height: ch,
                    hot_x: hx,
                    hot_y: hy,
                    rgba: rgba.to_vec(),
                })
            }
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "cursor shape",
                    tag,
                })
            }
        };
        let (w, h) = (width as usize, height as usize);
        let max_tiles = w.div_ceil(TILE) * h.div_ceil(TILE);
        let count = r.u32()? as usize;
        if count > max_tiles {
            return Err(DecodeError::TooLarge {
                what: "tile count",
                len: count,
                max: max_tiles,
            });
        }
        // Each tile takes at least 5 bytes; refuse counts the message cannot hold before allocating.
        if count * 5 > r.remaining() {
            return Err(DecodeError::Truncated {
                needed: count * 5 - r.remaining(),
            });
        }
        let mut tiles = Vec::with_capacity(count);
        let mut packed_len = 0usize;
        for _ in 0..count {
            let (x, y) = (r.u16()?, r.u16()?);
            if !(x as usize).is_multiple_of(TILE)
                || !(y as usize).is_multiple_of(TILE)
                || x >= width
                || y >= height
            {
                return Err(DecodeError::Invalid {
                    what: "tile",
                    reason: "not on the tile grid of the screen",
                });
            }
            let pixels = match r.u8()? {
                0 => {
                    let (tw, th) = tile_rect(w, h, x as usize, y as usize);
                    packed_len += tw * th * 3;
                    TilePixels::Packed
                }
                1 => {
                    let c = r.u32()?;
                    if c > 0xFF_FFFF {
                        return Err(DecodeError::Invalid {
                            what: "tile colour",
                            reason: "not 24-bit",
                        });
                    }
                    TilePixels::Solid(c)
                }
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "tile kind",
                        tag,
                    })
                }
            };
            tiles.push(Tile { x, y, pixels });
        }
        let z = r.blob("compressed tiles", buf.len())?;
        r.finish()?;
        let packed = zstd::bulk::decompress(z, packed_len).map_err(|_| DecodeError::Invalid {
            what: "compressed tiles",
            reason: "corrupt or larger than announced",
        })?;
        if packed.len() != packed_len {
            return Err(DecodeError::Invalid {
                what: "compressed tiles",
                reason: "size does not match the tiles",
            });
        }
        Ok(Self {
            seq,
            width,
            height,
            cursor: CursorUpdate { position, shape },
            tiles,
            packed,
        })
    }
}

/// The viewer's copy of the remote screen, 0x00RRGGBB per pixel (minifb's format).
#[derive(Default)]
pub struct Framebuffer {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u32>,
    pub cursor_pos: Option<(i16, i16)>,
    pub cursor_shape: Option<CursorShape>,
}

impl Framebuffer {
    /// Applies a decoded update; a new screen size starts from black.
    pub fn apply(&mut self, u: &ScreenUpdate) {
        let (w, h) = (u.width as usize, u.height as usize);
        if w != self.width || h != self.height {
            self.width = w;
            self.height = h;
            self.pixels = vec![0; w * h];
        }
        let mut off = 0;
        for t in &u.tiles {
            let (x, y) = (t.x as usize, t.y as usize);
            let (tw, th) = tile_rect(w, h, x, y);
            for r in 0..th {
                let row = &mut self.pixels[(y + r) * w + x..][..tw];
                match t.pixels {
                    TilePixels::Solid(c) => row.fill(c),
                    TilePixels::Packed => {
                        let mut prev = [0u8; 3];
                        for (px, d) in row
                            .iter_mut()
                            .zip(u.packed[off..off + tw * 3].chunks_exact(3))
                        {
                            prev = [
                                prev[0].wrapping_add(d[0]),
                                prev[1].wrapping_add(d[1]),
                                prev[2].wrapping_add(d[2]),
                            ];
                            *px = u32::from_be_bytes([0, prev[0], prev[1], prev[2]]);
                        }
                        off += tw * 3;
                    }
                }
            }
        }
        self.cursor_pos = u.cursor.position;
        if let Some(s) = &u.cursor.shape {
            self.cursor_shape = Some(s.clone());
        }
    }

    /// The screen with the cursor drawn on top, for display.
    pub fn with_cursor(&self) -> Vec<u32> {
        let mut out = self.pixels.clone();
        let (Some((cx, cy)), Some(s)) = (self.cursor_pos, &self.cursor_shape) else {
            return out;
        };
        for row in 0..s.height as i32 {
            for col in 0..s.width as i32 {
                let (x, y) = (
                    cx as i32 - s.hot_x as i32 + col,
                    cy as i32 - s.hot_y as i32 + row,
                );
                if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height {
                    continue;
                }
                let p = &s.rgba[((row * s.width as i32 + col) * 4) as usize..][..4];
                let a = p[3] as u32;
                if a == 0 {
                    continue;
                }
                let dst = &mut out[y as usize * self.width + x as usize];
                let blend = |fg: u8, bg: u32| (fg as u32 * a + bg * (255 - a)) / 255;
                let (r, g, b) = ((*dst >> 16) & 0xFF, (*dst >> 8) & 0xFF, *dst & 0xFF);
                *dst = (blend(p[0], r) << 16) | (blend(p[1], g) << 8) | blend(p[2], b);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(w: usize, h: usize, f: impl Fn(usize, usize) -> [u8; 3]) -> Vec<u8> {
        let mut v = Vec::with_capacity(w * h * 4);
        for y in 0..h {
            for x in 0..w {
                let [r, g, b] = f(x, y);
                v.extend_from_slice(&[b, g, r, 0xFF]);
            }
        }
        v
    }

    fn view(w: usize, h: usize, d: &[u8]) -> FrameView<'_> {
        FrameView {
            width: w,
            height: h,
            stride: w * 4,
            bgrx: d,
        }
    }

    #[test]
    fn roundtrip_is_pixel_exact_and_static_screen_sends_nothing() {
        let (w, h) = (200, 130);
        let img = frame(w, h, |x, y| {
            [(x * 7) as u8, (y * 3) as u8, ((x ^ y) & 0xFF) as u8]
        });
        let mut enc = TileEncoder::new();
        let mut fb = Framebuffer::default();
        let u = ScreenUpdate::decode(&enc.encode(&view(w, h, &img), None, None).unwrap()).unwrap();
        assert_eq!(u.tiles.len(), 4 * 3);
        fb.apply(&u);
        for y in 0..h {
            for x in 0..w {
                let p = &img[(y * w + x) * 4..];
                assert_eq!(
                    fb.pixels[y * w + x],
                    u32::from_be_bytes([0, p[2], p[1], p[0]])
                );
            }
        }
        assert!(enc.encode(&view(w, h, &img), None, None).is_none());
        // One pixel changes: one tile travels.
        let mut img2 = img.clone();
        img2[(100 * w + 150) * 4] ^= 0xFF;
        let u2 =
            ScreenUpdate::decode(&enc.encode(&view(w, h, &img2), None, None).unwrap()).unwrap();
        assert_eq!(u2.tiles.len(), 1);
        assert_eq!((u2.tiles[0].x, u2.tiles[0].y), (128, 64));
        fb.apply(&u2);
        assert_eq!(
            fb.pixels[100 * w + 150] & 0xFF,
            (img2[(100 * w + 150) * 4]) as u32
        );
    }

    #[test]
    fn solid_tiles_and_stride() {
        let (w, h) = (64, 64);
        let mut padded = vec![0u8; (w * 4 + 16) * h];
        for y in 0..h {
            for x in 0..w {
                padded[y * (w * 4 + 16) + x * 4..][..4].copy_from_slice(&[3, 2, 1, 0]);
            }
        }
        let mut enc = TileEncoder::new();
        let bytes = enc
            .encode(
                &FrameView {
                    width: w,
                    height: h,
                    stride: w * 4 + 16,
                    bgrx: &padded,
                },
                None,
                None,
            )
            .unwrap();
        let u = ScreenUpdate::decode(&bytes).unwrap();
        assert_eq!(u.tiles[0].pixels, TilePixels::Solid(0x010203));
        assert!(bytes.len() < 64);
    }

    #[test]
    fn cursor_moves_alone() {
        let img = frame(64, 64, |_, _| [1, 2, 3]);
        let shape = CursorShape {
            width: 1,
            height: 1,
            hot_x: 0,
            hot_y: 0,
            rgba: vec![255, 0, 0, 255],
        };
        let mut enc = TileEncoder::new();
        enc.encode(&view(64, 64, &img), Some((1, 1)), Some(&shape))
            .unwrap();
        let u = ScreenUpdate::decode(
            &enc.encode(&view(64, 64, &img), Some((2, 2)), Some(&shape))
                .unwrap(),
        )
        .unwrap();
        assert!(u.tiles.is_empty() && u.cursor.shape.is_none());
        assert_eq!(u.cursor.position, Some((2, 2)));
        let mut fb = Framebuffer::default();
        fb.apply(&ScreenUpdate {
            tiles: vec![],
            ..u.clone()
        });
        fb.cursor_shape = Some(shape);
        assert_eq!(fb.with_cursor()[2 * 64 + 2], 0xFF0000);
    }

    #[test]
    fn hostile_updates_are_refused() {
        let img = frame(100, 100, |x, _| [x as u8, 0, 0]);
        let good = TileEncoder::new()
            .encode(&view(100, 100, &img), None, None)
            .unwrap();
        // Screen larger than 8K.
        let mut big = good.clone();
        big[8..12].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(ScreenUpdate::decode(&big).is_err());
        // Tile count beyond the grid.
        let mut many = good.clone();
        many[14..18].copy_from_slice(&1000u32.to_be_bytes());
        assert!(ScreenUpdate::decode(&many).is_err());
        // A zip bomb: payload decompressing to more than the tiles announce.
        let mut u = ScreenUpdate::decode(&good).unwrap();
        u.packed.extend(vec![0; 1 << 20]);
        assert!(ScreenUpdate::decode(&u.encode()).is_err());
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(u) = ScreenUpdate::decode(&bytes) {
                let mut fb = Framebuffer::default();
                fb.apply(&u);
                let _ = fb.with_cursor();
            }
        }

        #[test]
        fn mutated_updates_never_panic(flip in 0usize..2000, val in any::<u8>()) {
            let img = frame(130, 70, |x, y| [(x * y) as u8, x as u8, 9]);
            let mut bytes = TileEncoder::new().encode(&view(130, 70, &img), Some((5, 5)), None).unwrap();
            let i = flip % bytes.len();
            bytes[i] = val;
            if let Ok(u) = ScreenUpdate::decode(&bytes) {
                let mut fb = Framebuffer::default();
                fb.apply(&u);
            }
        }
    }
}
