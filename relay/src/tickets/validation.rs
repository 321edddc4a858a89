//! Ticket checks at registration: bounded so that registrations cannot flood the ticket
//! system (a stranger can open connections; each unchecked one would be a request to the
//! helpdesk's server), and remembered for a while so an agent that registers again (relay
//! restart, network change) is not checked again.

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

/// Checks tickets against the ticket system for registrations.
pub struct TicketValidator {
    connector: Arc<dyn Connector>,
    permits: tokio::sync::Semaphore,
    remembered: Mutex<HashMap<u64, (TicketState, Instant)>>,
}

impl TicketValidator {
    /// A validator asking `connector`.
    pub fn new(connector: Arc<dyn Connector>) -> Self {
        Self {
            connector,
            permits: tokio::sync::Semaphore::new(IN_FLIGHT),
            remembered: Mutex::default(),
        }
    }

    /// `None` lets the agent register. A ticket system that is slow, down or busy with other
    /// checks does not keep schools from help: the registration goes on (and the log says so).
    pub async fn check(&self, ticket: protocol::ids::TicketNumber) -> Option<Refusal> {
        let n = ticket.get();
        let now = Instant::now();
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
        match state {
            TicketState::Open => None,
            TicketState::Closed => Some(Refusal::TicketClosed),
            TicketState::Unknown => Some(Refusal::TicketNotInSystem),
        }
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
        let rt = crate::tickets::rt::RequestTracker::new(
            crate::tickets::http::Http::new(None).unwrap(),
            &server.url,
            crate::tickets::rt::Auth::Token("t".into()),
            crate::audit::record::Lang::De,
        )
        .unwrap();
        let v = Arc::new(TicketValidator::new(Arc::new(rt)));
        let t = |n| protocol::ids::TicketNumber::from_u64(n).unwrap();
        assert_eq!(v.check(t(1)).await, Some(Refusal::TicketClosed));
        assert_eq!(v.check(t(1)).await, Some(Refusal::TicketClosed));
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
                tokio::spawn(async move { v.check(t(n)).await })
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
}
