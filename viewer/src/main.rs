//! `fernhilfe-viewer`: the support technician's window on the remote screen.

mod code_prompt;
mod window;
#[cfg(target_os = "linux")]
mod x11_blit;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches};
use protocol::screen::Framebuffer;
use protocol::signaling::StaffToken;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use transport::relay_options::{RelayArgs, RelayKeys};
use viewer::session::{self, SessionEvent, ViewerError, ViewerSettings};

#[derive(clap::Parser)]
#[command(
    name = "fernhilfe-viewer",
    version,
    about = "Fernhilfe viewer: see and, with consent, control a PC waiting under a ticket"
)]
struct Cli {
    #[command(flatten)]
    relay: RelayArgs,
    /// File holding your staff token (safer than the environment variable on shared machines)
    #[arg(long, env = "FERNHILFE_STAFF_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Config file [default: fernhilfe-viewer.toml next to the binary, if present]
    #[arg(long)]
    config: Option<PathBuf>,
    /// Ticket number, e.g. 4711 [default: from --link]
    #[arg(long, short)]
    ticket: Option<String>,
    /// Session code the agent shows, e.g. 483-291-075 [default: a window asks for it]
    #[arg(long, short)]
    code: Option<String>,
    /// A fernhilfe://RELAY/ticket/NUMBER link from the ticket system: its ticket, on its relay,
    /// which must be the relay this viewer is set up for
    #[arg(long)]
    link: Option<String>,
    /// Host name of the PC, when several wait under the ticket (as listed, e.g. PC-12~2 where
    /// PCs of two networks share a name)
    #[arg(long)]
    host: Option<String>,
    /// No window: print status lines, take input commands on stdin, write PNGs on `snapshot PATH`
    #[arg(long)]
    headless: bool,
    /// Size of the window's picture, e.g. 1920x1080 to see a Full HD screen pixel for pixel
    #[arg(long, default_value = "1280x800", value_parser = parse_size)]
    window_size: (usize, usize),
    /// Print `stats rx_bytes=… frames=…` (bytes received from the agent) twice a second
    #[arg(long)]
    stats: bool,
    /// Test aid: write every decrypted message received to FILE, for the wire-secrecy test
    #[cfg(feature = "test-aids")]
    #[arg(long, hide = true)]
    record_plaintext: Option<PathBuf>,
}

/// Name of the config file `fernhilfe-relay viewer-bundle` puts next to the viewer.
const CONFIG_NEXT_TO_BINARY: &str = "fernhilfe-viewer.toml";

/// What fernhilfe-viewer.toml may say; flags override it.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    relay: Option<String>,
    relay_fingerprint: Option<String>,
    relay_ca: Option<PathBuf>,
    relay_transport: Option<transport::signal_tcp::SignalTransport>,
}

impl ConfigFile {
    /// The relay keys, for [`RelayArgs::resolve`].
    fn relay_keys(self) -> RelayKeys {
        RelayKeys {
            relay: self.relay,
            relay_fingerprint: self.relay_fingerprint,
            relay_ca: self.relay_ca,
            relay_transport: self.relay_transport,
        }
    }
}

/// Exit codes a script can tell apart.
mod exit {
    pub(crate) const ERROR: i32 = 1;
    pub(crate) const REFUSED: i32 = 2;
    pub(crate) const WRONG_CODE: i32 = 3;
    pub(crate) const DENIED: i32 = 4;
    /// A wrong code a moment ago: try again after the pause the message names.
    pub(crate) const TRY_LATER: i32 = 5;
}

fn main() {
    let code = match real_main() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fernhilfe-viewer: {e:#}");
            match e.downcast_ref::<ViewerError>() {
                Some(ViewerError::Refused(_)) => exit::REFUSED,
                Some(ViewerError::WrongCode) => exit::WRONG_CODE,
                Some(ViewerError::Denied) => exit::DENIED,
                Some(ViewerError::TryLater { .. }) => exit::TRY_LATER,
                None => exit::ERROR,
            }
        }
    };
    std::process::exit(code);
}

fn real_main() -> Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let title = match (&cli.ticket, &cli.link) {
        (Some(t), _) => format!("Fernhilfe – Ticket #{}", t.trim_start_matches('#')),
        _ => "Fernhilfe".to_owned(),
    };
    let settings = match link_stands_alone(&cli, &matches).and_then(|()| settings(&cli)) {
        Ok(s) => s,
        Err(e) if !cli.headless => {
            // The technician may have no console: show the error where they look.
            let (_input_tx, _) = mpsc::unbounded_channel();
            let (event_tx, event_rx) = std::sync::mpsc::channel();
            let _ = event_tx.send(SessionEvent::Failed(format!("{e:#}")));
            let _ = window::run(&title, cli.window_size, _input_tx, event_rx);
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let (input_tx, input_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = std::sync::mpsc::channel();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = runtime.block_on(async {
            let result = session::run(settings, input_rx, event_tx.clone()).await;
            // Early failures too reach the window's status bar and title.
            if let Err(e) = &result {
                let _ = event_tx.send(SessionEvent::Failed(format!("{e:#}")));
            }
            result
        });
        let _ = done_tx.send(result);
    });
    if cli.headless {
        headless(input_tx, event_rx)?;
    } else {
        window::run(&title, cli.window_size, input_tx, event_rx)?;
    }
    // Closing the window ends the session; a session still stuck connecting is not waited for.
    match done_rx.recv_timeout(CLOSE_WAIT) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(()),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(anyhow::anyhow!("session thread panicked"))
        }
    }
}

/// How long a closed window waits for the session to finish saying goodbye.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Options that say where the viewer goes and with what: a link may come with none of them on
/// the command line. A crafted link can smuggle arguments into the command line a URL
/// handler runs (a quote too many on Windows), and would send the staff token to a relay of
/// its choosing. The environment and the config file are the technician's own: they stay.
const NOT_WITH_A_LINK: [(&str, &str); 5] = [
    ("relay", "--relay"),
    ("relay_fingerprint", "--relay-fingerprint"),
    ("relay_ca", "--relay-ca"),
    ("token_file", "--token-file"),
    ("config", "--config"),
];

/// Refuses a `--link` that came with an option naming a relay, a pin, a token or a config.
fn link_stands_alone(cli: &Cli, matches: &clap::ArgMatches) -> Result<()> {
    if cli.link.is_none() {
        return Ok(());
    }
    for (id, flag) in NOT_WITH_A_LINK {
        if matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
            bail!("--link cannot be combined with {flag}: a link names only the ticket, on the relay this viewer is set up for (relay, pin and token come from {CONFIG_NEXT_TO_BINARY} or the environment); open the link as it is, or pass --ticket instead");
        }
    }
    Ok(())
}

/// The session's settings from the command line and the environment.
fn settings(cli: &Cli) -> Result<ViewerSettings> {
    let token = match (&cli.token_file, std::env::var("FERNHILFE_STAFF_TOKEN")) {
        (Some(path), _) => std::fs::read_to_string(path).with_context(|| format!("cannot read token file {}", path.display()))?.trim().to_owned(),
        (None, Ok(t)) => t.trim().to_owned(),
        (None, Err(_)) => bail!("no staff token: set FERNHILFE_STAFF_TOKEN or pass --token-file (ops issue tokens with `fernhilfe-relay staff add NAME`)"),
    };
    if token.is_empty() || token.len() > protocol::signaling::MAX_TOKEN_LEN {
        bail!("the staff token is empty or too long: use the token `fernhilfe-relay staff add` printed");
    }
    let token = StaffToken(token);
    let Some(staff_name) = token.staff_name() else {
        bail!("this staff token names no staff member (it is damaged, or from before tokens named their holder): ask ops for a new one (fernhilfe-relay staff add \"Your Name\")");
    };
    let cfg: ConfigFile =
        transport::client_file::load(cli.config.as_deref(), CONFIG_NEXT_TO_BINARY)?;
    let choice = cli.relay.resolve(cfg.relay_keys(), CONFIG_NEXT_TO_BINARY)?;
    let relay = choice.address;
    let trust = choice.trust;
    let link = cli
        .link
        .as_deref()
        .map(str::parse::<protocol::link::SessionLink>)
        .transpose()?;
    // A link cannot point the viewer (and its staff token) at another relay: it names the one
    // the viewer is already set up for and pins, or it is refused.
    if let Some(l) = &link {
        if !l.relay.eq_ignore_ascii_case(&relay) {
            bail!("this link is for the relay {}, but this viewer is set up for {relay}: use the viewer bundle of that relay (ask ops)", l.relay);
        }
    }
    let ticket = match (&cli.ticket, &link) {
        (Some(t), _) => t.parse()?,
        (None, Some(l)) => l.ticket,
        (None, None) => bail!("no ticket: pass --ticket NUMBER, or --link from the ticket"),
    };
    let code = match &cli.code {
        Some(c) => c.parse()?,
        None if cli.headless => {
            bail!("no session code: pass --code (the code the school reads out)")
        }
        None => code_prompt::ask(ticket)?,
    };
    if let Some(h) = &cli.host {
        protocol::ids::check_host_choice(h).with_context(|| format!("--host {h:?}: give the PC's name as the viewer lists it (e.g. PC-12, or PC-12~2 where two PCs share a name)"))?;
    }
    Ok(ViewerSettings {
        relay,
        trust,
        signal: choice.signal,
        token,
        staff_name,
        ticket,
        code,
        host_name: cli.host.clone(),
        #[cfg(feature = "test-aids")]
        record_plaintext: cli.record_plaintext.clone(),
        #[cfg(not(feature = "test-aids"))]
        record_plaintext: None,
        stats: cli.stats,
    })
}

/// Parses `WIDTHxHEIGHT`.
fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("'{s}' is not WIDTHxHEIGHT, e.g. 1920x1080"))?;
    let parse = |v: &str| {
        v.parse::<usize>()
            .ok()
            .filter(|n| (64..=8192).contains(n))
            .ok_or_else(|| format!("'{v}' is not a size from 64 to 8192"))
    };
    Ok((parse(w)?, parse(h)?))
}

/// Headless front end: status lines on stdout, commands on stdin (see `session::parse_command`).
fn headless(
    input: mpsc::UnboundedSender<protocol::session::ViewerMessage>,
    events: std::sync::mpsc::Receiver<SessionEvent>,
) -> Result<()> {
    let latest: Arc<Mutex<Option<Arc<Mutex<Framebuffer>>>>> = Arc::default();
    let fb_for_stdin = latest.clone();
    let input_for_stdin = input.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if let Some(path) = line.strip_prefix("snapshot ") {
                let fb = fb_for_stdin
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                match fb.map(|fb| {
                    viewer::snapshot::save_png(
                        &fb.lock().unwrap_or_else(|e| e.into_inner()),
                        Path::new(path.trim()),
                    )
                }) {
                    Some(Ok(())) => println!("snapshot {}", path.trim()),
                    Some(Err(e)) => println!("error snapshot: {e:#}"),
                    None => println!("error snapshot: no frame yet"),
                }
                continue;
            }
            match session::parse_command(&line) {
                Ok(Some(m)) => {
                    if input_for_stdin.send(m).is_err() {
                        break;
                    }
                }
                Ok(None) => {}
                Err(e) => println!("error {e}"),
            }
        }
    });
    while let Ok(ev) = events.recv() {
        match ev {
            SessionEvent::Status(s) => println!("status {s}"),
            SessionEvent::Grant(g) => println!("grant {g:?}"),
            SessionEvent::Path { .. } => {}
            SessionEvent::Frame {
                seq,
                encoded_bytes,
                copies,
                rects,
                framebuffer,
            } => {
                let cursor = framebuffer
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .cursor_pos
                    .map_or("-".to_owned(), |(x, y)| format!("{x},{y}"));
                println!("frame seq={seq} bytes={encoded_bytes} copies={copies} rects={rects} cursor={cursor}");
                *latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(framebuffer);
            }
            SessionEvent::Failed(_) => {}
            SessionEvent::Ended(r) => {
                println!("ended {r}");
                break;
            }
        }
    }
    drop(input);
    Ok(())
}
