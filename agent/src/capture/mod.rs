//! Screen capture behind one trait, with a backend per platform: scrap (XShm) with DAMAGE and
//! XFIXES on X11, GDI on Windows.

use protocol::screen::{CursorShape, FrameChanges, FrameView};
use std::io;
use std::time::Duration;

#[cfg(target_os = "linux")]
mod x11;
#[cfg(target_os = "linux")]
pub use x11::X11Screen as PlatformScreen;

#[cfg(windows)]
mod gdi;
#[cfg(windows)]
pub use gdi::GdiScreen as PlatformScreen;

/// Where the cursor is and, when it changed, what it looks like.
pub struct CursorState {
    pub position: Option<(i16, i16)>,
    pub shape: Option<CursorShape>,
}

/// A screen the agent can share.
pub trait ScreenSource {
    /// Width and height in pixels.
    fn size(&self) -> (usize, usize);
    /// Waits up to `max_wait` for the screen or cursor to change; `true` if they may have.
    /// Backends that cannot tell return `true` after a short poll interval.
    fn wait_for_change(&mut self, max_wait: Duration) -> bool;
    /// Captures the screen now and hands it to `f`, with what the platform knows about what
    /// changed since the last capture.
    fn with_frame(
        &mut self,
        f: &mut dyn FnMut(&FrameView<'_>, &FrameChanges<'_>),
    ) -> io::Result<()>;
    /// The cursor right now.
    fn cursor(&mut self) -> CursorState;
}
