//! A viewer that breaks the rules, to prove the agent enforces them: it logs in, pairs and
//! connects as the real viewer does (`viewer::session::connect`), takes the screen like it, but
//! sends input whatever the grant, sends raw bytes as control messages (`raw HEX`), and stops
//! reading on `stall` with almost no receive window, so it holds the agent's writes. Test
//! program only: none of this is in `fernhilfe-viewer`.
//!
//! Command line: `--relay ADDR --relay-fingerprint FP --ticket N --code C` (token in
//! `FERNHILFE_STAFF_TOKEN`). Standard input: the headless viewer's commands plus `raw HEX`,
//! `stall` and `snapshot FILE`; standard output: the headless viewer's lines.

use anyhow::{bail, Context, Result};
use protocol::screen::{Framebuffer, ScreenDecoder};
use protocol::session::{ViewerMessage, MAX_CONTROL_LEN};
use protocol::signaling::StaffToken;
use protocol::viewer_session::{ViewerAction, ViewerEnd, ViewerEvent, ViewerSession};
use protocol::wire::MAX_FRAME_LEN;
use std::collections::VecDeque;
use std::io::BufRead;
use std::time::Instant;
use tokio::sync::mpsc;
use transport::config::RelayTrust;
use transport::framed::{send_frame, FramedRecv};
use transport::signal_tcp::SignalTransport;
use viewer::session::{connect, Connected, ViewerSettings};

/// Room the stalled viewer grants the agent: a few small messages.
const STALL_WINDOW: u32 = 4096;

/// What standard input asks for.
enum Command {
    Send(ViewerMessage),
    Raw(Vec<u8>),
    Stall,
    Snapshot(String),
}

fn arg(args: &[String], name: &str) -> Result<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .with_context(|| format!("{name} missing"))
}

fn settings() -> Result<ViewerSettings> {
    let args: Vec<String> = std::env::args().collect();
    let token =
        StaffToken(std::env::var("FERNHILFE_STAFF_TOKEN").context("FERNHILFE_STAFF_TOKEN")?);
    let Some(staff_name) = token.staff_name() else {
        bail!("the token names no one");
    };
    Ok(ViewerSettings {
        relay: arg(&args, "--relay")?,
        trust: RelayTrust::Pinned(arg(&args, "--relay-fingerprint")?.parse()?),
        signal: SignalTransport::Auto,
        token,
        staff_name,
        ticket: arg(&args, "--ticket")?.parse()?,
        code: arg(&args, "--code")?.parse()?,
        host_name: None,
        record_plaintext: None,
        stats: false,
    })
}

fn parse(line: &str) -> Result<Option<Command>, String> {
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    match cmd {
        "stall" => Ok(Some(Command::Stall)),
        "snapshot" => Ok(Some(Command::Snapshot(rest.trim().to_owned()))),
        "raw" => {
            let hex: String = rest.split_whitespace().collect();
            protocol::hex::parse(&hex)
                .map(|b| Some(Command::Raw(b)))
                .ok_or_else(|| "usage: raw HEXBYTES".to_owned())
        }
        _ => viewer::session::parse_command(line).map(|m| m.map(Command::Send)),
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("misbehaving-viewer: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let settings = settings()?;
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match parse(&line) {
                Ok(Some(c)) => {
                    if tx.send(c).is_err() {
                        break;
                    }
                }
                Ok(None) => {}
                Err(e) => println!("error {e}"),
            }
        }
    });
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(session(settings, rx))
}

async fn session(
    settings: ViewerSettings,
    mut commands: mpsc::UnboundedReceiver<Command>,
) -> Result<()> {
    // Relay and endpoint live as long as the session (dropping the endpoint ends it).
    let Connected {
        conn,
        relay: _relay,
        endpoint: _endpoint,
        ..
    } = connect(&settings, Some(STALL_WINDOW), |s| println!("status {s}")).await?;
    println!("status waiting for consent");
    let (mut ctrl_send, ctrl_recv) = conn.accept_bi().await?;
    let mut ctrl_recv = FramedRecv::new(ctrl_recv, MAX_CONTROL_LEN);
    let mut screen: Option<FramedRecv<_>> = None;
    let mut machine = ViewerSession::new();
    let mut decoder = ScreenDecoder::new();
    let mut framebuffer = Framebuffer::default();
    let mut stalled = false;
    let mut actions: VecDeque<ViewerAction> = VecDeque::new();
    loop {
        while let Some(a) = actions.pop_front() {
            match a {
                ViewerAction::Send(m) => send_frame(&mut ctrl_send, &m.encode()).await?,
                ViewerAction::Decode(bytes) => {
                    let u = decoder.apply(&bytes, &mut framebuffer)?;
                    let cursor = framebuffer
                        .cursor_pos
                        .map_or("-".to_owned(), |(x, y)| format!("{x},{y}"));
                    println!(
                        "frame seq={} bytes={} copies={} rects={} cursor={cursor}",
                        u.seq,
                        bytes.len(),
                        u.copies,
                        u.rects
                    );
                    let shown = ViewerEvent::Shown {
                        seq: u.seq,
                        ack_requested: u.ack_requested,
                        bytes: bytes.len(),
                        rects: u.rects,
                    };
                    for b in machine.handle(shown, Instant::now()).into_iter().rev() {
                        actions.push_front(b);
                    }
                }
                ViewerAction::ShowGrant(g) => println!("grant {g:?}"),
                ViewerAction::Note(s) => println!("status {s}"),
                ViewerAction::Status(s) => println!("{s}"),
                ViewerAction::Finish(ViewerEnd::Ended(words)) => {
                    println!("ended {words}");
                    return Ok(());
                }
                ViewerAction::Finish(end) => bail!("{end:?}"),
            }
        }
        let event = tokio::select! {
            msg = ctrl_recv.next(), if !stalled => match msg.unwrap_or(None) {
                Some(m) => ViewerEvent::FromAgent(m),
                None => ViewerEvent::AgentGone,
            },
            uni = conn.accept_uni(), if screen.is_none() && !stalled => {
                screen = Some(FramedRecv::new(uni?, MAX_FRAME_LEN));
                continue;
            }
            update = async { screen.as_mut().expect("guarded").next().await }, if screen.is_some() && !stalled => match update {
                Ok(Some(bytes)) => ViewerEvent::ScreenUpdate(bytes),
                Ok(None) => ViewerEvent::AgentGone,
                Err(_) => ViewerEvent::StreamBroken,
            },
            c = commands.recv() => match c {
                // The misbehaviour: input leaves whatever the grant; the agent must drop it.
                Some(Command::Send(ViewerMessage::Input(ev))) => {
                    send_frame(&mut ctrl_send, &ViewerMessage::Input(ev).encode()).await?;
                    continue;
                }
                Some(Command::Send(m)) => {
                    send_frame(&mut ctrl_send, &m.encode()).await?;
                    continue;
                }
                Some(Command::Raw(bytes)) => {
                    send_frame(&mut ctrl_send, &bytes).await?;
                    continue;
                }
                Some(Command::Stall) => {
                    stalled = true;
                    println!("stalled");
                    continue;
                }
                Some(Command::Snapshot(path)) => {
                    match viewer::snapshot::save_png(&framebuffer, std::path::Path::new(&path)) {
                        Ok(()) => println!("snapshot {path}"),
                        Err(e) => println!("error snapshot: {e:#}"),
                    }
                    continue;
                }
                None => ViewerEvent::Closed,
            },
            _ = conn.closed() => ViewerEvent::ConnectionLost,
        };
        actions.extend(machine.handle(event, Instant::now()));
    }
}
