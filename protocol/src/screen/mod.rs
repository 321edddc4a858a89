//! The screen codec. The agent's [`ScreenEncoder`] keeps a copy of what the viewer shows and
//! sends only the difference: regions that moved (a scrolled text, a dragged window) as copy
//! operations, then every changed rectangle, at most one tile (64×64) each and cut to the pixels
//! that actually changed, as a solid colour, a small palette, or lossless pixels. Palette
//! indices and pixels travel in two zstd streams (text and shapes; photos) that live as long as
//! the session, so what was sent once (a glyph, a button) costs almost nothing the next time. A static screen
//! yields no update at all. The cursor travels beside the pixels, so the viewer draws it on top.
//!
//! - [`update`]: the wire format of one update and its bounds.
//! - [`pixel_stream`]: the session-long compression contexts on both sides.
//! - [`rect_codec`]: how one rectangle's pixels are classified, packed and unpacked.
//! - [`motion`]: finding scrolled and moved regions.
//! - [`pacing`]: how many updates travel at once, and which ones the viewer acknowledges.
//! - [`encoder`]: the agent's side. [`framebuffer`]: the viewer's side.

pub mod encoder;
pub mod framebuffer;
pub mod motion;
pub mod pacing;
pub mod pixel_stream;
pub mod rect_codec;
pub mod update;

pub use encoder::{EncoderStats, ScreenEncoder, REFINE_AFTER};
pub use framebuffer::{Applied, Framebuffer, ScreenDecoder};
pub use pacing::UpdatePacing;
pub use rect_codec::RectPixels;
pub use update::{CopyRect, ScreenUpdate, StreamPiece};

/// Edge length of a tile in pixels; no rectangle of an update is larger.
pub const TILE: usize = 64;
/// Largest screen edge accepted (8K); bounds every allocation a decoder makes.
pub const MAX_SCREEN_EDGE: u16 = 8192;
/// Largest screen area accepted: 7680×4320.
pub const MAX_SCREEN_PIXELS: usize = 7680 * 4320;
/// Largest cursor edge.
pub const MAX_CURSOR_EDGE: u16 = 256;

/// A captured screen: 32-bit BGRX pixels, `stride` bytes per row, as scrap and GDI deliver them.
pub struct FrameView<'a> {
    pub width: usize,
    pub height: usize,
    pub stride: usize,
    pub bgrx: &'a [u8],
}

impl FrameView<'_> {
    /// The bytes of row `y` from column `x`, `w` pixels long.
    fn row(&self, x: usize, y: usize, w: usize) -> &[u8] {
        &self.bgrx[y * self.stride + x * 4..][..w * 4]
    }
}

/// A rectangle on the screen, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rect {
    pub x: u16,
    pub y: u16,
    pub w: u16,
    pub h: u16,
}

impl Rect {
    /// The rectangle's right edge (exclusive).
    pub fn right(&self) -> usize {
        self.x as usize + self.w as usize
    }

    /// The rectangle's bottom edge (exclusive).
    pub fn bottom(&self) -> usize {
        self.y as usize + self.h as usize
    }

    /// Whether the rectangle lies inside a screen of this size and is not empty.
    pub fn inside(&self, width: usize, height: usize) -> bool {
        self.w > 0 && self.h > 0 && self.right() <= width && self.bottom() <= height
    }

    /// The part of the rectangle inside a screen of this size, if any.
    pub fn clip(&self, width: usize, height: usize) -> Option<Rect> {
        let (r, b) = (self.right().min(width), self.bottom().min(height));
        (r > self.x as usize && b > self.y as usize).then(|| Rect {
            x: self.x,
            y: self.y,
            w: (r - self.x as usize) as u16,
            h: (b - self.y as usize) as u16,
        })
    }
}

/// A region the PC's window system moved: the pixels of `from` now show at (`to_x`, `to_y`).
/// Only a hint: the encoder checks it against the pixels before it relies on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoveHint {
    pub from: Rect,
    pub to_x: i32,
    pub to_y: i32,
}

/// What the capture knows about a new frame beyond its pixels.
#[derive(Debug, Default, Clone)]
pub struct FrameChanges<'a> {
    /// Where the screen may have changed since the last frame; `None` when the platform cannot
    /// tell, so the whole screen is compared.
    pub damage: Option<&'a [Rect]>,
    /// Windows moved since the last frame.
    pub moves: &'a [MoveHint],
    /// When the frame was captured; lets lossy regions be refined once they stood still for a
    /// while. Without it they are refined at the first update that finds them unchanged.
    pub now: Option<std::time::Instant>,
}

impl<'a> FrameChanges<'a> {
    /// What a capture taken just now knows: where it changed and what moved.
    pub fn captured_now(damage: Option<&'a [Rect]>, moves: &'a [MoveHint]) -> Self {
        Self {
            damage,
            moves,
            now: Some(std::time::Instant::now()),
        }
    }
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

#[cfg(test)]
mod tests;
