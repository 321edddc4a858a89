//! The length-prefixed framing, fed the input in chunks whose sizes the input's first bytes
//! choose: every frame it returns fits the bound, and it never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::wire::FrameDecoder;

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let mut d = FrameDecoder::new(MAX);
    let step = usize::from(split).max(1);
    for chunk in rest.chunks(step) {
        if d.push(chunk).is_err() {
            return;
        }
        while let Ok(Some(f)) = d.next_frame() {
            assert!(f.len() <= MAX);
        }
    }
});
