//! `fernhilfe-relay`: the public rendezvous and packet relay, run by ops. A thin shell: the
//! flags and subcommands, logging and signals around the `relay` library.

mod audit_command;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use relay::config::{default_state_dir, DEFAULT_RETENTION_DAYS};
use relay::{bundle, staff, state_dir, ConfigFile, Relay, RelayConfig, ServeFlags};
use std::path::{Path, PathBuf};
use transport::identity::Identity;

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
        #[command(flatten)]
        flags: ServeFlags,
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
        #[arg(long, value_parser = audit_command::parse_since)]
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
        #[arg(long, value_parser = audit_command::parse_since)]
        since: Option<i64>,
        #[arg(long, value_enum, default_value = "json")]
        format: audit_command::Format,
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
#[derive(Clone, Copy, Default, clap::ValueEnum)]
enum LogFormat {
    #[default]
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

fn main() -> Result<()> {
    let cli = Cli::parse();
    let state_dir = cli.state_dir.clone().unwrap_or_else(default_state_dir);
    let load = || ConfigFile::load(cli.config.as_deref(), &state_dir);
    match cli.command.unwrap_or(Command::Serve {
        flags: ServeFlags::default(),
        log_format: LogFormat::Text,
    }) {
        Command::Audit { action } => {
            let cfg = load()?;
            let at = cfg.audit_location(&state_dir)?;
            let place = audit_command::Place {
                state_dir: &state_dir,
                at: &at,
            };
            match action {
                AuditAction::Verify {
                    as_of,
                    retention_days,
                } => {
                    let now = as_of.unwrap_or_else(audit::clock::unix_now);
                    let days = retention_days.unwrap_or(cfg.retention_days());
                    if !audit_command::verify(&place, now, days)? {
                        std::process::exit(1);
                    }
                    Ok(())
                }
                AuditAction::Show { ticket, lang } => audit_command::show(&place, ticket, lang),
                AuditAction::Export { since, format } => {
                    audit_command::export(&place, since.unwrap_or(0), format)
                }
                AuditAction::Prune { retention_days } => {
                    audit_command::prune(&place, retention_days)
                }
                AuditAction::Bench { dir, records } => audit_command::bench(&dir, records),
            }
        }
        Command::AgentBundle(args) => {
            let cfg = load()?;
            write_bundle(bundle::Program::Agent, args, &state_dir, &cfg)
        }
        Command::ViewerBundle(args) => {
            let cfg = load()?;
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
        Command::Serve { flags, log_format } => {
            let file = load()?;
            let config = RelayConfig::resolve(state_dir.clone(), file, flags)?;
            init_logging(log_format);
            tokio::runtime::Runtime::new()?.block_on(serve(config))
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

/// Runs the relay until Ctrl+C or SIGTERM, then stops it cleanly.
async fn serve(config: RelayConfig) -> Result<()> {
    let relay = Relay::spawn(config).await?;
    // Scripts and tests read these lines; see `docs/usage.md`.
    println!("fernhilfe-relay listening on tcp {}", relay.tcp);
    println!(
        "fernhilfe-relay address discovery on udp port {}",
        relay.qad_port
    );
    println!(
        "fernhilfe-relay ops http on {} (/healthz /readyz /metrics)",
        relay.ops
    );
    println!("fernhilfe-relay listening on udp {}", relay.udp);
    println!(
        "certificate fingerprint (pin this in agents and viewers): {}",
        relay.fingerprint
    );
    shutdown_signal().await;
    relay.shutdown().await;
    Ok(())
}

/// Log lines on stderr, as text (journald adds the time) or JSON.
fn init_logging(format: LogFormat) {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
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
