//! The agent's own limits on code guessing, whatever the relay does: a hostile relay can send
//! viewer joins as fast as it likes, so the agent slows every wrong code down itself, shows a
//! new code after a few, and stops for good after [`MAX_WRONG_CODES`]. Pure: the caller passes
//! the time.
//!
//! With 9-digit codes, every try has a one-in-a-billion chance; capping tries over the agent's
//! lifetime caps the attacker's total chance at `MAX_WRONG_CODES / 10^9`, however long it tries.

use std::time::{Duration, Instant};

/// Wrong codes before the agent shows a new one.
pub(crate) const CODE_TRIES: u32 = 5;
/// Wrong codes over the agent's lifetime before it stops and asks for a new call.
pub(crate) const MAX_WRONG_CODES: u32 = 20;
/// Wait after the first wrong code; doubles with each further one.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// Longest wait between tries.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// Whether a try may run now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    Now,
    /// Not before this much time has passed.
    Later(Duration),
}

/// What a wrong code leads to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterWrong {
    /// Keep the code; the next try waits.
    Keep,
    /// Show a new code (the old one may have been overheard or mistyped repeatedly).
    Rotate,
    /// The lifetime cap is reached: stop.
    LockedOut,
}

/// Wrong-code bookkeeping for one agent run.
#[derive(Debug)]
pub(crate) struct CodeGuard {
    wrong: u32,
    since_rotation: u32,
    not_before: Option<Instant>,
    /// Multiplies every delay; 1.0 in production (tests shorten waits with it).
    scale: f64,
}

impl CodeGuard {
    /// A fresh guard whose delays are multiplied by `scale`.
    pub(crate) fn new(scale: f64) -> Self {
        Self {
            wrong: 0,
            since_rotation: 0,
            not_before: None,
            scale,
        }
    }

    /// Wrong codes so far.
    pub(crate) fn wrong(&self) -> u32 {
        self.wrong
    }

    /// The wait after the `n`-th wrong code (n ≥ 1).
    pub(crate) fn delay_after(&self, n: u32) -> Duration {
        let d = FIRST_DELAY
            .saturating_mul(1u32 << (n.saturating_sub(1)).min(16))
            .min(MAX_DELAY);
        d.mul_f64(self.scale)
    }

    /// Whether a try may run at `now`.
    pub(crate) fn admit(&self, now: Instant) -> Admit {
        match self.not_before {
            Some(t) if t > now => Admit::Later(t - now),
            _ => Admit::Now,
        }
    }

    /// Records a wrong code at `now`.
    pub(crate) fn record_wrong(&mut self, now: Instant) -> AfterWrong {
        self.wrong += 1;
        self.since_rotation += 1;
        self.not_before = Some(now + self.delay_after(self.wrong));
        if self.wrong >= MAX_WRONG_CODES {
            AfterWrong::LockedOut
        } else if self.since_rotation >= CODE_TRIES {
            self.since_rotation = 0;
            AfterWrong::Rotate
        } else {
            AfterWrong::Keep
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_codes_rotate_and_the_cap_holds() {
        let mut g = CodeGuard::new(1.0);
        let t0 = Instant::now();
        assert_eq!(g.admit(t0), Admit::Now);
        let mut now = t0;
        let mut rotations = 0;
        for n in 1..=MAX_WRONG_CODES {
            assert_eq!(g.admit(now), Admit::Now, "try {n} is due");
            match g.record_wrong(now) {
                AfterWrong::Rotate => rotations += 1,
                AfterWrong::LockedOut => assert_eq!(n, MAX_WRONG_CODES),
                AfterWrong::Keep => {}
            }
            let d = g.delay_after(n);
            assert_eq!(g.admit(now), Admit::Later(d), "after try {n}");
            assert_eq!(g.admit(now + d / 2), Admit::Later(d - d / 2));
            now += d;
        }
        assert_eq!(rotations, (MAX_WRONG_CODES - 1) / CODE_TRIES);
        assert_eq!(g.wrong(), MAX_WRONG_CODES);
        assert_eq!(g.delay_after(1), Duration::from_secs(1));
        assert_eq!(g.delay_after(3), Duration::from_secs(4));
        assert_eq!(g.delay_after(19), MAX_DELAY);
        // Twenty wrong codes take at least this long, whatever the relay does.
        let total: Duration = (1..MAX_WRONG_CODES).map(|n| g.delay_after(n)).sum();
        assert!(total >= Duration::from_secs(600), "{total:?}");
    }

    #[test]
    fn scale_shortens_every_delay() {
        let g = CodeGuard::new(0.01);
        assert_eq!(g.delay_after(1), Duration::from_millis(10));
    }
}
