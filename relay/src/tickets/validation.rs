//! Ticket checks at registration: bounded so that registrations cannot flood the ticket
//! system (a stranger can open connections; each unchecked one would be a request to the
//! helpdesk's server), and remembered for a while so an agent that registers again (relay
//! restart, network change) is not checked again.
//!
//! Registration needs no credentials, so a refusal tells anyone whether a ticket number
//! exists and is open. An address that has been refused for tickets a few times is told
//! nothing more about tickets for a while: enough for a person who mistypes, too little to
//! walk the helpdesk's ticket numbers.

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
/// Ticket refusals one address (IPv6: its /64) gets per window before it is refused outright.
const REFUSALS_PER_ADDRESS: u32 = 10;
/// The window those refusals are counted in.
const REFUSAL_WINDOW: Duration = Duration::from_secs(600);
/// Addresses whose refusals are kept at most (the oldest windows are dropped first).
const ADDRESSES_KEPT: usize = 16_384;

/// Checks tickets against the ticket system for registrations.
pub struct TicketValidator {
    connector: Arc<dyn Connector>,
    permits: tokio::sync::Semaphore,
    remembered: Mutex<HashMap<u64, (TicketState, Instant)>>,
    /// Ticket refusals by address: (count, start of the window).
    refused: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
}

impl TicketValidator {
    /// A validator asking `connector`.
    pub fn new(connector: Arc<dyn Connector>) -> Self {
        Self {
            connector,
            permits: tokio::sync::Semaphore::new(IN_FLIGHT),
            remembered: Mutex::default(),
            refused: Mutex::default(),
        }
    }

    /// `None` lets the agent register. A ticket system that is slow, down or busy with other
    /// checks does not keep schools from help: the registration goes on (and the log says so).
    pub async fn check(
        &self,
        ticket: protocol::ids::TicketNumber,
        from: std::net::IpAddr,
    ) -> Option<Refusal> {
        let n = ticket.get();
        let now = Instant::now();
        let from = crate::admission::address_key(from);
        if self.refusals(from, now) >= REFUSALS_PER_ADDRESS {
            tracing::info!(%ticket, "ticket not checked: this address was refused too often");
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
                    tracing::warn!(%ticket, "ticket not checked: too many checks in flight; registration goes on");
                    return None;
                };
                let c = self.connector.clone();
                let asked = tokio::task::spawn_blocking(move || c.ticket_state(n));
                match tokio::time::timeout(TIMEOUT, asked).await {
                    Ok(Ok(Ok(s))) => {
                        self.remember(n, s, now);
                        s
                    }
                    Ok(Ok(Err(e))) => {
                        tracing::warn!(%ticket, error = %e, "ticket not checked: the ticket system did not answer; registration goes on");
                        return None;
                    }
                    Ok(Err(_)) | Err(_) => {
                        tracing::warn!(%ticket, "ticket not checked in time; registration goes on");
                        return None;
                    }
                }
            }
        };
        let refusal = match state {
            TicketState::Open => return None,
            TicketState::Closed => Refusal::TicketClosed,
            TicketState::Unknown => Refusal::TicketNotInSystem,
        };
        self.count_refusal(from, now);
        Some(refusal)
    }

    /// Refusals counted for `from` in its current window.
    fn refusals(&self, from: std::net::IpAddr, now: Instant) -> u32 {
        let m = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&from)
            .filter(|(_, start)| now - *start < REFUSAL_WINDOW)
            .map_or(0, |(n, _)| *n)
    }

    fn count_refusal(&self, from: std::net::IpAddr, now: Instant) {
        let mut m = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= ADDRESSES_KEPT {
            m.retain(|_, (_, start)| now - *start < REFUSAL_WINDOW);
        }
        if m.len() >= ADDRESSES_KEPT && !m.contains_key(&from) {
            // Full of live windows: forget the oldest to make room.
            if let Some(oldest) = m.iter().min_by_key(|(_, (_, s))| *s).map(|(k, _)| *k) {
                m.remove(&oldest);
            }
        }
        let e = m.entry(from).or_insert((0, now));
        if now - e.1 >= REFUSAL_WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
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
    use crate::tickets::test_server::TestServer;

    /// An RT connector for the test server at `url`.
    fn rt_at(url: &str) -> Arc<dyn Connector> {
        Arc::new(
            crate::tickets::rt::RequestTracker::new(
                crate::tickets::http::Http::new(None).unwrap(),
                url,
                crate::tickets::rt::Auth::Token("t".into()),
                crate::audit::record::Lang::De,
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
        let v = Arc::new(TicketValidator::new(rt_at(&server.url)));
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
        // IN_FLIGHT times at once; the rest go on unchecked.
        let checks: Vec<_> = (100..140)
            .map(|n| {
                let v = v.clone();
                tokio::spawn(async move {
                    v.check(t(n), format!("198.51.100.{n}").parse().unwrap())
                        .await
                })
            })
            .collect();
        for c in checks {
            assert_eq!(c.await.unwrap(), None);
        }
        let asked = server.seen().len() - 1;
        assert!(
            asked <= IN_FLIGHT,
            "{asked} checks reached the ticket system"
        );
    }

    #[tokio::test]
    async fn an_address_walking_ticket_numbers_is_stopped_after_a_few_refusals() {
        let server = TestServer::start(|r| {
            if r.path.ends_with("/ticket/4711") {
                (200, r#"{"Status":"open"}"#.into())
            } else {
                (404, "{}".into())
            }
        });
        let v = TicketValidator::new(rt_at(&server.url));
        let t = |n| protocol::ids::TicketNumber::from_u64(n).unwrap();
        let walker: std::net::IpAddr = "2001:db8:1:2::10".parse().unwrap();
        for n in 1..=u64::from(REFUSALS_PER_ADDRESS) {
            assert_eq!(
                v.check(t(n), walker).await,
                Some(Refusal::TicketNotInSystem)
            );
        }
        // Now nothing about tickets for this /64, not even that 4711 is open.
        let same_64: std::net::IpAddr = "2001:db8:1:2::99".parse().unwrap();
        assert_eq!(
            v.check(t(4711), same_64).await,
            Some(Refusal::TooManyFromAddress)
        );
        assert_eq!(
            v.check(t(4711), walker).await,
            Some(Refusal::TooManyFromAddress)
        );
        assert_eq!(
            server.seen().len(),
            REFUSALS_PER_ADDRESS as usize,
            "the refused address still reached the ticket system"
        );
        // Another school is not affected.
        let other: std::net::IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(v.check(t(4711), other).await, None);
    }
}
