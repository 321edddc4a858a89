//! When a session ends by itself: after a time without use, and after a longest duration, each
//! announced in the indicator shortly before, with one click for the person at the PC to go on
//! (BSI OPS.1.2.5: disconnect after use). Pure: the caller passes the time.
//!
//! Use is any input the technician sends (a screen that changes is not use: a clock, a video
//! or the indicator's own countdown would keep a forgotten session open). A session that
//! nobody uses is ended; one that is used is ended at its longest duration unless the person
//! at the PC goes on, which grants another full duration.

use std::time::{Duration, Instant};

/// Default time without use before a session ends: long enough for a technician to read a
/// log or wait for an update, short enough that a forgotten session does not stay open.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30 * 60);
/// Default longest session: a long support call, not a day.
pub const DEFAULT_MAX: Duration = Duration::from_secs(4 * 60 * 60);
/// How long before the end the indicator warns (at most; a quarter of a short limit).
pub const WARNING_LEAD: Duration = Duration::from_secs(60);

/// Which limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// No use for the idle time.
    Idle,
    /// The longest duration.
    Max,
}

/// What the session does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitStep {
    /// Nothing until [`SessionLimits::next_deadline`].
    Nothing,
    /// Show the warning: the session ends by `limit` in `ends_in`.
    Warn { limit: Limit, ends_in: Duration },
    /// A warning shown before no longer holds (the session was used meanwhile).
    Clear,
    /// End the session.
    End(Limit),
}

/// The two limits of one session.
#[derive(Debug)]
pub struct SessionLimits {
    idle: Duration,
    max: Duration,
    last_use: Instant,
    max_deadline: Instant,
    warned: Option<Limit>,
}

impl SessionLimits {
    /// Limits for a session that starts at `now`.
    pub fn new(idle: Duration, max: Duration, now: Instant) -> Self {
        Self {
            idle,
            max,
            last_use: now,
            max_deadline: now + max,
            warned: None,
        }
    }

    fn lead(limit: Duration) -> Duration {
        WARNING_LEAD.min(limit / 4)
    }

    fn idle_deadline(&self) -> Instant {
        self.last_use + self.idle
    }

    /// The viewer used the session.
    pub fn used(&mut self, now: Instant) {
        self.last_use = now;
    }

    /// The person at the PC clicked "go on": the idle time starts afresh, and a warned longest
    /// duration is extended by a whole duration.
    pub fn go_on(&mut self, now: Instant) {
        self.last_use = now;
        if self.warned == Some(Limit::Max) {
            self.max_deadline = now + self.max;
        }
        self.warned = None;
    }

    /// When [`Self::step`] next has something to say (besides a [`LimitStep::Clear`], which
    /// follows [`Self::used`] at once).
    pub fn next_deadline(&self) -> Instant {
        let idle_end = self.idle_deadline();
        let ends = idle_end.min(self.max_deadline);
        match self.warned {
            Some(_) => ends,
            None => ends
                .min(idle_end - Self::lead(self.idle))
                .min(self.max_deadline - Self::lead(self.max)),
        }
    }

    /// What to do at `now`.
    pub fn step(&mut self, now: Instant) -> LimitStep {
        let idle_end = self.idle_deadline();
        if now >= self.max_deadline {
            return LimitStep::End(Limit::Max);
        }
        if now >= idle_end {
            return LimitStep::End(Limit::Idle);
        }
        let max_warn = now + Self::lead(self.max) >= self.max_deadline;
        let idle_warn = now + Self::lead(self.idle) >= idle_end;
        let due = match (max_warn, idle_warn) {
            // The nearer end is the one to announce.
            (true, true) if self.max_deadline <= idle_end => Some(Limit::Max),
            (true, true) => Some(Limit::Idle),
            (true, false) => Some(Limit::Max),
            (false, true) => Some(Limit::Idle),
            (false, false) => None,
        };
        match (due, self.warned) {
            (Some(l), w) if w != Some(l) => {
                self.warned = Some(l);
                let end = match l {
                    Limit::Idle => idle_end,
                    Limit::Max => self.max_deadline,
                };
                LimitStep::Warn {
                    limit: l,
                    ends_in: end - now,
                }
            }
            (None, Some(_)) => {
                self.warned = None;
                LimitStep::Clear
            }
            _ => LimitStep::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    /// Steps through `from..=to` second by second, collecting what happened and when.
    fn run(
        l: &mut SessionLimits,
        start: Instant,
        secs: std::ops::RangeInclusive<u64>,
        use_at: &[u64],
    ) -> Vec<(u64, LimitStep)> {
        let mut out = Vec::new();
        for s in secs {
            let now = start + Duration::from_secs(s);
            if use_at.contains(&s) {
                l.used(now);
            }
            match l.step(now) {
                LimitStep::Nothing => {}
                step => out.push((s, step)),
            }
            if matches!(out.last(), Some((_, LimitStep::End(_)))) {
                break;
            }
        }
        out
    }

    #[test]
    fn an_unused_session_is_warned_a_minute_before_and_ended() {
        let t0 = Instant::now();
        let mut l = SessionLimits::new(30 * MIN, 240 * MIN, t0);
        let steps = run(&mut l, t0, 0..=3600, &[]);
        assert_eq!(
            steps,
            vec![
                (
                    29 * 60,
                    LimitStep::Warn {
                        limit: Limit::Idle,
                        ends_in: MIN
                    }
                ),
                (30 * 60, LimitStep::End(Limit::Idle)),
            ]
        );
    }

    #[test]
    fn use_clears_the_idle_warning_and_the_longest_duration_still_ends_it() {
        let t0 = Instant::now();
        let mut l = SessionLimits::new(30 * MIN, 240 * MIN, t0);
        // Not used until just after the idle warning, then every 10 minutes.
        let uses: Vec<u64> = (0..=24).map(|i| 29 * 60 + 5 + i * 600).collect();
        let steps = run(&mut l, t0, 0..=5 * 3600, &uses);
        assert_eq!(
            steps[0].1,
            LimitStep::Warn {
                limit: Limit::Idle,
                ends_in: MIN
            }
        );
        assert_eq!(steps[1], (29 * 60 + 5, LimitStep::Clear));
        assert_eq!(
            &steps[2..],
            &[
                (
                    239 * 60,
                    LimitStep::Warn {
                        limit: Limit::Max,
                        ends_in: MIN
                    }
                ),
                (240 * 60, LimitStep::End(Limit::Max)),
            ]
        );
    }

    #[test]
    fn going_on_grants_another_duration() {
        let t0 = Instant::now();
        let mut l = SessionLimits::new(30 * MIN, 240 * MIN, t0);
        let uses: Vec<u64> = (1..=48).map(|i| i * 600).collect();
        let steps = run(&mut l, t0, 0..=239 * 60, &uses);
        assert_eq!(
            steps.last().unwrap().1,
            LimitStep::Warn {
                limit: Limit::Max,
                ends_in: MIN
            }
        );
        l.go_on(t0 + 239 * MIN);
        let steps = run(&mut l, t0, 239 * 60..=600 * 60, &uses);
        assert_eq!(
            steps.last().unwrap(),
            &(240 * 60 + 239 * 60, LimitStep::End(Limit::Max)),
            "{steps:?}"
        );
    }

    /// Short limits (as tests use) warn a quarter before, and the deadline the caller sleeps
    /// to is never later than what `step` would report.
    #[test]
    fn short_limits_warn_a_quarter_before_and_deadlines_are_exact() {
        let t0 = Instant::now();
        let mut l = SessionLimits::new(Duration::from_secs(8), Duration::from_secs(3600), t0);
        let first = l.next_deadline();
        assert_eq!(first, t0 + Duration::from_secs(6));
        assert_eq!(
            l.step(first),
            LimitStep::Warn {
                limit: Limit::Idle,
                ends_in: Duration::from_secs(2)
            }
        );
        let next = l.next_deadline();
        assert_eq!(next, t0 + Duration::from_secs(8));
        assert_eq!(l.step(next), LimitStep::End(Limit::Idle));
    }
}
