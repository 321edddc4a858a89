//! The grant of the running session, shared between the consent UI (which changes it) and the
//! screen and input paths (which check it before every frame and every input event).

use protocol::consent::Grant;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

const UNANSWERED: u8 = u8::MAX;

/// Shared, lock-free view of the current grant; starts unanswered, which allows nothing.
#[derive(Clone)]
pub struct ConsentGate(Arc<AtomicU8>);

impl Default for ConsentGate {
    fn default() -> Self {
        Self(Arc::new(AtomicU8::new(UNANSWERED)))
    }
}

impl ConsentGate {
    /// Records a grant; once denied, nothing can be granted again in this session.
    pub fn set(&self, g: Grant) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                (cur != Grant::Denied.code()).then_some(g.code())
            });
    }

    /// The current grant, `None` while unanswered.
    pub fn get(&self) -> Option<Grant> {
        Grant::from_code(self.0.load(Ordering::SeqCst)).ok()
    }

    /// Whether pixels may leave now.
    pub fn may_view(&self) -> bool {
        self.get().is_some_and(Grant::allows_view)
    }

    /// Whether input may be injected now.
    pub fn may_inject(&self) -> bool {
        self.get().is_some_and(Grant::allows_control)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_follows_grants_and_denial_sticks() {
        let g = ConsentGate::default();
        assert!(!g.may_view() && !g.may_inject());
        g.set(Grant::Control);
        assert!(g.may_inject());
        g.set(Grant::View);
        assert!(g.may_view() && !g.may_inject());
        g.set(Grant::Denied);
        g.set(Grant::Control);
        assert!(!g.may_view());
    }
}
