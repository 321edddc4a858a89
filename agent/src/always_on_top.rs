//! Keeps the session indicator in sight: above every other window, and back when something
//! covers or minimises it. While a session runs, the person at the PC must always see that it
//! runs and reach *Beenden*; a support technician with control must not be able to hide it.
//!
//! X11: the window asks the window manager for `_NET_WM_STATE_ABOVE` (EWMH), and watches its
//! own visibility and mapping on a connection of its own: covered, it raises itself; unmapped
//! (minimised), it maps itself again. Without a window manager the raise alone does it.
//! Windows: `HWND_TOPMOST`, and a minimised indicator is restored.

/// The indicator window, kept on top.
pub(crate) struct KeepOnTop {
    #[cfg(target_os = "linux")]
    x11: Option<x11::Watch>,
    #[cfg(windows)]
    hwnd: *mut core::ffi::c_void,
}

impl KeepOnTop {
    /// Starts keeping `window` on top; on X11 also says where its drawing area is.
    pub(crate) fn new(window: &minifb::Window) -> Self {
        #[cfg(target_os = "linux")]
        {
            let id = window.get_window_handle() as usize as u32;
            let x11 = x11::Watch::new(id)
                .inspect_err(|e| tracing::warn!(error = %e, "cannot keep the indicator on top"))
                .ok();
            Self { x11 }
        }
        #[cfg(windows)]
        {
            window.topmost(true);
            Self {
                hwnd: window.get_window_handle(),
            }
        }
        #[cfg(not(any(target_os = "linux", windows)))]
        {
            let _ = window;
            Self {}
        }
    }

    /// Looks at what happened to the window since the last call and undoes any hiding.
    pub(crate) fn tend(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(w) = &mut self.x11 {
            if let Err(e) = w.tend() {
                tracing::warn!(error = %e, "lost the X connection that keeps the indicator on top");
                self.x11 = None;
            }
        }
        #[cfg(windows)]
        {
            use windows::Win32::Foundation::HWND;
            use windows::Win32::UI::WindowsAndMessaging::{IsIconic, ShowWindow, SW_RESTORE};
            let hwnd = HWND(self.hwnd);
            // SAFETY: the handle is the indicator's live window, owned by this thread; the
            // topmost style minifb set stays through the restore.
            unsafe {
                if IsIconic(hwnd).as_bool() {
                    let _ = ShowWindow(hwnd, SW_RESTORE);
                }
            }
        }
    }
}

/// Where an X11 window's drawing area is on the screen: under a window manager it sits inside
/// the frame, not where the window asked to be put.
#[cfg(target_os = "linux")]
pub(crate) fn x11_client_origin(window: &minifb::Window) -> Option<(isize, isize)> {
    x11::origin(window.get_window_handle() as usize as u32).ok()
}

/// Where the pointer is in an X11 window's drawing area, asked of the X server now.
#[cfg(target_os = "linux")]
pub(crate) fn x11_pointer_in(window: &minifb::Window) -> Option<(i32, i32)> {
    x11::pointer(window.get_window_handle() as usize as u32).ok()
}

#[cfg(target_os = "linux")]
mod x11 {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{
        AtomEnum, ChangeWindowAttributesAux, ClientMessageEvent, ConfigureWindowAux,
        ConnectionExt as _, EventMask, StackMode, Visibility,
    };
    use x11rb::protocol::Event;
    use x11rb::rust_connection::RustConnection;
    use x11rb::wrapper::ConnectionExt as _;

    /// `_NET_WM_STATE` action: add.
    const NET_WM_STATE_ADD: u32 = 1;

    pub(super) struct Watch {
        conn: RustConnection,
        window: u32,
        root: u32,
        net_wm_state: u32,
        above: u32,
    }

    type Error = Box<dyn std::error::Error>;

    /// The drawing area's position on the root window.
    pub(super) fn origin(window: u32) -> Result<(isize, isize), Error> {
        let (conn, screen) = x11rb::connect(None)?;
        let root = conn.setup().roots[screen].root;
        let t = conn.translate_coordinates(window, root, 0, 0)?.reply()?;
        Ok((t.dst_x as isize, t.dst_y as isize))
    }

    /// The pointer's position relative to the window, if it is on the window's screen.
    pub(super) fn pointer(window: u32) -> Result<(i32, i32), Error> {
        let (conn, _) = x11rb::connect(None)?;
        let p = conn.query_pointer(window)?.reply()?;
        if !p.same_screen {
            return Err("the pointer is on another screen".into());
        }
        Ok((i32::from(p.win_x), i32::from(p.win_y)))
    }

    impl Watch {
        pub(super) fn new(window: u32) -> Result<Self, Error> {
            let (conn, screen) = x11rb::connect(None)?;
            let root = conn.setup().roots[screen].root;
            let atom = |name: &[u8]| -> Result<u32, Error> {
                Ok(conn.intern_atom(false, name)?.reply()?.atom)
            };
            let (net_wm_state, above) = (atom(b"_NET_WM_STATE")?, atom(b"_NET_WM_STATE_ABOVE")?);
            conn.change_window_attributes(
                window,
                &ChangeWindowAttributesAux::new()
                    .event_mask(EventMask::VISIBILITY_CHANGE | EventMask::STRUCTURE_NOTIFY),
            )?
            .check()?;
            let w = Self {
                conn,
                window,
                root,
                net_wm_state,
                above,
            };
            w.ask_above()?;
            w.raise()?;
            Ok(w)
        }

        /// Asks an EWMH window manager to keep the window above others: the request for a
        /// mapped window, and the property for a window manager that reads it on mapping.
        fn ask_above(&self) -> Result<(), Error> {
            self.conn.change_property32(
                x11rb::protocol::xproto::PropMode::REPLACE,
                self.window,
                self.net_wm_state,
                AtomEnum::ATOM,
                &[self.above],
            )?;
            let ev = ClientMessageEvent::new(
                32,
                self.window,
                self.net_wm_state,
                [NET_WM_STATE_ADD, self.above, 0, 1, 0],
            );
            self.conn.send_event(
                false,
                self.root,
                EventMask::SUBSTRUCTURE_REDIRECT | EventMask::SUBSTRUCTURE_NOTIFY,
                ev,
            )?;
            self.conn.flush()?;
            Ok(())
        }

        fn raise(&self) -> Result<(), Error> {
            self.conn.configure_window(
                self.window,
                &ConfigureWindowAux::new().stack_mode(StackMode::ABOVE),
            )?;
            self.conn.flush()?;
            Ok(())
        }

        /// Handles what happened since the last call.
        pub(super) fn tend(&mut self) -> Result<(), Error> {
            while let Some(ev) = self.conn.poll_for_event()? {
                match ev {
                    Event::VisibilityNotify(v) if v.state != Visibility::UNOBSCURED => {
                        tracing::info!("the indicator was covered: raised again");
                        self.raise()?;
                    }
                    Event::UnmapNotify(_) => {
                        tracing::info!("the indicator was hidden or minimised: shown again");
                        self.conn.map_window(self.window)?;
                        self.ask_above()?;
                        self.raise()?;
                    }
                    _ => {}
                }
            }
            Ok(())
        }
    }
}
