//! The grant of the running session, shared between the consent UI (which changes it) and the
//! screen and input paths (which check it before every frame and every input event).
//!
//! The UI sets the gate itself, on the click, so *Beenden* and *Nur ansehen* take effect
//! whatever the network or the viewer does; watchers (the input injector) hear of every change
//! at once, so held keys and buttons are released the moment control ends.

use protocol::consent::Grant;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

const UNANSWERED: u8 = u8::MAX;

type Watcher = Box<dyn Fn(Grant) + Send + Sync>;

struct Inner {
    grant: AtomicU8,
    watchers: Mutex<Vec<Watcher>>,
}

/// Shared view of the current grant; starts unanswered, which allows nothing.
#[derive(Clone)]
pub(crate) struct ConsentGate(Arc<Inner>);

impl Default for ConsentGate {
    fn default() -> Self {
        Self(Arc::new(Inner {
            grant: AtomicU8::new(UNANSWERED),
            watchers: Mutex::default(),
        }))
    }
}

impl ConsentGate {
    /// Records a grant and tells the watchers; once denied, nothing can be granted again in
    /// this session.
    pub(crate) fn set(&self, g: Grant) {
        let changed = self
            .0
            .grant
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                (cur != Grant::Denied.code()).then_some(g.code())
            })
            .is_ok();
        if changed {
            let now = self.get().unwrap_or(Grant::Denied);
            for w in self
                .0
                .watchers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
            {
                w(now);
            }
        }
    }

    /// Calls `f` with the new grant after every change.
    pub(crate) fn watch(&self, f: impl Fn(Grant) + Send + Sync + 'static) {
        self.0
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(f));
    }

    /// The current grant, `None` while unanswered.
    pub(crate) fn get(&self) -> Option<Grant> {
        Grant::from_code(self.0.grant.load(Ordering::SeqCst)).ok()
    }

    /// Whether pixels may leave now.
    pub(crate) fn may_view(&self) -> bool {
        self.get().is_some_and(Grant::allows_view)
    }

    /// Whether input may be injected now.
    pub(crate) fn may_inject(&self) -> bool {
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

    #[test]
    fn watchers_hear_every_change_and_nothing_after_denial() {
        let g = ConsentGate::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        g.watch(move |grant| s.lock().unwrap().push(grant));
        g.set(Grant::Control);
        g.set(Grant::View);
        g.set(Grant::Denied);
        g.set(Grant::Control);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Grant::Control, Grant::View, Grant::Denied]
        );
    }
}
