//! The pairing handshake: SPAKE2 over the session code, then key confirmation that
//! authenticates each side's endpoint id and direct addresses.
//!
//! Both sides send a SPAKE2 message and derive the shared key. The viewer then sends
//! `HMAC(key, role ‖ ticket ‖ staff name ‖ host name ‖ own endpoint)` together with that
//! endpoint ([`PeerEndpoint`]: id and direct addresses); the agent answers with its own only
//! after the viewer's MAC checked out. A matching MAC proves the peer knew the code, so the id it
//! sent is the only one to accept (agent) or dial (viewer) on the end-to-end connection, on
//! whatever path that connection takes. The relay carries these messages but, not knowing the
//! code, can neither read the key nor substitute an id or an address.
//!
//! Each side puts into the MAC what *it* was told about the session ([`PairingContext`]): the
//! agent its own host name and the staff name the relay announced, the viewer the staff name
//! it logged in as and the host it was given. If a relay tells the two sides different names,
//! the MACs differ and the pairing fails, so the name the consent dialog shows is the one the
//! viewer stated, not one the relay made up.
//!
//! Once verified, each side also derives a [`PairingProof`] from the key and hands it to the
//! relay. The relay starts the session (and only then writes it to the record and the ticket)
//! when both proofs are equal: an agent that merely claims a match, without knowing the code,
//! cannot produce the viewer's proof. The proof is a PRF output under the fresh key, so it tells
//! the relay nothing about the code or the key.
//!
//! The agent confirms last on purpose: a MAC lets its receiver test one code guess, so whoever
//! sees a MAC first must already have committed its own. A viewer that guesses therefore always
//! hands the agent a MAC, and every guess is counted by the agent (and rotated after 5).

use crate::ids::{SessionCode, TicketNumber};
use crate::peer::PeerEndpoint;
use crate::wire::{check_len, DecodeError, Reader, Writer};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};
use thiserror::Error;

/// Which end of the session this side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The PC being supported; SPAKE2 side B.
    Agent,
    /// The support technician; SPAKE2 side A.
    Viewer,
}

/// Why a pairing failed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PairingError {
    /// The peer used another code (or is not who it claims).
    #[error("code incorrect")]
    WrongCode,
    /// The peer's message could not be decoded.
    #[error("malformed pairing message: {0}")]
    Malformed(#[from] DecodeError),
    /// A message arrived that does not fit the handshake's state.
    #[error("pairing message out of order")]
    OutOfOrder,
}

/// What the caller does after handing the handshake a message.
#[derive(Debug, PartialEq, Eq)]
pub enum PairingStep {
    /// Send these bytes to the peer and wait for its next message.
    Send(Vec<u8>),
    /// Nothing to send; wait for the peer's next message.
    Wait,
    /// The peer proved it knows the code; accept only its endpoint, send `reply` if there is
    /// one, and give the relay `proof`.
    Verified {
        peer: PeerEndpoint,
        reply: Option<Vec<u8>>,
        proof: PairingProof,
    },
}

/// What each side hands the relay after a verified pairing: equal on both sides only if both
/// derived the same key for the same session (ticket, names, both endpoints).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PairingProof(pub [u8; 32]);

impl std::fmt::Debug for PairingProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not secret, but a log has no use for it.
        f.write_str("PairingProof(..)")
    }
}

/// What one side was told about the session, bound into the key confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingContext {
    /// The ticket both sides asked for.
    pub ticket: TicketNumber,
    /// The staff member the viewer acts as.
    pub staff_name: String,
    /// The agent's host name.
    pub host_name: String,
}

enum State {
    AwaitSpake(Spake2<Ed25519Group>),
    AwaitConfirm([u8; 32]),
    Finished,
}

/// One run of the handshake on one side.
pub struct Pairing {
    role: Role,
    context: PairingContext,
    state: State,
}

const TAG_SPAKE: u8 = 1;
const TAG_CONFIRM: u8 = 2;
const SPAKE_MSG_LEN: usize = 33;
/// The longest pairing message: a confirmation with the most direct addresses.
pub const MAX_PAIRING_MSG_LEN: usize = 1 + 32 + 32 + 1 + crate::peer::MAX_DIRECT_ADDRS * 19;

impl Pairing {
    /// Starts the handshake with randomness from `rng`; returns the state and the first
    /// message to send.
    pub fn start(
        role: Role,
        code: &SessionCode,
        context: PairingContext,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> (Self, Vec<u8>) {
        let mut password = code.as_password();
        password.extend_from_slice(&context.ticket.get().to_be_bytes());
        let pw = Password::new(&password);
        let (a, b) = (
            Identity::new(b"fernhilfe viewer"),
            Identity::new(b"fernhilfe agent"),
        );
        let (spake, msg) = match role {
            Role::Viewer => Spake2::<Ed25519Group>::start_a_with_rng(&pw, &a, &b, rng),
            Role::Agent => Spake2::<Ed25519Group>::start_b_with_rng(&pw, &a, &b, rng),
        };
        let mut w = Writer::new();
        w.u8(TAG_SPAKE).blob(&msg);
        (
            Self {
                role,
                context,
                state: State::AwaitSpake(spake),
            },
            w.finish(),
        )
    }

    /// Handles the peer's next message; `own` is this side's endpoint.
    pub fn handle(&mut self, msg: &[u8], own: &PeerEndpoint) -> Result<PairingStep, PairingError> {
        check_len("pairing message", msg, MAX_PAIRING_MSG_LEN)?;
        let mut r = Reader::new(msg);
        let tag = r.u8()?;
        match (std::mem::replace(&mut self.state, State::Finished), tag) {
            (State::AwaitSpake(spake), TAG_SPAKE) => {
                let peer = r.blob("spake2 message", SPAKE_MSG_LEN)?;
                r.finish()?;
                let key = spake.finish(peer).map_err(|_| PairingError::WrongCode)?;
                let key: [u8; 32] = key.try_into().map_err(|_| PairingError::WrongCode)?;
                self.state = State::AwaitConfirm(key);
                Ok(match self.role {
                    Role::Viewer => PairingStep::Send(self.confirm(&key, own)),
                    Role::Agent => PairingStep::Wait,
                })
            }
            (State::AwaitConfirm(key), TAG_CONFIRM) => {
                let mac = r.array::<32>()?;
                let peer = PeerEndpoint::decode_from(&mut r)?;
                r.finish()?;
                let peer_role = match self.role {
                    Role::Agent => Role::Viewer,
                    Role::Viewer => Role::Agent,
                };
                self.mac_state(&key, peer_role, &peer)
                    .verify_slice(&mac)
                    .map_err(|_| PairingError::WrongCode)?;
                let reply = (self.role == Role::Agent).then(|| self.confirm(&key, own));
                let (viewer, agent) = match self.role {
                    Role::Viewer => (own, &peer),
                    Role::Agent => (&peer, own),
                };
                let proof = self.proof(&key, viewer, agent);
                Ok(PairingStep::Verified { peer, reply, proof })
            }
            (_, TAG_SPAKE | TAG_CONFIRM) => Err(PairingError::OutOfOrder),
            (_, tag) => Err(DecodeError::UnknownTag {
                what: "pairing message",
                tag,
            }
            .into()),
        }
    }

    fn mac_state(&self, key: &[u8; 32], role: Role, endpoint: &PeerEndpoint) -> Hmac<Sha256> {
        let mut m = self.transcript(key, b"fernhilfe-confirm-v3");
        m.update(&[role as u8]);
        m.update(&endpoint.encode());
        m
    }

    /// The proof for the relay: its own label, so it can never be taken for a confirmation
    /// MAC, over the whole transcript (both endpoints, viewer first).
    fn proof(&self, key: &[u8; 32], viewer: &PeerEndpoint, agent: &PeerEndpoint) -> PairingProof {
        let mut m = self.transcript(key, b"fernhilfe-relay-proof-v1");
        m.update(&viewer.encode());
        m.update(&agent.encode());
        PairingProof(m.finalize().into_bytes().into())
    }

    /// HMAC under the pairing key over `label` and what this side was told of the session.
    fn transcript(&self, key: &[u8; 32], label: &[u8]) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(label);
        m.update(&self.context.ticket.get().to_be_bytes());
        // Length-prefixed, so no two name pairs give the same bytes.
        for name in [&self.context.staff_name, &self.context.host_name] {
            m.update(&(name.len() as u32).to_be_bytes());
            m.update(name.as_bytes());
        }
        m
    }

    fn confirm(&self, key: &[u8; 32], own: &PeerEndpoint) -> Vec<u8> {
        let mac: [u8; 32] = self
            .mac_state(key, self.role, own)
            .finalize()
            .into_bytes()
            .into();
        let mut w = Writer::new();
        w.u8(TAG_CONFIRM).bytes(&mac);
        own.encode_into(&mut w);
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_core::OsRng;

    fn endpoint(n: u8) -> PeerEndpoint {
        PeerEndpoint {
            id: [n; 32],
            direct_addrs: vec![std::net::SocketAddr::from((
                [192, 0, 2, n],
                4000 + u16::from(n),
            ))],
        }
    }

    fn ctx(staff: &str, host: &str) -> PairingContext {
        PairingContext {
            ticket: TicketNumber::from_u64(4711).unwrap(),
            staff_name: staff.into(),
            host_name: host.into(),
        }
    }

    /// Runs a whole handshake; returns the agent's and the viewer's final results.
    fn run(
        agent_code: &str,
        viewer_code: &str,
    ) -> (
        Result<PairingStep, PairingError>,
        Option<Result<PairingStep, PairingError>>,
    ) {
        run_with(
            agent_code,
            viewer_code,
            ctx("Anna", "PC-12"),
            ctx("Anna", "PC-12"),
        )
    }

    /// Runs a whole handshake where agent and viewer were told `agent_ctx` and `viewer_ctx`.
    fn run_with(
        agent_code: &str,
        viewer_code: &str,
        agent_ctx: PairingContext,
        viewer_ctx: PairingContext,
    ) -> (
        Result<PairingStep, PairingError>,
        Option<Result<PairingStep, PairingError>>,
    ) {
        let (afp, vfp) = (endpoint(1), endpoint(2));
        let (mut a, a1) = Pairing::start(
            Role::Agent,
            &agent_code.parse().unwrap(),
            agent_ctx,
            &mut OsRng,
        );
        let (mut v, v1) = Pairing::start(
            Role::Viewer,
            &viewer_code.parse().unwrap(),
            viewer_ctx,
            &mut OsRng,
        );
        assert_eq!(a.handle(&v1, &afp).unwrap(), PairingStep::Wait);
        let PairingStep::Send(v2) = v.handle(&a1, &vfp).unwrap() else {
            panic!("viewer confirms first")
        };
        let agent_result = a.handle(&v2, &afp);
        let viewer_result = match &agent_result {
            Ok(PairingStep::Verified {
                reply: Some(a2), ..
            }) => Some(v.handle(a2, &vfp)),
            _ => None,
        };
        (agent_result, viewer_result)
    }

    #[test]
    fn same_code_verifies_both_endpoints() {
        let (a, v) = run("123-456-789", "123456789");
        assert!(
            matches!(a, Ok(PairingStep::Verified { peer, reply: Some(_), .. }) if peer == endpoint(2))
        );
        assert!(matches!(
            v,
            Some(Ok(PairingStep::Verified { ref peer, reply: None, .. })) if *peer == endpoint(1)
        ));
    }

    /// Both sides hand the relay the same proof, and it is neither confirmation MAC: a relay
    /// that forwards the confirmations learns nothing it could present as a proof.
    #[test]
    fn both_sides_derive_the_same_relay_proof() {
        let (a, v) = run("123-456-789", "123-456-789");
        let (
            Ok(PairingStep::Verified {
                proof: pa,
                reply: Some(a2),
                ..
            }),
            Some(Ok(PairingStep::Verified { proof: pv, .. })),
        ) = (a, v)
        else {
            panic!("pairing failed")
        };
        assert_eq!(pa, pv);
        assert!(
            !a2.windows(32).any(|w| w == pa.0),
            "the proof is not the agent's MAC"
        );
        // Another run with the same code gives another proof (fresh key).
        let (Ok(PairingStep::Verified { proof: again, .. }), _) = run("123-456-789", "123-456-789")
        else {
            panic!("pairing failed")
        };
        assert_ne!(pa, again);
    }

    #[test]
    fn wrong_code_fails_at_the_agent_before_it_reveals_a_mac() {
        let (a, v) = run("123-456-789", "123-456-788");
        assert_eq!(a, Err(PairingError::WrongCode));
        assert_eq!(
            v, None,
            "the agent sends nothing the viewer could test a guess against"
        );
    }

    /// A relay that shows the person at the PC another staff name (or the viewer another PC)
    /// than the other side was told cannot get the pairing through.
    #[test]
    fn names_told_differently_by_the_relay_fail() {
        let code = "123-456-789";
        let (a, v) = run_with(code, code, ctx("Mallory", "PC-12"), ctx("Anna", "PC-12"));
        assert_eq!(a, Err(PairingError::WrongCode));
        assert_eq!(v, None);
        let (a, _) = run_with(code, code, ctx("Anna", "PC-12"), ctx("Anna", "PC-13"));
        assert_eq!(a, Err(PairingError::WrongCode));
        let other_ticket = PairingContext {
            ticket: TicketNumber::from_u64(4712).unwrap(),
            ..ctx("Anna", "PC-12")
        };
        let (a, _) = run_with(code, code, other_ticket, ctx("Anna", "PC-12"));
        assert_eq!(a, Err(PairingError::WrongCode));
        // Shifting bytes between the two names must not give the same transcript.
        let (a, _) = run_with(code, code, ctx("AnnaP", "C-12"), ctx("Anna", "PC-12"));
        assert_eq!(a, Err(PairingError::WrongCode));
    }

    /// A relay that swaps the endpoint id or a direct address cannot get it accepted.
    #[test]
    fn substituted_endpoint_fails() {
        let code: SessionCode = "111-111-111".parse().unwrap();
        // Byte 33 is in the id, the last byte in the address's port.
        for flip in [33, usize::MAX] {
            let (mut a, a1) = Pairing::start(Role::Agent, &code, ctx("A", "B"), &mut OsRng);
            let (mut v, v1) = Pairing::start(Role::Viewer, &code, ctx("A", "B"), &mut OsRng);
            assert_eq!(a.handle(&v1, &endpoint(1)).unwrap(), PairingStep::Wait);
            let PairingStep::Send(mut v2) = v.handle(&a1, &endpoint(2)).unwrap() else {
                panic!()
            };
            let at = flip.min(v2.len() - 1);
            v2[at] ^= 1;
            assert_eq!(
                a.handle(&v2, &endpoint(1)),
                Err(PairingError::WrongCode),
                "flipped byte {at}"
            );
        }
    }

    #[test]
    fn out_of_order_is_refused() {
        let (mut a, _) = Pairing::start(
            Role::Agent,
            &"000-000-000".parse().unwrap(),
            ctx("A", "B"),
            &mut OsRng,
        );
        let mut confirm = vec![TAG_CONFIRM];
        confirm.extend([0; 65]);
        assert_eq!(
            a.handle(&confirm, &endpoint(0)),
            Err(PairingError::OutOfOrder)
        );
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let (mut a, _) = Pairing::start(Role::Agent, &"000-000-000".parse().unwrap(), ctx("A", "B"), &mut OsRng);
            let _ = a.handle(&bytes, &endpoint(0));
        }
    }
}
