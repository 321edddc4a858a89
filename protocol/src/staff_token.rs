//! A staff member's login token, which names the staff member it was issued to.
//!
//! The viewer takes the name it acts under from its own token, binds it into the pairing's
//! MAC'd transcript and refuses a relay that names it otherwise: a compromised relay cannot
//! present a technician to the person at the PC as "Schulleitung". The name is in the token
//! rather than in a config file beside it, so the two cannot drift apart, and the relay's
//! hash of the whole token binds it there too.
//!
//! Format: `fh_` 64 hex digits of secret `_` the name's UTF-8 bytes in hex.

use crate::ids::{check_name, IdError, MAX_NAME_LEN};
use std::fmt;

/// Longest staff token accepted: prefix, secret, separator and the longest name in hex.
pub const MAX_TOKEN_LEN: usize = PREFIX.len() + SECRET_HEX + 1 + 2 * MAX_NAME_LEN;

const PREFIX: &str = "fh_";
/// Hex digits of the 256-bit secret.
const SECRET_HEX: usize = 64;

/// A staff member's secret login token; `Debug` is redacted so it never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct StaffToken(pub String);

impl fmt::Debug for StaffToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaffToken(***)")
    }
}

impl StaffToken {
    /// A token for the staff member `name` around 256 bits of the caller's randomness.
    pub fn issue(name: &str, secret: &[u8; 32]) -> Result<Self, IdError> {
        check_name("staff name", name)?;
        Ok(Self(format!(
            "{PREFIX}{}_{}",
            crate::hex::lower(secret),
            crate::hex::lower(name.as_bytes())
        )))
    }

    /// The staff member the token was issued to; `None` for a malformed token and for one
    /// issued before tokens named their holder.
    pub fn staff_name(&self) -> Option<String> {
        let rest = self.0.trim().strip_prefix(PREFIX)?;
        let (secret, name) = rest.split_once('_')?;
        if secret.len() != SECRET_HEX || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        if name.len() > 2 * MAX_NAME_LEN {
            return None;
        }
        let name = String::from_utf8(crate::hex::parse(name)?).ok()?;
        check_name("staff name", &name).ok()?;
        Some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_holder_and_nothing_else_does() {
        let t = StaffToken::issue("Anna Schmidt", &[0xab; 32]).unwrap();
        assert_eq!(t.staff_name().as_deref(), Some("Anna Schmidt"));
        assert!(t.0.len() <= MAX_TOKEN_LEN);
        let longest = StaffToken::issue(&"ü".repeat(MAX_NAME_LEN / 2), &[1; 32]).unwrap();
        assert_eq!(longest.0.len(), MAX_TOKEN_LEN);
        assert_eq!(
            longest.staff_name().as_deref(),
            Some("ü".repeat(32).as_str())
        );
        let secret = "ab".repeat(32);
        for unnamed in [
            // Issued before tokens named their holder.
            format!("fh_{secret}"),
            format!("fh_{secret}_"),
            format!("fh_{}_414e4e41", "ab".repeat(31)),
            format!("fh_{}_414e4e41", "zz".repeat(32)),
            format!("fh_{secret}_414e4e4"),
            format!("fh_{secret}_41xx"),
            // Not UTF-8, a control character, too long.
            format!("fh_{secret}_ff"),
            format!("fh_{secret}_410a42"),
            format!("fh_{secret}_{}", "41".repeat(MAX_NAME_LEN + 1)),
            format!("xx_{secret}_414e4e41"),
            "fh_x".into(),
        ] {
            assert_eq!(StaffToken(unnamed.clone()).staff_name(), None, "{unnamed}");
        }
        assert!(StaffToken::issue("", &[0; 32]).is_err());
        assert_eq!(format!("{t:?}"), "StaffToken(***)");
    }
}
