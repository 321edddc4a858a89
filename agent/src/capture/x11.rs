//! X11: pixels through scrap's XShm capture; DAMAGE tells when anything was drawn, so a static
//! screen costs no capture at all; XFIXES supplies the cursor, which XShm images leave out.

use super::{CursorState, ScreenSource};
use protocol::screen::{CursorShape, FrameView, MAX_CURSOR_EDGE};
use std::io;
use std::time::{Duration, Instant};
use x11rb::connection::Connection;
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::ConnectionExt as _;
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

/// How often to look for DAMAGE events while waiting: short enough to add little latency,
/// long enough that waiting costs next to no CPU.
const POLL: Duration = Duration::from_millis(4);

/// The X11 screen of `$DISPLAY`.
pub struct X11Screen {
    capturer: scrap::Capturer,
    conn: RustConnection,
    root: u32,
    damage: u32,
    damaged: bool,
    cursor_changed: bool,
    last_pointer: Option<(i16, i16)>,
}

fn x11_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("X11: {e}"))
}

impl X11Screen {
    /// Opens the display and starts watching it.
    pub fn open() -> io::Result<Self> {
        let display = scrap::Display::primary()?;
        let capturer = scrap::Capturer::new(display)?;
        let (conn, screen) = x11rb::connect(None).map_err(x11_err)?;
        let root = conn.setup().roots[screen].root;
        conn.xfixes_query_version(5, 0)
            .map_err(x11_err)?
            .reply()
            .map_err(x11_err)?;
        conn.damage_query_version(1, 1)
            .map_err(x11_err)?
            .reply()
            .map_err(x11_err)?;
        let damage = conn.generate_id().map_err(x11_err)?;
        conn.damage_create(damage, root, damage::ReportLevel::NON_EMPTY)
            .map_err(x11_err)?;
        conn.xfixes_select_cursor_input(root, xfixes::CursorNotifyMask::DISPLAY_CURSOR)
            .map_err(x11_err)?;
        conn.flush().map_err(x11_err)?;
        Ok(Self {
            capturer,
            conn,
            root,
            damage,
            damaged: true,
            cursor_changed: true,
            last_pointer: None,
        })
    }

    fn drain_events(&mut self) -> io::Result<()> {
        while let Some(ev) = self.conn.poll_for_event().map_err(x11_err)? {
            match ev {
                Event::DamageNotify(_) => self.damaged = true,
                Event::XfixesCursorNotify(_) => self.cursor_changed = true,
                _ => {}
            }
        }
        Ok(())
    }

    fn pointer(&self) -> Option<(i16, i16)> {
        let p = self.conn.query_pointer(self.root).ok()?.reply().ok()?;
        Some((p.root_x, p.root_y))
    }
}

impl ScreenSource for X11Screen {
    fn size(&self) -> (usize, usize) {
        (self.capturer.width(), self.capturer.height())
    }

    fn wait_for_change(&mut self, max_wait: Duration) -> bool {
        let deadline = Instant::now() + max_wait;
        loop {
            if self.drain_events().is_err() {
                return true;
            }
            if self.damaged || self.cursor_changed || self.pointer() != self.last_pointer {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    fn with_frame(&mut self, f: &mut dyn FnMut(&FrameView<'_>)) -> io::Result<()> {
        // Clear the damage before capturing, so drawing during the capture is seen next time.
        self.damaged = false;
        self.conn
            .damage_subtract(self.damage, x11rb::NONE, x11rb::NONE)
            .map_err(x11_err)?;
        self.conn.flush().map_err(x11_err)?;
        let (width, height) = self.size();
        let frame = self.capturer.frame()?;
        let stride = frame.len() / height.max(1);
        f(&FrameView {
            width,
            height,
            stride,
            bgrx: &frame,
        });
        Ok(())
    }

    fn cursor(&mut self) -> CursorState {
        let position = self.pointer();
        self.last_pointer = position;
        let shape = if std::mem::take(&mut self.cursor_changed) {
            self.conn
                .xfixes_get_cursor_image()
                .ok()
                .and_then(|c| c.reply().ok())
                .and_then(|c| {
                    if c.width == 0
                        || c.height == 0
                        || c.width > MAX_CURSOR_EDGE
                        || c.height > MAX_CURSOR_EDGE
                    {
                        return None;
                    }
                    // XFIXES gives premultiplied ARGB; the wire carries straight RGBA.
                    let mut rgba = Vec::with_capacity(c.cursor_image.len() * 4);
                    for p in &c.cursor_image {
                        let [a, r, g, b] = p.to_be_bytes();
                        let un = |v: u8| {
                            if a == 0 {
                                0
                            } else {
                                ((v as u32 * 255) / a as u32).min(255) as u8
                            }
                        };
                        rgba.extend_from_slice(&[un(r), un(g), un(b), a]);
                    }
                    Some(CursorShape {
                        width: c.width,
                        height: c.height,
                        hot_x: c.xhot.min(c.width - 1),
                        hot_y: c.yhot.min(c.height - 1),
                        rgba,
                    })
                })
        } else {
            None
        };
        CursorState { position, shape }
    }
}
