//! Screen capture behind one trait, with a backend per platform: scrap (XShm) with DAMAGE and
//! XFIXES on X11; on Windows DXGI Desktop Duplication, or GDI where duplication is refused.

use protocol::screen::{CursorShape, FrameChanges, FrameView};
use std::io;
use std::time::Duration;

#[cfg(target_os = "linux")]
mod x11;
#[cfg(target_os = "linux")]
pub(crate) use x11::X11Screen as PlatformScreen;

#[cfg(windows)]
mod dxgi;
#[cfg(windows)]
mod gdi;

/// Windows: Desktop Duplication where the system allows it, GDI otherwise.
#[cfg(windows)]
pub enum PlatformScreen {
    Dxgi(dxgi::DxgiScreen),
    Gdi(gdi::GdiScreen),
}

#[cfg(windows)]
impl PlatformScreen {
    /// Tries Desktop Duplication first.
    pub fn open() -> io::Result<Self> {
        match dxgi::DxgiScreen::open() {
            Ok(s) => Ok(Self::Dxgi(s)),
            Err(e) => {
                tracing::info!(error = %e, "no desktop duplication here; capturing with GDI");
                gdi::GdiScreen::open().map(Self::Gdi)
            }
        }
    }

    fn source(&mut self) -> &mut dyn ScreenSource {
        match self {
            Self::Dxgi(s) => s,
            Self::Gdi(s) => s,
        }
    }
}

#[cfg(windows)]
impl ScreenSource for PlatformScreen {
    fn size(&self) -> (usize, usize) {
        match self {
            Self::Dxgi(s) => s.size(),
            Self::Gdi(s) => s.size(),
        }
    }

    fn wait_for_change(&mut self, max_wait: Duration) -> bool {
        self.source().wait_for_change(max_wait)
    }

    fn with_frame(
        &mut self,
        f: &mut dyn FnMut(&FrameView<'_>, &FrameChanges<'_>),
    ) -> io::Result<()> {
        self.source().with_frame(f)
    }

    fn cursor(&mut self) -> CursorState {
        self.source().cursor()
    }
}

/// Where the cursor is and, when it changed, what it looks like.
pub(crate) struct CursorState {
    pub position: Option<(i16, i16)>,
    pub shape: Option<CursorShape>,
}

/// A screen the agent can share.
pub(crate) trait ScreenSource {
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
