//! The remote screen as a PNG file: what the headless viewer's `snapshot FILE` writes, and
//! what the tests compare with the PC's display.

use anyhow::{Context, Result};
use protocol::screen::Framebuffer;
use std::path::Path;

/// Writes the framebuffer (without cursor) as an RGB PNG.
pub fn save_png(fb: &Framebuffer, path: &Path) -> Result<()> {
    let mut rgb = Vec::with_capacity(fb.screen().len() * 3);
    for p in fb.screen() {
        rgb.extend_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, *p as u8]);
    }
    image::save_buffer(
        path,
        &rgb,
        fb.width as u32,
        fb.height as u32,
        image::ExtendedColorType::Rgb8,
    )
    .with_context(|| format!("cannot write {}", path.display()))
}
