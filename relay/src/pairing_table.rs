//! The relay's pairing flow as a pure state machine: registrations by ticket, joins, pairing
//! messages, the agent's verdict, and expiry. No IO and no clock of its own: the caller
//! (`rendezvous.rs`) passes the time and carries out what the table decides.
//!
//! - An agent registers under a ticket with a host name no other agent there uses, and must
//!   renew within the registration's lifetime while it waits.
//! - A viewer's join counts a try against the ticket at once and opens a numbered pairing with
//!   one waiting agent; the agent is busy until the pairing ends.
//! - Each side may send [`MAX_PAIRING_MESSAGES`] pairing messages under that number. Messages
//!   from the agent under an older number are dropped (they crossed the end of that pairing);
//!   a viewer naming another number is a protocol violation.
//! - Each side's verdict names its pairing. A side that saw its peer prove the code hands in
//!   a proof derived from the pairing key; the session starts (and the try is given back)
//!   only when the agent's and the viewer's proofs are equal, so an agent that merely claims a
//!   match gets nothing on the record. Unequal proofs end the pairing as unconfirmed. The
//!   agent's mismatch frees it for the next join. A verdict for any other number changes
//!   nothing; a second verdict on the same pairing is a protocol violation.
//! - A pairing not finished by its deadline ends as if the viewer had left.

use crate::limits::Limits;
use crate::throttle::CodeThrottle;
use protocol::ids::TicketNumber;
use protocol::pairing::PairingProof;
use protocol::signaling::Refusal;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Pairing messages each side may send in one pairing (SPAKE2 and confirmation: 2).
pub(crate) const MAX_PAIRING_MESSAGES: u32 = 2;
/// Renewals an agent may send within one registration lifetime. The agent renews at a third
/// of it (3 per lifetime); twice that leaves room for a renewal delayed into the next window,
/// and anything more is a peer spending the table's lock for nothing.
pub(crate) const MAX_RENEWALS_PER_TTL: u32 = 6;

/// The relay's number for a registered agent.
pub(crate) type AgentId = u64;
/// The relay's number for one pairing attempt.
pub(crate) type PairingId = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
enum AgentState {
    Waiting,
    Pairing(PairingId),
    InSession,
}

#[derive(Debug)]
struct Agent {
    ticket: TicketNumber,
    host: String,
    addr: IpAddr,
    expires: Instant,
    state: AgentState,
    /// Start of the current renewal window and the renewals counted in it.
    renew_window: (Instant, u32),
}

#[derive(Debug)]
struct ActivePairing {
    agent: AgentId,
    staff: String,
    deadline: Instant,
    from_agent: u32,
    from_viewer: u32,
    /// The agent's proof, once it said the viewer proved the code.
    agent_proof: Option<PairingProof>,
    /// The viewer's verdict, once given: its proof, or `None` when the agent did not prove the
    /// code.
    viewer_said: Option<Option<PairingProof>>,
}

/// A viewer's join that opened a pairing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Joined {
    pub pairing: PairingId,
    pub agent: AgentId,
    pub host: String,
}

/// What to do with a pairing message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Pass it to the agent (from the viewer) or to the viewer of the pairing (from the agent).
    Forward,
    /// It belongs to a pairing that is over: drop it.
    Drop,
}

/// What the agent says of a pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentAnswer {
    /// The viewer proved the code; this is the agent's proof.
    Proved(PairingProof),
    /// The viewer's confirmation did not match.
    WrongCode,
    /// The agent takes no try now.
    Deferred,
}

/// What a verdict means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Both sides proved the same key: the session starts.
    Started { staff: String },
    /// The two sides' verdicts disagree (one proof is missing or they differ): no session, and
    /// the agent, which claimed a match nobody confirms, is disconnected.
    Unconfirmed { staff: String },
    /// One side's proof is in; the other's is awaited.
    Pending,
    /// The code did not match: the agent waits for the next viewer.
    Wrong { staff: String },
    /// The agent put the try off; the viewer may ask again later.
    Deferred,
    /// Not about the pairing that runs now: ignored.
    Stale,
}

/// Why a message was refused as a protocol violation.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Violation {
    #[error("pairing message without a running pairing")]
    NoPairing,
    #[error("pairing message for another pairing")]
    WrongPairing,
    #[error("too many pairing messages")]
    TooManyMessages,
    #[error("a second verdict on one pairing")]
    RepeatedVerdict,
    #[error("renewals faster than the relay asked for")]
    RenewalFlood,
}

/// Registrations, pairings and the per-ticket throttle.
pub(crate) struct PairingTable {
    limits: Limits,
    next_id: u64,
    agents: HashMap<AgentId, Agent>,
    by_ticket: HashMap<TicketNumber, Vec<AgentId>>,
    pairings: HashMap<PairingId, ActivePairing>,
    per_address: HashMap<IpAddr, usize>,
    throttle: CodeThrottle,
}

impl PairingTable {
    /// An empty table with these bounds.
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            next_id: 0,
            agents: HashMap::new(),
            by_ticket: HashMap::new(),
            pairings: HashMap::new(),
            per_address: HashMap::new(),
            throttle: CodeThrottle::default(),
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Registers an agent; returns its number.
    pub(crate) fn register(
        &mut self,
        ticket: TicketNumber,
        host: &str,
        addr: IpAddr,
        now: Instant,
    ) -> Result<AgentId, Refusal> {
        let addr = crate::admission::address_key(addr);
        if self.per_address.get(&addr).copied().unwrap_or(0)
            >= self.limits.max_registrations_per_address
        {
            return Err(Refusal::TooManyFromAddress);
        }
        let under_ticket = self.by_ticket.get(&ticket).map_or(&[][..], Vec::as_slice);
        if self.agents.len() >= self.limits.max_agents
            || under_ticket.len() >= self.limits.max_agents_per_ticket
        {
            return Err(Refusal::Overloaded);
        }
        // One network holds at most half of a ticket's places, and its names are its own: a
        // stranger can neither fill a ticket nor take a PC's name ahead of it.
        let from_here: Vec<&Agent> = under_ticket
            .iter()
            .map(|a| &self.agents[a])
            .filter(|a| a.addr == addr)
            .collect();
        if from_here.len() >= self.per_address_per_ticket() {
            return Err(Refusal::TooManyFromAddress);
        }
        if from_here.iter().any(|a| a.host == host) {
            return Err(Refusal::HostNameTaken);
        }
        let id = self.id();
        self.agents.insert(
            id,
            Agent {
                ticket,
                host: host.to_owned(),
                addr,
                expires: now + self.limits.registration_ttl(),
                state: AgentState::Waiting,
                renew_window: (now, 0),
            },
        );
        self.by_ticket.entry(ticket).or_default().push(id);
        *self.per_address.entry(addr).or_default() += 1;
        Ok(id)
    }

    /// Places under one ticket that one address may hold.
    fn per_address_per_ticket(&self) -> usize {
        (self.limits.max_agents_per_ticket / 2).max(1)
    }

    /// How each agent under a ticket is offered to viewers: its host name, or, where agents
    /// from several networks share the name, the name and its place among them in the order
    /// they registered (`PC-12~2`, see [`protocol::ids::check_host_choice`]).
    fn choices(&self, list: &[AgentId]) -> Vec<(AgentId, String)> {
        list.iter()
            .map(|id| {
                let host = &self.agents[id].host;
                let same: Vec<&AgentId> = list
                    .iter()
                    .filter(|a| self.agents[*a].host == *host)
                    .collect();
                let label = if same.len() == 1 {
                    host.clone()
                } else {
                    let place = same.iter().position(|a| *a == id).expect("listed") + 1;
                    format!("{host}~{place}")
                };
                (*id, label)
            })
            .collect()
    }

    /// Agents registered and waiting, neither pairing nor in a session.
    pub(crate) fn waiting_agents(&self) -> usize {
        self.agents
            .values()
            .filter(|a| matches!(a.state, AgentState::Waiting))
            .count()
    }

    /// The agent still waits: its registration lives on. More than
    /// [`MAX_RENEWALS_PER_TTL`] renewals within one lifetime are a violation.
    pub(crate) fn renew(&mut self, agent: AgentId, now: Instant) -> Result<(), Violation> {
        let ttl = self.limits.registration_ttl();
        let Some(a) = self.agents.get_mut(&agent) else {
            return Ok(());
        };
        let (start, count) = &mut a.renew_window;
        if now.saturating_duration_since(*start) >= ttl {
            (*start, *count) = (now, 0);
        }
        *count += 1;
        if *count > MAX_RENEWALS_PER_TTL {
            return Err(Violation::RenewalFlood);
        }
        a.expires = now + ttl;
        Ok(())
    }

    /// Forgets an agent (its connection ended); returns the pairing it was in, if any.
    pub(crate) fn remove_agent(&mut self, agent: AgentId) -> Option<PairingId> {
        let a = self.agents.remove(&agent)?;
        if let Some(list) = self.by_ticket.get_mut(&a.ticket) {
            list.retain(|x| *x != agent);
            if list.is_empty() {
                self.by_ticket.remove(&a.ticket);
            }
        }
        if let Some(n) = self.per_address.get_mut(&a.addr) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&a.addr);
            }
        }
        match a.state {
            AgentState::Pairing(p) => {
                self.pairings.remove(&p);
                Some(p)
            }
            _ => None,
        }
    }

    /// Waiting agents whose registration lapsed (agents in a session do not lapse).
    pub(crate) fn expired_agents(&self, now: Instant) -> Vec<AgentId> {
        self.agents
            .iter()
            .filter(|(_, a)| a.state == AgentState::Waiting && a.expires <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Pairings past their deadline, ended here; returns each with its agent.
    pub(crate) fn expire_pairings(&mut self, now: Instant) -> Vec<(PairingId, AgentId)> {
        let late: Vec<PairingId> = self
            .pairings
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        late.into_iter()
            .filter_map(|p| self.viewer_left(p).map(|a| (p, a)))
            .collect()
    }

    /// A viewer with staff name `staff` wants the agent `host` (or the only one) under
    /// `ticket`: counts the try and opens a pairing.
    pub(crate) fn join(
        &mut self,
        ticket: TicketNumber,
        host: Option<&str>,
        staff: &str,
        now: Instant,
    ) -> Result<Joined, Refusal> {
        if let Some(wait) = self.throttle.wait(ticket, now) {
            return Err(Refusal::TooManyAttempts {
                retry_after_secs: wait.as_secs().max(1) as u32,
            });
        }
        let list = self.by_ticket.get(&ticket).ok_or(Refusal::UnknownTicket)?;
        let choices = self.choices(list);
        let agent = match host {
            Some(h) => match choices.iter().find(|(_, c)| c == h) {
                Some((a, _)) => *a,
                // A name several networks use, asked for without its place: say which there are.
                None if choices.iter().any(|(a, _)| self.agents[a].host == h) => {
                    return Err(Refusal::AmbiguousAgent {
                        hosts: choices
                            .into_iter()
                            .filter(|(a, _)| self.agents[a].host == h)
                            .map(|(_, c)| c)
                            .collect(),
                    })
                }
                None => return Err(Refusal::UnknownTicket),
            },
            None if list.len() == 1 => list[0],
            None => {
                return Err(Refusal::AmbiguousAgent {
                    hosts: choices.into_iter().map(|(_, c)| c).collect(),
                })
            }
        };
        if self.agents[&agent].state != AgentState::Waiting {
            return Err(Refusal::AgentBusy);
        }
        self.throttle.attempt(ticket, now);
        let pairing = self.id();
        let deadline = now + self.limits.pairing_timeout();
        let a = self.agents.get_mut(&agent).expect("listed agents exist");
        a.state = AgentState::Pairing(pairing);
        self.pairings.insert(
            pairing,
            ActivePairing {
                agent,
                staff: staff.to_owned(),
                deadline,
                from_agent: 0,
                from_viewer: 0,
                agent_proof: None,
                viewer_said: None,
            },
        );
        Ok(Joined {
            pairing,
            agent,
            host: a.host.clone(),
        })
    }

    /// A pairing message from agent `agent` under number `pairing`.
    pub(crate) fn message_from_agent(
        &mut self,
        agent: AgentId,
        pairing: PairingId,
    ) -> Result<Route, Violation> {
        match self.agents.get(&agent).map(|a| &a.state) {
            Some(AgentState::Pairing(p)) if *p == pairing => {}
            // A message that crossed the end of its pairing, or a number the relay never gave.
            _ => return Ok(Route::Drop),
        }
        let p = self
            .pairings
            .get_mut(&pairing)
            .ok_or(Violation::NoPairing)?;
        p.from_agent += 1;
        if p.from_agent > MAX_PAIRING_MESSAGES {
            return Err(Violation::TooManyMessages);
        }
        Ok(Route::Forward)
    }

    /// A pairing message from the viewer of pairing `joined`, which names `pairing`.
    pub(crate) fn message_from_viewer(
        &mut self,
        joined: PairingId,
        pairing: PairingId,
    ) -> Result<Route, Violation> {
        if joined != pairing {
            return Err(Violation::WrongPairing);
        }
        let Some(p) = self.pairings.get_mut(&pairing) else {
            return Ok(Route::Drop);
        };
        p.from_viewer += 1;
        if p.from_viewer > MAX_PAIRING_MESSAGES {
            return Err(Violation::TooManyMessages);
        }
        Ok(Route::Forward)
    }

    /// The agent's answer on pairing `pairing`.
    pub(crate) fn agent_answer(
        &mut self,
        agent: AgentId,
        pairing: PairingId,
        answer: AgentAnswer,
    ) -> Result<Verdict, Violation> {
        match self.agents.get(&agent).map(|a| &a.state) {
            Some(AgentState::Pairing(p)) if *p == pairing => {}
            _ => return Ok(Verdict::Stale),
        }
        let Some(p) = self.pairings.get_mut(&pairing) else {
            return Ok(Verdict::Stale);
        };
        if p.agent_proof.is_some() {
            return Err(Violation::RepeatedVerdict);
        }
        let ended = match answer {
            AgentAnswer::Proved(proof) => {
                p.agent_proof = Some(proof);
                return Ok(self.settle(pairing));
            }
            AgentAnswer::WrongCode => false,
            AgentAnswer::Deferred => true,
        };
        let p = self.pairings.remove(&pairing).expect("looked up above");
        let a = self.agents.get_mut(&agent).expect("checked above");
        a.state = AgentState::Waiting;
        Ok(if ended {
            self.throttle.refund(a.ticket);
            Verdict::Deferred
        } else {
            Verdict::Wrong { staff: p.staff }
        })
    }

    /// The verdict of the viewer of pairing `joined`, which names `pairing`: its proof, or
    /// `None` when the agent's confirmation did not check out.
    pub(crate) fn viewer_answer(
        &mut self,
        joined: PairingId,
        pairing: PairingId,
        proof: Option<PairingProof>,
    ) -> Result<Verdict, Violation> {
        if joined != pairing {
            return Err(Violation::WrongPairing);
        }
        let Some(p) = self.pairings.get_mut(&pairing) else {
            return Ok(Verdict::Stale);
        };
        if p.viewer_said.is_some() {
            return Err(Violation::RepeatedVerdict);
        }
        p.viewer_said = Some(proof);
        Ok(self.settle(pairing))
    }

    /// Ends the pairing once both sides have spoken.
    fn settle(&mut self, pairing: PairingId) -> Verdict {
        let p = &self.pairings[&pairing];
        let (Some(agent_proof), Some(viewer_said)) = (p.agent_proof, p.viewer_said) else {
            return Verdict::Pending;
        };
        let p = self.pairings.remove(&pairing).expect("looked up above");
        let a = self.agents.get_mut(&p.agent).expect("pairing agents exist");
        if viewer_said == Some(agent_proof) {
            a.state = AgentState::InSession;
            self.throttle.refund(a.ticket);
            Verdict::Started { staff: p.staff }
        } else {
            // The try stays counted: this is what a guesser without the code looks like.
            a.state = AgentState::Waiting;
            Verdict::Unconfirmed { staff: p.staff }
        }
    }

    /// The session of `agent` could not start after all (its viewer left as it was agreed):
    /// the agent waits for the next viewer.
    pub(crate) fn session_abandoned(&mut self, agent: AgentId) {
        if let Some(a) = self.agents.get_mut(&agent) {
            if a.state == AgentState::InSession {
                a.state = AgentState::Waiting;
            }
        }
    }

    /// The viewer of `pairing` left (or ran out of time) before the verdict; returns the agent
    /// to tell. The try stays counted.
    pub(crate) fn viewer_left(&mut self, pairing: PairingId) -> Option<AgentId> {
        let p = self.pairings.remove(&pairing)?;
        if let Some(a) = self.agents.get_mut(&p.agent) {
            if a.state == AgentState::Pairing(pairing) {
                a.state = AgentState::Waiting;
            }
        }
        Some(p.agent)
    }

    /// How long the next try on `ticket` must wait, if at all.
    #[cfg(test)]
    pub(crate) fn throttled(
        &self,
        ticket: TicketNumber,
        now: Instant,
    ) -> Option<std::time::Duration> {
        self.throttle.wait(ticket, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::throttle::FREE_TRIES;

    fn t(n: u64) -> TicketNumber {
        TicketNumber::from_u64(n).unwrap()
    }
    const ADDR: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const PROOF: PairingProof = PairingProof([7; 32]);
    const PROVED: AgentAnswer = AgentAnswer::Proved(PROOF);

    fn table() -> PairingTable {
        PairingTable::new(Limits::default())
    }

    #[test]
    fn join_pair_and_start() {
        let mut tb = table();
        let now = Instant::now();
        let a = tb.register(t(4711), "PC-12", ADDR, now).unwrap();
        let j = tb.join(t(4711), None, "Anna", now).unwrap();
        assert_eq!((j.agent, j.host.as_str()), (a, "PC-12"));
        assert_eq!(tb.join(t(4711), None, "Bob", now), Err(Refusal::AgentBusy));
        assert_eq!(
            tb.message_from_viewer(j.pairing, j.pairing),
            Ok(Route::Forward)
        );
        assert_eq!(tb.message_from_agent(a, j.pairing), Ok(Route::Forward));
        assert_eq!(tb.agent_answer(a, j.pairing, PROVED), Ok(Verdict::Pending));
        assert_eq!(
            tb.viewer_answer(j.pairing, j.pairing, Some(PROOF)),
            Ok(Verdict::Started {
                staff: "Anna".into()
            })
        );
        // A successful try is given back.
        assert_eq!(tb.throttled(t(4711), now), None);
    }

    /// Tries are counted at the join, per ticket: two PCs under one ticket give a guesser no
    /// more tries than one, and leaving before the verdict does not save the try.
    #[test]
    fn tries_count_at_join_across_agents_under_one_ticket() {
        let mut tb = table();
        let now = Instant::now();
        let a1 = tb.register(t(4711), "PC-12", ADDR, now).unwrap();
        let _a2 = tb.register(t(4711), "PC-13", ADDR, now).unwrap();
        for i in 0..FREE_TRIES {
            let host = if i % 2 == 0 { "PC-12" } else { "PC-13" };
            let j = tb.join(t(4711), Some(host), "Eve", now).unwrap();
            // The viewer leaves before any verdict.
            assert_eq!(tb.viewer_left(j.pairing), Some(j.agent));
        }
        assert!(matches!(
            tb.join(t(4711), Some("PC-12"), "Eve", now),
            Err(Refusal::TooManyAttempts { .. })
        ));
        assert!(
            tb.join(t(4712), None, "Eve", now).is_err(),
            "no agent there"
        );
        let _ = a1;
    }

    /// A verdict belongs to exactly the pairing it answers: a late verdict for an earlier
    /// pairing cannot start (or fail) the current one.
    #[test]
    fn a_verdict_for_another_pairing_changes_nothing() {
        let mut tb = table();
        let now = Instant::now();
        let a = tb.register(t(4711), "PC-12", ADDR, now).unwrap();
        let first = tb.join(t(4711), None, "Eve", now).unwrap();
        tb.viewer_left(first.pairing);
        let second = tb.join(t(4711), None, "Anna", now).unwrap();
        assert_eq!(
            tb.agent_answer(a, first.pairing, PROVED),
            Ok(Verdict::Stale)
        );
        assert_eq!(tb.agent_answer(a, 999, PROVED), Ok(Verdict::Stale));
        assert_eq!(tb.message_from_agent(a, first.pairing), Ok(Route::Drop));
        assert_eq!(
            tb.message_from_viewer(second.pairing, first.pairing),
            Err(Violation::WrongPairing)
        );
        assert_eq!(
            tb.agent_answer(a, second.pairing, AgentAnswer::WrongCode),
            Ok(Verdict::Wrong {
                staff: "Anna".into()
            })
        );
        // Another agent cannot answer for this one.
        let third = tb.join(t(4711), None, "Anna", now).unwrap();
        let other = tb.register(t(1), "X", ADDR, now).unwrap();
        assert_eq!(
            tb.agent_answer(other, third.pairing, PROVED),
            Ok(Verdict::Stale)
        );
    }

    #[test]
    fn pairing_messages_are_bounded() {
        let mut tb = table();
        let now = Instant::now();
        let a = tb.register(t(4711), "PC-12", ADDR, now).unwrap();
        let j = tb.join(t(4711), None, "Anna", now).unwrap();
        for _ in 0..MAX_PAIRING_MESSAGES {
            assert_eq!(
                tb.message_from_viewer(j.pairing, j.pairing),
                Ok(Route::Forward)
            );
            assert_eq!(tb.message_from_agent(a, j.pairing), Ok(Route::Forward));
        }
        assert_eq!(
            tb.message_from_viewer(j.pairing, j.pairing),
            Err(Violation::TooManyMessages)
        );
        assert_eq!(
            tb.message_from_agent(a, j.pairing),
            Err(Violation::TooManyMessages)
        );
    }

    #[test]
    fn host_names_unique_per_ticket_and_addresses_bounded() {
        let mut tb = PairingTable::new(Limits {
            max_registrations_per_address: 3,
            ..Limits::default()
        });
        let now = Instant::now();
        tb.register(t(4711), "PC-12", ADDR, now).unwrap();
        assert_eq!(
            tb.register(t(4711), "PC-12", ADDR, now),
            Err(Refusal::HostNameTaken)
        );
        let other = tb.register(t(4712), "PC-12", ADDR, now).unwrap();
        tb.register(t(4713), "PC-12", ADDR, now).unwrap();
        assert_eq!(
            tb.register(t(4714), "PC-12", ADDR, now),
            Err(Refusal::TooManyFromAddress)
        );
        let elsewhere = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
        tb.register(t(4714), "PC-12", elsewhere, now).unwrap();
        tb.remove_agent(other);
        tb.register(t(4714), "PC-13", ADDR, now).unwrap();
    }

    #[test]
    fn a_stranger_can_neither_fill_a_ticket_nor_take_a_pcs_name() {
        let mut tb = table();
        let now = Instant::now();
        let stranger = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));
        let school = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));
        // The stranger registers as many fake PCs under the ticket as it may: half the places.
        let half = Limits::default().max_agents_per_ticket / 2;
        for i in 0..half {
            let name = if i == 0 {
                "PC-12".into()
            } else {
                format!("FAKE-{i}")
            };
            tb.register(t(4711), &name, stranger, now).unwrap();
        }
        assert_eq!(
            tb.register(t(4711), "FAKE-X", stranger, now),
            Err(Refusal::TooManyFromAddress)
        );
        // The school's PC-12 still registers (before: HostNameTaken, and with 16 fakes,
        // Overloaded), and so do its other PCs.
        let pc12 = tb.register(t(4711), "PC-12", school, now).unwrap();
        tb.register(t(4711), "PC-13", school, now).unwrap();
        // Asked for PC-12, the relay names both with their places; the technician picks one
        // (and only the real one knows the code).
        assert_eq!(
            tb.join(t(4711), Some("PC-12"), "Anna", now),
            Err(Refusal::AmbiguousAgent {
                hosts: vec!["PC-12~1".into(), "PC-12~2".into()]
            })
        );
        let j = tb.join(t(4711), Some("PC-12~2"), "Anna", now).unwrap();
        assert_eq!((j.agent, j.host.as_str()), (pc12, "PC-12"));
        // The full list shows every choice once; a unique name stays plain.
        let Err(Refusal::AmbiguousAgent { hosts }) = tb.join(t(4711), None, "Anna", now) else {
            panic!("several agents wait")
        };
        assert!(hosts.contains(&"PC-13".to_owned()), "{hosts:?}");
        assert!(hosts.contains(&"PC-12~1".to_owned()), "{hosts:?}");
        assert_eq!(
            tb.join(t(4711), Some("PC-99"), "Anna", now),
            Err(Refusal::UnknownTicket)
        );
    }

    #[test]
    fn registrations_and_pairings_expire() {
        let mut tb = table();
        let now = Instant::now();
        let ttl = Limits::default().registration_ttl();
        let a = tb.register(t(4711), "PC-12", ADDR, now).unwrap();
        assert!(tb.expired_agents(now + ttl / 2).is_empty());
        tb.renew(a, now + ttl / 2).unwrap();
        assert!(tb.expired_agents(now + ttl).is_empty());
        assert_eq!(tb.expired_agents(now + ttl * 2), vec![a]);
        let j = tb.join(t(4711), None, "Anna", now).unwrap();
        assert!(
            tb.expired_agents(now + ttl * 2).is_empty(),
            "pairing agents do not lapse"
        );
        let late = now + Limits::default().pairing_timeout();
        assert_eq!(tb.expire_pairings(late), vec![(j.pairing, a)]);
        assert_eq!(tb.agent_answer(a, j.pairing, PROVED), Ok(Verdict::Stale));
        assert!(
            tb.join(t(4711), None, "Anna", late).is_ok(),
            "the agent waits again"
        );
    }

    /// An agent that claims a match without the code cannot produce the viewer's proof: no
    /// session, the try stays counted, and the agent may not answer again.
    #[test]
    fn a_claimed_match_without_the_viewers_proof_starts_nothing() {
        let mut tb = table();
        let now = Instant::now();
        let a = tb.register(t(4711), "PC-12", ADDR, now).unwrap();
        // The viewer's proof first, then the agent's differing one.
        let j = tb.join(t(4711), None, "Anna", now).unwrap();
        assert_eq!(
            tb.viewer_answer(j.pairing, j.pairing, Some(PROOF)),
            Ok(Verdict::Pending)
        );
        assert_eq!(
            tb.agent_answer(a, j.pairing, AgentAnswer::Proved(PairingProof([8; 32]))),
            Ok(Verdict::Unconfirmed {
                staff: "Anna".into()
            })
        );
        // The viewer says the agent did not prove the code, the agent claims a match.
        let j = tb.join(t(4711), None, "Anna", now).unwrap();
        assert_eq!(tb.agent_answer(a, j.pairing, PROVED), Ok(Verdict::Pending));
        assert_eq!(
            tb.agent_answer(a, j.pairing, PROVED),
            Err(Violation::RepeatedVerdict)
        );
        assert_eq!(
            tb.viewer_answer(j.pairing, j.pairing, None),
            Ok(Verdict::Unconfirmed {
                staff: "Anna".into()
            })
        );
        // Neither unconfirmed try was given back.
        let mut left = FREE_TRIES - 2;
        while left > 0 {
            let j = tb.join(t(4711), None, "Anna", now).unwrap();
            tb.viewer_left(j.pairing);
            left -= 1;
        }
        assert!(matches!(
            tb.join(t(4711), None, "Anna", now),
            Err(Refusal::TooManyAttempts { .. })
        ));
        // A viewer that answers twice, or for another pairing, is refused.
        let mut tb = table();
        tb.register(t(4711), "PC-12", ADDR, now).unwrap();
        let j = tb.join(t(4711), None, "Anna", now).unwrap();
        assert_eq!(
            tb.viewer_answer(j.pairing, j.pairing + 1, Some(PROOF)),
            Err(Violation::WrongPairing)
        );
        assert_eq!(
            tb.viewer_answer(j.pairing, j.pairing, Some(PROOF)),
            Ok(Verdict::Pending)
        );
        assert_eq!(
            tb.viewer_answer(j.pairing, j.pairing, Some(PROOF)),
            Err(Violation::RepeatedVerdict)
        );
    }

    /// An agent renewing at a third of the lifetime, late or early by a tick, is served for
    /// hours; one that renews in a loop is refused at the seventh renewal of one lifetime.
    #[test]
    fn renewals_are_bounded_by_the_rate_the_relay_asked_for() {
        use std::time::Duration;
        let mut tb = table();
        let now = Instant::now();
        let ttl = Limits::default().registration_ttl();
        let a = tb.register(t(4711), "PC-12", ADDR, now).unwrap();
        for i in 1..=600u32 {
            // Jitter: every other renewal comes half a period late, the next one early.
            let jitter = if i % 2 == 0 { ttl / 6 } else { Duration::ZERO };
            tb.renew(a, now + ttl / 3 * i + jitter).unwrap();
        }
        let b = tb.register(t(4712), "PC-12", ADDR, now).unwrap();
        for _ in 0..MAX_RENEWALS_PER_TTL {
            tb.renew(b, now).unwrap();
        }
        assert_eq!(tb.renew(b, now), Err(Violation::RenewalFlood));
        // A new lifetime window starts counting afresh.
        tb.renew(b, now + ttl).unwrap();
    }

    #[test]
    fn deferred_try_is_given_back() {
        let mut tb = table();
        let now = Instant::now();
        let a = tb.register(t(4711), "PC-12", ADDR, now).unwrap();
        for _ in 0..FREE_TRIES + 3 {
            let j = tb.join(t(4711), None, "Anna", now).unwrap();
            assert_eq!(
                tb.agent_answer(a, j.pairing, AgentAnswer::Deferred),
                Ok(Verdict::Deferred)
            );
        }
        assert_eq!(tb.throttled(t(4711), now), None);
    }
}
