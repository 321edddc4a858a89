//! Screen updates: decoding never panics, and a decoded update applies to a framebuffer
//! without panicking (the viewer does exactly this with every update it receives).
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::screen::{Framebuffer, ScreenUpdate};

fuzz_target!(|data: &[u8]| {
    if let Ok(u) = ScreenUpdate::decode(data) {
        let mut fb = Framebuffer::default();
        fb.apply(&u);
        let _ = fb.with_cursor();
    }
});
