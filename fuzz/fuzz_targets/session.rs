//! End-to-end control messages: decoding never panics, and whatever decodes round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::session::{AgentMessage, ViewerMessage};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ViewerMessage::decode(data) {
        assert_eq!(ViewerMessage::decode(&m.encode()).unwrap(), m);
    }
    if let Ok(m) = AgentMessage::decode(data) {
        assert_eq!(AgentMessage::decode(&m.encode()).unwrap(), m);
    }
});
