//! Slows down code guessing per ticket: the first tries are free (people mistype), after that
//! each further try waits twice as long as the last. A try is counted when a viewer joins, not
//! when the agent's verdict comes, so several PCs under one ticket (or a viewer that leaves
//! before the verdict) do not multiply a guesser's tries; a try that pairs is given back.
//! Pure: the caller passes the time.

use protocol::ids::TicketNumber;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Wrong codes per ticket before tries are slowed; matches the agent's code rotation.
pub(crate) const FREE_TRIES: u32 = 5;
/// First wait after the free tries.
const BASE_DELAY: Duration = Duration::from_secs(5);
/// Longest wait.
const MAX_DELAY: Duration = Duration::from_secs(300);
/// A ticket's count is forgotten after this long without a wrong code.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

struct Entry {
    failures: u32,
    last: Instant,
}

/// Wrong-code counts by ticket.
#[derive(Default)]
pub(crate) struct CodeThrottle {
    tickets: HashMap<TicketNumber, Entry>,
}

impl CodeThrottle {
    /// Seconds the caller must still wait before trying a code for `ticket`, if any.
    pub(crate) fn wait(&self, ticket: TicketNumber, now: Instant) -> Option<Duration> {
        let e = self.tickets.get(&ticket)?;
        if e.failures < FREE_TRIES {
            return None;
        }
        let shift = (e.failures - FREE_TRIES).min(10);
        let delay = (BASE_DELAY * 2u32.pow(shift)).min(MAX_DELAY);
        let until = e.last + delay;
        (until > now).then(|| until - now)
    }

    /// Gives back a try that turned out right (or that the agent never tested).
    pub(crate) fn refund(&mut self, ticket: TicketNumber) {
        if let Some(e) = self.tickets.get_mut(&ticket) {
            e.failures = e.failures.saturating_sub(1);
        }
    }

    /// Counts a try.
    pub(crate) fn attempt(&mut self, ticket: TicketNumber, now: Instant) {
        self.tickets
            .retain(|_, e| now.duration_since(e.last) < FORGET_AFTER);
        let e = self.tickets.entry(ticket).or_insert(Entry {
            failures: 0,
            last: now,
        });
        e.failures += 1;
        e.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_tries_then_doubling() {
        let t = TicketNumber::from_u64(4711).unwrap();
        let other = TicketNumber::from_u64(1).unwrap();
        let mut th = CodeThrottle::default();
        let now = Instant::now();
        for _ in 0..FREE_TRIES {
            assert_eq!(th.wait(t, now), None);
            th.attempt(t, now);
        }
        assert_eq!(th.wait(t, now), Some(BASE_DELAY));
        assert_eq!(th.wait(other, now), None);
        assert_eq!(th.wait(t, now + BASE_DELAY), None);
        th.attempt(t, now + BASE_DELAY);
        assert_eq!(th.wait(t, now + BASE_DELAY), Some(BASE_DELAY * 2));
        th.refund(t);
        assert_eq!(th.wait(t, now + BASE_DELAY), Some(BASE_DELAY));
    }
}
