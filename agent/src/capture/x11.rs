//! X11: pixels through scrap's XShm capture. DAMAGE wakes the capture thread when anything is
//! drawn and says where, so a static screen costs no capture and the encoder compares only the
//! damaged tiles; the root's configure events say which windows moved, as hints for copies;
//! XFIXES supplies the cursor, which XShm images leave out. XInput 2's raw motion events say
//! when the pointer moved, which draws nothing.

use super::{CursorState, ScreenSource};
use protocol::screen::{CursorShape, FrameChanges, FrameView, MoveHint, Rect, MAX_CURSOR_EDGE};
use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use x11rb::connection::Connection;
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xinput::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{ChangeWindowAttributesAux, ConnectionExt as _, EventMask};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

/// How often to look at the pointer while waiting on a server without XInput 2, where no event
/// says the pointer moved; with it, the most often a moving pointer alone wakes the thread (a
/// gaming mouse reports 1000 times a second, each wake captures the screen). Drawing wakes the
/// thread at once.
const POINTER_POLL: Duration = Duration::from_millis(16);
/// Past this many damage rectangles the encoder compares the whole screen: looking at each
/// would cost more than it saves.
const MAX_DAMAGE_RECTS: usize = 256;

/// The X11 screen of `$DISPLAY`.
pub(crate) struct X11Screen {
    capturer: scrap::Capturer,
    conn: RustConnection,
    root: u32,
    damage: u32,
    /// An XFIXES region the damage is moved into at each capture, to read its rectangles.
    region: u32,
    damaged: bool,
    /// Top-level windows as last captured, and where they are now.
    windows_at_capture: HashMap<u32, Rect>,
    windows_now: HashMap<u32, Rect>,
    cursor_changed: bool,
    last_pointer: Option<(i16, i16)>,
    /// When the pointer was last looked at for a capture.
    last_look: Instant,
    /// Raw motion events arrive (XInput 2): the pointer need not be polled.
    motion_events: bool,
    pointer_moved: bool,
}

fn x11_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("X11: {e}"))
}

impl X11Screen {
    /// Opens the display and starts watching it.
    pub(crate) fn open() -> io::Result<Self> {
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
        let region = conn.generate_id().map_err(x11_err)?;
        conn.xfixes_create_region(region, &[]).map_err(x11_err)?;
        let motion_events = select_raw_motion(&conn, root);
        if motion_events {
            tracing::info!("pointer moves arrive as XInput 2 raw motion events");
        } else {
            tracing::info!("no XInput 2: the pointer is looked at every {POINTER_POLL:?}");
        }
        // Configure events of the root's children: windows that move (or a WM's frames).
        conn.change_window_attributes(
            root,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::SUBSTRUCTURE_NOTIFY),
        )
        .map_err(x11_err)?;
        let mut windows = HashMap::new();
        for w in conn
            .query_tree(root)
            .map_err(x11_err)?
            .reply()
            .map_err(x11_err)?
            .children
        {
            if let Ok(g) = conn.get_geometry(w).map_err(x11_err)?.reply() {
                windows.insert(w, geometry(g.x, g.y, g.width, g.height));
            }
        }
        conn.flush().map_err(x11_err)?;
        Ok(Self {
            capturer,
            conn,
            root,
            damage,
            region,
            damaged: true,
            windows_at_capture: windows.clone(),
            windows_now: windows,
            cursor_changed: true,
            last_pointer: None,
            last_look: Instant::now(),
            motion_events,
            pointer_moved: true,
        })
    }

    fn drain_events(&mut self) -> io::Result<()> {
        while let Some(ev) = self.conn.poll_for_event().map_err(x11_err)? {
            match ev {
                Event::DamageNotify(_) => self.damaged = true,
                Event::XfixesCursorNotify(_) => self.cursor_changed = true,
                Event::XinputRawMotion(_) => self.pointer_moved = true,
                Event::ConfigureNotify(e) => {
                    self.windows_now
                        .insert(e.window, geometry(e.x, e.y, e.width, e.height));
                }
                Event::CreateNotify(e) => {
                    self.windows_now
                        .insert(e.window, geometry(e.x, e.y, e.width, e.height));
                }
                Event::DestroyNotify(e) => {
                    self.windows_now.remove(&e.window);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Blocks until the X server sends something or `limit` passes.
    fn wait_readable(&self, limit: Duration) {
        let mut fd = libc::pollfd {
            fd: self.conn.stream().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = limit.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut fd, 1, ms) };
    }

    /// Windows whose position changed since the last capture.
    fn moves(&mut self) -> Vec<MoveHint> {
        let mut moves = Vec::new();
        for (w, now) in &self.windows_now {
            if let Some(was) = self.windows_at_capture.get(w) {
                if (was.x, was.y) != (now.x, now.y) && (was.w, was.h) == (now.w, now.h) {
                    moves.push(MoveHint {
                        from: *was,
                        to_x: now.x as i32,
                        to_y: now.y as i32,
                    });
                }
            }
        }
        self.windows_at_capture.clone_from(&self.windows_now);
        moves
    }

    /// Moves the damage into the region and reads its rectangles; `None` means "compare all".
    fn take_damage(&mut self) -> io::Result<Option<Vec<Rect>>> {
        self.conn
            .damage_subtract(self.damage, x11rb::NONE, self.region)
            .map_err(x11_err)?;
        let reply = self
            .conn
            .xfixes_fetch_region(self.region)
            .map_err(x11_err)?
            .reply()
            .map_err(x11_err)?;
        if reply.rectangles.len() > MAX_DAMAGE_RECTS {
            return Ok(None);
        }
        Ok(Some(
            reply
                .rectangles
                .iter()
                .map(|r| geometry(r.x, r.y, r.width, r.height))
                .collect(),
        ))
    }

    fn pointer(&self) -> Option<(i16, i16)> {
        let p = self.conn.query_pointer(self.root).ok()?.reply().ok()?;
        Some((p.root_x, p.root_y))
    }
}

/// Asks for XInput 2 raw motion events on the root window, which arrive for every pointer
/// device wherever the pointer is; `false` where the server has no XInput 2.
fn select_raw_motion(conn: &RustConnection, root: u32) -> bool {
    let supported = conn
        .xinput_xi_query_version(2, 0)
        .ok()
        .and_then(|c| c.reply().ok())
        .is_some_and(|v| v.major_version >= 2);
    supported
        && conn
            .xinput_xi_select_events(
                root,
                &[xinput::EventMask {
                    deviceid: xinput::Device::ALL.into(),
                    mask: vec![xinput::XIEventMask::RAW_MOTION],
                }],
            )
            .ok()
            .and_then(|c| c.check().ok())
            .is_some()
}

/// A window's or damage rectangle's geometry, clipped to what the wire can say.
fn geometry(x: i16, y: i16, w: u16, h: u16) -> Rect {
    let (x0, y0) = (x.max(0), y.max(0));
    Rect {
        x: x0 as u16,
        y: y0 as u16,
        w: (x as i32 + w as i32 - x0 as i32).max(0) as u16,
        h: (y as i32 + h as i32 - y0 as i32).max(0) as u16,
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
            if self.damaged || self.cursor_changed {
                return true;
            }
            let now = Instant::now();
            // The pointer alone wakes the thread at most once per POINTER_POLL.
            let next_look = self.last_look + POINTER_POLL;
            if now >= next_look {
                let moved = if self.motion_events {
                    self.pointer_moved
                } else {
                    self.pointer() != self.last_pointer
                };
                if moved {
                    return true;
                }
            }
            if now >= deadline {
                // A pointer warped by an application moves without raw motion: look once per
                // wait, not once per frame.
                return self.motion_events && self.pointer() != self.last_pointer;
            }
            let limit = if now < next_look && (self.pointer_moved || !self.motion_events) {
                next_look - now
            } else if self.motion_events {
                // Nothing moved: only an event wakes the thread.
                deadline - now
            } else {
                POINTER_POLL
            };
            self.wait_readable(limit.min(deadline - now));
        }
    }

    fn with_frame(
        &mut self,
        f: &mut dyn FnMut(&FrameView<'_>, &FrameChanges<'_>),
    ) -> io::Result<()> {
        // Take the damage before capturing, so drawing during the capture is seen next time.
        self.drain_events()?;
        self.damaged = false;
        let damage = self.take_damage()?;
        let moves = self.moves();
        let (width, height) = self.size();
        let frame = self.capturer.frame()?;
        let stride = frame.len() / height.max(1);
        f(
            &FrameView {
                width,
                height,
                stride,
                bgrx: &frame,
            },
            &FrameChanges::captured_now(damage.as_deref(), &moves),
        );
        Ok(())
    }

    fn cursor(&mut self) -> CursorState {
        // Motion from here on wakes the next wait.
        self.pointer_moved = false;
        self.last_look = Instant::now();
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
