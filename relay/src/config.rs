//! The relay's configuration, resolved once: the `serve` flags over `relay.toml` over the
//! defaults, merged here and nowhere else (as ripgrep turns its parsed flags into `HiArgs`).
//! What [`crate::Relay::spawn`] gets is final; nothing downstream looks at flags or files.

use crate::limits::Limits;
use anyhow::{Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Default listen address: QUIC on 443 passes most school and company firewalls.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:443";
/// Audit records are kept a year unless configured otherwise.
pub const DEFAULT_RETENTION_DAYS: u32 = 365;
/// Address discovery's port when the relay listens on 443.
const DEFAULT_QAD_PORT: u16 = 7842;
/// The ops listener's port when the relay listens on 443.
const DEFAULT_OPS_PORT: u16 = 9842;

/// `relay.toml` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    listen: Option<SocketAddr>,
    qad_listen: Option<SocketAddr>,
    /// PEM certificate chain issued by a CA (with `key`), instead of the self-signed one.
    pub cert: Option<PathBuf>,
    key: Option<PathBuf>,
    /// Days audit records are kept.
    pub retention_days: Option<u32>,
    metrics_listen: Option<SocketAddr>,
    /// host:port agents and viewers reach this relay at: the default of the bundles, and the
    /// relay named by the `fernhilfe://` link in the ticket's session-start comment.
    pub public_address: Option<String>,
    /// The audit store in PostgreSQL instead of SQLite in the state directory: a connection
    /// string (`host=… user=… dbname=…`), or the environment variable that holds one.
    audit_database: Option<String>,
    audit_database_env: Option<String>,
    #[serde(default)]
    limits: Limits,
    /// Session reports to a ticket system, and ticket validation.
    tickets: Option<tickets::TicketsConfig>,
}

impl ConfigFile {
    /// Reads `path`, or `<state_dir>/relay.toml` if there is one.
    pub fn load(path: Option<&Path>, state_dir: &Path) -> Result<Self> {
        let (path, required) = match path {
            Some(p) => (p.to_owned(), true),
            None => (state_dir.join("relay.toml"), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(s) => toml::from_str(&s)
                .with_context(|| format!("config file {} is invalid", path.display())),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            // A state directory this user may not enter (a container volume created for root)
            // first shows here, where a config file is only looked for.
            Err(e) if !required && e.kind() == std::io::ErrorKind::PermissionDenied => Err(e)
                .with_context(|| {
                    format!(
                        "cannot enter the state directory {}: it must belong to the user the relay \
                         runs as (in the container image: uid 10001; give the volume or directory \
                         to 10001, mode 0700)",
                        state_dir.display()
                    )
                }),
            Err(e) => Err(e).with_context(|| format!("cannot read config file {}", path.display())),
        }
    }

    /// Where the audit record lives: PostgreSQL if configured, else SQLite in `state_dir`.
    pub fn audit_location(&self, state_dir: &Path) -> Result<audit::db::Location> {
        let url = match (&self.audit_database, &self.audit_database_env) {
            (_, Some(var)) => Some(std::env::var(var).with_context(|| {
                format!("audit_database_env: environment variable {var} is not set")
            })?),
            (Some(url), None) => Some(url.clone()),
            (None, None) => None,
        };
        Ok(match url {
            Some(u) => audit::db::Location::Postgres(u),
            None => audit::db::Location::Sqlite(state_dir.to_owned()),
        })
    }

    /// Days audit records are kept.
    pub fn retention_days(&self) -> u32 {
        self.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS)
    }
}

/// The flags of `fernhilfe-relay serve`; each overrides its key in `relay.toml`.
#[derive(clap::Args, Default, Clone)]
pub struct ServeFlags {
    /// Address to listen on: UDP for QUIC signaling, TCP (same port) for HTTPS (the relay
    /// path of sessions, and signaling where UDP is blocked) [default: 0.0.0.0:443]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// UDP address for QUIC address discovery, which lets sessions go direct
    /// [default: port 7842 when listening on 443, else any free port]
    #[arg(long)]
    pub qad_listen: Option<SocketAddr>,
    /// PEM certificate chain issued by a CA (instead of the self-signed one)
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key for --cert
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Days audit records are kept; older ones are pruned daily, the chain stays verifiable
    /// [default: 365]
    #[arg(long)]
    pub retention_days: Option<u32>,
    /// TCP address of the ops HTTP listener (/healthz, /readyz, /metrics)
    /// [default: 127.0.0.1:9842 when listening on 443, else a free loopback port]
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
}

/// Which key and certificate the relay presents.
#[derive(Clone)]
pub enum RelayIdentity {
    /// Its own key in the state directory, self-signed; clients pin its fingerprint.
    Own,
    /// A CA-issued chain and its key.
    Issued {
        /// PEM certificate chain.
        cert: PathBuf,
        /// PEM private key.
        key: PathBuf,
    },
}

/// Everything a running relay needs, final.
pub struct RelayConfig {
    /// Key, staff list and (SQLite) audit store.
    pub state_dir: PathBuf,
    /// UDP (QUIC signaling) and TCP (HTTPS: relay path, signaling over TCP), one port.
    pub listen: SocketAddr,
    /// UDP for QUIC address discovery.
    pub qad_listen: SocketAddr,
    /// TCP for /healthz, /readyz and /metrics.
    pub ops_listen: SocketAddr,
    /// The key and certificate presented.
    pub identity: RelayIdentity,
    /// Where the audit record lives.
    pub audit_at: audit::db::Location,
    /// Days audit records are kept.
    pub retention_days: u32,
    /// host:port clients reach this relay at, for the links in start reports.
    pub public_address: Option<String>,
    /// The bounds in force.
    pub limits: Limits,
    /// Session reports and ticket validation, if configured.
    pub tickets: Option<tickets::TicketsConfig>,
}

impl RelayConfig {
    /// Merges `flags` over `file` over the defaults, and checks what can be checked before
    /// anything is bound.
    pub fn resolve(state_dir: PathBuf, file: ConfigFile, flags: ServeFlags) -> Result<Self> {
        let listen = flags
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("literal address"));
        let on_443 = listen.port() == 443;
        let qad_listen = flags.qad_listen.or(file.qad_listen).unwrap_or_else(|| {
            SocketAddr::new(listen.ip(), if on_443 { DEFAULT_QAD_PORT } else { 0 })
        });
        let ops_listen = flags
            .metrics_listen
            .or(file.metrics_listen)
            .unwrap_or_else(|| {
                SocketAddr::from(([127, 0, 0, 1], if on_443 { DEFAULT_OPS_PORT } else { 0 }))
            });
        let identity = match (
            flags.cert.or(file.cert.clone()),
            flags.key.or(file.key.clone()),
        ) {
            (Some(cert), Some(key)) => RelayIdentity::Issued { cert, key },
            (None, None) => RelayIdentity::Own,
            _ => anyhow::bail!("cert and key go together: give both (in relay.toml or as flags)"),
        };
        if let Some(a) = &file.public_address {
            protocol::link::check_relay_address(a).context("public_address in relay.toml")?;
        }
        Ok(Self {
            audit_at: file.audit_location(&state_dir)?,
            retention_days: flags.retention_days.unwrap_or(file.retention_days()),
            state_dir,
            listen,
            qad_listen,
            ops_listen,
            identity,
            public_address: file.public_address,
            limits: file.limits,
            tickets: file.tickets,
        })
    }

    /// A relay on loopback with free ports, its own key and SQLite in `state_dir`: for tests
    /// and benchmarks that run it in-process.
    pub fn local(state_dir: &Path) -> Self {
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        Self {
            state_dir: state_dir.to_owned(),
            listen: loopback(0),
            qad_listen: loopback(0),
            ops_listen: loopback(0),
            identity: RelayIdentity::Own,
            audit_at: audit::db::Location::Sqlite(state_dir.to_owned()),
            retention_days: DEFAULT_RETENTION_DAYS,
            public_address: None,
            limits: Limits::default(),
            tickets: None,
        }
    }
}

/// `/var/lib/fernhilfe-relay` as root, else `$XDG_DATA_HOME/fernhilfe-relay`
/// (`~/.local/share/fernhilfe-relay`).
pub fn default_state_dir() -> PathBuf {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc_geteuid() } == 0 {
            return PathBuf::from("/var/lib/fernhilfe-relay");
        }
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".local/share"))
        .join("fernhilfe-relay")
}

#[cfg(unix)]
extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented example is a valid configuration with a working ticket system entry.
    #[test]
    fn the_example_config_parses_and_names_every_key() {
        let text = include_str!("../relay.toml.example");
        let cfg: ConfigFile = toml::from_str(text).expect("relay.toml.example parses");
        let tickets = cfg.tickets.expect("[tickets]");
        std::env::set_var("FERNHILFE_RT_PASSWORD", "x");
        assert_eq!(tickets.connector().unwrap().name(), "Request Tracker");
        for key in [
            "listen",
            "qad_listen",
            "cert",
            "key",
            "retention_days",
            "audit_database",
            "audit_database_env",
            "max_agents",
            "max_agents_per_ticket",
            "max_connections_per_address",
            "max_connections",
            "max_registrations_per_address",
            "registration_ttl_secs",
            "hello_timeout_secs",
            "pairing_timeout_secs",
            "system",
            "url",
            "validate",
            "unchecked",
            "lang",
            "retry_base_secs",
            "ca_file",
            "user",
            "password",
            "password_env",
            "token",
            "token_env",
            "app_token",
            "app_token_env",
            "secret",
            "secret_env",
        ] {
            assert!(
                text.contains(&format!("\n{key} =")) || text.contains(&format!("# {key} =")),
                "{key} undocumented"
            );
        }
    }

    /// Flags win over the file, the file over the defaults; on 443 the side listeners get
    /// their fixed ports, elsewhere free ones.
    #[test]
    fn flags_override_the_file_which_overrides_the_defaults() {
        let file: ConfigFile =
            toml::from_str("listen = \"127.0.0.1:443\"\nretention_days = 30\n").unwrap();
        let flags = ServeFlags {
            retention_days: Some(7),
            ..ServeFlags::default()
        };
        let c = RelayConfig::resolve("/tmp/x".into(), file, flags).unwrap();
        assert_eq!(c.listen, "127.0.0.1:443".parse().unwrap());
        assert_eq!(c.retention_days, 7);
        assert_eq!(c.qad_listen.port(), 7842);
        assert_eq!(c.ops_listen, "127.0.0.1:9842".parse().unwrap());
        let c = RelayConfig::resolve(
            "/tmp/x".into(),
            ConfigFile::default(),
            ServeFlags {
                listen: Some("127.0.0.1:4433".parse().unwrap()),
                ..ServeFlags::default()
            },
        )
        .unwrap();
        assert_eq!((c.qad_listen.port(), c.ops_listen.port()), (0, 0));
        assert_eq!(c.retention_days, DEFAULT_RETENTION_DAYS);
        let bad: ConfigFile = toml::from_str("cert = \"/etc/c.pem\"\n").unwrap();
        assert!(RelayConfig::resolve("/tmp/x".into(), bad, ServeFlags::default()).is_err());
    }
}
