//! Everything Fernhilfe puts on the wire, with no IO of its own.
//!
//! Agent, viewer and relay are thin shells around this crate, the way quinn is around
//! quinn-proto: they move bytes between sockets, windows and these types. Every decoder here
//! checks lengths and counts before it reads or allocates, and returns a typed error, so
//! hostile bytes from the network can cost at most a bounded amount of memory and no panic.
//!
//! - [`ids`]: ticket numbers, session codes, host and staff names.
//! - [`wire`]: the bounded reader/writer and the length-prefixed framing every channel uses.
//! - [`signaling`]: messages between agent or viewer and the relay (registration, staff
//!   login, pairing relay); the relay only ever sees these, never session content.
//! - [`staff_token`]: a staff member's login token, which names its holder.
//! - [`pairing`]: the SPAKE2 handshake over the session code that authenticates the
//!   endpoint ids of the end-to-end connection.
//! - [`peer`]: an endpoint id and its direct addresses, as the pairing confirms them.
//! - [`session`]: messages of the end-to-end session (consent, input, acknowledgements).
//! - [`screen`]: the screen codec (copies, per-rectangle kinds, a session-long pixel stream)
//!   and the cursor.
//! - [`consent`]: what the person at the PC has granted, and what that allows.
//! - [`sender`]: the address a relay's bounds count a sender under.
//! - [`agent_session`], [`viewer_session`]: each side's running session as a state machine
//!   (consent gate, end rules, acknowledgements, limits from [`session_limits`]); the tests in
//!   `session_pair.rs` drive the two against each other in memory.
//! - [`status`]: the status lines agent and viewer print for scripts and tests.

pub mod agent_session;
pub mod consent;
pub mod fingerprint;
pub mod hex;
pub mod ids;
pub mod link;
pub mod pairing;
pub mod peer;
pub mod screen;
pub mod sender;
pub mod session;
pub mod session_limits;
#[cfg(test)]
mod session_pair;
pub mod signaling;
pub mod staff_token;
pub mod status;
pub mod viewer_session;
pub mod wire;

/// Version of the wire protocol; both sides and the relay must agree.
pub const PROTOCOL_VERSION: u16 = 7;
/// ALPN of the agent/viewer connection to the relay.
pub const RELAY_ALPN: &[u8] = b"fernhilfe-relay/1";
/// ALPN of the end-to-end session connection between agent and viewer.
pub const SESSION_ALPN: &[u8] = b"fernhilfe-session/3";
/// The path of the signaling upgrade on the relay's HTTPS listener (signaling over TCP/443).
pub const SIGNAL_PATH: &str = "/fernhilfe/signal";
/// The protocol the signaling upgrade names (`Upgrade:` header).
pub const SIGNAL_UPGRADE: &str = "fernhilfe-signal/1";
