//! Messages between agent or viewer and the relay, on the relay connection's first stream.
//!
//! Flow: the agent sends [`ToRelay::RegisterAgent`] and waits, renewing the registration with
//! [`ToRelay::Renew`]. A viewer sends [`ToRelay::JoinAsViewer`] with its staff token; the relay
//! checks the token, counts the attempt against the ticket, picks the agent and gives the
//! pairing a number: the agent gets [`FromRelay::ViewerJoined`], the viewer
//! [`FromRelay::AgentChosen`], both with that number and the names the relay vouches for. Both
//! sides then exchange opaque [`ToRelay::Pairing`] messages (see [`crate::pairing`]) under that
//! number, which the relay passes on unread. The agent's verdict names the pairing it answers,
//! so a late verdict can never be taken for a newer pairing's.
//!
//! Before it starts the pairing, each side names its fresh endpoint id
//! ([`ToRelay::AdmitEndpoint`]); the relay's path service admits only such ids, and says so
//! ([`FromRelay::EndpointAdmitted`]). The end-to-end connection then runs between those ids,
//! relayed or direct; the relay cannot decrypt it. While it lives, each side reports the path
//! it takes ([`ToRelay::PathReport`]) for the session record, and the agent reports what the
//! person at the PC decided ([`ToRelay::ConsentReport`]) and how the session ended
//! ([`ToRelay::EndReport`]): the relay cannot see inside the session, so its audit record of
//! consent is the agent's word, checked like every other message.

use crate::consent::Grant;
use crate::ids::{
    check_host_choice, check_host_name, check_name, TicketNumber, MAX_CHOICE_LEN, MAX_NAME_LEN,
};
use crate::pairing::PairingProof;
use crate::peer::PathKind;
use crate::session::{decode_reason, encode_reason, EndReason};
use crate::wire::{check_len, DecodeError, Reader, Writer};
use std::fmt;

/// Largest signaling message; all of them are small.
pub const MAX_SIGNALING_LEN: usize = 4096;
/// Largest opaque pairing message the relay passes on.
pub const MAX_PAIRING_LEN: usize = 256;
/// Most agents listed when a viewer must choose.
pub const MAX_LISTED_AGENTS: usize = 16;

pub use crate::staff_token::{StaffToken, MAX_TOKEN_LEN};

/// What agent or viewer sends to the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToRelay {
    /// An agent waits under a ticket.
    RegisterAgent {
        version: u16,
        ticket: TicketNumber,
        host_name: String,
        /// The agent's release (e.g. `0.1.0`), for the audit record.
        agent_version: String,
    },
    /// A staff member wants to connect to an agent waiting under a ticket.
    JoinAsViewer {
        version: u16,
        token: StaffToken,
        ticket: TicketNumber,
        /// Which agent, when several wait under the ticket: a host choice
        /// ([`crate::ids::check_host_choice`]), as the relay listed it.
        host_name: Option<String>,
    },
    /// A pairing message for the peer, opaque to the relay.
    Pairing { pairing: u64, msg: Vec<u8> },
    /// One side's verdict on this pairing: the proof derived from the pairing key when the
    /// peer proved the code, `None` when it did not. Agent and viewer both send it; the relay
    /// starts the session only when the two proofs are equal.
    PairingOutcome {
        pairing: u64,
        proof: Option<PairingProof>,
    },
    /// The agent takes no try now (it slows down wrong codes on its own); ask again later.
    PairingDeferred { pairing: u64, retry_after_secs: u32 },
    /// The agent still waits: keeps its registration from expiring.
    Renew,
    /// This side's endpoint id for the pairing; the relay's path service admits it.
    AdmitEndpoint { pairing: u64, id: [u8; 32] },
    /// The path the session's connection takes now, for the session record.
    PathReport { path: PathKind, rtt_ms: u32 },
    /// What the person at the PC granted now: first answer, change, or `Denied` on revocation.
    ConsentReport { grant: Grant },
    /// How the session ended, with the end-to-end bytes the agent sent and received.
    EndReport {
        reason: EndReason,
        bytes_sent: u64,
        bytes_received: u64,
    },
}

/// Why the relay refused or ended something; sent before it closes the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No agent waits under the ticket.
    UnknownTicket,
    /// The staff token is missing, unknown or revoked.
    BadStaffToken,
    /// The session code did not match.
    WrongCode,
    /// Too many wrong codes for this ticket; try again after this many seconds.
    TooManyAttempts { retry_after_secs: u32 },
    /// The agent is already paired with another viewer.
    AgentBusy,
    /// Several agents wait under the ticket; choose one of these host names.
    AmbiguousAgent { hosts: Vec<String> },
    /// The peer speaks another protocol version.
    VersionMismatch { relay_version: u16 },
    /// The peer sent something it must not; it is disconnected.
    ProtocolViolation,
    /// The other side went away before the pairing finished.
    PeerLeft,
    /// The relay has too many registrations.
    Overloaded,
    /// Another PC with this host name already waits under the ticket.
    HostNameTaken,
    /// Too many connections or registrations from this network address.
    TooManyFromAddress,
    /// The registration was not renewed in time.
    RegistrationExpired,
    /// The ticket system has no ticket with this number (relays that validate tickets).
    TicketNotInSystem,
    /// The ticket is closed in the ticket system (relays that validate tickets).
    TicketClosed,
    /// The two sides did not prove the same pairing key: no session.
    PairingUnconfirmed,
    /// The relay could not ask its ticket system about the ticket just now (busy, slow or
    /// down) and registers no unchecked tickets: try again shortly.
    TicketCheckUnavailable,
}

/// What the relay sends to agent or viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromRelay {
    /// The agent is registered and must renew within this many seconds.
    AgentRegistered { renew_within_secs: u32 },
    /// To the agent: this staff member (as the relay authenticated them) wants to connect.
    ViewerJoined { pairing: u64, staff_name: String },
    /// To the viewer: pairing runs with the agent on this host, for this staff member.
    AgentChosen {
        pairing: u64,
        host_name: String,
        staff_name: String,
    },
    /// A pairing message from the peer.
    Pairing { pairing: u64, msg: Vec<u8> },
    /// To the viewer: the agent confirmed the code; end-to-end packets now flow.
    PairingSucceeded,
    /// To the agent: the viewer of this pairing left before it finished.
    ViewerLeft { pairing: u64 },
    /// The endpoint id is admitted; the relay answers address discovery on this UDP port
    /// (0: it does not).
    EndpointAdmitted { pairing: u64, qad_port: u16 },
    /// The relay refuses; it closes the stream after this.
    Refused(Refusal),
}

impl ToRelay {
    /// Encodes the message body (without frame length).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            ToRelay::RegisterAgent {
                version,
                ticket,
                host_name,
                agent_version,
            } => {
                w.u8(1)
                    .u16(*version)
                    .u64(ticket.get())
                    .string(host_name)
                    .string(agent_version);
            }
            ToRelay::JoinAsViewer {
                version,
                token,
                ticket,
                host_name,
            } => {
                w.u8(2).u16(*version).string(&token.0).u64(ticket.get());
                match host_name {
                    Some(h) => w.u8(1).string(h),
                    None => w.u8(0),
                };
            }
            ToRelay::Pairing { pairing, msg } => {
                w.u8(3).u64(*pairing).blob(msg);
            }
            ToRelay::PairingOutcome { pairing, proof } => {
                w.u8(4).u64(*pairing);
                match proof {
                    Some(p) => w.u8(1).bytes(&p.0),
                    None => w.u8(0),
                };
            }
            ToRelay::PairingDeferred {
                pairing,
                retry_after_secs,
            } => {
                w.u8(5).u64(*pairing).u32(*retry_after_secs);
            }
            ToRelay::Renew => {
                w.u8(6);
            }
            ToRelay::AdmitEndpoint { pairing, id } => {
                w.u8(7).u64(*pairing).bytes(id);
            }
            ToRelay::PathReport { path, rtt_ms } => {
                w.u8(8).u8(path.tag()).u32(*rtt_ms);
            }
            ToRelay::ConsentReport { grant } => {
                w.u8(9).u8(grant.code());
            }
            ToRelay::EndReport {
                reason,
                bytes_sent,
                bytes_received,
            } => {
                w.u8(10);
                encode_reason(&mut w, *reason);
                w.u64(*bytes_sent).u64(*bytes_received);
            }
        }
        w.finish()
    }

    /// Decodes one message, checking every bound.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        check_len("signaling message", buf, MAX_SIGNALING_LEN)?;
        let mut r = Reader::new(buf);
        let msg = match r.u8()? {
            1 => ToRelay::RegisterAgent {
                version: r.u16()?,
                ticket: ticket(&mut r)?,
                host_name: host(&mut r)?,
                agent_version: name(&mut r, "agent version")?,
            },
            2 => ToRelay::JoinAsViewer {
                version: r.u16()?,
                token: StaffToken(r.string("staff token", MAX_TOKEN_LEN)?),
                ticket: ticket(&mut r)?,
                host_name: match r.u8()? {
                    0 => None,
                    1 => Some(host_choice(&mut r)?),
                    tag => {
                        return Err(DecodeError::UnknownTag {
                            what: "option",
                            tag,
                        })
                    }
                },
            },
            3 => ToRelay::Pairing {
                pairing: r.u64()?,
                msg: r.blob("pairing message", MAX_PAIRING_LEN)?.to_vec(),
            },
            4 => ToRelay::PairingOutcome {
                pairing: r.u64()?,
                proof: match r.bool("pairing outcome")? {
                    true => Some(PairingProof(r.array::<32>()?)),
                    false => None,
                },
            },
            5 => ToRelay::PairingDeferred {
                pairing: r.u64()?,
                retry_after_secs: r.u32()?,
            },
            6 => ToRelay::Renew,
            7 => ToRelay::AdmitEndpoint {
                pairing: r.u64()?,
                id: r.array::<32>()?,
            },
            8 => ToRelay::PathReport {
                path: PathKind::from_tag(r.u8()?)?,
                rtt_ms: r.u32()?,
            },
            9 => ToRelay::ConsentReport {
                grant: Grant::from_code(r.u8()?)?,
            },
            10 => ToRelay::EndReport {
                reason: decode_reason(&mut r)?,
                bytes_sent: r.u64()?,
                bytes_received: r.u64()?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "message to relay",
                    tag,
                })
            }
        };
        r.finish()?;
        Ok(msg)
    }
}

impl FromRelay {
    /// Encodes the message body (without frame length).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            FromRelay::AgentRegistered { renew_within_secs } => {
                w.u8(1).u32(*renew_within_secs);
            }
            FromRelay::ViewerJoined {
                pairing,
                staff_name,
            } => {
                w.u8(2).u64(*pairing).string(staff_name);
            }
            FromRelay::AgentChosen {
                pairing,
                host_name,
                staff_name,
            } => {
                w.u8(3).u64(*pairing).string(host_name).string(staff_name);
            }
            FromRelay::Pairing { pairing, msg } => {
                w.u8(4).u64(*pairing).blob(msg);
            }
            FromRelay::PairingSucceeded => {
                w.u8(5);
            }
            FromRelay::ViewerLeft { pairing } => {
                w.u8(7).u64(*pairing);
            }
            FromRelay::EndpointAdmitted { pairing, qad_port } => {
                w.u8(8).u64(*pairing).u16(*qad_port);
            }
            FromRelay::Refused(r) => {
                w.u8(6);
                match r {
                    Refusal::UnknownTicket => w.u8(1),
                    Refusal::BadStaffToken => w.u8(2),
                    Refusal::WrongCode => w.u8(3),
                    Refusal::TooManyAttempts { retry_after_secs } => w.u8(4).u32(*retry_after_secs),
                    Refusal::AgentBusy => w.u8(5),
                    Refusal::AmbiguousAgent { hosts } => {
                        let n = hosts.len().min(MAX_LISTED_AGENTS);
                        w.u8(6).u8(n as u8);
                        for h in &hosts[..n] {
                            w.string(h);
                        }
                        &mut w
                    }
                    Refusal::VersionMismatch { relay_version } => w.u8(7).u16(*relay_version),
                    Refusal::ProtocolViolation => w.u8(8),
                    Refusal::PeerLeft => w.u8(9),
                    Refusal::Overloaded => w.u8(10),
                    Refusal::HostNameTaken => w.u8(11),
                    Refusal::TooManyFromAddress => w.u8(12),
                    Refusal::RegistrationExpired => w.u8(13),
                    Refusal::TicketNotInSystem => w.u8(14),
                    Refusal::TicketClosed => w.u8(15),
                    Refusal::PairingUnconfirmed => w.u8(16),
                    Refusal::TicketCheckUnavailable => w.u8(17),
                };
            }
        }
        w.finish()
    }

    /// Decodes one message, checking every bound.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        check_len("signaling message", buf, MAX_SIGNALING_LEN)?;
        let mut r = Reader::new(buf);
        let msg = match r.u8()? {
            1 => FromRelay::AgentRegistered {
                renew_within_secs: r.u32()?,
            },
            2 => FromRelay::ViewerJoined {
                pairing: r.u64()?,
                staff_name: name(&mut r, "staff name")?,
            },
            3 => FromRelay::AgentChosen {
                pairing: r.u64()?,
                host_name: host(&mut r)?,
                staff_name: name(&mut r, "staff name")?,
            },
            4 => FromRelay::Pairing {
                pairing: r.u64()?,
                msg: r.blob("pairing message", MAX_PAIRING_LEN)?.to_vec(),
            },
            5 => FromRelay::PairingSucceeded,
            7 => FromRelay::ViewerLeft { pairing: r.u64()? },
            8 => FromRelay::EndpointAdmitted {
                pairing: r.u64()?,
                qad_port: r.u16()?,
            },
            6 => FromRelay::Refused(match r.u8()? {
                1 => Refusal::UnknownTicket,
                2 => Refusal::BadStaffToken,
                3 => Refusal::WrongCode,
                4 => Refusal::TooManyAttempts {
                    retry_after_secs: r.u32()?,
                },
                5 => Refusal::AgentBusy,
                6 => {
                    let n = r.u8()? as usize;
                    if n > MAX_LISTED_AGENTS {
                        return Err(DecodeError::TooLarge {
                            what: "agent list",
                            len: n,
                            max: MAX_LISTED_AGENTS,
                        });
                    }
                    let mut hosts = Vec::with_capacity(n);
                    for _ in 0..n {
                        hosts.push(host_choice(&mut r)?);
                    }
                    Refusal::AmbiguousAgent { hosts }
                }
                7 => Refusal::VersionMismatch {
                    relay_version: r.u16()?,
                },
                8 => Refusal::ProtocolViolation,
                9 => Refusal::PeerLeft,
                10 => Refusal::Overloaded,
                11 => Refusal::HostNameTaken,
                12 => Refusal::TooManyFromAddress,
                13 => Refusal::RegistrationExpired,
                14 => Refusal::TicketNotInSystem,
                15 => Refusal::TicketClosed,
                16 => Refusal::PairingUnconfirmed,
                17 => Refusal::TicketCheckUnavailable,
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "refusal",
                        tag,
                    })
                }
            }),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "message from relay",
                    tag,
                })
            }
        };
        r.finish()?;
        Ok(msg)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnknownTicket => f.write_str("no agent is waiting under this ticket: check the ticket number, and that the agent runs and shows a code"),
            Refusal::BadStaffToken => f.write_str("staff token rejected: ask the relay's operators for a valid token (fernhilfe-relay staff add)"),
            Refusal::WrongCode => f.write_str("code incorrect: ask the person at the PC to read the code in the agent window again"),
            Refusal::TooManyAttempts { retry_after_secs } => write!(f, "too many wrong codes for this ticket: wait {retry_after_secs} s, then ask for the current code"),
            Refusal::AgentBusy => f.write_str("the agent is already in a session with another viewer"),
            Refusal::AmbiguousAgent { hosts } => write!(f, "several PCs wait under this ticket: choose one with --host ({})", hosts.join(", ")),
            Refusal::VersionMismatch { relay_version } => write!(f, "protocol version mismatch (relay speaks {relay_version}): update agent/viewer"),
            Refusal::ProtocolViolation => f.write_str("protocol violation: the connection was closed"),
            Refusal::PeerLeft => f.write_str("the other side left before the session started"),
            Refusal::Overloaded => f.write_str("the relay is overloaded: try again in a minute"),
            Refusal::HostNameTaken => f.write_str("another PC with this host name already waits under this ticket: start the agent with --host-name and a name of its own"),
            Refusal::TooManyFromAddress => f.write_str("too many connections from your network address: try again in a minute"),
            Refusal::RegistrationExpired => f.write_str("the registration expired: the agent registers again on its own"),
            Refusal::TicketNotInSystem => f.write_str("the ticket system has no ticket with this number: check the number with the hotline"),
            Refusal::TicketClosed => f.write_str("this ticket is closed in the ticket system: ask the hotline for the current ticket number"),
            Refusal::TicketCheckUnavailable => f.write_str("the relay could not check the ticket number with the ticket system just now: try again in a minute"),
            Refusal::PairingUnconfirmed => f.write_str("the PC's side did not prove the code, so no session was started: ask the person at the PC to restart the agent and read out the new code; if it happens again, the program on that PC may not be Fernhilfe"),
        }
    }
}

fn ticket(r: &mut Reader<'_>) -> Result<TicketNumber, DecodeError> {
    TicketNumber::from_u64(r.u64()?).map_err(|_| DecodeError::Invalid {
        what: "ticket number",
        reason: "out of range",
    })
}

fn name(r: &mut Reader<'_>, what: &'static str) -> Result<String, DecodeError> {
    let s = r.string(what, MAX_NAME_LEN)?;
    check_name(what, &s).map_err(|_| DecodeError::Invalid {
        what,
        reason: "empty or has control characters",
    })?;
    Ok(s)
}

fn host_choice(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let s = r.string("host choice", MAX_CHOICE_LEN)?;
    check_host_choice(&s).map_err(|_| DecodeError::Invalid {
        what: "host choice",
        reason: "not a host name, with or without ~N",
    })?;
    Ok(s)
}

fn host(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let s = r.string("host name", MAX_NAME_LEN)?;
    check_host_name(&s).map_err(|_| DecodeError::Invalid {
        what: "host name",
        reason: "not a host name (A-Z, a-z, 0-9, '-', '_', '.')",
    })?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t() -> TicketNumber {
        TicketNumber::from_u64(4711).unwrap()
    }

    /// One of every message and every refusal.
    pub(crate) fn all_to_relay() -> Vec<ToRelay> {
        vec![
            ToRelay::RegisterAgent {
                version: 1,
                ticket: t(),
                host_name: "PC-12".into(),
                agent_version: "0.1.0".into(),
            },
            ToRelay::JoinAsViewer {
                version: 1,
                token: StaffToken("x".into()),
                ticket: t(),
                host_name: Some("PC-12".into()),
            },
            ToRelay::JoinAsViewer {
                version: 1,
                token: StaffToken("x".into()),
                ticket: t(),
                host_name: None,
            },
            ToRelay::Pairing {
                pairing: 7,
                msg: vec![1, 2, 3],
            },
            ToRelay::PairingOutcome {
                pairing: u64::MAX,
                proof: None,
            },
            ToRelay::PairingOutcome {
                pairing: 1,
                proof: Some(PairingProof([3; 32])),
            },
            ToRelay::PairingDeferred {
                pairing: 3,
                retry_after_secs: 8,
            },
            ToRelay::Renew,
            ToRelay::AdmitEndpoint {
                pairing: 4,
                id: [5; 32],
            },
            ToRelay::PathReport {
                path: PathKind::Relayed,
                rtt_ms: 41,
            },
            ToRelay::PathReport {
                path: PathKind::Direct,
                rtt_ms: 3,
            },
            ToRelay::PathReport {
                path: PathKind::DirectLan,
                rtt_ms: 0,
            },
            ToRelay::ConsentReport {
                grant: Grant::Control,
            },
            ToRelay::ConsentReport {
                grant: Grant::Denied,
            },
            ToRelay::EndReport {
                reason: EndReason::EndedAtAgent,
                bytes_sent: 1 << 40,
                bytes_received: 7,
            },
        ]
    }

    /// One of every message and every refusal.
    pub(crate) fn all_from_relay() -> Vec<FromRelay> {
        let refusals = vec![
            Refusal::UnknownTicket,
            Refusal::BadStaffToken,
            Refusal::WrongCode,
            Refusal::TooManyAttempts {
                retry_after_secs: 30,
            },
            Refusal::AgentBusy,
            Refusal::AmbiguousAgent {
                hosts: vec!["a".into(), "b".into()],
            },
            Refusal::VersionMismatch { relay_version: 9 },
            Refusal::ProtocolViolation,
            Refusal::PeerLeft,
            Refusal::Overloaded,
            Refusal::HostNameTaken,
            Refusal::TooManyFromAddress,
            Refusal::RegistrationExpired,
            Refusal::TicketNotInSystem,
            Refusal::TicketClosed,
            Refusal::TicketCheckUnavailable,
            Refusal::PairingUnconfirmed,
        ];
        let mut all = vec![
            FromRelay::AgentRegistered {
                renew_within_secs: 120,
            },
            FromRelay::ViewerJoined {
                pairing: 5,
                staff_name: "Anna Schmidt".into(),
            },
            FromRelay::AgentChosen {
                pairing: 5,
                host_name: "PC-12".into(),
                staff_name: "Anna Schmidt".into(),
            },
            FromRelay::Pairing {
                pairing: 5,
                msg: vec![9; 33],
            },
            FromRelay::PairingSucceeded,
            FromRelay::ViewerLeft { pairing: 5 },
            FromRelay::EndpointAdmitted {
                pairing: 5,
                qad_port: 7842,
            },
        ];
        all.extend(refusals.into_iter().map(FromRelay::Refused));
        all
    }

    #[test]
    fn host_names_outside_the_strict_set_are_refused_by_the_decoder() {
        let register = |h: &str| {
            ToRelay::RegisterAgent {
                version: 1,
                ticket: t(),
                host_name: h.into(),
                agent_version: "0.1.0".into(),
            }
            .encode()
        };
        let join = |h: &str| {
            ToRelay::JoinAsViewer {
                version: 1,
                token: StaffToken("x".into()),
                ticket: t(),
                host_name: Some(h.into()),
            }
            .encode()
        };
        assert!(ToRelay::decode(&register("PC-12")).is_ok());
        assert!(ToRelay::decode(&join("PC-12~2")).is_ok());
        for bad in ["<b>PC</b>", "PC 12", "PC-12~2", "PC&12", "Рс-12"] {
            assert!(ToRelay::decode(&register(bad)).is_err(), "{bad}");
        }
        for bad in ["<b>PC</b>", "PC-12~0", "PC-12~"] {
            assert!(ToRelay::decode(&join(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn roundtrips() {
        for m in all_to_relay() {
            assert_eq!(ToRelay::decode(&m.encode()).unwrap(), m);
        }
        for m in all_from_relay() {
            assert_eq!(FromRelay::decode(&m.encode()).unwrap(), m);
            if let FromRelay::Refused(r) = &m {
                assert!(!r.to_string().is_empty());
            }
        }
    }

    #[test]
    fn token_is_never_printed() {
        let m = ToRelay::JoinAsViewer {
            version: 1,
            token: StaffToken("geheim".into()),
            ticket: t(),
            host_name: None,
        };
        assert!(!format!("{m:?}").contains("geheim"));
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(ToRelay::decode(&[]).is_err());
        assert!(ToRelay::decode(&[99]).is_err());
        assert!(ToRelay::decode(&[4, 2]).is_err());
        let mut m = ToRelay::PairingOutcome {
            pairing: 1,
            proof: None,
        }
        .encode();
        m.push(0);
        assert!(ToRelay::decode(&m).is_err());
        let mut big = vec![3];
        big.extend_from_slice(&1u64.to_be_bytes());
        big.extend_from_slice(&1_000_000u32.to_be_bytes());
        assert!(matches!(
            ToRelay::decode(&big),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = ToRelay::decode(&bytes);
            let _ = FromRelay::decode(&bytes);
        }
    }
}
