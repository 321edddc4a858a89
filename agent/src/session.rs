//! The agent's side of a support session: register under the ticket, show the code, pair with
//! the viewer over the relay, ask for consent, then share the screen and take input as granted.
//!
//! The person at the PC always wins: the windows set the consent gate themselves, the screen
//! is written by a task of its own and control messages by another, so neither a slow nor a
//! hostile viewer can hold up *Beenden* or *Nur ansehen*; every wait on the network is bounded.

use crate::code_guard::{Admit, AfterWrong, CodeGuard, MAX_WRONG_CODES};
use crate::consent_gate::ConsentGate;
use crate::screen_stream::{CaptureThread, ScreenPacing};
use crate::session_limits::{Limit, LimitStep, SessionLimits};
use crate::texts::TicketProblem;
use crate::ui::{UiCommand, UiEvent};
use anyhow::{anyhow, bail, Context, Result};
use protocol::consent::Grant;
use protocol::ids::{SessionCode, TicketNumber};
use protocol::pairing::{Pairing, PairingContext, Role};
use protocol::peer::{PathKind, PeerEndpoint};
use protocol::session::{AgentMessage, EndReason, ViewerMessage, MAX_CONTROL_LEN};
use protocol::signaling::{FromRelay, Refusal, ToRelay};
use rand_core::OsRng;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use transport::config::RelayTrust;
use transport::framed::{send_frame, FramedRecv};
use transport::paths::{
    current_path, session_key, Connection, RelayPaths, SendStream, SessionEndpoint,
};
use transport::relay_client::{drive_pairing, PairingEnd, RelayClient, SignalError};
use transport::signal_tcp::{connect_signaling, SignalTransport};
use transport::TransportError;

/// How long the person at the PC has to answer the consent dialog.
const CONSENT_TIMEOUT: Duration = Duration::from_secs(120);
/// The viewer must open the end-to-end connection this fast after pairing.
const E2E_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for the input thread to release held keys at the end of a session; consent is
/// already withdrawn, so nothing more is injected whether or not it ends in time.
const INJECTOR_STOP_WAIT: Duration = Duration::from_millis(200);
/// How often the session's path is looked at, to show and report changes.
const PATH_CHECK: Duration = Duration::from_millis(250);
/// Longest wait for the last message to the viewer, and for the connection to close, when
/// the session ends: *Beenden* must end everything within a second.
const GOODBYE_TIMEOUT: Duration = Duration::from_millis(200);
/// Waits between attempts to reach the relay again, doubling up to the last.
const RECONNECT_FIRST: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(10);
/// How long the final "too many wrong codes" message stays if nobody closes it.
const LOCKED_MESSAGE_TIME: Duration = Duration::from_secs(600);

/// Everything the agent needs to know to start.
pub struct AgentSettings {
    pub relay: String,
    pub trust: RelayTrust,
    /// Over which transport signaling reaches the relay.
    pub signal: SignalTransport,
    /// The ticket from the command line; `None`: ask for it in the ticket window.
    pub ticket: Option<TicketNumber>,
    pub host_name: String,
    /// Multiplies the agent's waits after wrong codes (1.0; tests shorten them).
    pub delay_scale: f64,
    /// A session nobody uses ends after this long.
    pub idle_limit: Duration,
    /// A session ends after this long unless the person at the PC goes on.
    pub max_duration: Duration,
}

/// How the agent ended, for its exit message.
#[derive(Debug)]
pub enum Outcome {
    Cancelled,
    Denied,
    LockedOut,
    Ended(EndReason),
}

/// Prints a status line; the IT contact and the tests read these.
fn status(line: impl std::fmt::Display) {
    println!("{line}");
}

/// The waiting phase's view of itself, for the waiting window.
struct Waiting<'a> {
    settings: &'a AgentSettings,
    ui: &'a std_mpsc::Sender<UiCommand>,
    code: SessionCode,
    guard: CodeGuard,
}

impl Waiting<'_> {
    fn show(&self, reconnecting: bool) {
        let _ = self.ui.send(UiCommand::Waiting {
            ticket: self.settings.ticket(),
            code: self.code.display(),
            wrong: self.guard.wrong(),
            max_wrong: MAX_WRONG_CODES,
            reconnecting,
        });
    }
}

impl AgentSettings {
    /// The ticket the agent registers under: given, or asked for before registering.
    fn ticket(&self) -> TicketNumber {
        self.ticket
            .expect("the ticket is asked for before anything uses it")
    }
}

/// The relay refused the registration.
#[derive(Debug, thiserror::Error)]
#[error("the relay refused the registration: {0} / {de}", de = crate::texts::refusal_de(.0))]
struct Refused(Refusal);

/// Asks for the ticket number in the ticket window until the relay registers the agent under
/// it; a number the relay's ticket system does not know, or a closed ticket, is asked for
/// again with the reason. `None`: the person cancelled.
async fn ask_and_register(
    settings: &mut AgentSettings,
    ui: &std_mpsc::Sender<UiCommand>,
    events: &mut UnboundedReceiver<UiEvent>,
) -> Result<Option<(RelayClient, Duration)>> {
    let mut problem = None;
    loop {
        let _ = ui.send(UiCommand::AskTicket { problem });
        let ticket = loop {
            match events.recv().await {
                Some(UiEvent::Ticket(t)) => break t,
                Some(UiEvent::CancelWaiting) | None => return Ok(None),
                Some(_) => continue,
            }
        };
        status(format_args!("ticket typed {ticket}"));
        settings.ticket = Some(ticket);
        match register(settings).await {
            Ok(r) => return Ok(Some(r)),
            Err(e) => match e.downcast_ref::<Refused>() {
                Some(Refused(Refusal::TicketNotInSystem)) => {
                    problem = Some(TicketProblem::NotInSystem)
                }
                Some(Refused(Refusal::TicketClosed)) => problem = Some(TicketProblem::Closed),
                Some(Refused(Refusal::TicketCheckUnavailable)) => {
                    problem = Some(TicketProblem::CheckUnavailable)
                }
                _ => return Err(e),
            },
        }
    }
}

/// Connects to the relay and registers; returns the client and how often to renew.
async fn register(settings: &AgentSettings) -> Result<(RelayClient, Duration)> {
    let mut relay = connect_signaling(&settings.relay, &settings.trust, settings.signal).await?;
    if relay.over_tcp() {
        status("signaling over tcp");
    }
    relay
        .send(&ToRelay::RegisterAgent {
            version: protocol::PROTOCOL_VERSION,
            ticket: settings.ticket(),
            host_name: settings.host_name.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        })
        .await?;
    match relay.next_timely().await? {
        FromRelay::AgentRegistered { renew_within_secs } => {
            status(format_args!(
                "registered ticket={} host={}",
                settings.ticket(),
                settings.host_name
            ));
            // Renew at a third of the lifetime, so one lost renewal does not end it.
            let every = Duration::from_secs(u64::from(renew_within_secs.max(3)) / 3);
            Ok((relay, every))
        }
        FromRelay::Refused(r) => Err(Refused(r).into()),
        _ => bail!("unexpected answer from the relay / unerwartete Antwort des Relays"),
    }
}

/// Registers again after the relay went away, with backoff, until it works or the person
/// cancels; the code and the wrong tries stay, so the phone call goes on.
async fn reregister(
    w: &Waiting<'_>,
    events: &mut UnboundedReceiver<UiEvent>,
) -> Result<Option<(RelayClient, Duration)>> {
    w.show(true);
    let mut backoff = RECONNECT_FIRST;
    loop {
        status("relay lost, reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            ev = events.recv() => if matches!(ev, Some(UiEvent::CancelWaiting) | None) { return Ok(None) },
        }
        match register(w.settings).await {
            Ok(r) => {
                w.show(false);
                return Ok(Some(r));
            }
            Err(e) => tracing::info!(error = %format!("{e:#}"), "relay not reachable yet"),
        }
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
}

/// Runs the agent until the session ends or the person cancels.
pub async fn run(
    settings: AgentSettings,
    screen: CaptureThread,
    ui: std_mpsc::Sender<UiCommand>,
    mut events: UnboundedReceiver<UiEvent>,
) -> Result<Outcome> {
    let mut settings = settings;
    let (mut relay, mut renew_every) = if settings.ticket.is_some() {
        register(&settings).await?
    } else {
        match ask_and_register(&mut settings, &ui, &mut events).await? {
            Some(r) => r,
            None => return Ok(Outcome::Cancelled),
        }
    };
    let mut w = Waiting {
        settings: &settings,
        ui: &ui,
        code: SessionCode::generate(&mut OsRng),
        guard: CodeGuard::new(settings.delay_scale),
    };
    status(format_args!("code {}", w.code.display()));
    w.show(false);
    let mut renew = renewal_timer(renew_every);
    let (staff, endpoint, viewer) = loop {
        let msg = tokio::select! {
            m = relay.next() => m,
            _ = renew.tick() => {
                match relay.send(&ToRelay::Renew).await {
                    Ok(()) => continue,
                    Err(e) => Err(e),
                }
            }
            ev = events.recv() => match ev {
                Some(UiEvent::CancelWaiting) | None => {
                    relay.close(b"cancelled").await;
                    return Ok(Outcome::Cancelled);
                }
                Some(_) => continue,
            },
        };
        let (pairing, staff_name) = match msg {
            Ok(FromRelay::ViewerJoined {
                pairing,
                staff_name,
            }) => (pairing, staff_name),
            // The end of a pairing that is already over.
            Ok(
                FromRelay::ViewerLeft { .. }
                | FromRelay::Pairing { .. }
                | FromRelay::PairingSucceeded,
            ) => continue,
            Ok(FromRelay::Refused(Refusal::RegistrationExpired))
            | Err(SignalError::Closed | SignalError::Transport(_) | SignalError::Timeout) => {
                relay.close(b"reconnecting").await;
                match reregister(&w, &mut events).await? {
                    Some((r, every)) => {
                        relay = r;
                        renew_every = every;
                        renew = renewal_timer(renew_every);
                        continue;
                    }
                    None => return Ok(Outcome::Cancelled),
                }
            }
            Ok(other) => bail!(
                "unexpected message from the relay while waiting / unerwartete Nachricht des Relays: {}",
                kind(&other)
            ),
            Err(e) => return Err(e.into()),
        };
        if let Admit::Later(wait) = w.guard.admit(Instant::now()) {
            status(format_args!("try deferred for {} ms", wait.as_millis()));
            relay
                .send(&ToRelay::PairingDeferred {
                    pairing,
                    retry_after_secs: wait.as_secs_f64().ceil() as u32,
                })
                .await?;
            continue;
        }
        status(format_args!("viewer staff={staff_name}"));
        // A fresh endpoint key per pairing: the relay admits it to its path service for this
        // pairing only, and the pairing confirms it to the viewer.
        let key = session_key(&mut OsRng);
        let qad_port = relay
            .admit_endpoint(pairing, *key.public().as_bytes())
            .await?;
        let paths = RelayPaths::new(&settings.relay, qad_port, settings.trust.clone())?;
        let endpoint = SessionEndpoint::bind(key, &paths, true, None).await?;
        let own = endpoint.peer_endpoint();
        let context = PairingContext {
            ticket: settings.ticket(),
            staff_name: staff_name.clone(),
            host_name: settings.host_name.clone(),
        };
        let (p, first) = Pairing::start(Role::Agent, &w.code, context, &mut OsRng);
        let end = tokio::select! {
            end = drive_pairing(&mut relay, pairing, p, first, &own) => end?,
            ev = events.recv() => {
                if matches!(ev, Some(UiEvent::CancelWaiting) | None) {
                    relay.close(b"cancelled").await;
                    return Ok(Outcome::Cancelled);
                }
                PairingEnd::PeerLeft
            }
        };
        match end {
            PairingEnd::Verified(viewer, proof) => {
                endpoint.relay_ready().await;
                // The relay starts the session (and puts it on the record) only once the
                // viewer's proof matches this one.
                match relay.confirm_pairing(pairing, proof).await {
                    Ok(Ok(())) => break (staff_name, endpoint, viewer),
                    Ok(Err(r)) => {
                        endpoint.close(GOODBYE_TIMEOUT).await;
                        status(format_args!("pairing not confirmed by the relay: {r}"));
                    }
                    // The wait above notices a relay that is gone, and registers again.
                    Err(e) => {
                        endpoint.close(GOODBYE_TIMEOUT).await;
                        status(format_args!("pairing not confirmed by the relay: {e}"));
                    }
                }
            }
            PairingEnd::WrongCode => {
                endpoint.close(GOODBYE_TIMEOUT).await;
                relay
                    .send(&ToRelay::PairingOutcome {
                        pairing,
                        proof: None,
                    })
                    .await?;
                let after = w.guard.record_wrong(Instant::now());
                status(format_args!(
                    "pairing failed: code incorrect (wrong {} of {MAX_WRONG_CODES})",
                    w.guard.wrong()
                ));
                match after {
                    AfterWrong::Keep => {}
                    AfterWrong::Rotate => {
                        w.code = SessionCode::generate(&mut OsRng);
                        status("code rotated");
                        status(format_args!("code {}", w.code.display()));
                    }
                    AfterWrong::LockedOut => {
                        status("locked out: too many wrong codes");
                        relay.close(b"too many wrong codes").await;
                        let _ = ui.send(UiCommand::LockedOut);
                        let _ = tokio::time::timeout(LOCKED_MESSAGE_TIME, async {
                            while !matches!(events.recv().await, Some(UiEvent::Dismissed) | None) {}
                        })
                        .await;
                        return Ok(Outcome::LockedOut);
                    }
                }
                w.show(false);
            }
            PairingEnd::PeerLeft => {
                endpoint.close(GOODBYE_TIMEOUT).await;
                status("pairing aborted: viewer left")
            }
            PairingEnd::Refused(r) => {
                endpoint.close(GOODBYE_TIMEOUT).await;
                status(format_args!("pairing ended by the relay: {r}"))
            }
        }
    };
    let _ = ui.send(UiCommand::CloseAll);
    session(
        relay, &settings, staff, endpoint, viewer, screen, ui, events,
    )
    .await
}

/// Ticks every `every`, first after one period. A tick missed while a pairing ran is not
/// made up in a burst: the relay counts renewals and refuses an agent that floods them.
fn renewal_timer(every: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

fn kind(m: &FromRelay) -> &'static str {
    match m {
        FromRelay::AgentRegistered { .. } => "registered",
        FromRelay::ViewerJoined { .. } => "viewer joined",
        FromRelay::AgentChosen { .. } => "agent chosen",
        FromRelay::Pairing { .. } => "pairing",
        FromRelay::PairingSucceeded => "pairing succeeded",
        FromRelay::ViewerLeft { .. } => "viewer left",
        FromRelay::EndpointAdmitted { .. } => "endpoint admitted",
        FromRelay::Refused(_) => "refusal",
    }
}

/// Writes control messages to the viewer in order, on a task of its own: a viewer that stops
/// reading blocks only this task, never the session loop.
fn spawn_control_writer(
    mut send: SendStream,
) -> (mpsc::Sender<AgentMessage>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<AgentMessage>(16);
    let task = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if send_frame(&mut send, &m.encode()).await.is_err() {
                return;
            }
        }
        let _ = send.finish();
    });
    (tx, task)
}

/// Writes screen updates on a task of its own, each only if viewing is still granted at that
/// moment; records the last sequence number sent, so acknowledgements can be checked.
fn spawn_screen_writer(
    mut send: SendStream,
    mut updates: mpsc::Receiver<crate::screen_stream::EncodedUpdate>,
    gate: ConsentGate,
    pacing: ScreenPacing,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some((seq, update)) = updates.recv().await {
            if !gate.may_view() {
                pacing.dropped(seq);
                continue;
            }
            pacing.written(seq);
            if send_frame(&mut send, &update).await.is_err() {
                return;
            }
        }
    })
}

#[allow(clippy::too_many_arguments)]
async fn session(
    relay: RelayClient,
    settings: &AgentSettings,
    staff: String,
    endpoint: SessionEndpoint,
    viewer: PeerEndpoint,
    screen: CaptureThread,
    ui: std_mpsc::Sender<UiCommand>,
    mut events: UnboundedReceiver<UiEvent>,
) -> Result<Outcome> {
    let conn = endpoint
        .accept_from(&viewer)
        .await
        .context("end-to-end connection with the viewer failed")?;
    status("e2e connected");
    let (reports, reporter) = spawn_reporter(relay);
    let mut path = PathWatch::default();
    path.check(&conn, &reports);
    let (ctrl_send, ctrl_recv) = tokio::time::timeout(E2E_TIMEOUT, conn.open_bi())
        .await
        .map_err(|_| anyhow!("the viewer gave no room for the control stream"))?
        .map_err(TransportError::from)?;
    let mut ctrl_recv = FramedRecv::new(ctrl_recv, MAX_CONTROL_LEN);
    let (ctrl, ctrl_task) = spawn_control_writer(ctrl_send);

    // Nothing is captured or injected before this answer; the dialog sets the gate itself.
    let gate = ConsentGate::default();
    let _ = ui.send(UiCommand::AskConsent {
        staff: staff.clone(),
        ticket: settings.ticket(),
        gate: gate.clone(),
    });
    status("consent asked");
    let answer = tokio::select! {
        ev = events.recv() => match ev { Some(UiEvent::Consent(g)) => g, _ => Grant::Denied },
        _ = conn.closed() => {
            gate.set(Grant::Denied);
            let _ = ui.send(UiCommand::CloseAll);
            return Ok(Outcome::Ended(EndReason::EndedByViewer));
        }
        _ = tokio::time::sleep(CONSENT_TIMEOUT) => Grant::Denied,
    };
    gate.set(answer);
    let answer = gate.get().unwrap_or(Grant::Denied);
    status(format_args!("consent {answer:?}"));
    let _ = ctrl.try_send(AgentMessage::Grant(answer));
    report(&reports, ToRelay::ConsentReport { grant: answer });
    if answer == Grant::Denied {
        let _ = ui.send(UiCommand::CloseAll);
        goodbye(&conn, &endpoint, ctrl, ctrl_task, EndReason::ConsentDenied).await;
        report_end(&reports, &conn, EndReason::ConsentDenied);
        close_reporter(reports, reporter).await;
        return Ok(Outcome::Denied);
    }
    let _ = ui.send(UiCommand::Indicator {
        staff: staff.clone(),
        grant: answer,
        gate: gate.clone(),
    });

    let injector = crate::input::spawn_injector(gate.clone())?;
    let pacing = ScreenPacing::default();
    let updates = screen.stream(gate.clone(), pacing.clone());
    let screen_send = tokio::time::timeout(E2E_TIMEOUT, conn.open_uni())
        .await
        .map_err(|_| anyhow!("the viewer gave no room for the screen stream"))?
        .map_err(TransportError::from)?;
    let mut screen_task = spawn_screen_writer(screen_send, updates, gate.clone(), pacing.clone());
    let mut path_tick = tokio::time::interval(PATH_CHECK);
    let mut dropped_inputs = 0u64;
    let mut limits = SessionLimits::new(settings.idle_limit, settings.max_duration, Instant::now());
    // Shows what the limits say in the indicator; the end reason if the session is over.
    let show = |step: LimitStep| -> Option<EndReason> {
        match step {
            LimitStep::End(Limit::Idle) => return Some(EndReason::IdleTimeout),
            LimitStep::End(Limit::Max) => return Some(EndReason::MaxDuration),
            LimitStep::Warn { limit, ends_in } => {
                status(format_args!(
                    "limit warning {limit:?} ends_in_s={}",
                    ends_in.as_secs()
                ));
                let _ = ui.send(UiCommand::LimitWarning { limit, ends_in });
            }
            LimitStep::Clear => {
                status("limit warning cleared");
                let _ = ui.send(UiCommand::LimitCleared);
            }
            LimitStep::Nothing => {}
        }
        None
    };
    let outcome = loop {
        let limit_due = tokio::time::Instant::from_std(limits.next_deadline());
        tokio::select! {
            _ = tokio::time::sleep_until(limit_due) => {
                if let Some(end) = show(limits.step(Instant::now())) {
                    break end;
                }
            }
            _ = path_tick.tick() => {
                path.check(&conn, &reports);
                // Counted, not logged one by one: a flooding viewer must not flood the log.
                if dropped_inputs > 0 {
                    tracing::warn!(dropped = dropped_inputs, "input queue full, events dropped");
                    dropped_inputs = 0;
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
                        // Use by the technician (input, whether control allows it or not; a
                        // changing screen is no use, or a clock or the indicator's own countdown
                        // would keep a session open): the idle time starts afresh, and a warning
                        // it made void goes. An end that falls due now is met by the deadline.
                        let now = Instant::now();
                        limits.used(now);
                        show(limits.step(now));
                        // Checked again right before injection; this only avoids queueing.
                        if gate.may_inject() && !injector.try_send(ev) {
                            dropped_inputs += 1;
                        }
                    }
                    Ok(ViewerMessage::FrameAck { seq }) => {
                        if pacing.acknowledged(seq).is_err() {
                            tracing::warn!(seq, "acknowledgement for a frame never sent");
                            break EndReason::ProtocolViolation;
                        }
                    }
                    Ok(ViewerMessage::End(_)) => break EndReason::EndedByViewer,
                    Err(e) => {
                        tracing::warn!(error = %e, "malformed control message from the viewer");
                        break EndReason::ProtocolViolation;
                    }
                }
            }
            ev = events.recv() => match ev {
                Some(UiEvent::ChangeGrant(g)) => {
                    status(format_args!("grant {g:?}"));
                    let _ = ctrl.try_send(AgentMessage::Grant(g));
                    report(&reports, ToRelay::ConsentReport { grant: g });
                }
                Some(UiEvent::GoOn) => {
                    limits.go_on(Instant::now());
                    status("session continued at the PC");
                    let _ = ui.send(UiCommand::LimitCleared);
                }
                Some(UiEvent::End) | None => break EndReason::EndedAtAgent,
                Some(_) => {}
            },
            _ = &mut screen_task => break EndReason::Failure,
            _ = conn.closed() => break EndReason::EndedByViewer,
        }
    };
    gate.set(Grant::Denied);
    pacing.stop();
    screen_task.abort();
    // Bounded: the end of the session never waits on an injection in progress.
    if !injector.stop(INJECTOR_STOP_WAIT).await {
        tracing::warn!("the input thread did not stop in time; the agent goes on without it");
    }
    let _ = ui.send(UiCommand::CloseAll);
    status(format_args!("session ended reason={outcome:?}"));
    if outcome == EndReason::EndedAtAgent {
        // The person's *Beenden* withdraws consent: on the record as such.
        report(
            &reports,
            ToRelay::ConsentReport {
                grant: Grant::Denied,
            },
        );
    }
    goodbye(&conn, &endpoint, ctrl, ctrl_task, outcome).await;
    report_end(&reports, &conn, outcome);
    close_reporter(reports, reporter).await;
    Ok(Outcome::Ended(outcome))
}

/// Queues a report for the session record; a relay that does not take it costs only the record.
fn report(reports: &mpsc::Sender<ToRelay>, m: ToRelay) {
    if reports.try_send(m).is_err() {
        tracing::info!("report not sent: the relay does not take it");
    }
}

/// Reports how the session ended and the end-to-end bytes each way (UDP, headers included).
fn report_end(reports: &mpsc::Sender<ToRelay>, conn: &Connection, reason: EndReason) {
    let stats = conn.stats();
    report(
        reports,
        ToRelay::EndReport {
            reason,
            bytes_sent: stats.udp_tx.bytes,
            bytes_received: stats.udp_rx.bytes,
        },
    );
}

/// The path the session takes, as last shown and reported.
#[derive(Default)]
struct PathWatch {
    last: Option<PathKind>,
}

impl PathWatch {
    /// Prints and reports the path when it changed.
    fn check(&mut self, conn: &Connection, reports: &mpsc::Sender<ToRelay>) {
        let Some((kind, rtt)) = current_path(conn) else {
            return;
        };
        if self.last == Some(kind) {
            return;
        }
        self.last = Some(kind);
        let rtt_ms = rtt.as_millis().min(u128::from(u32::MAX)) as u32;
        status(format_args!(
            "path {} rtt_ms={rtt_ms}",
            kind.label().replace(' ', "_")
        ));
        report(reports, ToRelay::PathReport { path: kind, rtt_ms });
    }
}

/// Sends reports for the session record to the relay on a task of its own: a relay that is
/// slow or gone costs only the reports, never the session (which runs without the relay once
/// it is direct).
fn spawn_reporter(mut relay: RelayClient) -> (mpsc::Sender<ToRelay>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<ToRelay>(8);
    let task = tokio::spawn(async move {
        let mut up = true;
        while let Some(m) = rx.recv().await {
            if up && relay.send(&m).await.is_err() {
                tracing::info!("the relay is gone; the session goes on without its record");
                up = false;
            }
        }
        if up {
            relay.close(b"session over").await;
        }
    });
    (tx, task)
}

/// Ends the reports and the relay connection, telling the relay at once; bounded in time.
async fn close_reporter(reports: mpsc::Sender<ToRelay>, mut reporter: tokio::task::JoinHandle<()>) {
    drop(reports);
    if tokio::time::timeout(Duration::from_secs(1), &mut reporter)
        .await
        .is_err()
    {
        reporter.abort();
    }
}

/// Tells the viewer why the session ends if it still reads, and closes; bounded in time.
async fn goodbye(
    conn: &Connection,
    endpoint: &SessionEndpoint,
    ctrl: mpsc::Sender<AgentMessage>,
    mut ctrl_task: tokio::task::JoinHandle<()>,
    reason: EndReason,
) {
    let _ = ctrl.try_send(AgentMessage::End(reason));
    drop(ctrl);
    if tokio::time::timeout(GOODBYE_TIMEOUT, &mut ctrl_task)
        .await
        .is_err()
    {
        ctrl_task.abort();
    } else {
        // Written; give the viewer a moment to close first, so it hears the reason.
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, conn.closed()).await;
    }
    conn.close(0u32.into(), b"session ended");
    endpoint.close(GOODBYE_TIMEOUT).await;
}
