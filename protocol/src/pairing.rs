//! The pairing handshake: SPAKE2 over the session code, then key confirmation that
//! authenticates each side's certificate fingerprint.
//!
//! Both sides send a SPAKE2 message, derive the shared key, and send
//! `HMAC(key, role ‖ ticket ‖ own certificate fingerprint)` together with that fingerprint.
//! A matching MAC proves the peer knew the code, so the fingerprint it sent is the one to pin
//! on the end-to-end TLS connection. The relay carries these messages but, not knowing the code,
//! can neither read the key nor substitute a certificate; an attacker gets one guess per run.

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
    /// The peer proved it knows the code; pin this certificate.
    Verified(CertFingerprint),
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
        let (a, b) = (Identity::new(b"fernhilfe viewer"), Identity::new(b"fernhilfe agent"));
        let (spake, msg) = match role {
            Role::Viewer => Spake2::<Ed25519Group>::start_a(&pw, &a, &b),
            Role::Agent => Spake2::<Ed25519Group>::start_b(&pw, &a, &b),
        };
        let mut w = Writer::new();
        w.u8(TAG_SPAKE).blob(&msg);
        (Self { role, ticket, state: State::AwaitSpake(spake) }, w.finish())
    }

    /// Handles the peer's next message; `own` is this side's certificate fingerprint.
    pub fn handle(&mut self, msg: &[u8], own: CertFingerprint) -> Result<PairingStep, PairingError> {
        let mut r = Reader::new(msg);
        let tag = r.u8()?;
        match (std::mem::replace(&mut self.state, State::Finished), tag) {
            (State::AwaitSpake(spake), TAG_SPAKE) => {
                let peer = r.blob("spake2 message", SPAKE_MSG_LEN)?;
                r.finish()?;
                let key = spake.finish(peer).map_err(|_| PairingError::WrongCode)?;
                let key: [u8; 32] = key.try_into().map_err(|_| PairingError::WrongCode)?;
                let mut w = Writer::new();
                w.u8(TAG_CONFIRM).bytes(&self.mac(&key, self.role, &own)).bytes(&own.0);
                self.state = State::AwaitConfirm(key);
                Ok(PairingStep::Send(w.finish()))
            }
            (State::AwaitConfirm(key), TAG_CONFIRM) => {
                let mac = r.array::<32>()?;
                let fp = CertFingerprint(r.array::<32>()?);
                r.finish()?;
                let peer_role = match self.role {
                    Role::Agent => Role::Viewer,
                    Role::Viewer => Role::Agent,
                };
                let check = self.mac_state(&key, peer_role, &fp);
                check.verify_slice(&mac).map_err(|_| PairingError::WrongCode)?;
                Ok(PairingStep::Verified(fp))
            }
            (_, TAG_SPAKE | TAG_CONFIRM) => Err(PairingError::OutOfOrder),
            (_, tag) => Err(DecodeError::UnknownTag { what: "pairing message", tag }.into()),
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

    fn mac(&self, key: &[u8; 32], role: Role, fp: &CertFingerprint) -> [u8; 32] {
        self.mac_state(key, role, fp).finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(agent_code: &str, viewer_code: &str) -> (Result<PairingStep, PairingError>, Result<PairingStep, PairingError>) {
        let ticket = TicketNumber::from_u64(4711).unwrap();
        let (afp, vfp) = (CertFingerprint([1; 32]), CertFingerprint([2; 32]));
        let (mut a, a1) = Pairing::start(Role::Agent, &agent_code.parse().unwrap(), ticket);
        let (mut v, v1) = Pairing::start(Role::Viewer, &viewer_code.parse().unwrap(), ticket);
        let PairingStep::Send(a2) = a.handle(&v1, afp).unwrap() else { panic!() };
        let PairingStep::Send(v2) = v.handle(&a1, vfp).unwrap() else { panic!() };
        (a.handle(&v2, afp), v.handle(&a2, vfp))
    }

    #[test]
    fn same_code_verifies_both_fingerprints() {
        let (a, v) = run("123-456", "123456");
        assert_eq!(a, Ok(PairingStep::Verified(CertFingerprint([2; 32]))));
        assert_eq!(v, Ok(PairingStep::Verified(CertFingerprint([1; 32]))));
    }

    #[test]
    fn wrong_code_fails_on_both_sides() {
        let (a, v) = run("123-456", "123-457");
        assert_eq!(a, Err(PairingError::WrongCode));
        assert_eq!(v, Err(PairingError::WrongCode));
    }

    #[test]
    fn substituted_fingerprint_fails() {
        let ticket = TicketNumber::from_u64(4711).unwrap();
        let code: SessionCode = "111-111".parse().unwrap();
        let (mut a, a1) = Pairing::start(Role::Agent, &code, ticket);
        let (mut v, v1) = Pairing::start(Role::Viewer, &code, ticket);
        let _ = a.handle(&v1, CertFingerprint([1; 32])).unwrap();
        let PairingStep::Send(mut v2) = v.handle(&a1, CertFingerprint([2; 32])).unwrap() else { panic!() };
        let n = v2.len();
        v2[n - 1] ^= 1; // a relay swapping the certificate
        assert_eq!(a.handle(&v2, CertFingerprint([1; 32])), Err(PairingError::WrongCode));
    }

    #[test]
    fn out_of_order_is_refused() {
        let ticket = TicketNumber::from_u64(1).unwrap();
        let (mut a, _) = Pairing::start(Role::Agent, &"000-000".parse().unwrap(), ticket);
        let mut confirm = vec![TAG_CONFIRM];
        confirm.extend([0; 64]);
        assert_eq!(a.handle(&confirm, CertFingerprint([0; 32])), Err(PairingError::OutOfOrder));
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
