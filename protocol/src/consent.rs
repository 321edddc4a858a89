//! What the person at the PC has allowed, and the checks the agent makes against it.
//!
//! The agent is the only place consent is enforced (its `ConsentGate`): neither the viewer
//! nor the relay can grant anything. Each capability is its own grant, and everything starts off.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_control_allows_input() {
        assert!(!Grant::Denied.allows_view() && !Grant::Denied.allows_control());
        assert!(Grant::View.allows_view() && !Grant::View.allows_control());
        assert!(Grant::Control.allows_view() && Grant::Control.allows_control());
        for g in [Grant::Denied, Grant::View, Grant::Control] {
            assert_eq!(Grant::from_code(g.code()).unwrap(), g);
        }
        assert!(Grant::from_code(3).is_err());
    }
}
