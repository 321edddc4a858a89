//! The viewer's side of the codec: the remote screen as the viewer shows it, and the decoder
//! that applies updates to it in place (no whole-screen copies), with the cursor drawn on top
//! and taken off again by saving what it covers.

use super::motion::apply_copy;
use super::pixel_stream::PixelDecompressor;
use super::rect_codec::{decode_rect, pixel_len, read_rect_header};
use super::update::ScreenUpdate;
use super::{CursorShape, Rect};
use crate::wire::{DecodeError, Reader};

/// The remote screen, 0x00RRGGBB per pixel (minifb's format), `width` pixels per row.
#[derive(Default)]
pub struct Framebuffer {
    pub width: usize,
    pub height: usize,
    /// The screen's rows, then `footer` rows that belong to the front end (a status bar), so
    /// a window can show both from this one buffer.
    pub pixels: Vec<u32>,
    footer: usize,
    pub cursor_pos: Option<(i16, i16)>,
    pub cursor_shape: Option<CursorShape>,
    under: Option<CursorUnder>,
    /// The screen pixels changed since the front end last took them, so a window can draw
    /// only those.
    dirty: DirtyBox,
}

/// Bounding box (x0, y0, x1, y1) of changed pixels, if any.
#[derive(Default, Clone, Copy)]
struct DirtyBox(Option<(usize, usize, usize, usize)>);

impl DirtyBox {
    /// Grows the box over `r`, which lies inside the screen.
    fn add(&mut self, r: Rect) {
        let (x, y, x1, y1) = (r.x as usize, r.y as usize, r.right(), r.bottom());
        self.0 = Some(match self.0 {
            Some((a, b, c, d)) => (a.min(x), b.min(y), c.max(x1), d.max(y1)),
            None => (x, y, x1, y1),
        });
    }
}

/// What the drawn cursor covers: where, and the pixels it hides.
struct CursorUnder {
    x: usize,
    y: usize,
    w: usize,
    pixels: Vec<u32>,
}

/// A plain arrow for agents whose platform does not send the cursor's shape.
fn arrow() -> CursorShape {
    let (w, h) = (11u16, 16u16);
    let mut rgba = vec![0u8; w as usize * h as usize * 4];
    for row in 0..h as usize {
        for col in 0..=row.min(10) {
            let edge = col == 0 || col == row.min(10) || row == 15;
            let v = if edge { 0 } else { 255 };
            rgba[(row * w as usize + col) * 4..][..4].copy_from_slice(&[v, v, v, 255]);
        }
    }
    CursorShape {
        width: w,
        height: h,
        hot_x: 0,
        hot_y: 0,
        rgba,
    }
}

impl Framebuffer {
    /// The screen's pixels without the footer.
    pub fn screen(&self) -> &[u32] {
        &self.pixels[..self.width * self.height]
    }

    /// Reserves `rows` rows under the screen for the front end.
    pub fn set_footer(&mut self, rows: usize) {
        self.footer = rows;
        self.pixels.resize(self.width * (self.height + rows), 0);
    }

    /// The footer's rows.
    pub fn footer_mut(&mut self) -> &mut [u32] {
        let start = self.width * self.height;
        &mut self.pixels[start..]
    }

    /// Rows of screen plus footer: the height of the whole buffer.
    pub fn total_height(&self) -> usize {
        self.height + self.footer
    }

    /// Takes the bounding box of the screen pixels that changed (updates, the cursor drawn or
    /// taken off) since the last call.
    pub fn take_dirty(&mut self) -> Option<Rect> {
        self.dirty.0.take().map(|(x0, y0, x1, y1)| Rect {
            x: x0 as u16,
            y: y0 as u16,
            w: (x1 - x0) as u16,
            h: (y1 - y0) as u16,
        })
    }

    /// Marks `w`×`h` pixels at (`x`, `y`), inside the screen, as changed.
    fn mark(&mut self, x: usize, y: usize, w: usize, h: usize) {
        if w > 0 && h > 0 {
            self.dirty.add(Rect {
                x: x as u16,
                y: y as u16,
                w: w as u16,
                h: h as u16,
            });
        }
    }

    fn resize(&mut self, width: usize, height: usize) {
        self.under = None;
        self.dirty = DirtyBox::default();
        self.width = width;
        self.height = height;
        self.pixels.clear();
        self.pixels.resize(width * (height + self.footer), 0);
        self.mark(0, 0, width, height);
    }

    /// Draws the cursor onto the screen, remembering what it covers.
    pub fn show_cursor(&mut self) {
        if self.under.is_some() {
            return;
        }
        let Some((cx, cy)) = self.cursor_pos else {
            return;
        };
        let fallback;
        let s = match &self.cursor_shape {
            Some(s) => s,
            None => {
                fallback = arrow();
                &fallback
            }
        };
        let left = cx as i32 - s.hot_x as i32;
        let top = cy as i32 - s.hot_y as i32;
        let x0 = left.max(0) as usize;
        let y0 = top.max(0) as usize;
        let x1 = (left + s.width as i32).clamp(0, self.width as i32) as usize;
        let y1 = (top + s.height as i32).clamp(0, self.height as i32) as usize;
        if x1 <= x0 || y1 <= y0 {
            return;
        }
        let mut saved = Vec::with_capacity((x1 - x0) * (y1 - y0));
        for y in y0..y1 {
            let row = &mut self.pixels[y * self.width..][x0..x1];
            saved.extend_from_slice(row);
            for (x, dst) in (x0..x1).zip(row.iter_mut()) {
                let (col, r) = ((x as i32 - left) as usize, (y as i32 - top) as usize);
                let p = &s.rgba[(r * s.width as usize + col) * 4..][..4];
                let a = p[3] as u32;
                let blend = |fg: u8, bg: u32| (fg as u32 * a + bg * (255 - a)) / 255;
                let (br, bg, bb) = ((*dst >> 16) & 0xFF, (*dst >> 8) & 0xFF, *dst & 0xFF);
                *dst = (blend(p[0], br) << 16) | (blend(p[1], bg) << 8) | blend(p[2], bb);
            }
        }
        self.under = Some(CursorUnder {
            x: x0,
            y: y0,
            w: x1 - x0,
            pixels: saved,
        });
        self.mark(x0, y0, x1 - x0, y1 - y0);
    }

    /// Takes the cursor off the screen again.
    pub fn hide_cursor(&mut self) {
        let Some(u) = self.under.take() else {
            return;
        };
        for (r, row) in u.pixels.chunks_exact(u.w).enumerate() {
            self.pixels[(u.y + r) * self.width + u.x..][..u.w].copy_from_slice(row);
        }
        self.mark(u.x, u.y, u.w, u.pixels.len() / u.w);
    }
}

/// What one applied update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub seq: u64,
    /// The agent waits for this update's acknowledgement.
    pub ack_requested: bool,
    pub reset: bool,
    pub copies: usize,
    pub rects: usize,
}

/// Applies the agent's updates, in order, to a framebuffer.
#[derive(Default)]
pub struct ScreenDecoder {
    /// The shapes and the photo stream.
    streams: Option<[PixelDecompressor; 2]>,
    scratch: [Vec<u8>; 2],
}

fn invalid(reason: &'static str) -> DecodeError {
    DecodeError::Invalid {
        what: "screen update",
        reason,
    }
}

impl ScreenDecoder {
    /// A decoder waiting for its first (reset) update.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes an update and applies it. After an error the session must end: the pixel
    /// stream and the picture may be half applied.
    pub fn apply(&mut self, bytes: &[u8], fb: &mut Framebuffer) -> Result<Applied, DecodeError> {
        let current = self
            .streams
            .is_some()
            .then_some((fb.width as u16, fb.height as u16));
        let u = ScreenUpdate::decode(bytes, current)?;
        fb.hide_cursor();
        if let Some((w, h)) = u.reset {
            self.streams = Some([PixelDecompressor::new(), PixelDecompressor::new()]);
            fb.resize(w as usize, h as usize);
        }
        let (w, h) = (fb.width, fb.height);
        let streams = self.streams.as_mut().expect("started above or before");
        for ((piece, stream), scratch) in [&u.shapes, &u.photo]
            .into_iter()
            .zip(streams.iter_mut())
            .zip(self.scratch.iter_mut())
        {
            scratch.clear();
            scratch.resize(piece.len, 0);
            if piece.len > 0 || !piece.chunk.is_empty() {
                if let Err(e) = stream.decompress(&piece.chunk, scratch) {
                    self.streams = None;
                    return Err(e);
                }
            }
        }
        let screen = &mut fb.pixels[..w * h];
        let mut changed = fb.dirty;
        for c in &u.copies {
            apply_copy(screen, w, 1, c);
            changed.add(c.dst);
        }
        let [shapes, photo] = &self.scratch;
        let (mut r, mut p) = (Reader::new(shapes), Reader::new(photo));
        let mut area = 0;
        for _ in 0..u.rect_count {
            let (rect, pixels) = read_rect_header(&mut r, w, h)?;
            area += rect.w as usize * rect.h as usize;
            if area > w * h {
                return Err(invalid("rectangles cover more than the screen"));
            }
            let from = if pixels.in_photo_stream() {
                &mut p
            } else {
                &mut r
            };
            let data = from.bytes(pixel_len(rect, &pixels))?;
            decode_rect(screen, w, rect, &pixels, data);
            changed.add(rect);
        }
        r.finish()?;
        p.finish()?;
        fb.dirty = changed;
        fb.cursor_pos = u.cursor.position;
        if let Some(s) = u.cursor.shape {
            fb.cursor_shape = Some(s);
        }
        Ok(Applied {
            seq: u.seq,
            ack_requested: u.ack_requested,
            reset: u.reset.is_some(),
            copies: u.copies.len(),
            rects: u.rect_count,
        })
    }
}
