//! The agent's side of the codec: compares a captured frame with what the viewer shows, where
//! the capture says it may have changed, and encodes the difference.

use super::motion::{apply_copy, find_scroll, verify_move, Picture, MIN_COPY_ROWS};
use super::pixel_stream::PixelCompressor;
use super::rect_codec::encode_rect;
use super::rect_codec::RectPixels;
use super::update::{CopyRect, ScreenUpdate, MAX_COPIES};
use super::{CursorShape, CursorUpdate, FrameChanges, FrameView, Rect, TILE};

/// What the encoder did so far, for logs, tests and benchmarks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EncoderStats {
    pub updates: u64,
    /// Copy operations sent (scrolls and moved windows).
    pub copies: u64,
    pub solid_rects: u64,
    pub palette_rects: u64,
    pub lossless_rects: u64,
    /// Encoded bytes of all updates.
    pub bytes: u64,
}

/// Produces updates against the picture the viewer has.
#[derive(Default)]
pub struct ScreenEncoder {
    width: usize,
    height: usize,
    /// The viewer's picture: packed BGRX with stride `width*4`.
    sent: Vec<u8>,
    /// `None` until the first update, and after a reset: the next update starts a new stream.
    stream: Option<PixelCompressor>,
    cursor_pos: Option<(i16, i16)>,
    cursor_shape: Option<CursorShape>,
    seq: u64,
    stats: EncoderStats,
    /// The pixel stream's bytes of the update being built.
    raw: Vec<u8>,
}

/// The pixels of one tile that differ between the frame and the viewer's picture.
fn changed_box(frame: &FrameView<'_>, sent: &[u8], width: usize, tile: Rect) -> Option<Rect> {
    let (x, w) = (tile.x as usize, tile.w as usize);
    let (mut left, mut right, mut top, mut bottom) = (usize::MAX, 0, usize::MAX, 0);
    for y in tile.y as usize..tile.bottom() {
        let new = frame.row(x, y, w);
        let old = &sent[(y * width + x) * 4..][..w * 4];
        if new == old {
            continue;
        }
        let differs = |i: &usize| new[i * 4..i * 4 + 4] != old[i * 4..i * 4 + 4];
        let first = (0..w).find(differs).unwrap_or(0);
        let last = (0..w).rev().find(differs).unwrap_or(w - 1);
        left = left.min(first);
        right = right.max(last + 1);
        top = top.min(y);
        bottom = y + 1;
    }
    (top != usize::MAX).then(|| Rect {
        x: (x + left) as u16,
        y: top as u16,
        w: (right - left) as u16,
        h: (bottom - top) as u16,
    })
}

/// The smallest rectangle holding all of these.
fn bounding(rects: &[Rect]) -> Option<Rect> {
    let x0 = rects.iter().map(|r| r.x).min()?;
    let y0 = rects.iter().map(|r| r.y).min()?;
    let x1 = rects.iter().map(|r| r.right()).max()?;
    let y1 = rects.iter().map(|r| r.bottom()).max()?;
    Some(Rect {
        x: x0,
        y: y0,
        w: (x1 - x0 as usize) as u16,
        h: (y1 - y0 as usize) as u16,
    })
}

impl ScreenEncoder {
    /// A new encoder; its first update is the whole screen.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tiles to look at: those the damage touches, or all.
    fn candidate_tiles(&self, changes: &FrameChanges<'_>, all: bool) -> Vec<Rect> {
        let (cols, rows) = (self.width.div_ceil(TILE), self.height.div_ceil(TILE));
        let mut marked = vec![all || changes.damage.is_none(); cols * rows];
        for d in changes.damage.unwrap_or(&[]) {
            let Some(d) = d.clip(self.width, self.height) else {
                continue;
            };
            for ty in d.y as usize / TILE..=(d.bottom() - 1) / TILE {
                for tx in d.x as usize / TILE..=(d.right() - 1) / TILE {
                    marked[ty * cols + tx] = true;
                }
            }
        }
        let mut tiles = Vec::new();
        for (i, _) in marked.iter().enumerate().filter(|(_, m)| **m) {
            let (x, y) = ((i % cols) * TILE, (i / cols) * TILE);
            tiles.push(Rect {
                x: x as u16,
                y: y as u16,
                w: (self.width - x).min(TILE) as u16,
                h: (self.height - y).min(TILE) as u16,
            });
        }
        tiles
    }

    /// Finds moved regions among the changed ones, applies them to the viewer's picture and
    /// returns them; the changed boxes are then computed again by the caller.
    fn find_copies(
        &mut self,
        frame: &FrameView<'_>,
        changes: &FrameChanges<'_>,
        changed: &[Rect],
    ) -> Vec<CopyRect> {
        let mut copies = Vec::new();
        for hint in changes.moves.iter().take(MAX_COPIES) {
            let (dx, dy) = (
                hint.to_x - hint.from.x as i32,
                hint.to_y - hint.from.y as i32,
            );
            let to = Rect {
                x: hint.to_x.clamp(0, u16::MAX as i32) as u16,
                y: hint.to_y.clamp(0, u16::MAX as i32) as u16,
                ..hint.from
            };
            let old = Picture {
                width: self.width,
                height: self.height,
                bgrx: &self.sent,
            };
            if let Some(c) = verify_move(&old, frame, to, dx, dy) {
                apply_copy(&mut self.sent, self.width, 4, &c);
                copies.push(c);
            }
        }
        let area = bounding(changed).filter(|b| b.h as usize >= 2 * MIN_COPY_ROWS);
        if let (Some(area), true) = (area, copies.len() < MAX_COPIES) {
            let old = Picture {
                width: self.width,
                height: self.height,
                bgrx: &self.sent,
            };
            if let Some(c) =
                find_scroll(&old, frame, area).and_then(|dy| verify_move(&old, frame, area, 0, dy))
            {
                apply_copy(&mut self.sent, self.width, 4, &c);
                copies.push(c);
            }
        }
        copies
    }

    /// Encodes what changed since the last update; `None` when nothing did.
    pub fn encode(
        &mut self,
        frame: &FrameView<'_>,
        changes: &FrameChanges<'_>,
        cursor_pos: Option<(i16, i16)>,
        cursor_shape: Option<&CursorShape>,
    ) -> Option<Vec<u8>> {
        let (w, h) = (frame.width, frame.height);
        assert!(
            w > 0
                && h > 0
                && frame.stride >= w * 4
                && frame.bgrx.len() >= frame.stride * (h - 1) + w * 4,
            "frame buffer smaller than its size"
        );
        let reset = self.stream.is_none() || w != self.width || h != self.height;
        if reset {
            self.width = w;
            self.height = h;
            self.sent = vec![0; w * h * 4];
            self.stream = Some(PixelCompressor::new());
        }
        let tiles = self.candidate_tiles(changes, reset);
        let boxes = |enc: &Self, tiles: &[Rect]| -> Vec<Rect> {
            tiles
                .iter()
                .filter_map(|t| changed_box(frame, &enc.sent, w, *t))
                .collect()
        };
        let mut changed = if reset {
            tiles.clone()
        } else {
            boxes(self, &tiles)
        };
        let mut copies = Vec::new();
        if !reset && (!changed.is_empty() || !changes.moves.is_empty()) {
            copies = self.find_copies(frame, changes, &changed);
            if !copies.is_empty() {
                changed = boxes(self, &tiles);
            }
        }
        let new_shape = cursor_shape.filter(|s| self.cursor_shape.as_ref() != Some(*s));
        let pos_changed = cursor_pos != self.cursor_pos;
        if !reset && changed.is_empty() && copies.is_empty() && new_shape.is_none() && !pos_changed
        {
            return None;
        }
        self.raw.clear();
        let rect_count = changed.len();
        for r in changed {
            for y in r.y as usize..r.bottom() {
                self.sent[(y * w + r.x as usize) * 4..][..r.w as usize * 4]
                    .copy_from_slice(frame.row(r.x as usize, y, r.w as usize));
            }
            match encode_rect(frame, r, &mut self.raw) {
                RectPixels::Solid(_) => self.stats.solid_rects += 1,
                RectPixels::Palette(_) => self.stats.palette_rects += 1,
                RectPixels::Lossless => self.stats.lossless_rects += 1,
            }
        }
        let stream_chunk = if self.raw.is_empty() {
            Vec::new()
        } else {
            self.stream.as_mut().expect("set above").compress(&self.raw)
        };
        self.cursor_pos = cursor_pos;
        if let Some(s) = new_shape {
            self.cursor_shape = Some(s.clone());
        }
        self.seq += 1;
        self.stats.copies += copies.len() as u64;
        let bytes = ScreenUpdate {
            seq: self.seq,
            reset: reset.then_some((w as u16, h as u16)),
            cursor: CursorUpdate {
                position: cursor_pos,
                shape: new_shape.cloned(),
            },
            copies,
            rect_count,
            stream_len: self.raw.len(),
            stream_chunk,
        }
        .encode();
        self.stats.updates += 1;
        self.stats.bytes += bytes.len() as u64;
        Some(bytes)
    }

    /// Sequence number of the last update produced.
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// What the encoder did so far.
    pub fn stats(&self) -> &EncoderStats {
        &self.stats
    }

    /// Forgets what was sent, so the next update is the whole screen again, on a new stream.
    pub fn reset(&mut self) {
        self.stream = None;
        self.cursor_shape = None;
    }
}
