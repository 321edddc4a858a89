//! Property tests over *valid* messages of every kind and variant: each round-trips exactly,
//! and every mutation of it (flipped, dropped, inserted bytes, truncation) decodes to an error
//! or to some message that itself round-trips, never to a panic. Random bytes mostly die at
//! the first tag byte; mutated valid messages reach the deep branches of the decoders.

// Test and benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used)]

use proptest::collection::vec;
use proptest::prelude::*;
use protocol::consent::Grant;
use protocol::ids::TicketNumber;
use protocol::session::{
    AgentMessage, EndReason, InputEvent, Key, MouseButton, NamedKey, ViewerMessage,
};
use protocol::signaling::{FromRelay, Refusal, StaffToken, ToRelay, MAX_LISTED_AGENTS};

fn ticket() -> impl Strategy<Value = TicketNumber> {
    (1u64..1_000_000_000_000).prop_map(|n| TicketNumber::from_u64(n).unwrap())
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9äöüß][A-Za-z0-9äöüß .()-]{0,30}"
}

fn host() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,62}"
}

/// A host as the relay lists it: the name, with its place where names repeat.
fn host_choice() -> impl Strategy<Value = String> {
    (host(), proptest::option::of(1u8..=99)).prop_map(|(h, place)| match place {
        Some(p) => format!("{h}~{p}"),
        None => h,
    })
}

fn blob() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=256)
}

fn to_relay() -> impl Strategy<Value = ToRelay> {
    prop_oneof![
        (any::<u16>(), ticket(), host(), name()).prop_map(
            |(version, ticket, host_name, agent_version)| ToRelay::RegisterAgent {
                version,
                ticket,
                host_name,
                agent_version,
            }
        ),
        (
            any::<u16>(),
            "[a-z0-9_]{0,128}",
            ticket(),
            proptest::option::of(host_choice())
        )
            .prop_map(
                |(version, token, ticket, host_name)| ToRelay::JoinAsViewer {
                    version,
                    token: StaffToken(token),
                    ticket,
                    host_name,
                }
            ),
        (any::<u64>(), blob()).prop_map(|(pairing, msg)| ToRelay::Pairing { pairing, msg }),
        (any::<u64>(), proptest::option::of(any::<[u8; 32]>())).prop_map(|(pairing, proof)| {
            ToRelay::PairingOutcome {
                pairing,
                proof: proof.map(protocol::pairing::PairingProof),
            }
        }),
        (any::<u64>(), any::<u32>()).prop_map(|(pairing, retry_after_secs)| {
            ToRelay::PairingDeferred {
                pairing,
                retry_after_secs,
            }
        }),
        Just(ToRelay::Renew),
        grant().prop_map(|grant| ToRelay::ConsentReport { grant }),
        (end_reason(), any::<u64>(), any::<u64>()).prop_map(
            |(reason, bytes_sent, bytes_received)| ToRelay::EndReport {
                reason,
                bytes_sent,
                bytes_received,
            }
        ),
    ]
}

fn refusal() -> impl Strategy<Value = Refusal> {
    prop_oneof![
        Just(Refusal::UnknownTicket),
        Just(Refusal::BadStaffToken),
        Just(Refusal::WrongCode),
        any::<u32>().prop_map(|retry_after_secs| Refusal::TooManyAttempts { retry_after_secs }),
        Just(Refusal::AgentBusy),
        vec(host_choice(), 0..=MAX_LISTED_AGENTS)
            .prop_map(|hosts| Refusal::AmbiguousAgent { hosts }),
        any::<u16>().prop_map(|relay_version| Refusal::VersionMismatch { relay_version }),
        Just(Refusal::ProtocolViolation),
        Just(Refusal::PeerLeft),
        Just(Refusal::Overloaded),
        Just(Refusal::HostNameTaken),
        Just(Refusal::TooManyFromAddress),
        Just(Refusal::RegistrationExpired),
        Just(Refusal::TicketNotInSystem),
        Just(Refusal::TicketClosed),
        Just(Refusal::TicketCheckUnavailable),
    ]
}

fn from_relay() -> impl Strategy<Value = FromRelay> {
    prop_oneof![
        any::<u32>().prop_map(|renew_within_secs| FromRelay::AgentRegistered { renew_within_secs }),
        (any::<u64>(), name()).prop_map(|(pairing, staff_name)| FromRelay::ViewerJoined {
            pairing,
            staff_name
        }),
        (any::<u64>(), host(), name()).prop_map(|(pairing, host_name, staff_name)| {
            FromRelay::AgentChosen {
                pairing,
                host_name,
                staff_name,
            }
        }),
        (any::<u64>(), blob()).prop_map(|(pairing, msg)| FromRelay::Pairing { pairing, msg }),
        Just(FromRelay::PairingSucceeded),
        any::<u64>().prop_map(|pairing| FromRelay::ViewerLeft { pairing }),
        refusal().prop_map(FromRelay::Refused),
    ]
}

fn named_key() -> impl Strategy<Value = NamedKey> {
    use NamedKey::*;
    prop_oneof![
        prop::sample::select(vec![
            Return, Backspace, Tab, Escape, Delete, Insert, Left, Right, Up, Down, Home, End,
            PageUp, PageDown, Space, Shift, Control, Alt, Meta, CapsLock,
        ]),
        (1u8..=12).prop_map(F),
    ]
}

fn input() -> impl Strategy<Value = InputEvent> {
    let button = prop::sample::select(vec![
        MouseButton::Left,
        MouseButton::Middle,
        MouseButton::Right,
    ]);
    prop_oneof![
        (any::<u16>(), any::<u16>()).prop_map(|(x, y)| InputEvent::PointerMove { x, y }),
        (button, any::<bool>())
            .prop_map(|(button, pressed)| InputEvent::Button { button, pressed }),
        {
            let n = protocol::session::MAX_WHEEL_NOTCHES;
            (-n..=n, -n..=n).prop_map(|(dx, dy)| InputEvent::Wheel { dx, dy })
        },
        (
            prop_oneof![
                named_key().prop_map(Key::Named),
                any::<char>().prop_map(Key::Char)
            ],
            any::<bool>()
        )
            .prop_map(|(key, pressed)| InputEvent::Key { key, pressed }),
        "[a-zA-Z0-9äöüß€ \\n\\t.,!?]{0,80}".prop_map(InputEvent::Text),
    ]
}

fn end_reason() -> impl Strategy<Value = EndReason> {
    prop::sample::select(EndReason::ALL.to_vec())
}

fn viewer_message() -> impl Strategy<Value = ViewerMessage> {
    prop_oneof![
        input().prop_map(ViewerMessage::Input),
        any::<u64>().prop_map(|seq| ViewerMessage::FrameAck { seq }),
        end_reason().prop_map(ViewerMessage::End),
    ]
}

fn grant() -> impl Strategy<Value = Grant> {
    prop::sample::select(vec![Grant::Denied, Grant::View, Grant::Control])
}

fn agent_message() -> impl Strategy<Value = AgentMessage> {
    prop_oneof![
        grant().prop_map(AgentMessage::Grant),
        end_reason().prop_map(AgentMessage::End),
    ]
}

/// One way to damage a message.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Drop { at: usize },
    Insert { at: usize, byte: u8 },
    Truncate { at: usize },
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        any::<usize>().prop_map(|at| Mutation::Drop { at }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        vec(any::<u8>(), 1..8).prop_map(Mutation::Append),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let n = bytes.len();
        match m {
            Mutation::Flip { at, xor } if n > 0 => bytes[at % n] ^= xor,
            Mutation::Drop { at } if n > 0 => {
                bytes.remove(at % n);
            }
            Mutation::Insert { at, byte } => bytes.insert(at % (n + 1), *byte),
            Mutation::Truncate { at } => bytes.truncate(at % (n + 1)),
            Mutation::Append(tail) => bytes.extend_from_slice(tail),
            _ => {}
        }
    }
    bytes
}

/// Checks the round trip of `m`, then that every mutation decodes cleanly or to a message
/// that round-trips itself.
macro_rules! check_codec {
    ($ty:ty, $m:expr, $mutations:expr) => {{
        let m: $ty = $m;
        let bytes = m.encode();
        prop_assert_eq!(<$ty>::decode(&bytes).unwrap(), m);
        let bad = mutate(bytes, &$mutations);
        if let Ok(other) = <$ty>::decode(&bad) {
            prop_assert_eq!(<$ty>::decode(&other.encode()).unwrap(), other);
        }
    }};
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn to_relay_valid_and_mutated(m in to_relay(), muts in vec(mutation(), 1..4)) {
        check_codec!(ToRelay, m, muts);
    }

    #[test]
    fn from_relay_valid_and_mutated(m in from_relay(), muts in vec(mutation(), 1..4)) {
        check_codec!(FromRelay, m, muts);
    }

    #[test]
    fn viewer_messages_valid_and_mutated(m in viewer_message(), muts in vec(mutation(), 1..4)) {
        check_codec!(ViewerMessage, m, muts);
    }

    #[test]
    fn agent_messages_valid_and_mutated(m in agent_message(), muts in vec(mutation(), 1..4)) {
        check_codec!(AgentMessage, m, muts);
    }
}
