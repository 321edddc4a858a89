//! `fernhilfe-relay`: the public rendezvous and packet relay, run by ops.

mod address_discovery;
mod admission;
mod audit;
mod bundle;
mod clock;
mod limits;
mod metrics;
mod ops_listener;
mod pairing_table;
mod path_service;
mod record_budget;
mod rendezvous;
mod staff;
mod state_dir;
mod throttle;
mod tickets;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use transport::identity::Identity;

/// Default UDP listen address: QUIC on 443 passes most school and company firewalls.
const DEFAULT_LISTEN: &str = "0.0.0.0:443";
/// Signaling streams over TCP waiting to be served; more are refused until these are taken.
const SIGNAL_BACKLOG: usize = 64;
/// Audit records are kept a year unless configured otherwise.
const DEFAULT_RETENTION_DAYS: u32 = 365;

#[derive(Parser)]
#[command(
    name = "fernhilfe-relay",
    version,
    about = "Fernhilfe relay: pairs agents and viewers by ticket number and forwards their end-to-end encrypted packets"
)]
struct Cli {
    /// Directory for the relay's key, certificate, staff list and audit log
    /// [default: /var/lib/fernhilfe-relay as root, else ~/.local/share/fernhilfe-relay]
    #[arg(long, env = "FERNHILFE_RELAY_STATE", global = true)]
    state_dir: Option<PathBuf>,
    /// Config file (TOML: listen, cert, key, [limits]); flags override it [default: <state-dir>/relay.toml if present]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay (the default)
    Serve {
        /// Address to listen on: UDP for QUIC signaling, TCP (same port) for HTTPS (the relay
        /// path of sessions, and signaling where UDP is blocked)
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// UDP address for QUIC address discovery, which lets sessions go direct
        /// [default: port 7842 when listening on 443, else any free port]
        #[arg(long)]
        qad_listen: Option<SocketAddr>,
        /// PEM certificate chain issued by a CA (instead of the self-signed one)
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// PEM private key for --cert
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
        /// Days audit records are kept; older ones are pruned daily, the chain stays verifiable
        /// [default: 365]
        #[arg(long)]
        retention_days: Option<u32>,
        /// TCP address of the ops HTTP listener (/healthz, /readyz, /metrics)
        /// [default: 127.0.0.1:9842 when listening on 443, else a free loopback port]
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
        /// Log lines as text (journald adds the time) or as JSON objects, one per line
        #[arg(long, value_enum, env = "FERNHILFE_LOG_FORMAT", default_value = "text")]
        log_format: LogFormat,
    },
    /// Print the SHA-256 fingerprint agents and viewers pin (creates the key on first use)
    Fingerprint,
    /// Manage staff accounts
    Staff {
        #[command(subcommand)]
        action: StaffAction,
    },
    /// Read and check the audit store
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Write the agent for schools, Windows and Linux, with a config naming this relay and
    /// pinning its key: DIR/fernhilfe-agent/ and DIR/fernhilfe-agent.zip
    AgentBundle(BundleArgs),
    /// Write the viewer for support staff the same way (no staff token in it):
    /// DIR/fernhilfe-viewer/ and DIR/fernhilfe-viewer.zip
    ViewerBundle(BundleArgs),
}

#[derive(clap::Args)]
struct BundleArgs {
    /// Directory to write the bundle to
    #[arg(long)]
    out: PathBuf,
    /// host:port the schools' PCs reach this relay at, e.g. relay.schultraeger.example:443
    /// [default: public_address in relay.toml]
    #[arg(long)]
    address: Option<String>,
    /// The Linux binary [default: <prefix>/lib/fernhilfe/<program>, as the package installs it]
    #[arg(long)]
    linux: Option<PathBuf>,
    /// The Windows binary [default: <prefix>/lib/fernhilfe/<program>.exe]
    #[arg(long)]
    windows: Option<PathBuf>,
}

#[derive(Subcommand)]
enum AuditAction {
    /// Check the hash chain and its signed checkpoints; exits 1 at the first break it finds
    Verify {
        /// Judge the record as of this time (2026-11-01T08:00:00Z, UTC), e.g. when a backup
        /// copy was taken [default: now]
        #[arg(long, value_parser = audit::cli::parse_since)]
        as_of: Option<i64>,
        /// The retention pruning had to keep [default: retention_days of relay.toml, or 365]
        #[arg(long)]
        retention_days: Option<u32>,
    },
    /// Every session of a ticket as a timeline
    Show {
        /// The ticket number
        ticket: protocol::ids::TicketNumber,
        /// Language of the timeline
        #[arg(long, value_enum, default_value = "de")]
        lang: audit::record::Lang,
    },
    /// Records since a date as JSON lines or CSV, on standard output
    Export {
        /// First day or time (2026-11-01 or 2026-11-01T08:00:00Z, UTC) [default: everything]
        #[arg(long, value_parser = audit::cli::parse_since)]
        since: Option<i64>,
        #[arg(long, value_enum, default_value = "json")]
        format: audit::cli::Format,
    },
    /// Delete records older than the retention now (the running relay also does this daily)
    Prune {
        #[arg(long, default_value_t = DEFAULT_RETENTION_DAYS)]
        retention_days: u32,
    },
    /// Measure the store's write cost on this disk, in a fresh store in DIR (bench/audit.sh)
    #[command(hide = true)]
    Bench {
        dir: PathBuf,
        #[arg(long, default_value_t = 20_000)]
        records: u32,
    },
}

/// How log lines look.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum StaffAction {
    /// Add a staff member and print their token (shown once, stored only as a hash)
    Add { name: String },
    /// List staff members
    List,
    /// Remove a staff member; their token stops working at once
    Remove { name: String },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    qad_listen: Option<SocketAddr>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    retention_days: Option<u32>,
    metrics_listen: Option<SocketAddr>,
    /// host:port agents and viewers reach this relay at: the default of the bundles, and the
    /// relay named by the `fernhilfe://` link in the ticket's session-start comment.
    public_address: Option<String>,
    /// The audit store in PostgreSQL instead of SQLite in the state directory: a connection
    /// string (`host=… user=… dbname=…`), or the environment variable that holds one.
    audit_database: Option<String>,
    audit_database_env: Option<String>,
    #[serde(default)]
    limits: limits::Limits,
    /// Session reports to a ticket system, and ticket validation.
    tickets: Option<tickets::TicketsConfig>,
}

impl ConfigFile {
    /// Where the audit record lives: PostgreSQL if configured, else SQLite in `state_dir`.
    fn audit_location(&self, state_dir: &Path) -> Result<audit::db::Location> {
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
}

fn default_state_dir() -> PathBuf {
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

fn load_config(path: Option<&Path>, state_dir: &Path) -> Result<ConfigFile> {
    let (path, required) = match path {
        Some(p) => (p.to_owned(), true),
        None => (state_dir.join("relay.toml"), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            toml::from_str(&s).with_context(|| format!("config file {} is invalid", path.display()))
        }
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            Ok(ConfigFile::default())
        }
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

fn main() -> Result<()> {
    let cli = Cli::parse();
    let state_dir = cli.state_dir.clone().unwrap_or_else(default_state_dir);
    match cli.command.unwrap_or(Command::Serve {
        listen: None,
        qad_listen: None,
        cert: None,
        key: None,
        retention_days: None,
        metrics_listen: None,
        log_format: LogFormat::Text,
    }) {
        Command::Audit { action } => {
            let cfg = load_config(cli.config.as_deref(), &state_dir)?;
            let at = cfg.audit_location(&state_dir)?;
            let place = audit::cli::Place {
                state_dir: &state_dir,
                at: &at,
            };
            match action {
                AuditAction::Verify {
                    as_of,
                    retention_days,
                } => {
                    let now = as_of.unwrap_or_else(clock::unix_now);
                    let days = retention_days
                        .or(cfg.retention_days)
                        .unwrap_or(DEFAULT_RETENTION_DAYS);
                    if !audit::cli::verify(&place, now, days)? {
                        std::process::exit(1);
                    }
                    Ok(())
                }
                AuditAction::Show { ticket, lang } => audit::cli::show(&place, ticket, lang),
                AuditAction::Export { since, format } => {
                    audit::cli::export(&place, since.unwrap_or(0), format)
                }
                AuditAction::Prune { retention_days } => audit::cli::prune(&place, retention_days),
                AuditAction::Bench { dir, records } => audit::cli::bench(&dir, records),
            }
        }
        Command::AgentBundle(args) => {
            let cfg = load_config(cli.config.as_deref(), &state_dir)?;
            write_bundle(bundle::Program::Agent, args, &state_dir, &cfg)
        }
        Command::ViewerBundle(args) => {
            let cfg = load_config(cli.config.as_deref(), &state_dir)?;
            write_bundle(bundle::Program::Viewer, args, &state_dir, &cfg)
        }
        Command::Fingerprint => {
            state_dir::create(&state_dir)?;
            let (id, _) = Identity::load_or_create(&state_dir, "fernhilfe-relay")
                .context("cannot create or load the relay key")?;
            println!("{}", id.fingerprint());
            Ok(())
        }
        Command::Staff { action } => {
            match action {
                StaffAction::Add { name } => {
                    let token = staff::StaffRegistry::edit(&state_dir, |r| r.add(&name))?;
                    eprintln!(
                        "Added staff member '{name}'. Give them this token; it is shown only now:"
                    );
                    println!("{token}");
                }
                StaffAction::List => {
                    for m in staff::StaffRegistry::load(&state_dir)?.members() {
                        println!("{}\t(added {})", m.name, m.created);
                    }
                }
                StaffAction::Remove { name } => {
                    staff::StaffRegistry::edit(&state_dir, |r| r.remove(&name))?;
                    eprintln!("Removed staff member '{name}'.");
                }
            }
            Ok(())
        }
        Command::Serve {
            listen,
            qad_listen,
            cert,
            key,
            retention_days,
            metrics_listen,
            log_format,
        } => {
            let cfg = load_config(cli.config.as_deref(), &state_dir)?;
            let listen = listen
                .or(cfg.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("literal address"));
            let logs = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
            match log_format {
                LogFormat::Text => logs.init(),
                LogFormat::Json => logs.json().flatten_event(true).init(),
            }
            let runtime = tokio::runtime::Runtime::new()?;
            let qad_listen = qad_listen.or(cfg.qad_listen).unwrap_or_else(|| {
                let port = if listen.port() == 443 { 7842 } else { 0 };
                SocketAddr::new(listen.ip(), port)
            });
            let cfg = ConfigFile {
                cert: cert.or(cfg.cert),
                key: key.or(cfg.key),
                retention_days: retention_days.or(cfg.retention_days),
                metrics_listen: Some(metrics_listen.or(cfg.metrics_listen).unwrap_or_else(|| {
                    let port = if listen.port() == 443 { 9842 } else { 0 };
                    SocketAddr::from(([127, 0, 0, 1], port))
                })),
                ..cfg
            };
            runtime.block_on(serve(listen, qad_listen, &state_dir, cfg))
        }
    }
}

fn write_bundle(
    program: bundle::Program,
    args: BundleArgs,
    state_dir: &Path,
    cfg: &ConfigFile,
) -> Result<()> {
    if cfg.cert.is_some() {
        anyhow::bail!("bundles pin the relay's own key in the state directory, but this relay serves a CA-issued certificate (cert in relay.toml): give agents relay_ca in their fernhilfe-agent.toml instead");
    }
    let Some(address) = args.address.or_else(|| cfg.public_address.clone()) else {
        anyhow::bail!("give --address host:port (how the schools reach this relay), or set public_address in relay.toml");
    };
    state_dir::create(state_dir)?;
    let (id, _) = Identity::load_or_create(state_dir, "fernhilfe-relay")
        .context("cannot create or load the relay key")?;
    let installed = bundle::installed_programs();
    let name = match program {
        bundle::Program::Agent => "fernhilfe-agent",
        bundle::Program::Viewer => "fernhilfe-viewer",
    };
    let request = bundle::BundleRequest {
        program,
        address,
        fingerprint: id.fingerprint(),
        linux: args.linux.unwrap_or_else(|| installed.join(name)),
        windows: args
            .windows
            .unwrap_or_else(|| installed.join(format!("{name}.exe"))),
        out: args.out,
    };
    let zip = bundle::write(&request)?;
    println!("{}", zip.display());
    Ok(())
}

async fn serve(
    listen: SocketAddr,
    qad_listen: SocketAddr,
    state_dir: &Path,
    cfg: ConfigFile,
) -> Result<()> {
    let audit_at = cfg.audit_location(state_dir)?;
    let retention_days = cfg.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS);
    let ConfigFile {
        cert,
        key,
        limits,
        tickets,
        metrics_listen,
        public_address,
        ..
    } = cfg;
    if let Some(a) = &public_address {
        protocol::link::check_relay_address(a).context("public_address in relay.toml")?;
    }
    state_dir::create(state_dir)?;
    let tickets = match &tickets {
        Some(t) => {
            let c = t.connector().context("[tickets] in relay.toml")?;
            tracing::info!(
                system = c.name(),
                validate = t.validate,
                "session reports go to the ticket system"
            );
            Some(rendezvous::TicketSystem {
                connector: c,
                validate: t.validate,
                unchecked: t.unchecked,
                retry_base_secs: t.retry_base_secs,
                public_address: public_address.clone(),
            })
        }
        None => None,
    };
    let id = match (cert, key) {
        (Some(c), Some(k)) => Identity::load(&c, &k)?,
        _ => {
            let (id, created) = Identity::load_or_create(state_dir, "fernhilfe-relay")
                .context("cannot create or load the relay key")?;
            if created {
                tracing::info!(dir = %state_dir.display(), "created a new relay key and self-signed certificate");
            }
            id
        }
    };
    let fingerprint = id.fingerprint();
    // UDP and TCP on one port number. With port 0 the system picks the UDP port, and a TCP
    // socket may already hold that number: pick again rather than fail (a few times).
    let mut tries = if listen.port() == 0 { 20 } else { 1 };
    let (endpoint, tcp) = loop {
        tries -= 1;
        let endpoint = quinn::Endpoint::server(
            transport::config::relay_server_config(&id)?,
            listen,
        )
            .with_context(|| format!("cannot listen on UDP {listen}: is the port in use, or does it need root (ports below 1024)?"))?;
        let tcp_addr = SocketAddr::new(listen.ip(), endpoint.local_addr()?.port());
        match tokio::net::TcpListener::bind(tcp_addr).await {
            Ok(tcp) => break (endpoint, tcp),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries > 0 => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot listen on TCP {tcp_addr}: is the port in use?")
                })
            }
        }
    };
    let udp = endpoint.local_addr()?;
    let tcp_addr = tcp.local_addr()?;
    let ops_addr = metrics_listen.expect("set from the flag, the file or the default");
    let ops = tokio::net::TcpListener::bind(ops_addr).await.with_context(|| {
        format!("cannot listen on TCP {ops_addr} for /healthz, /readyz and /metrics: is the port in use? (metrics_listen in relay.toml)")
    })?;
    let ops_addr = ops.local_addr()?;
    let (signal_tx, mut signal_rx) = tokio::sync::mpsc::channel(SIGNAL_BACKLOG);
    let admission =
        admission::Admission::new(limits.max_connections_per_address, limits.max_connections);
    let paths = Arc::new(
        path_service::PathService::start(&id, Some(qad_listen), admission.clone(), signal_tx)
            .await?,
    );
    let hello_timeout = limits.hello_timeout();
    let state = rendezvous::Rendezvous::new(
        state_dir,
        limits,
        paths.admission(),
        paths.qad_port(),
        &audit_at,
        retention_days,
        tickets,
    )?;
    tokio::spawn(paths.clone().serve_tcp(tcp, admission.clone()));
    metrics::metrics().prime();
    // Ready once everything above is up; not ready again from the moment shutdown begins.
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let hooks = {
        let (ready, probe, waiting) = (ready.clone(), state.clone(), state.clone());
        ops_listener::OpsHooks {
            not_ready: Box::new(move || {
                if !ready.load(std::sync::atomic::Ordering::Relaxed) {
                    return Some("shutting down");
                }
                probe.audit_trouble()
            }),
            refresh: Box::new(move || {
                metrics::metrics()
                    .agents_waiting
                    .set(waiting.waiting_agents() as i64);
            }),
        }
    };
    tokio::spawn(ops_listener::serve(ops, Arc::new(hooks)));
    // Signaling that came over TCP is served like signaling over QUIC.
    let tcp_state = state.clone();
    tokio::spawn(async move {
        while let Some(s) = signal_rx.recv().await {
            let state = tcp_state.clone();
            tokio::spawn(async move {
                let _ticket = s.ticket;
                let (r, w) = tokio::io::split(s.stream);
                if let Err(e) = state.serve_stream(s.remote, Box::new(w), Box::new(r)).await {
                    tracing::info!(remote = %s.remote, reason = %e, "client disconnected");
                }
            });
        }
    });
    println!("fernhilfe-relay listening on tcp {tcp_addr}");
    println!(
        "fernhilfe-relay address discovery on udp port {}",
        paths.qad_port()
    );
    println!("fernhilfe-relay ops http on {ops_addr} (/healthz /readyz /metrics)");
    println!("fernhilfe-relay listening on udp {udp}");
    println!("certificate fingerprint (pin this in agents and viewers): {fingerprint}");
    tracing::info!(listen = %endpoint.local_addr()?, state_dir = %state_dir.display(), "relay running");
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let Some((incoming, ticket)) = admission.admit_quic(incoming) else { continue };
                let state = state.clone();
                tokio::spawn(async move {
                    // Held until the connection ends: counts it against its address.
                    let _ticket = ticket;
                    match tokio::time::timeout(hello_timeout, incoming).await {
                        Ok(Ok(conn)) => state.serve(conn).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "handshake failed"),
                        Err(_) => tracing::debug!("handshake timed out"),
                    }
                });
            }
            _ = shutdown_signal() => {
                // Closing tells every agent at once, so waiting agents register again with
                // the restarted relay without waiting for their connection to time out.
                tracing::info!("shutting down");
                ready.store(false, std::sync::atomic::Ordering::Relaxed);
                endpoint.close(0u32.into(), b"relay shutting down");
                paths.shutdown().await;
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), endpoint.wait_idle()).await;
                // The agents' goodbyes above end their sessions: on the record before exiting,
                // closed by the checkpoint that says this relay stopped cleanly.
                let closing = state.clone();
                let _ = tokio::task::spawn_blocking(move || closing.close_audit()).await;
                break;
            }
        }
    }
    Ok(())
}

/// Ctrl+C, or SIGTERM (what systemd and `kill` send).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    /// The documented example is a valid configuration with a working ticket system entry.
    #[test]
    fn the_example_config_parses_and_names_every_key() {
        let text = include_str!("../relay.toml.example");
        let cfg: super::ConfigFile = toml::from_str(text).expect("relay.toml.example parses");
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
}
