//! The link a ticket carries to start the viewer: `fernhilfe://relay.example:443/ticket/4711`.
//! It names the relay and the ticket, nothing more: never a session code or a token, so a
//! link copied out of a ticket opens nothing by itself. A viewer takes it only for a relay it
//! is already set up for (and pins), so a link edited to name another relay is refused.

use crate::ids::{IdError, TicketNumber};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// The scheme, as registered with the desktop (`x-scheme-handler/fernhilfe`).
pub const SCHEME: &str = "fernhilfe";
/// Longest link taken: a host name of 253 characters, a port and a ticket fit.
pub const MAX_LINK_LEN: usize = 300;

/// Why a link or a relay address was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LinkError {
    #[error("'{0}' is no relay address: give host:port, e.g. relay.schultraeger.example:443")]
    Address(String),
    #[error("'{0}' is no Fernhilfe link: it looks like fernhilfe://relay.example:443/ticket/4711")]
    Link(String),
    #[error(transparent)]
    Ticket(#[from] IdError),
}

/// A relay address as agents and viewers dial it: `host:port`, the host a DNS name, an IPv4
/// address or a bracketed IPv6 address; nothing else (no scheme, path, quotes or blanks).
pub fn check_relay_address(a: &str) -> Result<(), LinkError> {
    let bad = || LinkError::Address(a.chars().take(80).collect());
    let (host, port) = a.rsplit_once(':').ok_or_else(bad)?;
    if !port.parse::<u16>().is_ok_and(|p| p != 0) || host.is_empty() || host.len() > 255 {
        return Err(bad());
    }
    let ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }),
    };
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// A parsed `fernhilfe://` link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLink {
    /// host:port of the relay the agent registered at.
    pub relay: String,
    pub ticket: TicketNumber,
}

impl FromStr for SessionLink {
    type Err = LinkError;

    /// Takes exactly `fernhilfe://HOST:PORT/ticket/DIGITS` (a trailing `/` allowed): no user,
    /// query or fragment, so nothing can ride along.
    fn from_str(s: &str) -> Result<Self, LinkError> {
        let bad = || LinkError::Link(s.chars().take(80).collect());
        if s.len() > MAX_LINK_LEN {
            return Err(bad());
        }
        let rest = s
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix("://"))
            .ok_or_else(bad)?;
        let (relay, path) = rest.split_once('/').ok_or_else(bad)?;
        check_relay_address(relay).map_err(|_| bad())?;
        let digits = path.strip_prefix("ticket/").ok_or_else(bad)?;
        let digits = digits.strip_suffix('/').unwrap_or(digits);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        Ok(Self {
            relay: relay.to_owned(),
            ticket: digits.parse()?,
        })
    }
}

impl fmt::Display for SessionLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}://{}/ticket/{}", self.relay, self.ticket.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_round_trip() {
        for s in [
            "fernhilfe://relay.schultraeger.example:443/ticket/4711",
            "fernhilfe://192.0.2.7:8443/ticket/1",
            "fernhilfe://[2001:db8::1]:443/ticket/999999999999",
        ] {
            let l: SessionLink = s.parse().unwrap();
            assert_eq!(l.to_string(), s);
        }
        let l: SessionLink = "fernhilfe://r.example:443/ticket/4711/".parse().unwrap();
        assert_eq!((l.relay.as_str(), l.ticket.get()), ("r.example:443", 4711));
    }

    #[test]
    fn nothing_rides_along_and_nothing_else_is_taken() {
        for s in [
            "",
            "fernhilfe:",
            "https://r.example:443/ticket/4711",
            "fernhilfe://r.example/ticket/4711",
            "fernhilfe://r.example:0/ticket/4711",
            "fernhilfe://r.example:443/ticket/",
            "fernhilfe://r.example:443/ticket/0",
            "fernhilfe://r.example:443/ticket/4711?code=123-456-789",
            "fernhilfe://r.example:443/ticket/4711#x",
            "fernhilfe://anna:token@r.example:443/ticket/4711",
            "fernhilfe://r.example:443/ticket/4711/code/123456789",
            "fernhilfe://r.example:443/ticket/1234567890123",
            "fernhilfe://r..example:443/ticket/4711",
            "fernhilfe://-r.example:443/ticket/4711",
            "fernhilfe://r example:443/ticket/4711",
            "fernhilfe://r.example:443/ticket/+4711",
            "fernhilfe://[::g]:443/ticket/4711",
            "fernhilfe://r.example:443/../ticket/4711",
        ] {
            assert!(s.parse::<SessionLink>().is_err(), "{s} taken");
        }
        let long = format!("fernhilfe://{}.example:443/ticket/1", "a".repeat(300));
        assert!(long.parse::<SessionLink>().is_err());
    }

    #[test]
    fn relay_addresses_are_host_and_port_only() {
        for bad in [
            "relay.example",
            "https://relay.example:443",
            "relay.example:443/x",
            ":443",
            "relay\"\nrelay_fingerprint = \"x:443",
        ] {
            assert!(check_relay_address(bad).is_err(), "{bad} taken");
        }
    }
}
