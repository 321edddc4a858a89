//! What the person at the PC has allowed, and the checks the agent makes against it.
//!
//! The agent is the only place consent is enforced: neither the viewer nor the relay can
//! grant anything. Each capability is its own grant, and everything starts off.

use crate::wire::DecodeError;

/// The answer of the person at the PC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Declined, or the dialog was closed: nothing is shared.
    Denied,
    /// The screen may be seen; no input is injected.
    View,
    /// The screen may be seen and mouse and keyboard controlled.
    Control,
}

impl Grant {
    /// Wire code of the grant.
    pub fn code(self) -> u8 {
        match self {
            Grant::Denied => 0,
            Grant::View => 1,
            Grant::Control => 2,
        }
    }

    /// Grant from its wire code.
    pub fn from_code(c: u8) -> Result<Self, DecodeError> {
        match c {
            0 => Ok(Grant::Denied),
            1 => Ok(Grant::View),
            2 => Ok(Grant::Control),
            tag => Err(DecodeError::UnknownTag { what: "grant", tag }),
        }
    }

    /// Whether pixels may leave the PC.
    pub fn allows_view(self) -> bool {
        matches!(self, Grant::View | Grant::Control)
    }

    /// Whether input from the viewer may be injected.
    pub fn allows_control(self) -> bool {
        matches!(self, Grant::Control)
    }
}

/// The agent's consent state over a session: nothing is granted until the person answers.
#[derive(Debug, Default)]
pub struct ConsentState {
    grant: Option<Grant>,
}

impl ConsentState {
    /// The current grant; `None` while the dialog is still open.
    pub fn current(&self) -> Option<Grant> {
        self.grant
    }

    /// Records the person's answer or a later change; `Denied` is final.
    pub fn set(&mut self, g: Grant) -> Grant {
        if self.grant != Some(Grant::Denied) {
            self.grant = Some(g);
        }
        self.grant.unwrap_or(Grant::Denied)
    }

    /// Whether pixels may leave now.
    pub fn may_send_screen(&self) -> bool {
        self.grant.is_some_and(Grant::allows_view)
    }

    /// Whether input may be injected now.
    pub fn may_inject(&self) -> bool {
        self.grant.is_some_and(Grant::allows_control)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_before_answer_and_denial_is_final() {
        let mut c = ConsentState::default();
        assert!(!c.may_send_screen() && !c.may_inject());
        c.set(Grant::View);
        assert!(c.may_send_screen() && !c.may_inject());
        c.set(Grant::Control);
        assert!(c.may_inject());
        c.set(Grant::View);
        assert!(!c.may_inject());
        c.set(Grant::Denied);
        assert_eq!(c.set(Grant::Control), Grant::Denied);
        assert!(!c.may_send_screen());
    }
}
