//! The agent's side of the codec: compares a captured frame with what the viewer shows, where
//! the capture says it may have changed, and encodes the difference.

use super::motion::{apply_copy, find_scroll, verify_move, MIN_COPY_ROWS};
use super::pixel_stream::{PixelCompressor, StreamKind};
use super::rect_codec::encode_rect;
use super::rect_codec::{expand_lossy, RectPixels};
use super::update::{CopyRect, ScreenUpdate, StreamPiece, MAX_COPIES};
use super::{CursorShape, CursorUpdate, FrameChanges, FrameView, Rect, TILE};
use std::time::{Duration, Instant};

/// A tile whose content changed almost entirely this many times, with no update in between
/// finding it still, is in motion (video): it may travel lossy.
const LOSSY_AFTER: u8 = 3;
/// A lossy tile still for this long is sent again losslessly.
pub const REFINE_AFTER: Duration = Duration::from_millis(150);

/// What the encoder knows about one tile beyond its pixels.
#[derive(Default, Clone)]
struct TileState {
    /// Hash of the captured content when the tile was last encoded.
    hash: u64,
    /// Updates since the tile was last still in which (almost) all of it changed.
    motion: u8,
    /// The viewer has a lossy picture of this tile.
    lossy: bool,
    /// When the tile's content last changed.
    changed_at: Option<Instant>,
}

fn tile_hash(frame: &FrameView<'_>, tile: Rect) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for y in tile.y as usize..tile.bottom() {
        h = (h ^ super::motion::row_hash(frame.row(tile.x as usize, y, tile.w as usize)))
            .wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// What the encoder did so far, for logs, tests and benchmarks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EncoderStats {
    pub updates: u64,
    /// Copy operations sent (scrolls and moved windows).
    pub copies: u64,
    pub solid_rects: u64,
    pub palette_rects: u64,
    pub lossless_rects: u64,
    /// Tiles sent lossy (in motion), and sent again losslessly once still.
    pub lossy_rects: u64,
    pub refined_rects: u64,
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
    /// The shapes and the photo stream; `None` until the first update, and after a reset: the
    /// next update starts new streams.
    streams: Option<[PixelCompressor; 2]>,
    cursor_pos: Option<(i16, i16)>,
    cursor_shape: Option<CursorShape>,
    seq: u64,
    stats: EncoderStats,
    /// The shapes and the photo stream's bytes of the update being built.
    raw: [Vec<u8>; 2],
    tiles: Vec<TileState>,
}

/// The pixels of one tile that differ between the frame and the viewer's picture.
fn changed_box(frame: &FrameView<'_>, sent: &FrameView<'_>, tile: Rect) -> Option<Rect> {
    let (x, w) = (tile.x as usize, tile.w as usize);
    let (mut left, mut right, mut top, mut bottom) = (usize::MAX, 0, usize::MAX, 0);
    for y in tile.y as usize..tile.bottom() {
        let new = frame.row(x, y, w);
        let old = sent.row(x, y, w);
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

    /// Tiles to look at: those the damage touches (or all), and the lossy ones.
    fn candidate_tiles(&self, changes: &FrameChanges<'_>, all: bool) -> Vec<usize> {
        let (cols, rows) = (self.width.div_ceil(TILE), self.height.div_ceil(TILE));
        let mut marked: Vec<bool> = self
            .tiles
            .iter()
            .map(|t| all || changes.damage.is_none() || t.lossy)
            .collect();
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
        (0..cols * rows).filter(|i| marked[*i]).collect()
    }

    /// The rectangle of tile `i` (row by row over the screen).
    fn tile(&self, i: usize) -> Rect {
        let cols = self.width.div_ceil(TILE);
        let (x, y) = ((i % cols) * TILE, (i / cols) * TILE);
        Rect {
            x: x as u16,
            y: y as u16,
            w: (self.width - x).min(TILE) as u16,
            h: (self.height - y).min(TILE) as u16,
        }
    }

    /// The viewer's picture as the encoder remembers it.
    fn sent_view(&self) -> FrameView<'_> {
        FrameView {
            width: self.width,
            height: self.height,
            stride: self.width * 4,
            bgrx: &self.sent,
        }
    }

    /// Whether lossy tiles wait to be sent again losslessly once they stand still.
    pub fn needs_refinement(&self) -> bool {
        self.tiles.iter().any(|t| t.lossy)
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
            if let Some(c) = verify_move(&self.sent_view(), frame, to, dx, dy) {
                apply_copy(&mut self.sent, self.width, 4, &c);
                copies.push(c);
            }
        }
        let area = bounding(changed).filter(|b| b.h as usize >= 2 * MIN_COPY_ROWS);
        // A film does not scroll: where most changed tiles are in motion, no search.
        let in_motion = self
            .tiles
            .iter()
            .filter(|t| t.motion >= LOSSY_AFTER)
            .count();
        let area = area.filter(|_| in_motion * 2 < changed.len());
        if let (Some(area), true) = (area, copies.len() < MAX_COPIES) {
            let old = self.sent_view();
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
        let reset = self.streams.is_none() || w != self.width || h != self.height;
        if reset {
            self.width = w;
            self.height = h;
            self.sent = vec![0; w * h * 4];
            self.streams = Some([
                PixelCompressor::new(StreamKind::Shapes),
                PixelCompressor::new(StreamKind::Photo),
            ]);
            self.tiles = vec![TileState::default(); w.div_ceil(TILE) * h.div_ceil(TILE)];
        }
        let tiles = self.candidate_tiles(changes, reset);
        let boxes = |enc: &Self, tiles: &[usize]| -> Vec<(usize, Rect)> {
            tiles
                .iter()
                .filter_map(|&i| changed_box(frame, &enc.sent_view(), enc.tile(i)).map(|b| (i, b)))
                .collect()
        };
        let mut changed = if reset {
            tiles.iter().map(|&i| (i, self.tile(i))).collect()
        } else {
            boxes(self, &tiles)
        };
        let mut copies = Vec::new();
        if !reset && (!changed.is_empty() || !changes.moves.is_empty()) {
            let rects: Vec<Rect> = changed.iter().map(|(_, r)| *r).collect();
            copies = self.find_copies(frame, changes, &rects);
            if !copies.is_empty() {
                changed = boxes(self, &tiles);
            }
        }
        // A lossy tile the viewer already shows exactly (its picture survived the loss) needs
        // no refinement.
        let mut has_box = vec![false; self.tiles.len()];
        for &(i, _) in &changed {
            has_box[i] = true;
        }
        for &i in &tiles {
            self.tiles[i].lossy &= has_box[i];
        }
        changed.retain(|&(i, r)| self.due(frame, i, r, changes.now, reset));
        let new_shape = cursor_shape.filter(|s| self.cursor_shape.as_ref() != Some(*s));
        let pos_changed = cursor_pos != self.cursor_pos;
        if !reset && changed.is_empty() && copies.is_empty() && new_shape.is_none() && !pos_changed
        {
            return None;
        }
        self.raw.iter_mut().for_each(Vec::clear);
        let rect_count = changed.len();
        for (i, r) in changed {
            let in_motion = self.tiles[i].motion >= LOSSY_AFTER;
            // In motion: the whole tile goes lossy; otherwise just what changed, exactly.
            let rect = if in_motion { self.tile(i) } else { r };
            let mut small = Vec::new();
            let lossy = in_motion.then_some(&mut small);
            let [shapes, photo] = &mut self.raw;
            let kind = encode_rect(frame, rect, lossy, shapes, photo);
            let was_lossy = std::mem::replace(&mut self.tiles[i].lossy, kind == RectPixels::Lossy);
            match kind {
                RectPixels::Solid(_) => self.stats.solid_rects += 1,
                RectPixels::Palette(_) => self.stats.palette_rects += 1,
                RectPixels::Lossless => self.stats.lossless_rects += 1,
                RectPixels::Lossy => self.stats.lossy_rects += 1,
            }
            if was_lossy && kind != RectPixels::Lossy {
                self.stats.refined_rects += 1;
            }
            if kind == RectPixels::Lossy {
                self.remember_lossy(&small, rect);
            } else {
                for y in rect.y as usize..rect.bottom() {
                    self.sent[(y * w + rect.x as usize) * 4..][..rect.w as usize * 4]
                        .copy_from_slice(frame.row(rect.x as usize, y, rect.w as usize));
                }
            }
        }
        let streams = self.streams.as_mut().expect("set above");
        let [shapes, photo] = [0, 1].map(|i| StreamPiece {
            len: self.raw[i].len(),
            chunk: if self.raw[i].is_empty() {
                Vec::new()
            } else {
                streams[i].compress(&self.raw[i])
            },
        });
        self.cursor_pos = cursor_pos;
        if let Some(s) = new_shape {
            self.cursor_shape = Some(s.clone());
        }
        self.seq += 1;
        self.stats.copies += copies.len() as u64;
        let bytes = ScreenUpdate {
            seq: self.seq,
            ack_requested: false,
            reset: reset.then_some((w as u16, h as u16)),
            cursor: CursorUpdate {
                position: cursor_pos,
                shape: new_shape.cloned(),
            },
            copies,
            rect_count,
            shapes,
            photo,
        }
        .encode();
        self.stats.updates += 1;
        self.stats.bytes += bytes.len() as u64;
        Some(bytes)
    }

    /// Updates the tile's motion state and says whether its changed box `r` goes out now: a
    /// lossy tile that stands still waits until [`REFINE_AFTER`] has passed (at `now`; at once
    /// without a clock), so a film's next frame does not find it sent twice.
    fn due(
        &mut self,
        frame: &FrameView<'_>,
        i: usize,
        r: Rect,
        now: Option<Instant>,
        reset: bool,
    ) -> bool {
        let tile = self.tile(i);
        let hash = tile_hash(frame, tile);
        let t = &mut self.tiles[i];
        let content_changed = reset || hash != t.hash;
        t.hash = hash;
        let most = r.w as usize * r.h as usize * 4 >= tile.w as usize * tile.h as usize * 3;
        // Still for a while (at once without a clock): the captures can come faster than a
        // film's frames, so one capture that finds the tile unchanged proves nothing.
        let still = match (now, t.changed_at) {
            (Some(now), Some(at)) => now.duration_since(at) >= REFINE_AFTER,
            _ => true,
        };
        // A capture can catch a film's frame half drawn: a smaller change keeps the count,
        // only a tile that stood still ends the motion.
        t.motion = match (content_changed, most) {
            (true, true) => t.motion.saturating_add(1),
            (true, false) => t.motion,
            (false, _) if still => 0,
            (false, _) => t.motion,
        };
        if content_changed {
            t.changed_at = now;
            return true;
        }
        !t.lossy || still
    }

    /// Puts what the viewer makes of the lossy rectangle just encoded (its small picture)
    /// into the viewer's picture, with the viewer's own expansion. The unused fourth byte
    /// stays 0: the tile differs from the frame until it is refined anyway.
    fn remember_lossy(&mut self, small: &[u8], rect: Rect) {
        let (x0, y0) = (rect.x as usize, rect.y as usize);
        let width = self.width;
        let sent = &mut self.sent;
        expand_lossy(small, rect.w as usize, rect.h as usize, |y, row| {
            let line = &mut sent[((y0 + y) * width + x0) * 4..][..row.len() * 4];
            // 0x00RRGGBB in little-endian order is B, G, R, 0: the picture's BGRX.
            for (px, c) in line.chunks_exact_mut(4).zip(row) {
                px.copy_from_slice(&c.to_le_bytes());
            }
        });
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
        self.streams = None;
        self.tiles.clear();
        self.cursor_shape = None;
    }
}
