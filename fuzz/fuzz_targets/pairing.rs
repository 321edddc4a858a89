//! The pairing state machine on both sides, fed an arbitrary sequence of messages (the input
//! split at 0xFF 0xFE markers), each also possibly a valid message from a real peer: it never
//! panics, and never verifies a peer that did not know the code.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::peer::PeerEndpoint;
use protocol::ids::TicketNumber;
use protocol::pairing::{Pairing, PairingContext, PairingStep, Role};

/// A fixed random source: fuzzing must be deterministic.
struct Fixed(u64);
impl rand_core::RngCore for Fixed {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0
    }
    fn fill_bytes(&mut self, d: &mut [u8]) {
        for b in d {
            *b = self.next_u64() as u8;
        }
    }
    fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(d);
        Ok(())
    }
}
impl rand_core::CryptoRng for Fixed {}

fuzz_target!(|data: &[u8]| {
    let context = PairingContext {
        ticket: TicketNumber::from_u64(4711).unwrap(),
        staff_name: "Anna".into(),
        host_name: "PC-12".into(),
    };
    let code = "123-456-789".parse().unwrap();
    let mut rng = Fixed(1);
    for role in [Role::Agent, Role::Viewer] {
        let (mut p, _first) = Pairing::start(role, &code, context.clone(), &mut rng);
        for msg in data.split(|b| *b == 0xFE) {
            match p.handle(msg, &PeerEndpoint { id: [3; 32], direct_addrs: Vec::new() }) {
                // Fuzzed bytes cannot know the key: a verification would be a break of SPAKE2.
                Ok(PairingStep::Verified { .. }) => panic!("verified a peer without the code"),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
});
