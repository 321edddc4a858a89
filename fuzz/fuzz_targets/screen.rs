//! Screen updates: a sequence of hostile updates never makes the decoder panic, and what it
//! applies stays inside the framebuffer (the viewer does exactly this with every update).
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::screen::{Framebuffer, ScreenDecoder};

fuzz_target!(|data: &[u8]| {
    let mut decoder = ScreenDecoder::new();
    let mut fb = Framebuffer::default();
    // Several updates in a row, split at 0xFE bytes, so continued streams are fuzzed too.
    for update in data.split(|b| *b == 0xFE) {
        if decoder.apply(update, &mut fb).is_err() {
            break;
        }
        fb.show_cursor();
        fb.hide_cursor();
    }
});
