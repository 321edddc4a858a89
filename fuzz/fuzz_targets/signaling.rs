//! Messages between agent or viewer and the relay: decoding never panics, and whatever
//! decodes encodes back to bytes that decode to the same message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::signaling::{FromRelay, ToRelay};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ToRelay::decode(data) {
        assert_eq!(ToRelay::decode(&m.encode()).unwrap(), m);
    }
    if let Ok(m) = FromRelay::decode(data) {
        assert_eq!(FromRelay::decode(&m.encode()).unwrap(), m);
    }
});
