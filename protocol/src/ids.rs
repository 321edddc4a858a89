//! The names a session is known by: ticket number, one-time session code, host and staff names.

use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Why a ticket number, code or name typed by a person was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IdError {
    #[error("ticket number '{0}' is invalid: use the digits of the helpdesk ticket, e.g. 4711 / Ticketnummer ungültig: nur die Ziffern des Tickets, z. B. 4711")]
    Ticket(String),
    #[error("session code '{0}' is invalid: it has 6 digits, e.g. 483-291 / Sitzungscode ungültig: 6 Ziffern, z. B. 483-291")]
    Code(String),
    #[error("{what} is invalid: {reason}")]
    Name {
        what: &'static str,
        reason: &'static str,
    },
}

/// A helpdesk ticket number: 1 to 12 decimal digits, as the ticket system shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TicketNumber(u64);

impl TicketNumber {
    /// Most digits a ticket number may have.
    pub const MAX_DIGITS: usize = 12;

    /// The number as an integer.
    pub fn get(self) -> u64 {
        self.0
    }

    /// Accepts only what a ticket number can be; used for bytes off the wire too.
    pub fn from_u64(v: u64) -> Result<Self, IdError> {
        if v == 0 || v >= 10u64.pow(Self::MAX_DIGITS as u32) {
            return Err(IdError::Ticket(v.to_string()));
        }
        Ok(Self(v))
    }
}

impl FromStr for TicketNumber {
    type Err = IdError;
    /// Accepts `4711` and `#4711`, surrounding blanks ignored.
    fn from_str(s: &str) -> Result<Self, IdError> {
        let t = s.trim();
        let digits = t.strip_prefix('#').unwrap_or(t);
        if digits.is_empty()
            || digits.len() > Self::MAX_DIGITS
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(IdError::Ticket(s.chars().take(40).collect()));
        }
        Self::from_u64(digits.parse().map_err(|_| IdError::Ticket(s.to_owned()))?)
    }
}

impl fmt::Display for TicketNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The one-time six-digit code the agent shows and the IT contact reads out on the phone.
///
/// Its `Debug` output is redacted so that it cannot end up in a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCode(u32);

impl SessionCode {
    /// Draws a fresh code from the operating system's random source.
    pub fn generate() -> Self {
        loop {
            let mut b = [0u8; 4];
            getrandom::getrandom(&mut b).expect("operating system random source failed");
            let v = u32::from_be_bytes(b);
            // Rejection sampling keeps all codes equally likely.
            if v < 4_294_000_000 {
                return Self(v % 1_000_000);
            }
        }
    }

    /// The code as the PAKE password.
    pub fn as_password(&self) -> Vec<u8> {
        format!("{:06}", self.0).into_bytes()
    }

    /// The form shown to people: `483-291`.
    pub fn display(&self) -> String {
        format!("{:03}-{:03}", self.0 / 1000, self.0 % 1000)
    }
}

impl fmt::Debug for SessionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionCode(***)")
    }
}

impl FromStr for SessionCode {
    type Err = IdError;
    /// Accepts `483-291`, `483 291` and `483291`.
    fn from_str(s: &str) -> Result<Self, IdError> {
        let digits: String = s.chars().filter(|c| !matches!(c, '-' | ' ')).collect();
        if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::Code("******".into()));
        }
        Ok(Self(
            digits.parse().map_err(|_| IdError::Code("******".into()))?,
        ))
    }
}

/// Most bytes of a host or staff name.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a host or staff name: printable, not empty, bounded.
pub fn check_name(what: &'static str, s: &str) -> Result<(), IdError> {
    if s.trim().is_empty() {
        return Err(IdError::Name {
            what,
            reason: "empty",
        });
    }
    if s.len() > MAX_NAME_LEN {
        return Err(IdError::Name {
            what,
            reason: "longer than 64 bytes",
        });
    }
    if s.chars().any(char::is_control) {
        return Err(IdError::Name {
            what,
            reason: "contains control characters",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_numbers() {
        assert_eq!("4711".parse::<TicketNumber>().unwrap().get(), 4711);
        assert_eq!(
            " #4711 ".parse::<TicketNumber>().unwrap().to_string(),
            "#4711"
        );
        for bad in ["", "#", "47a1", "-1", "0", "1234567890123", "４７"] {
            assert!(bad.parse::<TicketNumber>().is_err(), "{bad}");
        }
    }

    #[test]
    fn codes_parse_and_never_print() {
        let c: SessionCode = "483-291".parse().unwrap();
        assert_eq!(c.display(), "483-291");
        assert_eq!("483 291".parse::<SessionCode>().unwrap(), c);
        assert_eq!(format!("{c:?}"), "SessionCode(***)");
        assert!("48329".parse::<SessionCode>().is_err());
        let e = "12345x".parse::<SessionCode>().unwrap_err().to_string();
        assert!(!e.contains("12345"));
        let g = SessionCode::generate();
        assert_eq!(g.display().len(), 7);
    }

    #[test]
    fn names() {
        assert!(check_name("host", "PC-Raum-12").is_ok());
        assert!(check_name("host", "").is_err());
        assert!(check_name("host", "a\nb").is_err());
        assert!(check_name("host", &"x".repeat(65)).is_err());
    }
}
