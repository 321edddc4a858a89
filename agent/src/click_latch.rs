//! Windows: every left-button press on an agent window, and where it landed, kept until the
//! window's loop asks for it. minifb says only whether the button is down at the moment the
//! loop looks; a press and its release that both arrive between two looks (a quick click while
//! the UI thread was held up, e.g. under Wine with its server busy) were lost. A click on
//! *Beenden* must never be: the window acts on the press message itself.

use std::cell::RefCell;
use windows::Win32::Foundation::{HWND, LPARAM, LRESULT, WPARAM};
use windows::Win32::UI::WindowsAndMessaging::{
    CallWindowProcW, DefWindowProcW, SetWindowLongPtrW, GWLP_WNDPROC, WM_LBUTTONDOWN, WNDPROC,
};

/// Presses kept per window at most; a window that is not looked at keeps the first ones.
const MAX_PRESSES: usize = 16;

/// One latched window: its handle, the window procedure minifb gave it, the presses since the
/// last look (client coordinates).
struct Latched {
    hwnd: isize,
    previous: WNDPROC,
    presses: Vec<(i32, i32)>,
}

thread_local! {
    /// The latched windows of this thread; a window procedure runs on its window's thread.
    static LATCHED: RefCell<Vec<Latched>> = const { RefCell::new(Vec::new()) };
}

/// Keeps a window's presses; gives the window its own procedure back when dropped.
pub struct ClickLatch {
    hwnd: isize,
}

impl ClickLatch {
    /// Starts keeping the presses on `window`, which must belong to this thread.
    pub fn install(window: &minifb::Window) -> Self {
        let hwnd = window.get_window_handle() as isize;
        // SAFETY: the handle is a live window of this thread; `latch_proc` has the signature
        // of a window procedure and hands every message on to the one it replaces.
        let previous = unsafe {
            SetWindowLongPtrW(
                HWND(hwnd as *mut _),
                GWLP_WNDPROC,
                latch_proc as *const () as isize,
            )
        };
        // SAFETY: GWLP_WNDPROC holds a window procedure pointer (or 0, which is `None`).
        let previous: WNDPROC = unsafe { std::mem::transmute::<isize, WNDPROC>(previous) };
        LATCHED.with(|l| {
            l.borrow_mut().push(Latched {
                hwnd,
                previous,
                presses: Vec::new(),
            })
        });
        Self { hwnd }
    }

    /// The presses since the last call, oldest first, in client coordinates.
    pub fn take(&self) -> Vec<(i32, i32)> {
        LATCHED.with(|l| {
            l.borrow_mut()
                .iter_mut()
                .find(|e| e.hwnd == self.hwnd)
                .map(|e| std::mem::take(&mut e.presses))
                .unwrap_or_default()
        })
    }
}

impl Drop for ClickLatch {
    fn drop(&mut self) {
        LATCHED.with(|l| {
            let mut l = l.borrow_mut();
            if let Some(i) = l.iter().position(|e| e.hwnd == self.hwnd) {
                let e = l.remove(i);
                if let Some(previous) = e.previous {
                    // SAFETY: restores the procedure the window had; if the window is gone
                    // already, the call fails and does nothing.
                    unsafe {
                        SetWindowLongPtrW(
                            HWND(self.hwnd as *mut _),
                            GWLP_WNDPROC,
                            previous as usize as isize,
                        );
                    }
                }
            }
        });
    }
}

/// Notes a left-button press, then lets the window's own procedure handle the message.
unsafe extern "system" fn latch_proc(
    hwnd: HWND,
    msg: u32,
    wparam: WPARAM,
    lparam: LPARAM,
) -> LRESULT {
    let previous = LATCHED.with(|l| {
        let mut l = l.borrow_mut();
        let e = l.iter_mut().find(|e| e.hwnd == hwnd.0 as isize)?;
        if msg == WM_LBUTTONDOWN && e.presses.len() < MAX_PRESSES {
            // Client coordinates, signed 16-bit each (GET_X_LPARAM / GET_Y_LPARAM).
            let x = i32::from(lparam.0 as u16 as i16);
            let y = i32::from((lparam.0 >> 16) as u16 as i16);
            e.presses.push((x, y));
        }
        Some(e.previous)
    });
    // Outside the borrow: the procedure may send messages that come back here.
    match previous {
        // SAFETY: the window's own procedure, with the message as it came.
        Some(p) => unsafe { CallWindowProcW(p, hwnd, msg, wparam, lparam) },
        // SAFETY: no latch for this window (any more): the default handling.
        None => unsafe { DefWindowProcW(hwnd, msg, wparam, lparam) },
    }
}
