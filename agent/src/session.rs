//! The agent's side of a support session: register under the ticket, show the code, pair with
//! the viewer over the relay, ask for consent, then share the screen and take input as granted.

use crate::consent_gate::ConsentGate;
use crate::screen_stream::{CaptureThread, ScreenPacing};
use crate::ui::{UiCommand, UiEvent};
use anyhow::{anyhow, bail, Context, Result};
use protocol::consent::Grant;
use protocol::ids::{SessionCode, TicketNumber};
use protocol::pairing::{Pairing, PairingError, PairingStep, Role};
use protocol::session::{AgentMessage, EndReason, ViewerMessage, MAX_CONTROL_LEN};
use protocol::signaling::{FromRelay, Refusal, ToRelay, MAX_SIGNALING_LEN};
use quinn::{Connection, SendStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use transport::config::RelayTrust;
use transport::framed::{send_frame, FramedRecv};
use transport::identity::Identity;
use transport::tunnel::TunnelSocket;

/// Wrong codes before the agent shows a new one; the relay slows tries from here on too.
pub const CODE_TRIES: u32 = 5;
/// How long the person at the PC has to answer the consent dialog.
const CONSENT_TIMEOUT: Duration = Duration::from_secs(120);
/// A pairing step must arrive this fast.
const PAIRING_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the agent needs to know to start.
pub struct AgentSettings {
    pub relay: String,
    pub trust: RelayTrust,
    pub ticket: TicketNumber,
    pub host_name: String,
}

/// How the agent ended, for its exit message.
#[derive(Debug)]
pub enum Outcome {
    Cancelled,
    Denied,
    Ended(EndReason),
}

/// Prints a status line; the IT contact and the tests read these.
fn status(line: impl std::fmt::Display) {
    println!("{line}");
}

struct Relay {
    conn: transport::config::RelayConnection,
    send: SendStream,
    recv: FramedRecv,
}

impl Relay {
    async fn send(&mut self, m: ToRelay) -> Result<()> {
        send_frame(&mut self.send, &m.encode())
            .await
            .context("lost the connection to the relay / Verbindung zum Relay verloren")
    }

    async fn next(&mut self) -> Result<FromRelay> {
        let frame = self.recv.next().await?.ok_or_else(|| {
            anyhow!("the relay closed the connection / das Relay hat die Verbindung beendet")
        })?;
        Ok(FromRelay::decode(&frame)?)
    }
}

/// Runs the agent until the session ends or the person cancels.
pub async fn run(
    settings: AgentSettings,
    screen: CaptureThread,
    ui: std_mpsc::Sender<UiCommand>,
    mut events: UnboundedReceiver<UiEvent>,
) -> Result<Outcome> {
    let conn = transport::config::connect_relay(&settings.relay, &settings.trust).await?;
    let (send, recv) = conn.conn.open_bi().await?;
    let mut relay = Relay {
        conn,
        send,
        recv: FramedRecv::new(recv, MAX_SIGNALING_LEN),
    };
    relay
        .send(ToRelay::RegisterAgent {
            version: protocol::PROTOCOL_VERSION,
            ticket: settings.ticket,
            host_name: settings.host_name.clone(),
        })
        .await?;
    match relay.next().await? {
        FromRelay::AgentRegistered => {}
        FromRelay::Refused(r) => {
            bail!("the relay refused the registration: {r} / Das Relay hat die Anmeldung abgelehnt")
        }
        other => bail!("unexpected answer from the relay: {other:?}"),
    }
    status(format_args!(
        "registered ticket={} host={}",
        settings.ticket, settings.host_name
    ));

    let mut code = SessionCode::generate();
    let mut wrong = 0u32;
    let show_code = |code: &SessionCode| {
        status(format_args!("code {}", code.display()));
        let _ = ui.send(UiCommand::Waiting {
            ticket: settings.ticket,
            code: code.display(),
        });
    };
    show_code(&code);
    let (staff, identity, viewer_fp) = loop {
        let msg = tokio::select! {
            m = relay.next() => m?,
            ev = events.recv() => match ev {
                Some(UiEvent::CancelWaiting) | None => {
                    relay.conn.close(b"cancelled").await;
                    return Ok(Outcome::Cancelled);
                }
                Some(_) => continue,
            },
        };
        let staff_name = match msg {
            FromRelay::ViewerJoined { staff_name } => staff_name,
            // A viewer that left after the pairing ended; nothing to abort.
            FromRelay::Refused(Refusal::PeerLeft) => continue,
            other => bail!("unexpected message from the relay while waiting: {other:?}"),
        };
        status(format_args!("viewer staff={staff_name}"));
        let identity = Identity::generate("fernhilfe-agent")?;
        match pair(&mut relay, &code, settings.ticket, &identity).await? {
            Ok(viewer_fp) => {
                relay
                    .send(ToRelay::PairingOutcome { code_matched: true })
                    .await?;
                break (staff_name, identity, viewer_fp);
            }
            Err(PairingFailure::WrongCode) => {
                relay
                    .send(ToRelay::PairingOutcome {
                        code_matched: false,
                    })
                    .await?;
                wrong += 1;
                status(format_args!(
                    "pairing failed: code incorrect (try {wrong} of {CODE_TRIES})"
                ));
                if wrong >= CODE_TRIES {
                    wrong = 0;
                    code = SessionCode::generate();
                    status("code rotated");
                    show_code(&code);
                }
            }
            Err(PairingFailure::PeerLeft) => status("pairing aborted: viewer left"),
        }
    };
    let _ = ui.send(UiCommand::CloseAll);
    session(
        relay,
        settings.ticket,
        staff,
        identity,
        viewer_fp,
        screen,
        ui,
        events,
    )
    .await
}

enum PairingFailure {
    WrongCode,
    PeerLeft,
}

async fn pair(
    relay: &mut Relay,
    code: &SessionCode,
    ticket: TicketNumber,
    identity: &Identity,
) -> Result<Result<protocol::fingerprint::CertFingerprint, PairingFailure>> {
    let own = identity.fingerprint();
    let (mut pairing, first) = Pairing::start(Role::Agent, code, ticket);
    relay.send(ToRelay::Pairing(first)).await?;
    loop {
        let msg = match tokio::time::timeout(PAIRING_STEP_TIMEOUT, relay.next()).await {
            Err(_) => return Ok(Err(PairingFailure::PeerLeft)),
            Ok(m) => m?,
        };
        match msg {
            FromRelay::Pairing(bytes) => match pairing.handle(&bytes, own) {
                Ok(PairingStep::Send(reply)) => relay.send(ToRelay::Pairing(reply)).await?,
                Ok(PairingStep::Wait) => {}
                Ok(PairingStep::Verified { peer, reply }) => {
                    if let Some(reply) = reply {
                        relay.send(ToRelay::Pairing(reply)).await?;
                    }
                    return Ok(Ok(peer));
                }
                Err(PairingError::WrongCode) => return Ok(Err(PairingFailure::WrongCode)),
                // A malformed message is a failed try too: it counts towards the rotation.
                Err(e) => {
                    tracing::warn!(error = %e, "bad pairing message");
                    return Ok(Err(PairingFailure::WrongCode));
                }
            },
            FromRelay::Refused(Refusal::PeerLeft) => return Ok(Err(PairingFailure::PeerLeft)),
            other => bail!("unexpected message from the relay during pairing: {other:?}"),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn session(
    relay: Relay,
    ticket: TicketNumber,
    staff: String,
    identity: Identity,
    viewer_fp: protocol::fingerprint::CertFingerprint,
    screen: CaptureThread,
    ui: std_mpsc::Sender<UiCommand>,
    mut events: UnboundedReceiver<UiEvent>,
) -> Result<Outcome> {
    let socket = TunnelSocket::new(relay.conn.conn.clone());
    let endpoint = transport::config::session_server(socket, &identity, viewer_fp)?;
    let incoming = tokio::time::timeout(Duration::from_secs(15), endpoint.accept())
        .await
        .map_err(|_| anyhow!("the viewer did not open the encrypted connection"))?
        .ok_or_else(|| anyhow!("endpoint closed"))?;
    let conn = incoming
        .await
        .context("end-to-end handshake with the viewer failed")?;
    status("e2e connected");
    let (mut ctrl_send, ctrl_recv) = conn.open_bi().await?;
    let mut ctrl_recv = FramedRecv::new(ctrl_recv, MAX_CONTROL_LEN);

    // Nothing is captured or injected before this answer.
    let _ = ui.send(UiCommand::AskConsent {
        staff: staff.clone(),
        ticket,
    });
    status("consent asked");
    let answer = tokio::select! {
        ev = events.recv() => match ev { Some(UiEvent::Consent(g)) => g, _ => Grant::Denied },
        _ = conn.closed() => { let _ = ui.send(UiCommand::CloseAll); return Ok(Outcome::Ended(EndReason::EndedByViewer)) }
        _ = tokio::time::sleep(CONSENT_TIMEOUT) => Grant::Denied,
    };
    let gate = ConsentGate::default();
    gate.set(answer);
    status(format_args!("consent {answer:?}"));
    send_frame(&mut ctrl_send, &AgentMessage::Grant(answer).encode()).await?;
    if answer == Grant::Denied {
        let _ = ui.send(UiCommand::CloseAll);
        finish(&conn, &endpoint, &mut ctrl_send, EndReason::ConsentDenied).await;
        relay.conn.close(b"declined").await;
        return Ok(Outcome::Denied);
    }
    let _ = ui.send(UiCommand::Indicator {
        staff: staff.clone(),
        grant: answer,
    });

    let injector = crate::input::spawn_injector(gate.clone())?;
    let pacing = ScreenPacing::default();
    let mut updates = screen.stream(gate.clone(), pacing.clone());
    let mut screen_send = conn.open_uni().await?;
    let outcome = loop {
        tokio::select! {
            update = updates.recv() => {
                let Some(update) = update else { break EndReason::Failure };
                if gate.may_view() {
                    send_frame(&mut screen_send, &update).await?;
                }
            }
            msg = ctrl_recv.next() => {
                let msg = match msg {
                    Ok(Some(m)) => m,
                    Ok(None) => break EndReason::EndedByViewer,
                    Err(e) => { tracing::warn!(error = %e, "control stream failed"); break EndReason::ProtocolViolation }
                };
                match ViewerMessage::decode(&msg) {
                    Ok(ViewerMessage::Input(ev)) => {
                        // Checked again right before injection; this only avoids queueing.
                        if gate.may_inject() && injector.try_send(ev).is_err() {
                            tracing::warn!("input queue full, event dropped");
                        }
                    }
                    Ok(ViewerMessage::FrameAck { seq }) => { pacing.acked.fetch_max(seq, Ordering::SeqCst); }
                    Ok(ViewerMessage::End(_)) => break EndReason::EndedByViewer,
                    Err(e) => {
                        tracing::warn!(error = %e, "malformed control message from the viewer");
                        break EndReason::ProtocolViolation;
                    }
                }
            }
            ev = events.recv() => match ev {
                Some(UiEvent::ChangeGrant(g)) => {
                    gate.set(g);
                    status(format_args!("grant {g:?}"));
                    send_frame(&mut ctrl_send, &AgentMessage::Grant(g).encode()).await?;
                }
                Some(UiEvent::End) | None => break EndReason::EndedAtAgent,
                Some(_) => {}
            },
            _ = conn.closed() => break EndReason::EndedByViewer,
        }
    };
    pacing.stop.store(true, Ordering::Relaxed);
    gate.set(Grant::Denied);
    let _ = ui.send(UiCommand::CloseAll);
    status(format_args!("session ended reason={outcome:?}"));
    finish(&conn, &endpoint, &mut ctrl_send, outcome).await;
    relay.conn.close(b"session over").await;
    Ok(Outcome::Ended(outcome))
}

/// Tells the viewer why the session ends, gives that a moment to arrive, and closes.
async fn finish(
    conn: &Connection,
    endpoint: &quinn::Endpoint,
    ctrl: &mut SendStream,
    reason: EndReason,
) {
    let _ = send_frame(ctrl, &AgentMessage::End(reason).encode()).await;
    let _ = ctrl.finish();
    let _ = tokio::time::timeout(Duration::from_millis(500), conn.closed()).await;
    conn.close(0u32.into(), b"session ended");
    let _ = tokio::time::timeout(Duration::from_millis(300), endpoint.wait_idle()).await;
}
