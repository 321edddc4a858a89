//! Windows: GDI BitBlt of the whole desktop into a DIB section. Works on every Windows
//! version and in RDP sessions; DXGI Desktop Duplication (change-driven, cheaper) is the
//! planned faster backend. GDI cannot say what changed, so this backend polls.

use super::{CursorState, ScreenSource};
use protocol::screen::{FrameChanges, FrameView};
use std::io;
use std::time::Duration;
use windows::Win32::Foundation::POINT;
use windows::Win32::Graphics::Gdi::{
    BitBlt, CreateCompatibleDC, CreateDIBSection, DeleteDC, DeleteObject, GetDC, ReleaseDC,
    SelectObject, BITMAPINFO, BITMAPINFOHEADER, BI_RGB, CAPTUREBLT, DIB_RGB_COLORS, HBITMAP, HDC,
    HGDIOBJ, SRCCOPY,
};
use windows::Win32::UI::WindowsAndMessaging::{
    GetCursorPos, GetSystemMetrics, SM_CXSCREEN, SM_CYSCREEN,
};

/// Poll interval: GDI has no change notification.
const POLL: Duration = Duration::from_millis(33);

/// The primary monitor via GDI.
pub struct GdiScreen {
    width: usize,
    height: usize,
    mem_dc: HDC,
    bitmap: HBITMAP,
    old: HGDIOBJ,
    bits: *mut u8,
}

impl GdiScreen {
    /// Prepares a DIB section the size of the primary monitor.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain GDI calls on handles this struct owns; every handle is checked and
        // released in Drop.
        unsafe {
            let width = GetSystemMetrics(SM_CXSCREEN).max(1) as usize;
            let height = GetSystemMetrics(SM_CYSCREEN).max(1) as usize;
            let screen = GetDC(None);
            let mem_dc = CreateCompatibleDC(Some(screen));
            ReleaseDC(None, screen);
            let info = BITMAPINFO {
                bmiHeader: BITMAPINFOHEADER {
                    biSize: std::mem::size_of::<BITMAPINFOHEADER>() as u32,
                    biWidth: width as i32,
                    biHeight: -(height as i32),
                    biPlanes: 1,
                    biBitCount: 32,
                    biCompression: BI_RGB.0,
                    ..Default::default()
                },
                ..Default::default()
            };
            let mut bits = std::ptr::null_mut();
            let bitmap = CreateDIBSection(Some(mem_dc), &info, DIB_RGB_COLORS, &mut bits, None, 0)
                .map_err(io::Error::other)?;
            let old = SelectObject(mem_dc, bitmap.into());
            Ok(Self {
                width,
                height,
                mem_dc,
                bitmap,
                old,
                bits: bits as *mut u8,
            })
        }
    }
}

impl Drop for GdiScreen {
    fn drop(&mut self) {
        // SAFETY: releases exactly the handles created in `open`.
        unsafe {
            SelectObject(self.mem_dc, self.old);
            let _ = DeleteObject(self.bitmap.into());
            let _ = DeleteDC(self.mem_dc);
        }
    }
}

impl ScreenSource for GdiScreen {
    fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn wait_for_change(&mut self, max_wait: Duration) -> bool {
        std::thread::sleep(POLL.min(max_wait));
        true
    }

    fn with_frame(
        &mut self,
        f: &mut dyn FnMut(&FrameView<'_>, &FrameChanges<'_>),
    ) -> io::Result<()> {
        // SAFETY: the DIB section is width*height*4 bytes and lives as long as self.
        unsafe {
            let screen = GetDC(None);
            let ok = BitBlt(
                self.mem_dc,
                0,
                0,
                self.width as i32,
                self.height as i32,
                Some(screen),
                0,
                0,
                SRCCOPY | CAPTUREBLT,
            );
            ReleaseDC(None, screen);
            ok.map_err(io::Error::other)?;
            let bgrx = std::slice::from_raw_parts(self.bits, self.width * self.height * 4);
            // GDI cannot say what changed: the encoder compares the whole screen.
            f(
                &FrameView {
                    width: self.width,
                    height: self.height,
                    stride: self.width * 4,
                    bgrx,
                },
                &FrameChanges::captured_now(None, &[]),
            );
        }
        Ok(())
    }

    fn cursor(&mut self) -> CursorState {
        let mut p = POINT::default();
        // SAFETY: GetCursorPos writes one POINT.
        let position = unsafe { GetCursorPos(&mut p) }
            .ok()
            .map(|_| (p.x as i16, p.y as i16));
        CursorState {
            position,
            shape: None,
        }
    }
}
