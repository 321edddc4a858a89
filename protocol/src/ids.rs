//! The names a session is known by: ticket number, one-time session code, host and staff names.

use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Why a ticket number, code or name typed by a person was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IdError {
    #[error("ticket number '{0}' is invalid: use the digits of the helpdesk ticket, e.g. 4711 / Ticketnummer ungültig: nur die Ziffern des Tickets, z. B. 4711")]
    Ticket(String),
    #[error("session code '{0}' is invalid: it has 9 digits, e.g. 483-291-075 / Sitzungscode ungültig: 9 Ziffern, z. B. 483-291-075")]
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

/// The one-time nine-digit code the agent shows and the IT contact reads out on the phone.
///
/// Nine digits, read in three groups (`483-291-075`), are still easy to say on the phone and
/// make a blind guess one in a billion; the agent caps wrong guesses over its lifetime, so a
/// hostile relay cannot search the space. Its `Debug` output is redacted so that it cannot end
/// up in a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCode(u32);

impl SessionCode {
    /// Digits of a code.
    pub const DIGITS: usize = 9;
    const SPACE: u32 = 1_000_000_000;

    /// Draws a fresh code from `rng` (the caller passes the operating system's source).
    pub fn generate(rng: &mut impl rand_core::CryptoRngCore) -> Self {
        // Rejection sampling keeps all codes equally likely: 4 * SPACE is the largest multiple
        // of SPACE below 2^32.
        loop {
            let v = rng.next_u32();
            if v < 4 * Self::SPACE {
                return Self(v % Self::SPACE);
            }
        }
    }

    /// The code as the PAKE password.
    pub fn as_password(&self) -> Vec<u8> {
        format!("{:09}", self.0).into_bytes()
    }

    /// The form shown to people: `483-291-075`.
    pub fn display(&self) -> String {
        let s = format!("{:09}", self.0);
        format!("{}-{}-{}", &s[0..3], &s[3..6], &s[6..9])
    }
}

impl fmt::Debug for SessionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionCode(***)")
    }
}

impl FromStr for SessionCode {
    type Err = IdError;
    /// Accepts `483-291-075`, `483 291 075` and `483291075`.
    fn from_str(s: &str) -> Result<Self, IdError> {
        let digits: String = s.chars().filter(|c| !matches!(c, '-' | ' ')).collect();
        if digits.len() != Self::DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::Code("*********".into()));
        }
        Ok(Self(
            digits
                .parse()
                .map_err(|_| IdError::Code("*********".into()))?,
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

/// Checks a PC's host name: what DNS and Windows allow in a computer name (ASCII letters,
/// digits, `-`, `_`, `.`), starting with a letter or digit, at most [`MAX_NAME_LEN`] bytes.
/// The relay writes host names into audit records and ticket reports (HTML in GLPI), and the
/// viewer lists them: a stranger registering an agent must not get markup or look-alike
/// letters into any of them.
pub fn check_host_name(s: &str) -> Result<(), IdError> {
    let reason = if s.is_empty() {
        "empty"
    } else if s.len() > MAX_NAME_LEN {
        "longer than 64 bytes"
    } else if !s.as_bytes()[0].is_ascii_alphanumeric() {
        "does not start with a letter or digit"
    } else if !s.bytes().all(host_name_byte) {
        "has characters other than A-Z, a-z, 0-9, '-', '_' and '.'"
    } else {
        return Ok(());
    };
    Err(IdError::Name {
        what: "host name",
        reason,
    })
}

fn host_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// Longest suffix a [`HostChoice`] adds to a host name (`~16`).
const CHOICE_SUFFIX_LEN: usize = 3;
/// Longest host choice: a host name and its suffix.
pub const MAX_CHOICE_LEN: usize = MAX_NAME_LEN + CHOICE_SUFFIX_LEN;

/// How the relay offers a waiting PC to viewers, and how a viewer picks one: its host name, or,
/// when PCs from several networks wait under one ticket with the same name, the name and its
/// place among them (`PC-12~2`). A stranger cannot take a PC's name ahead of it: the name is
/// unique per network address only.
pub fn check_host_choice(s: &str) -> Result<(), IdError> {
    let (name, place) = s.rsplit_once('~').map_or((s, None), |(n, p)| (n, Some(p)));
    check_host_name(name)?;
    let place_ok = |p: &str| {
        (1..=2).contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u8>().is_ok_and(|n| n >= 1)
    };
    match place {
        Some(p) if !place_ok(p) => Err(IdError::Name {
            what: "host choice",
            reason: "the part after '~' is not a number from 1 to 99",
        }),
        _ => Ok(()),
    }
}

/// The host name a [`check_host_choice`] string names.
pub fn host_of_choice(s: &str) -> &str {
    s.rsplit_once('~').map_or(s, |(name, _)| name)
}

/// The host name the agent reports for the name the operating system gave: characters outside
/// [`check_host_name`]'s set become `-`, so an unusual computer name still identifies the PC.
pub fn host_name_from_os(raw: &str) -> String {
    let mapped = raw.trim().chars().map(|c| match u8::try_from(c) {
        Ok(b) if host_name_byte(b) => c,
        _ => '-',
    });
    // A name that would start with a separator (or is empty) gets a leading "PC".
    let lead = match raw.trim().bytes().next() {
        Some(b) if b.is_ascii_alphanumeric() => "",
        _ => "PC",
    };
    lead.chars().chain(mapped).take(MAX_NAME_LEN).collect()
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
        let c: SessionCode = "483-291-075".parse().unwrap();
        assert_eq!(c.display(), "483-291-075");
        assert_eq!("483 291 075".parse::<SessionCode>().unwrap(), c);
        assert_eq!("483291075".parse::<SessionCode>().unwrap(), c);
        assert_eq!(format!("{c:?}"), "SessionCode(***)");
        assert!(
            "483-291".parse::<SessionCode>().is_err(),
            "old 6-digit codes"
        );
        assert!("4832910751".parse::<SessionCode>().is_err());
        let e = "12345678x".parse::<SessionCode>().unwrap_err().to_string();
        assert!(!e.contains("12345"));
        assert_eq!(
            "000-000-001".parse::<SessionCode>().unwrap().display(),
            "000-000-001"
        );
    }

    /// A fixed byte source, to show where codes come from without the OS.
    struct Counter(u32);
    impl rand_core::RngCore for Counter {
        fn next_u32(&mut self) -> u32 {
            self.0 = self.0.wrapping_add(1_234_567_891);
            self.0
        }
        fn next_u64(&mut self) -> u64 {
            self.next_u32() as u64
        }
        fn fill_bytes(&mut self, d: &mut [u8]) {
            for b in d {
                *b = self.next_u32() as u8;
            }
        }
        fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(d);
            Ok(())
        }
    }
    impl rand_core::CryptoRng for Counter {}

    #[test]
    fn codes_come_from_the_callers_randomness_and_span_nine_digits() {
        let mut rng = Counter(0);
        let codes: Vec<String> = (0..50)
            .map(|_| SessionCode::generate(&mut rng).display())
            .collect();
        assert!(codes.iter().all(|c| c.len() == 11));
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        // Values at or above 4 * 10^9 are redrawn, never folded onto low codes.
        assert!(rng.0 != 0);
    }

    #[test]
    fn names() {
        assert!(check_name("host", "PC-Raum-12").is_ok());
        assert!(check_name("host", "").is_err());
        assert!(check_name("host", "a\nb").is_err());
        assert!(check_name("host", &"x".repeat(65)).is_err());
    }

    #[test]
    fn host_names_are_strict_and_the_os_name_is_mapped_into_them() {
        for good in ["PC-Raum-12", "pc12.schule.example", "R2_D2", "7"] {
            assert!(check_host_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-PC",
            ".PC",
            "PC 12",
            "<b>PC</b>",
            "PC&amp;",
            "Рс-12",
            "PC\u{202e}21",
            &"x".repeat(65),
        ] {
            assert!(check_host_name(bad).is_err(), "{bad}");
        }
        assert_eq!(host_name_from_os("PC-Raum-12"), "PC-Raum-12");
        assert_eq!(host_name_from_os(" Büro PC "), "B-ro-PC");
        assert_eq!(host_name_from_os("<script>"), "PC-script-");
        assert_eq!(host_name_from_os(""), "PC");
        assert_eq!(host_name_from_os(&"ä".repeat(80)).len(), MAX_NAME_LEN);
        for good in ["PC-12", "PC-12~1", "PC-12~16"] {
            assert!(check_host_choice(good).is_ok(), "{good}");
        }
        for bad in [
            "PC-12~",
            "PC-12~0",
            "PC-12~x",
            "PC-12~100",
            "~2",
            "PC 12~2",
            "PC~1~2",
        ] {
            assert!(check_host_choice(bad).is_err(), "{bad}");
        }
        assert_eq!(host_of_choice("PC-12~2"), "PC-12");
        assert_eq!(host_of_choice("PC-12"), "PC-12");
        for raw in ["", "ä", "-", "<x>", "a b", &"é".repeat(100)] {
            let mapped = host_name_from_os(raw);
            assert!(check_host_name(&mapped).is_ok(), "{raw:?} -> {mapped:?}");
        }
    }
}
