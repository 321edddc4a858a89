//! The viewer's side of a session: log in at the relay, pair with the agent over the code,
//! open the end-to-end connection, then receive the screen and send input while granted.

use anyhow::{bail, Context, Result};
use protocol::consent::Grant;
use protocol::ids::{SessionCode, TicketNumber};
use protocol::pairing::{Pairing, PairingContext, Role};
use protocol::peer::PathKind;
use protocol::screen::{Framebuffer, ScreenDecoder};
use protocol::session::{EndReason, InputEvent, ViewerMessage, MAX_CONTROL_LEN};
use protocol::signaling::{FromRelay, Refusal, StaffToken, ToRelay};
use protocol::status::Status;
use protocol::viewer_session::{ViewerAction, ViewerEnd, ViewerEvent, ViewerSession};
use protocol::wire::MAX_FRAME_LEN;
use rand_core::OsRng;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use transport::config::RelayTrust;
use transport::framed::{send_frame, FramedRecv};
use transport::paths::{relay_rtt, PathWatch, SessionEndpoint};
use transport::relay_client::{drive_pairing, PairingEnd};
use transport::TransportError;

/// How often the session's path is looked at, to show and report changes.
const PATH_CHECK: Duration = Duration::from_millis(250);
/// How often `--stats` prints.
const STATS_EVERY: Duration = Duration::from_millis(500);

/// What the viewer needs to start.
pub struct ViewerSettings {
    pub relay: String,
    pub trust: RelayTrust,
    /// Over which transport signaling reaches the relay.
    pub signal: transport::signal_tcp::SignalTransport,
    pub token: StaffToken,
    /// The staff member the token names: the only name this viewer pairs under.
    pub staff_name: String,
    pub ticket: TicketNumber,
    pub code: SessionCode,
    pub host_name: Option<String>,
    /// Test aid: append every decrypted message received to this file (length-prefixed).
    pub record_plaintext: Option<std::path::PathBuf>,
    /// Print the bytes received from the agent and the frames shown, twice a second.
    pub stats: bool,
}

/// What the session tells the front end (window or headless).
pub enum SessionEvent {
    /// A status line: waiting for consent, view only, control, ended and why.
    Status(String),
    /// The current grant.
    Grant(Grant),
    /// The path the session takes now, and its round-trip time.
    Path { kind: PathKind, rtt_ms: u32 },
    /// The screen changed; the framebuffer holds the new state.
    Frame {
        seq: u64,
        encoded_bytes: usize,
        /// Regions the update copied (scrolls, moved windows) and rectangles it carried.
        copies: usize,
        rects: usize,
        framebuffer: std::sync::Arc<std::sync::Mutex<Framebuffer>>,
    },
    /// The session is over.
    Ended(String),
    /// The viewer failed (before or during the session); the message the command line prints.
    Failed(String),
}

/// Errors that end the viewer with a specific exit code.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("code incorrect: ask the person at the PC to read the code in the agent window again")]
    WrongCode,
    #[error("the person at the PC declined the session (no screen content was sent)")]
    Denied,
    /// A wrong code was entered a moment ago: the PC (or, after several, the relay) takes the
    /// next try only after a pause.
    #[error("the PC waits {secs} s after a wrong code before it takes a new try: try again in {secs} s, with the code the person at the PC reads out then")]
    TryLater { secs: u32 },
}

impl From<Refusal> for ViewerError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::WrongCode => ViewerError::WrongCode,
            Refusal::TooManyAttempts { retry_after_secs } => ViewerError::TryLater {
                secs: retry_after_secs,
            },
            r => ViewerError::Refused(r),
        }
    }
}

/// An end-to-end connection to the agent, paired and confirmed, nothing exchanged on it yet.
pub struct Connected {
    /// The signaling connection, for path reports and the goodbye.
    pub relay: transport::relay_client::RelayClient,
    /// This session's endpoint.
    pub endpoint: SessionEndpoint,
    /// The connection to the agent.
    pub conn: transport::paths::Connection,
    /// When the end-to-end connection was started.
    pub connected_at: Instant,
}

/// Logs in at the relay, pairs with the agent over the code and opens the end-to-end
/// connection; `status` hears the steps. `stream_window` overrides the receive window (test
/// viewers that grant the agent no room).
pub async fn connect(
    settings: &ViewerSettings,
    stream_window: Option<u32>,
    status: impl Fn(&str),
) -> Result<Connected> {
    let mut relay =
        transport::signal_tcp::connect_signaling(&settings.relay, &settings.trust, settings.signal)
            .await?;
    relay
        .send(&ToRelay::JoinAsViewer {
            version: protocol::PROTOCOL_VERSION,
            token: settings.token.clone(),
            ticket: settings.ticket,
            host_name: settings.host_name.clone(),
        })
        .await?;
    let (pairing_id, host, staff) = match relay.next_timely().await? {
        FromRelay::AgentChosen {
            pairing,
            host_name,
            staff_name,
        } => (pairing, host_name, staff_name),
        FromRelay::Refused(r) => return Err(ViewerError::from(r).into()),
        _ => bail!("unexpected answer from the relay"),
    };
    if settings
        .host_name
        .as_deref()
        .is_some_and(|h| protocol::ids::host_of_choice(h) != host)
    {
        bail!("the relay offered PC '{host}' instead of the one asked for: is this your relay?");
    }
    // The person at the PC reads the name the relay gives the agent; the transcript below
    // holds this viewer's own, so a relay naming anyone else fails the pairing. Saying so
    // here, before the code is used, tells the technician why (the relay's words unquoted).
    if staff != settings.staff_name {
        bail!(
            "the relay would present this session under another staff name than your token's ({}): it is not acting as it must, so the viewer stops here; tell ops",
            settings.staff_name
        );
    }
    status(&format!("pairing with {host} as {staff}"));
    let (endpoint, paths) = relay
        .session_endpoint(
            pairing_id,
            &settings.relay,
            &settings.trust,
            false,
            stream_window,
        )
        .await?;
    let own = endpoint.peer_endpoint();
    // What this side was told goes into the key confirmation: if the relay showed the agent
    // another staff name, or this viewer another PC, the pairing fails.
    let context = PairingContext {
        ticket: settings.ticket,
        staff_name: settings.staff_name.clone(),
        host_name: host,
    };
    let (pairing, first) = Pairing::start(Role::Viewer, &settings.code, context, &mut OsRng);
    let (agent, proof) = match drive_pairing(&mut relay, pairing_id, pairing, first, &own).await? {
        PairingEnd::Verified(peer, proof) => (peer, proof),
        PairingEnd::WrongCode => {
            // The agent's confirmation did not check out, after it had accepted ours: whatever
            // answered is not an agent that knows the code. Tell the relay, so it refuses the
            // pairing on the record, and wait for its word.
            relay
                .send(&ToRelay::PairingOutcome {
                    pairing: pairing_id,
                    proof: None,
                })
                .await?;
            return Err(match relay.next_timely().await {
                Ok(FromRelay::Refused(r)) => ViewerError::from(r),
                _ => ViewerError::Refused(Refusal::PairingUnconfirmed),
            }
            .into());
        }
        PairingEnd::Refused(r) => return Err(ViewerError::from(r).into()),
        PairingEnd::PeerLeft => return Err(ViewerError::Refused(Refusal::PeerLeft).into()),
    };
    match relay.confirm_pairing(pairing_id, proof).await? {
        Ok(()) => {}
        Err(r) => return Err(ViewerError::from(r).into()),
    }
    endpoint.relay_ready().await;
    let connected_at = Instant::now();
    let conn = endpoint
        .connect_to(&agent, &paths)
        .await
        .context("end-to-end connection to the agent failed")?;
    println!(
        "{}",
        Status::ViewerConnected {
            ms: connected_at.elapsed().as_secs_f64() * 1000.0
        }
    );
    Ok(Connected {
        relay,
        endpoint,
        conn,
        connected_at,
    })
}

/// Runs a session; `input` carries the front end's input, `events` goes back to it.
pub async fn run(
    settings: ViewerSettings,
    mut input: mpsc::UnboundedReceiver<ViewerMessage>,
    events: std::sync::mpsc::Sender<SessionEvent>,
) -> Result<()> {
    let status = |s: &str| {
        let _ = events.send(SessionEvent::Status(s.to_owned()));
    };
    let Connected {
        mut relay,
        endpoint,
        conn,
        connected_at,
    } = connect(&settings, None, status).await?;
    let mut path = PathWatch::default();
    let mut path_tick = tokio::time::interval(PATH_CHECK);
    let mut stats_tick = tokio::time::interval(STATS_EVERY);
    let mut frames = 0u64;
    status("waiting for consent");
    let (mut ctrl_send, ctrl_recv) = conn
        .accept_bi()
        .await
        .map_err(TransportError::from)
        .context("the agent did not open the session")?;
    let mut ctrl_recv = FramedRecv::new(ctrl_recv, MAX_CONTROL_LEN);
    let mut machine = ViewerSession::new();
    let framebuffer = std::sync::Arc::new(std::sync::Mutex::new(Framebuffer::default()));
    let mut decoder = ScreenDecoder::new();
    let mut screen: Option<FramedRecv<transport::paths::RecvStream>> = None;
    let mut record = match &settings.record_plaintext {
        Some(p) => Some(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => None,
    };
    let mut record_msg = |bytes: &[u8]| {
        if let Some(f) = record.as_mut() {
            use std::io::Write;
            let _ = f.write_all(&protocol::wire::encode_frame(bytes));
        }
    };
    let mut actions: VecDeque<ViewerAction> = VecDeque::new();
    let end = 'session: loop {
        while let Some(action) = actions.pop_front() {
            match action {
                ViewerAction::Send(m) => send_frame(&mut ctrl_send, &m.encode()).await?,
                ViewerAction::Decode(bytes) => {
                    let u = decoder.apply(
                        &bytes,
                        &mut framebuffer.lock().unwrap_or_else(|e| e.into_inner()),
                    )?;
                    frames += 1;
                    // Shown first, acknowledged after: the agent's next update waits for neither.
                    let _ = events.send(SessionEvent::Frame {
                        seq: u.seq,
                        encoded_bytes: bytes.len(),
                        copies: u.copies,
                        rects: u.rects,
                        framebuffer: framebuffer.clone(),
                    });
                    let shown = ViewerEvent::Shown {
                        seq: u.seq,
                        ack_requested: u.ack_requested,
                        bytes: bytes.len(),
                        rects: u.rects,
                    };
                    for a in machine.handle(shown, Instant::now()).into_iter().rev() {
                        actions.push_front(a);
                    }
                }
                ViewerAction::ShowGrant(g) => {
                    let _ = events.send(SessionEvent::Grant(g));
                }
                ViewerAction::Note(s) => status(s),
                ViewerAction::Status(s) => println!("{s}"),
                ViewerAction::Finish(end) => break 'session end,
            }
        }
        let event = tokio::select! {
            _ = path_tick.tick() => {
                if let Some(now) = path.look(&conn) {
                    if now.changed {
                        println!("{}", Status::Path {
                            kind: now.kind,
                            rtt_ms: now.rtt_ms,
                            after_ms: Some(connected_at.elapsed().as_millis() as u64),
                            relay_rtt_ms: relay_rtt(&conn).map(|r| r.as_millis() as u64),
                        });
                        // For the session record; a relay that is gone costs only the report.
                        let _ = tokio::time::timeout(Duration::from_millis(200), relay.send(&now.report())).await;
                    }
                    let _ = events.send(SessionEvent::Path { kind: now.kind, rtt_ms: now.rtt_ms });
                }
                continue;
            }
            _ = stats_tick.tick(), if settings.stats => {
                // What the agent's updates cost, as the QUIC stack counts it (it counts more than
                // the UDP payload; bench/screen.sh measures on the wire).
                println!("stats rx_bytes={} frames={frames}", conn.stats().udp_rx.bytes);
                continue;
            }
            msg = ctrl_recv.next() => match msg.unwrap_or(None) {
                Some(msg) => {
                    record_msg(&msg);
                    ViewerEvent::FromAgent(msg)
                }
                None => ViewerEvent::AgentGone,
            },
            uni = conn.accept_uni(), if screen.is_none() => {
                screen = Some(FramedRecv::new(uni.map_err(TransportError::from).context("screen stream failed")?, MAX_FRAME_LEN));
                continue;
            }
            update = async { screen.as_mut().expect("guarded").next().await }, if screen.is_some() => match update {
                Ok(Some(bytes)) => {
                    record_msg(&bytes);
                    ViewerEvent::ScreenUpdate(bytes)
                }
                Ok(None) => ViewerEvent::AgentGone,
                Err(e) => {
                    tracing::warn!(error = %e, "the screen stream failed");
                    ViewerEvent::StreamBroken
                }
            },
            msg = input.recv() => match msg {
                Some(ViewerMessage::Input(ev)) => ViewerEvent::Input(ev),
                Some(ViewerMessage::End(_)) => ViewerEvent::EndClicked,
                // Acknowledgements are the session's own business.
                Some(ViewerMessage::FrameAck { .. }) => continue,
                None => ViewerEvent::Closed,
            },
            _ = conn.closed() => ViewerEvent::ConnectionLost,
        };
        actions.extend(machine.handle(event, Instant::now()));
    };
    match end {
        ViewerEnd::Denied => return Err(ViewerError::Denied.into()),
        ViewerEnd::Violation(what) => bail!(what),
        ViewerEnd::Ended(words) => {
            // Our own end: the agent hears it before the connection closes.
            let _ = ctrl_send.finish();
            let _ = tokio::time::timeout(Duration::from_millis(500), conn.closed()).await;
            conn.close(0u32.into(), b"session ended");
            let _ = events.send(SessionEvent::Ended(words));
        }
    }
    relay.close(b"done").await;
    endpoint.close(Duration::from_millis(500)).await;
    Ok(())
}

/// Parses the headless mode's input commands (one per line on stdin).
pub fn parse_command(line: &str) -> Result<Option<ViewerMessage>, String> {
    use protocol::session::{Key, MouseButton, NamedKey};
    let mut parts = line.trim_end_matches(['\n', '\r']).splitn(2, ' ');
    let cmd = parts.next().unwrap_or("");
    let rest = parts.next().unwrap_or("");
    let button = |s: &str| match s.trim() {
        "left" => Ok(MouseButton::Left),
        "middle" => Ok(MouseButton::Middle),
        "right" => Ok(MouseButton::Right),
        other => Err(format!("unknown button '{other}'")),
    };
    let input = |ev| Ok(Some(ViewerMessage::Input(ev)));
    match cmd {
        "" => Ok(None),
        "move" => {
            let v: Vec<u16> = rest
                .split_whitespace()
                .map(|n| n.parse().map_err(|_| format!("bad coordinate '{n}'")))
                .collect::<Result<_, _>>()?;
            let [x, y] = v[..] else {
                return Err("usage: move X Y".into());
            };
            input(InputEvent::PointerMove { x, y })
        }
        "down" => input(InputEvent::Button {
            button: button(rest)?,
            pressed: true,
        }),
        "up" => input(InputEvent::Button {
            button: button(rest)?,
            pressed: false,
        }),
        "wheel" => input(InputEvent::Wheel {
            dx: 0,
            dy: rest.trim().parse().map_err(|_| "usage: wheel DY")?,
        }),
        "type" => input(InputEvent::Text(rest.to_owned())),
        "key" => {
            let mut p = rest.split_whitespace();
            let name = p.next().ok_or("usage: key NAME down|up")?;
            let pressed = match p.next() {
                Some("down") => true,
                Some("up") => false,
                _ => return Err("usage: key NAME down|up".into()),
            };
            let key = match name {
                "Return" => Key::Named(NamedKey::Return),
                "Tab" => Key::Named(NamedKey::Tab),
                "Escape" => Key::Named(NamedKey::Escape),
                "BackSpace" => Key::Named(NamedKey::Backspace),
                "Control" => Key::Named(NamedKey::Control),
                "Shift" => Key::Named(NamedKey::Shift),
                "Alt" => Key::Named(NamedKey::Alt),
                s if s.chars().count() == 1 => Key::Char(s.chars().next().expect("one char")),
                other => return Err(format!("unknown key '{other}'")),
            };
            input(InputEvent::Key { key, pressed })
        }
        "end" => Ok(Some(ViewerMessage::End(EndReason::EndedByViewer))),
        other => Err(format!("unknown command '{other}'")),
    }
}
