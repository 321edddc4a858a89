//! The relay's bounds, each a named default that ops may override in `relay.toml`'s `[limits]`.

use serde::Deserialize;
use std::time::Duration;

/// Agents that may wait under one ticket (a classroom incident, not a whole school).
pub const MAX_AGENTS_PER_TICKET: usize = 16;
/// Agents the relay keeps waiting at once.
pub const MAX_AGENTS: usize = 10_000;
/// Open connections from one IP address: a school behind one NAT with many PCs waiting fits,
/// a single host opening thousands does not.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 200;
/// Open connections in all: bounds the relay's memory whatever the number of addresses.
pub const MAX_CONNECTIONS: usize = 20_000;
/// Agents registered from one IP address at once.
pub const MAX_REGISTRATIONS_PER_ADDRESS: usize = 100;
/// A registration lapses unless renewed this often; agents renew at a third of it.
pub const REGISTRATION_TTL: Duration = Duration::from_secs(120);
/// A client must complete its handshake and say who it is this fast after connecting.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A pairing must finish this fast after the viewer joined.
pub const PAIRING_TIMEOUT: Duration = Duration::from_secs(30);

/// The bounds in force.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// [`MAX_AGENTS`].
    pub max_agents: usize,
    /// [`MAX_AGENTS_PER_TICKET`].
    pub max_agents_per_ticket: usize,
    /// [`MAX_CONNECTIONS_PER_ADDRESS`].
    pub max_connections_per_address: usize,
    /// [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// [`MAX_REGISTRATIONS_PER_ADDRESS`].
    pub max_registrations_per_address: usize,
    /// [`REGISTRATION_TTL`], in seconds.
    pub registration_ttl_secs: u64,
    /// [`HELLO_TIMEOUT`], in seconds.
    pub hello_timeout_secs: u64,
    /// [`PAIRING_TIMEOUT`], in seconds.
    pub pairing_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_agents: MAX_AGENTS,
            max_agents_per_ticket: MAX_AGENTS_PER_TICKET,
            max_connections_per_address: MAX_CONNECTIONS_PER_ADDRESS,
            max_connections: MAX_CONNECTIONS,
            max_registrations_per_address: MAX_REGISTRATIONS_PER_ADDRESS,
            registration_ttl_secs: REGISTRATION_TTL.as_secs(),
            hello_timeout_secs: HELLO_TIMEOUT.as_secs(),
            pairing_timeout_secs: PAIRING_TIMEOUT.as_secs(),
        }
    }
}

impl Limits {
    /// How long a registration lives without renewal.
    pub fn registration_ttl(&self) -> Duration {
        Duration::from_secs(self.registration_ttl_secs.max(3))
    }
    /// How long a new connection has to say who it is.
    pub fn hello_timeout(&self) -> Duration {
        Duration::from_secs(self.hello_timeout_secs.max(1))
    }
    /// How long a pairing may take.
    pub fn pairing_timeout(&self) -> Duration {
        Duration::from_secs(self.pairing_timeout_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_toml_overrides_some_limits_and_keeps_the_rest() {
        #[derive(Deserialize)]
        struct File {
            limits: Limits,
        }
        let f: File =
            toml::from_str("[limits]\nmax_agents = 5\nregistration_ttl_secs = 30\n").unwrap();
        assert_eq!(f.limits.max_agents, 5);
        assert_eq!(f.limits.registration_ttl(), Duration::from_secs(30));
        assert_eq!(f.limits.max_agents_per_ticket, MAX_AGENTS_PER_TICKET);
        assert!(
            toml::from_str::<File>("[limits]\nmax_agent = 5\n").is_err(),
            "typos are refused"
        );
    }
}
