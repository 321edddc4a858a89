//! Draws only the changed part of the remote screen into the viewer's window on X11.
//!
//! minifb puts the whole window to the X server on every frame: 8.7 MB for a Full HD screen
//! and its status bar, for a keystroke that changed a few hundred pixels. That transfer was
//! most of the change-to-pixels time. So, where the window shows the screen 1:1, the viewer
//! puts the changed bounding box itself over a connection of its own to the same display; the
//! whole picture (first, after a new size) goes the same way, so no older whole picture can
//! land after a newer box. minifb draws only a scaled window. minifb takes no Expose events:
//! this connection selects them on minifb's window and draws what another window uncovered,
//! so the picture needs no periodic whole redraw (8.7 MB that delayed the frame it met).

use protocol::screen::Rect;
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::{
    ChangeWindowAttributesAux, ConnectionExt, CreateGCAux, EventMask, ImageFormat, ImageOrder,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

/// Bytes of a PutImage request beyond its pixels (28 with BIG-REQUESTS' longer length).
const PUT_IMAGE_HEADER: usize = 28;

/// The viewer's own connection to the window's display.
pub(crate) struct PartialBlit {
    conn: RustConnection,
    window: u32,
    gc: u32,
    depth: u8,
    max_request: usize,
}

impl PartialBlit {
    /// Connects for the X window `window` (minifb's handle); `None` where the display's
    /// pixels are not 32-bit 0RGB little-endian (minifb's own format), or X refuses.
    pub(crate) fn new(window: u32) -> Option<Self> {
        let (conn, screen) = x11rb::connect(None).ok()?;
        let setup = conn.setup();
        let depth = setup.roots.get(screen)?.root_depth;
        let native = depth == 24
            && setup.image_byte_order == ImageOrder::LSB_FIRST
            && setup
                .pixmap_formats
                .iter()
                .any(|f| f.depth == depth && f.bits_per_pixel == 32);
        if !native {
            return None;
        }
        let gc = conn.generate_id().ok()?;
        conn.create_gc(gc, window, &CreateGCAux::new().graphics_exposures(0))
            .ok()?;
        // Event masks are per client: minifb's own selection on the window stays as it is.
        conn.change_window_attributes(
            window,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::EXPOSURE),
        )
        .ok()?
        .check()
        .ok()?;
        let max_request = conn.maximum_request_bytes();
        Some(Self {
            conn,
            window,
            gc,
            depth,
            max_request,
        })
    }

    /// The parts of the window the X server says must be drawn again since the last call
    /// (another window uncovered them); empty when none, or when the connection failed (then
    /// the window is gone and the caller ends anyway).
    pub(crate) fn exposed(&self) -> Vec<Rect> {
        let mut areas = Vec::new();
        while let Ok(Some(ev)) = self.conn.poll_for_event() {
            if let Event::Expose(e) = ev {
                areas.push(Rect {
                    x: e.x,
                    y: e.y,
                    w: e.width,
                    h: e.height,
                });
            }
        }
        areas
    }

    /// Puts `area` of `pixels` (0x00RRGGBB, `stride` pixels a row) at the same place in the
    /// window, in as many requests as the server's request size needs.
    pub(crate) fn put(&self, pixels: &[u32], stride: usize, area: Rect) -> anyhow::Result<()> {
        let (x, w) = (area.x as usize, area.w as usize);
        let rows_per_request = ((self.max_request - PUT_IMAGE_HEADER) / (w * 4)).max(1);
        let mut buf = Vec::with_capacity(w * 4 * rows_per_request.min(area.h as usize));
        let (top, bottom) = (area.y as usize, area.bottom());
        for y0 in (top..bottom).step_by(rows_per_request) {
            let rows = rows_per_request.min(bottom - y0);
            buf.clear();
            for y in y0..y0 + rows {
                for p in &pixels[y * stride + x..][..w] {
                    buf.extend_from_slice(&p.to_le_bytes());
                }
            }
            self.conn.put_image(
                ImageFormat::Z_PIXMAP,
                self.window,
                self.gc,
                area.w,
                rows as u16,
                area.x as i16,
                y0 as i16,
                0,
                self.depth,
                &buf,
            )?;
        }
        self.conn.flush()?;
        Ok(())
    }
}
