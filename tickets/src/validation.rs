//! Ticket checks at registration: bounded so that registrations cannot flood the ticket
//! system (a stranger can open connections; each unchecked one would be a request to the
//! helpdesk's server), and remembered for a while so an agent that registers again (relay
//! restart, network change) is not checked again.
//!
//! Registration needs no credentials, so every answer tells anyone whether a ticket number
//! exists and is open: a registration that goes through says "open" as clearly as a refusal
//! says "closed". So each address may ask about a few distinct tickets per window, whatever
//! the answers, and is told nothing more about tickets for a while after: enough for a school
//! (one ticket, many PCs, a mistyped number or two), too little to walk the helpdesk's numbers.
//!
//! A check that cannot be made (too many in flight, the ticket system slow or down) refuses
//! the registration with "try again" by default: registering unchecked would let a flood that
//! fills the check slots carry any ticket number past the check. Operators who prefer help
//! over the check while their ticket system is down say `unchecked = "register"`.

use super::{Connector, TicketState};
use protocol::signaling::Refusal;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a ticket system's answer is believed.
const REMEMBER: Duration = Duration::from_secs(30);
/// Answers remembered at most.
const REMEMBERED: usize = 4096;
/// Checks in flight at most.
const IN_FLIGHT: usize = 8;
/// How long a registration waits for the answer before it goes on without.
const TIMEOUT: Duration = Duration::from_secs(3);
/// Distinct tickets one address (IPv6: its /64) may ask about per window, open or not.
const TICKETS_PER_ADDRESS: usize = 10;
/// The window those tickets are counted in.
const PROBE_WINDOW: Duration = Duration::from_secs(600);
/// Addresses whose probes are kept at most (the oldest windows are dropped first).
const ADDRESSES_KEPT: usize = 16_384;

/// What a registration gets when its ticket cannot be checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenUnchecked {
    /// Refused with "try again" ([`Refusal::TicketCheckUnavailable`]).
    #[default]
    Refuse,
    /// Registered without the check (and the log says so).
    Register,
}

/// The tickets one address asked about in its current window.
struct Probes {
    start: Instant,
    tickets: Vec<u64>,
}

/// Checks tickets against the ticket system for registrations.
pub struct TicketValidator {
    connector: Arc<dyn Connector>,
    unchecked: WhenUnchecked,
    permits: tokio::sync::Semaphore,
    remembered: Mutex<HashMap<u64, (TicketState, Instant)>>,
    probes: Mutex<HashMap<std::net::IpAddr, Probes>>,
}

impl TicketValidator {
    /// A validator asking `connector`; `unchecked` says what a check that cannot be made means.
    pub fn new(connector: Arc<dyn Connector>, unchecked: WhenUnchecked) -> Self {
        Self {
            connector,
            unchecked,
            permits: tokio::sync::Semaphore::new(IN_FLIGHT),
            remembered: Mutex::default(),
            probes: Mutex::default(),
        }
    }

    /// `None` lets the agent register.
    pub async fn check(
        &self,
        ticket: protocol::ids::TicketNumber,
        from: std::net::IpAddr,
    ) -> Option<Refusal> {
        let n = ticket.get();
        let now = Instant::now();
        let from = protocol::sender::address_key(from);
        if !self.probe(from, n, now) {
            tracing::info!(%ticket, "ticket not checked: this address asked about too many tickets");
            return Some(Refusal::TooManyFromAddress);
        }
        let known = self
            .lock()
            .get(&n)
            .filter(|(_, at)| now - *at < REMEMBER)
            .map(|(s, _)| *s);
        let state = match known {
            Some(s) => s,
            None => {
                let Ok(_permit) = self.permits.try_acquire() else {
                    return self.unchecked(ticket, "too many checks in flight");
                };
                let c = self.connector.clone();
                let asked = tokio::task::spawn_blocking(move || c.ticket_state(n));
                match tokio::time::timeout(TIMEOUT, asked).await {
                    Ok(Ok(Ok(s))) => {
                        self.remember(n, s, now);
                        s
                    }
                    Ok(Ok(Err(e))) => {
                        tracing::warn!(%ticket, error = %e, "the ticket system did not answer");
                        return self.unchecked(ticket, "the ticket system did not answer");
                    }
                    Ok(Err(_)) | Err(_) => {
                        return self.unchecked(ticket, "no answer in time");
                    }
                }
            }
        };
        match state {
            TicketState::Open => None,
            TicketState::Closed => Some(Refusal::TicketClosed),
            TicketState::Unknown => Some(Refusal::TicketNotInSystem),
        }
    }

    /// The answer for a ticket that could not be checked, as configured.
    fn unchecked(&self, ticket: protocol::ids::TicketNumber, why: &'static str) -> Option<Refusal> {
        match self.unchecked {
            WhenUnchecked::Refuse => {
                tracing::warn!(%ticket, why, "ticket not checked: registration refused, the agent is told to try again");
                Some(Refusal::TicketCheckUnavailable)
            }
            WhenUnchecked::Register => {
                tracing::warn!(%ticket, why, "ticket not checked: registration goes on (unchecked = \"register\")");
                None
            }
        }
    }

    /// Counts `ticket` for `from`; `false` when the address has asked about enough other
    /// tickets in its window. Asking again about a ticket already counted is free.
    fn probe(&self, from: std::net::IpAddr, ticket: u64, now: Instant) -> bool {
        let mut m = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= ADDRESSES_KEPT && !m.contains_key(&from) {
            m.retain(|_, p| now - p.start < PROBE_WINDOW);
            if m.len() >= ADDRESSES_KEPT {
                // Full of live windows: forget the oldest to make room.
                if let Some(oldest) = m.iter().min_by_key(|(_, p)| p.start).map(|(k, _)| *k) {
                    m.remove(&oldest);
                }
            }
        }
        let p = m.entry(from).or_insert(Probes {
            start: now,
            tickets: Vec::new(),
        });
        if now - p.start >= PROBE_WINDOW {
            *p = Probes {
                start: now,
                tickets: Vec::new(),
            };
        }
        if p.tickets.contains(&ticket) {
            return true;
        }
        if p.tickets.len() >= TICKETS_PER_ADDRESS {
            return false;
        }
        p.tickets.push(ticket);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (TicketState, Instant)>> {
        self.remembered.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, ticket: u64, state: TicketState, now: Instant) {
        let mut m = self.lock();
        if m.len() >= REMEMBERED {
            m.retain(|_, (_, at)| now - *at < REMEMBER);
        }
        if m.len() < REMEMBERED {
            m.insert(ticket, (state, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::TestServer;

    /// An RT connector for the test server at `url`.
    fn rt_at(url: &str) -> Arc<dyn Connector> {
        Arc::new(
            crate::rt::RequestTracker::new(
                crate::http::Http::new(None).unwrap(),
                url,
                crate::rt::Auth::Token("t".into()),
                audit::record::Lang::De,
            )
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn an_answer_is_remembered_and_checks_in_flight_are_bounded() {
        // A slow ticket system: each answer takes 300 ms.
        let server = TestServer::start(|r| {
            std::thread::sleep(Duration::from_millis(300));
            if r.path.contains("/ticket/1/") || r.path.ends_with("/ticket/1") {
                (200, r#"{"Status":"resolved"}"#.into())
            } else {
                (200, r#"{"Status":"open"}"#.into())
            }
        });
        let v = Arc::new(TicketValidator::new(
            rt_at(&server.url),
            WhenUnchecked::Refuse,
        ));
        let t = |n| protocol::ids::TicketNumber::from_u64(n).unwrap();
        let school: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(v.check(t(1), school).await, Some(Refusal::TicketClosed));
        assert_eq!(v.check(t(1), school).await, Some(Refusal::TicketClosed));
        assert_eq!(
            server.seen().len(),
            1,
            "the second check was answered from memory"
        );
        // A flood of registrations for different tickets reaches the ticket system at most
        // IN_FLIGHT times at once; the rest are told to try again, not registered unchecked.
        let flood = |v: Arc<TicketValidator>, tickets: std::ops::Range<u64>| async move {
            let checks: Vec<_> = tickets
                .map(|n| {
                    let v = v.clone();
                    tokio::spawn(async move {
                        v.check(t(n), format!("198.51.100.{}", n % 250).parse().unwrap())
                            .await
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for c in checks {
                answers.push(c.await.unwrap());
            }
            answers
        };
        let answers = flood(v.clone(), 100..140).await;
        let checked = answers.iter().filter(|a| a.is_none()).count();
        let again = answers
            .iter()
            .filter(|a| **a == Some(Refusal::TicketCheckUnavailable))
            .count();
        assert_eq!((checked, again), (IN_FLIGHT, 40 - IN_FLIGHT), "{answers:?}");
        let asked = server.seen().len() - 1;
        assert_eq!(asked, IN_FLIGHT, "{asked} checks reached the ticket system");
        // An operator who prefers help over the check: the rest register unchecked.
        let lenient = Arc::new(TicketValidator::new(
            rt_at(&server.url),
            WhenUnchecked::Register,
        ));
        let answers = flood(lenient, 200..240).await;
        assert!(answers.iter().all(Option::is_none), "{answers:?}");
        assert_eq!(server.seen().len() - 1 - asked, IN_FLIGHT);
    }

    #[tokio::test]
    async fn a_ticket_system_that_is_down_refuses_with_try_again_unless_told_otherwise() {
        let server = TestServer::start(|_| (503, "{}".into()));
        let t = protocol::ids::TicketNumber::from_u64(4711).unwrap();
        let school: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let strict = TicketValidator::new(rt_at(&server.url), WhenUnchecked::Refuse);
        assert_eq!(
            strict.check(t, school).await,
            Some(Refusal::TicketCheckUnavailable)
        );
        let lenient = TicketValidator::new(rt_at(&server.url), WhenUnchecked::Register);
        assert_eq!(lenient.check(t, school).await, None);
    }

    #[tokio::test]
    async fn an_address_walking_ticket_numbers_is_stopped_whatever_the_answers() {
        // Every other number is an open ticket: an open one tells as much as a refusal, so
        // both count (before, only refusals did, and walking open tickets cost nothing).
        let server = TestServer::start(|r| {
            let n: u64 = r.path.rsplit('/').next().unwrap().parse().unwrap();
            if n.is_multiple_of(2) || n == 4711 {
                (200, r#"{"Status":"open"}"#.into())
            } else {
                (404, "{}".into())
            }
        });
        let v = TicketValidator::new(rt_at(&server.url), WhenUnchecked::Refuse);
        let t = |n| protocol::ids::TicketNumber::from_u64(n).unwrap();
        let walker: std::net::IpAddr = "2001:db8:1:2::10".parse().unwrap();
        for n in 1..=TICKETS_PER_ADDRESS as u64 {
            let expected = (!n.is_multiple_of(2)).then_some(Refusal::TicketNotInSystem);
            assert_eq!(v.check(t(n), walker).await, expected, "ticket {n}");
        }
        // Asking again about a ticket already counted is answered as before.
        assert_eq!(v.check(t(2), walker).await, None);
        // Now nothing about other tickets for this /64, not even that 4711 is open.
        let same_64: std::net::IpAddr = "2001:db8:1:2::99".parse().unwrap();
        assert_eq!(
            v.check(t(4711), same_64).await,
            Some(Refusal::TooManyFromAddress)
        );
        assert_eq!(
            v.check(t(12), walker).await,
            Some(Refusal::TooManyFromAddress)
        );
        assert_eq!(
            server.seen().len(),
            TICKETS_PER_ADDRESS,
            "the walking address still reached the ticket system"
        );
        // Another school is not affected.
        let other: std::net::IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(v.check(t(4711), other).await, None);
    }
}
