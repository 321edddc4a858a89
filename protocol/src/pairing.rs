//! The pairing handshake: SPAKE2 over the session code, then key confirmation that
//! authenticates each side's certificate fingerprint.
//!
//! Both sides send a SPAKE2 message and derive the shared key. The viewer then sends
//! `HMAC(key, role ‖ ticket ‖ own certificate fingerprint)` together with that fingerprint; the
//! agent answers with its own only after the viewer's MAC checked out. A matching MAC proves the
//! peer knew the code, so the fingerprint it sent is the one to pin on the end-to-end TLS
//! connection. The relay carries these messages but, not knowing the code, can neither read the
//! key nor substitute a certificate.
//!
//! The agent confirms last on purpose: a MAC lets its receiver test one code guess, so whoever
//! sees a MAC first must already have committed its own. A viewer that guesses therefore always
//! hands the agent a MAC, and every guess is counted by the agent (and rotated after 5).

use crate::fingerprint::CertFingerprint;
use crate::ids::{SessionCode, TicketNumber};
use crate::wire::{DecodeError, Reader, Writer};
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
    /// The peer proved it knows the code; pin its certificate, and send `reply` if there is one.
    Verified {
        peer: CertFingerprint,
        reply: Option<Vec<u8>>,
    },
}

enum State {
    AwaitSpake(Spake2<Ed25519Group>),
    AwaitConfirm([u8; 32]),
    Finished,
}

/// One run of the handshake on one side.
pub struct Pairing {
    role: Role,
    ticket: TicketNumber,
    state: State,
}

const TAG_SPAKE: u8 = 1;
const TAG_CONFIRM: u8 = 2;
const SPAKE_MSG_LEN: usize = 33;

impl Pairing {
    /// Starts the handshake; returns the state and the first message to send.
    pub fn start(role: Role, code: &SessionCode, ticket: TicketNumber) -> (Self, Vec<u8>) {
        let mut password = code.as_password();
        password.extend_from_slice(&ticket.get().to_be_bytes());
        let pw = Password::new(&password);
        let (a, b) = (
            Identity::new(b"fernhilfe viewer"),
            Identity::new(b"fernhilfe agent"),
        );
        let (spake, msg) = match role {
            Role::Viewer => Spake2::<Ed25519Group>::start_a(&pw, &a, &b),
            Role::Agent => Spake2::<Ed25519Group>::start_b(&pw, &a, &b),
        };
        let mut w = Writer::new();
        w.u8(TAG_SPAKE).blob(&msg);
        (
            Self {
                role,
                ticket,
                state: State::AwaitSpake(spake),
            },
            w.finish(),
        )
    }

    /// Handles the peer's next message; `own` is this side's certificate fingerprint.
    pub fn handle(
        &mut self,
        msg: &[u8],
        own: CertFingerprint,
    ) -> Result<PairingStep, PairingError> {
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
                    Role::Viewer => PairingStep::Send(self.confirm(&key, &own)),
                    Role::Agent => PairingStep::Wait,
                })
            }
            (State::AwaitConfirm(key), TAG_CONFIRM) => {
                let mac = r.array::<32>()?;
                let fp = CertFingerprint(r.array::<32>()?);
                r.finish()?;
                let peer_role = match self.role {
                    Role::Agent => Role::Viewer,
                    Role::Viewer => Role::Agent,
                };
                self.mac_state(&key, peer_role, &fp)
                    .verify_slice(&mac)
                    .map_err(|_| PairingError::WrongCode)?;
                let reply = (self.role == Role::Agent).then(|| self.confirm(&key, &own));
                Ok(PairingStep::Verified { peer: fp, reply })
            }
            (_, TAG_SPAKE | TAG_CONFIRM) => Err(PairingError::OutOfOrder),
            (_, tag) => Err(DecodeError::UnknownTag {
                what: "pairing message",
                tag,
            }
            .into()),
        }
    }

    fn mac_state(&self, key: &[u8; 32], role: Role, fp: &CertFingerprint) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(b"fernhilfe-confirm-v1");
        m.update(&[role as u8]);
        m.update(&self.ticket.get().to_be_bytes());
        m.update(&fp.0);
        m
    }

    fn confirm(&self, key: &[u8; 32], own: &CertFingerprint) -> Vec<u8> {
        let mac: [u8; 32] = self
            .mac_state(key, self.role, own)
            .finalize()
            .into_bytes()
            .into();
        let mut w = Writer::new();
        w.u8(TAG_CONFIRM).bytes(&mac).bytes(&own.0);
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs a whole handshake; returns the agent's and the viewer's final results.
    fn run(
        agent_code: &str,
        viewer_code: &str,
    ) -> (
        Result<PairingStep, PairingError>,
        Option<Result<PairingStep, PairingError>>,
    ) {
        let ticket = TicketNumber::from_u64(4711).unwrap();
        let (afp, vfp) = (CertFingerprint([1; 32]), CertFingerprint([2; 32]));
        let (mut a, a1) = Pairing::start(Role::Agent, &agent_code.parse().unwrap(), ticket);
        let (mut v, v1) = Pairing::start(Role::Viewer, &viewer_code.parse().unwrap(), ticket);
        assert_eq!(a.handle(&v1, afp).unwrap(), PairingStep::Wait);
        let PairingStep::Send(v2) = v.handle(&a1, vfp).unwrap() else {
            panic!("viewer confirms first")
        };
        let agent_result = a.handle(&v2, afp);
        let viewer_result = match &agent_result {
            Ok(PairingStep::Verified {
                reply: Some(a2), ..
            }) => Some(v.handle(a2, vfp)),
            _ => None,
        };
        (agent_result, viewer_result)
    }

    #[test]
    fn same_code_verifies_both_fingerprints() {
        let (a, v) = run("123-456", "123456");
        assert!(
            matches!(a, Ok(PairingStep::Verified { peer, reply: Some(_) }) if peer == CertFingerprint([2; 32]))
        );
        assert_eq!(
            v,
            Some(Ok(PairingStep::Verified {
                peer: CertFingerprint([1; 32]),
                reply: None
            }))
        );
    }

    #[test]
    fn wrong_code_fails_at_the_agent_before_it_reveals_a_mac() {
        let (a, v) = run("123-456", "123-457");
        assert_eq!(a, Err(PairingError::WrongCode));
        assert_eq!(
            v, None,
            "the agent sends nothing the viewer could test a guess against"
        );
    }

    #[test]
    fn substituted_fingerprint_fails() {
        let ticket = TicketNumber::from_u64(4711).unwrap();
        let code: SessionCode = "111-111".parse().unwrap();
        let (mut a, a1) = Pairing::start(Role::Agent, &code, ticket);
        let (mut v, v1) = Pairing::start(Role::Viewer, &code, ticket);
        assert_eq!(
            a.handle(&v1, CertFingerprint([1; 32])).unwrap(),
            PairingStep::Wait
        );
        let PairingStep::Send(mut v2) = v.handle(&a1, CertFingerprint([2; 32])).unwrap() else {
            panic!()
        };
        let n = v2.len();
        v2[n - 1] ^= 1; // a relay swapping the certificate
        assert_eq!(
            a.handle(&v2, CertFingerprint([1; 32])),
            Err(PairingError::WrongCode)
        );
    }

    #[test]
    fn out_of_order_is_refused() {
        let ticket = TicketNumber::from_u64(1).unwrap();
        let (mut a, _) = Pairing::start(Role::Agent, &"000-000".parse().unwrap(), ticket);
        let mut confirm = vec![TAG_CONFIRM];
        confirm.extend([0; 64]);
        assert_eq!(
            a.handle(&confirm, CertFingerprint([0; 32])),
            Err(PairingError::OutOfOrder)
        );
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let ticket = TicketNumber::from_u64(1).unwrap();
            let (mut a, _) = Pairing::start(Role::Agent, &"000-000".parse().unwrap(), ticket);
            let _ = a.handle(&bytes, CertFingerprint([0; 32]));
        }
    }
}
