//! `fernhilfe-agent`: runs on the school PC. Registers under the ticket number, shows a
//! one-time code, asks the person at the PC for consent and shares the screen as granted.

// A Windows program for people, started by double-click: no console window behind it.
#![cfg_attr(windows, windows_subsystem = "windows")]

mod always_on_top;
mod capture;
#[cfg(windows)]
mod click_latch;
mod code_guard;
mod consent_gate;
#[cfg(feature = "test-aids")]
mod frame_recorder;
mod input;
mod screen_stream;
mod session;
mod texts;
mod ui;

use anyhow::{bail, Context, Result};
use clap::Parser;
use protocol::ids::TicketNumber;
use serde::Deserialize;
use std::path::PathBuf;
use texts::Lang;
use transport::relay_options::{RelayArgs, RelayKeys};
use transport::signal_tcp::SignalTransport;

/// Name of the config file a school keeps next to the agent binary.
const CONFIG_NEXT_TO_BINARY: &str = "fernhilfe-agent.toml";

#[derive(Parser)]
#[command(
    name = "fernhilfe-agent",
    version,
    about = "Fernhilfe agent: lets support staff see (and, if you allow it, control) this PC for one ticket"
)]
struct Cli {
    /// Helpdesk ticket number, e.g. 4711 / Ticketnummer
    #[arg(long, short)]
    ticket: Option<String>,
    #[command(flatten)]
    relay: RelayArgs,
    /// Language of the windows [default: from the locale, German unless it is English]
    #[arg(long, value_enum)]
    lang: Option<Lang>,
    /// Name shown to support staff [default: this PC's host name]
    #[arg(long)]
    host_name: Option<String>,
    /// Config file [default: fernhilfe-agent.toml next to the binary, if present]
    #[arg(long)]
    config: Option<PathBuf>,
    /// End a session nobody uses after this many seconds [default: 1800, or fernhilfe-agent.toml]
    #[arg(long)]
    idle_timeout_secs: Option<u64>,
    /// End a session after this many seconds unless the person at the PC goes on
    /// [default: 14400, or fernhilfe-agent.toml]
    #[arg(long)]
    max_session_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    relay: Option<String>,
    relay_fingerprint: Option<String>,
    relay_ca: Option<PathBuf>,
    relay_transport: Option<SignalTransport>,
    lang: Option<Lang>,
    idle_timeout_secs: Option<u64>,
    max_session_secs: Option<u64>,
}

impl ConfigFile {
    /// The relay keys, for [`RelayArgs::resolve`].
    fn relay_keys(&self) -> RelayKeys {
        RelayKeys {
            relay: self.relay.clone(),
            relay_fingerprint: self.relay_fingerprint.clone(),
            relay_ca: self.relay_ca.clone(),
            relay_transport: self.relay_transport,
        }
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<ConfigFile> {
    Ok(transport::client_file::load(
        path.map(PathBuf::as_path),
        CONFIG_NEXT_TO_BINARY,
    )?)
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("fernhilfe-agent: {e:#}");
        #[cfg(windows)]
        if let Err(shown) = ui::show_error(texts::failure_summary(&e), &format!("{e:#}")) {
            eprintln!("fernhilfe-agent: {shown:#}");
        }
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => bail!(
            "{}\nthe command line is not valid: see fernhilfe-agent --help / ungültige Befehlszeile: siehe fernhilfe-agent --help",
            e.render().to_string().trim()
        ),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cfg = load_config(cli.config.as_ref())?;
    // Without --ticket (a double-click), the ticket window asks for it.
    let ticket: Option<TicketNumber> = cli.ticket.map(|t| t.parse()).transpose()?;
    let relay = cli.relay.resolve(cfg.relay_keys(), CONFIG_NEXT_TO_BINARY)?;
    let lang = cli.lang.or(cfg.lang).unwrap_or_else(Lang::from_env);
    let host_name = match cli.host_name {
        Some(h) => {
            protocol::ids::check_host_name(&h).with_context(|| format!("--host-name {h:?}: use letters, digits, '-', '_' and '.' only / nur Buchstaben, Ziffern, '-', '_' und '.'"))?;
            h
        }
        // The relay takes host names of a strict character set only: an unusual computer name
        // is mapped into it rather than refused.
        None => protocol::ids::host_name_from_os(
            &hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default(),
        ),
    };

    let screen = screen_stream::CaptureThread::open()?;
    let size = screen.size();
    let (ui_tx, ui_rx) = std::sync::mpsc::channel();
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let settings = session::AgentSettings {
        relay: relay.address,
        trust: relay.trust,
        signal: relay.signal,
        ticket,
        host_name,
        delay_scale: test_delay_scale(),
        idle_limit: limit(
            "idle_timeout_secs",
            cli.idle_timeout_secs.or(cfg.idle_timeout_secs),
            protocol::session_limits::DEFAULT_IDLE,
        )?,
        max_duration: limit(
            "max_session_secs",
            cli.max_session_secs.or(cfg.max_session_secs),
            protocol::session_limits::DEFAULT_MAX,
        )?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ui_exit = ui_tx.clone();
    let worker = std::thread::spawn(move || {
        let r = runtime.block_on(session::run(settings, screen, ui_tx, ev_rx));
        let _ = ui_exit.send(ui::UiCommand::Exit);
        r
    });
    ui::run(lang, size, ui_rx, ev_tx)?;
    let outcome = worker
        .join()
        .map_err(|_| anyhow::anyhow!("session thread panicked"))??;
    match outcome {
        session::Outcome::Cancelled => println!("cancelled"),
        session::Outcome::Denied => println!("session declined"),
        session::Outcome::Ended(r) => println!("ended {r:?}"),
        session::Outcome::LockedOut => {
            eprintln!("fernhilfe-agent: too many wrong codes: call the hotline again and start Fernhilfe anew / zu viele falsche Codes: bitte die Hotline erneut anrufen und Fernhilfe neu starten");
            std::process::exit(5);
        }
    }
    Ok(())
}

/// A session limit in seconds, or its default; a few seconds at least, or a session could end
/// before anyone saw it.
fn limit(
    name: &str,
    secs: Option<u64>,
    default: std::time::Duration,
) -> Result<std::time::Duration> {
    match secs {
        None => Ok(default),
        Some(s) if s >= 4 => Ok(std::time::Duration::from_secs(s)),
        Some(s) => bail!("{name} = {s}: use at least 4 seconds / mindestens 4 Sekunden"),
    }
}

/// Test builds only: `FERNHILFE_TEST_DELAY_SCALE` shortens the waits after wrong codes, so a
/// test can drive the agent to its lifetime cap, or lengthens them (up to 100×), so a test's
/// retry meets the wait however slowly the machine starts it. Release builds always wait as
/// designed.
#[cfg(feature = "test-aids")]
fn test_delay_scale() -> f64 {
    std::env::var("FERNHILFE_TEST_DELAY_SCALE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| (0.0..=100.0).contains(v))
        .unwrap_or(1.0)
}

#[cfg(not(feature = "test-aids"))]
fn test_delay_scale() -> f64 {
    1.0
}
