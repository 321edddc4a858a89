//! How many audit records a network address may cause before it has proven anything:
//! registrations and refused joins are written against a ticket the stranger chooses, and are
//! kept for a year. Each address may cause [`PER_WINDOW`] such records per [`WINDOW`]; beyond
//! that, its records are counted by kind, and once the window is over one `records_aggregated`
//! record says how many of which kind came. A flood then costs the store a few rows a minute,
//! while an honest school behind one address (many PCs registering at once) is still recorded
//! in full up to the limit. Pure: the caller passes the time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Records one address may cause per window before they are only counted: a whole school
/// (30 PCs behind one NAT) registering and leaving within a minute stays below it.
pub(crate) const PER_WINDOW: u32 = 60;
/// How long a window lasts.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; a flood from more (a botnet) is aggregated under one key.
pub(crate) const MAX_ADDRESSES: usize = 65_536;

/// Records an address caused beyond its budget in one window, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Overflow {
    /// The address (`None`: the many addresses beyond [`MAX_ADDRESSES`]).
    pub source: Option<IpAddr>,
    pub counts: Vec<(&'static str, u64)>,
    pub window_secs: u64,
}

struct Window {
    start: Instant,
    written: u32,
    counted: Vec<(&'static str, u64)>,
}

/// The budgets of all addresses.
#[derive(Default)]
pub(crate) struct RecordBudget {
    windows: HashMap<Option<IpAddr>, Window>,
}

impl RecordBudget {
    /// Whether a record of `kind` caused by `source` may be written now; if not, it is
    /// counted for the window's summary.
    pub(crate) fn admit(&mut self, source: IpAddr, kind: &'static str, now: Instant) -> bool {
        let mut key = Some(crate::admission::address_key(source));
        if !self.windows.contains_key(&key) && self.windows.len() >= MAX_ADDRESSES {
            key = None;
        }
        let w = self.windows.entry(key).or_insert(Window {
            start: now,
            written: 0,
            counted: Vec::new(),
        });
        if w.written < PER_WINDOW {
            w.written += 1;
            return true;
        }
        match w.counted.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => w.counted.push((kind, 1)),
        }
        false
    }

    /// Ends the windows that are over; returns what each counted beyond its budget.
    pub(crate) fn close_windows(&mut self, now: Instant) -> Vec<Overflow> {
        let mut out = Vec::new();
        self.windows.retain(|source, w| {
            let over = now.saturating_duration_since(w.start) >= WINDOW;
            if over && !w.counted.is_empty() {
                out.push(Overflow {
                    source: *source,
                    counts: std::mem::take(&mut w.counted),
                    window_secs: now.saturating_duration_since(w.start).as_secs(),
                });
            }
            !over
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    /// 10,000 refusals from one address in a minute: the first PER_WINDOW are written, the
    /// rest end up as one summary with their count; another address is not affected.
    #[test]
    fn a_flood_from_one_address_becomes_one_counted_record() {
        let mut b = RecordBudget::default();
        let t0 = Instant::now();
        let written = (0..10_000)
            .filter(|i| {
                let kind = if i % 2 == 0 {
                    "viewer_refused"
                } else {
                    "agent_registered"
                };
                b.admit(A, kind, t0 + Duration::from_millis(*i / 2))
            })
            .count();
        assert_eq!(written, PER_WINDOW as usize);
        assert!(b.admit(B, "agent_registered", t0));
        assert_eq!(b.close_windows(t0 + WINDOW / 2), vec![]);
        let over = b.close_windows(t0 + WINDOW);
        assert_eq!(
            over,
            vec![Overflow {
                source: Some(A),
                counts: vec![("viewer_refused", 4970), ("agent_registered", 4970)],
                window_secs: 60,
            }]
        );
        // A new window, a new budget.
        assert!(b.admit(A, "viewer_refused", t0 + WINDOW));
    }

    #[test]
    fn addresses_beyond_the_bound_share_one_budget() {
        let mut b = RecordBudget::default();
        let t0 = Instant::now();
        for i in 0..MAX_ADDRESSES as u32 {
            assert!(b.admit(IpAddr::V4(i.into()), "agent_registered", t0));
        }
        let late = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));
        for _ in 0..PER_WINDOW {
            assert!(b.admit(late, "agent_registered", t0));
        }
        assert!(!b.admit(late, "agent_registered", t0));
        let over = b.close_windows(t0 + WINDOW);
        assert_eq!(over.len(), 1);
        assert_eq!(over[0].source, None);
    }
}
