//! Text in Fernhilfe's windows (the agent's dialogs, the viewer's status bar): DejaVu Sans,
//! embedded so the same binary draws the same letters on every PC, rasterized by fontdue.

#![warn(missing_docs)]

use fontdue::{Font, FontSettings};

static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Draws text into 0x00RRGGBB pixel buffers.
pub struct TextRenderer {
    font: Font,
}

impl TextRenderer {
    /// Loads the embedded font.
    pub fn new() -> Self {
        Self {
            font: Font::from_bytes(FONT_BYTES, FontSettings::default())
                .expect("embedded font is valid"),
        }
    }

    /// Width of `text` at `px` pixels.
    pub fn width(&self, text: &str, px: f32) -> usize {
        text.chars()
            .map(|c| self.font.metrics(c, px).advance_width)
            .sum::<f32>() as usize
    }

    /// Draws `text` with its top-left corner at (x, y).
    pub fn draw(
        &self,
        (buf, bw): (&mut [u32], usize),
        (x, y): (usize, usize),
        text: &str,
        px: f32,
        color: u32,
    ) {
        let ascent = self
            .font
            .horizontal_line_metrics(px)
            .map_or(px, |m| m.ascent);
        let mut pen = x as f32;
        for c in text.chars() {
            let (m, bitmap) = self.font.rasterize(c, px);
            let gx = pen as i32 + m.xmin;
            let gy = y as i32 + ascent as i32 - (m.height as i32 + m.ymin);
            for row in 0..m.height {
                for col in 0..m.width {
                    let a = bitmap[row * m.width + col] as u32;
                    let (px_x, px_y) = (gx + col as i32, gy + row as i32);
                    if a == 0 || px_x < 0 || px_y < 0 || px_x as usize >= bw {
                        continue;
                    }
                    let Some(dst) = buf.get_mut(px_y as usize * bw + px_x as usize) else {
                        continue;
                    };
                    let mix = |s: u32, d: u32| (s * a + d * (255 - a)) / 255;
                    let (sr, sg, sb) = (color >> 16 & 0xFF, color >> 8 & 0xFF, color & 0xFF);
                    let (dr, dg, db) = (*dst >> 16 & 0xFF, *dst >> 8 & 0xFF, *dst & 0xFF);
                    *dst = mix(sr, dr) << 16 | mix(sg, dg) << 8 | mix(sb, db);
                }
            }
            pen += m.advance_width;
        }
    }
}

impl Default for TextRenderer {
    fn default() -> Self {
        Self::new()
    }
}
