//! The agent's side of a support session: register under the ticket, show the code, pair with
//! the viewer over the relay, ask for consent, then share the screen and take input as granted.
//!
//! The person at the PC always wins: the windows set the consent gate themselves, the screen
//! is written by a task of its own and control messages by another, so neither a slow nor a
//! hostile viewer can hold up *Beenden* or *Nur ansehen*; every wait on the network is bounded.

use crate::code_guard::{Admit, AfterWrong, CodeGuard, MAX_WRONG_CODES};
use crate::consent_gate::ConsentGate;
use crate::screen_stream::{CaptureThread, ScreenPacing};
use crate::texts::TicketProblem;
use crate::ui::{UiCommand, UiEvent};
use anyhow::{anyhow, bail, Context, Result};
use protocol::agent_session::{AgentAction, AgentEvent, AgentSession};
use protocol::consent::Grant;
use protocol::ids::{SessionCode, TicketNumber};
use protocol::pairing::{Pairing, PairingContext, Role};
use protocol::peer::PeerEndpoint;
use protocol::session::{AgentMessage, EndReason, MAX_CONTROL_LEN};
use protocol::signaling::{FromRelay, Refusal, ToRelay};
use rand_core::OsRng;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use transport::config::RelayTrust;
use transport::framed::{send_frame, FramedRecv};
use transport::paths::{Connection, PathWatch, SendStream, SessionEndpoint};
use transport::relay_client::{drive_pairing, PairingEnd, RelayClient, SignalError};
use transport::signal_tcp::{connect_signaling, SignalTransport};
use transport::TransportError;

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
pub(crate) struct AgentSettings {
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
pub(crate) enum Outcome {
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
pub(crate) async fn run(
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
        let (endpoint, _) = relay
            .session_endpoint(pairing, &settings.relay, &settings.trust, true, None)
            .await?;
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

/// What runs while the screen is shared: the injector, the pacing, the screen writer.
struct Sharing {
    injector: crate::input::Injector,
    pacing: ScreenPacing,
    screen_task: tokio::task::JoinHandle<()>,
}

/// The IO around one [`AgentSession`]: the windows, the viewer's streams, the relay's record.
struct SessionShell<'a> {
    settings: &'a AgentSettings,
    staff: String,
    ui: std_mpsc::Sender<UiCommand>,
    gate: ConsentGate,
    ctrl: mpsc::Sender<AgentMessage>,
    reports: mpsc::Sender<ToRelay>,
    conn: &'a Connection,
    screen: Option<CaptureThread>,
    sharing: Option<Sharing>,
    /// Inputs the full injector queue did not take since the last log line.
    dropped_inputs: u64,
}

impl SessionShell<'_> {
    /// Carries out one action; an event it produces in turn (an acknowledgement the pacing
    /// refused) goes back to the machine.
    async fn carry_out(&mut self, action: AgentAction) -> Result<Option<AgentEvent>> {
        match action {
            AgentAction::AskConsent => {
                let _ = self.ui.send(UiCommand::AskConsent {
                    staff: self.staff.clone(),
                    ticket: self.settings.ticket(),
                    gate: self.gate.clone(),
                });
            }
            AgentAction::CloseGate => self.gate.set(Grant::Denied),
            AgentAction::ShowIndicator(grant) => {
                let _ = self.ui.send(UiCommand::Indicator {
                    staff: self.staff.clone(),
                    grant,
                    gate: self.gate.clone(),
                });
            }
            AgentAction::StartSharing => self.start_sharing().await?,
            AgentAction::Send(m) => {
                let _ = self.ctrl.try_send(m);
            }
            AgentAction::Report(r) => report(&self.reports, r),
            AgentAction::Inject(ev) => {
                let injector = self.sharing.as_ref().map(|s| &s.injector);
                // Checked again right before injection; this only avoids queueing.
                if self.gate.may_inject() && injector.is_some_and(|i| !i.try_send(ev)) {
                    self.dropped_inputs += 1;
                }
            }
            AgentAction::Acknowledge(seq) => {
                let pacing = self.sharing.as_ref().map(|s| &s.pacing);
                if pacing.is_some_and(|p| p.acknowledged(seq).is_err()) {
                    tracing::warn!(seq, "acknowledgement for a frame never sent");
                    return Ok(Some(AgentEvent::AckBeyondWritten(seq)));
                }
            }
            AgentAction::WarnLimit { limit, ends_in } => {
                let _ = self.ui.send(UiCommand::LimitWarning { limit, ends_in });
            }
            AgentAction::ClearWarning => {
                let _ = self.ui.send(UiCommand::LimitCleared);
            }
            AgentAction::Status(s) => status(s),
            AgentAction::CloseWindows => {
                let _ = self.ui.send(UiCommand::CloseAll);
            }
            // The caller ends the loop on it.
            AgentAction::Finish(_) => {}
        }
        Ok(None)
    }

    /// Starts injection, capture and the screen stream, all behind the gate.
    async fn start_sharing(&mut self) -> Result<()> {
        let Some(screen) = self.screen.take() else {
            return Ok(());
        };
        let injector = crate::input::spawn_injector(self.gate.clone())?;
        let pacing = ScreenPacing::default();
        let updates = screen.stream(self.gate.clone(), pacing.clone());
        let screen_send = tokio::time::timeout(E2E_TIMEOUT, self.conn.open_uni())
            .await
            .map_err(|_| anyhow!("the viewer gave no room for the screen stream"))?
            .map_err(TransportError::from)?;
        let screen_task =
            spawn_screen_writer(screen_send, updates, self.gate.clone(), pacing.clone());
        self.sharing = Some(Sharing {
            injector,
            pacing,
            screen_task,
        });
        Ok(())
    }

    /// Stops what sharing runs; bounded: the end never waits on an injection in progress.
    async fn stop_sharing(&mut self) {
        let Some(s) = self.sharing.take() else { return };
        s.pacing.stop();
        s.screen_task.abort();
        if !s.injector.stop(INJECTOR_STOP_WAIT).await {
            tracing::warn!("the input thread did not stop in time; the agent goes on without it");
        }
    }
}

/// The screen writer's end, or never while nothing is shared.
async fn screen_writer_end(sharing: &mut Option<Sharing>) {
    match sharing {
        Some(s) => {
            let _ = (&mut s.screen_task).await;
        }
        None => std::future::pending().await,
    }
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
    let (reports, reporter) = spawn_reporter(relay);
    let mut path = PathWatch::default();
    watch_path(&mut path, &conn, &reports);
    let (ctrl_send, ctrl_recv) = tokio::time::timeout(E2E_TIMEOUT, conn.open_bi())
        .await
        .map_err(|_| anyhow!("the viewer gave no room for the control stream"))?
        .map_err(TransportError::from)?;
    let mut ctrl_recv = FramedRecv::new(ctrl_recv, MAX_CONTROL_LEN);
    let (ctrl, ctrl_task) = spawn_control_writer(ctrl_send);
    let mut machine = AgentSession::new(settings.idle_limit, settings.max_duration, Instant::now());
    let mut shell = SessionShell {
        settings,
        staff,
        ui,
        // Nothing is captured or injected before the answer; the dialog sets the gate itself.
        gate: ConsentGate::default(),
        ctrl,
        reports,
        conn: &conn,
        screen: Some(screen),
        sharing: None,
        dropped_inputs: 0,
    };
    let mut path_tick = tokio::time::interval(PATH_CHECK);
    let mut actions: std::collections::VecDeque<AgentAction> =
        machine.handle(AgentEvent::Connected, Instant::now()).into();
    let outcome = 'session: loop {
        while let Some(action) = actions.pop_front() {
            if let AgentAction::Finish(reason) = action {
                break 'session reason;
            }
            if let Some(event) = shell.carry_out(action).await? {
                actions.extend(machine.handle(event, Instant::now()));
            }
        }
        let deadline = machine.next_deadline();
        let event = tokio::select! {
            _ = sleep_until_some(deadline) => {
                actions.extend(machine.tick(Instant::now()));
                continue;
            }
            _ = path_tick.tick() => {
                watch_path(&mut path, &conn, &shell.reports);
                // Counted, not logged one by one: a flooding viewer must not flood the log.
                if shell.dropped_inputs > 0 {
                    tracing::warn!(dropped = shell.dropped_inputs, "input queue full, events dropped");
                    shell.dropped_inputs = 0;
                }
                continue;
            }
            msg = ctrl_recv.next() => match msg {
                Ok(Some(m)) => AgentEvent::FromViewer(m),
                Ok(None) => {
                    tracing::info!("the viewer finished the control stream");
                    AgentEvent::ViewerGone
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control stream failed");
                    AgentEvent::ControlBroken
                }
            },
            ev = events.recv() => match ev {
                Some(UiEvent::Consent(g)) => AgentEvent::ConsentAnswered(g),
                Some(UiEvent::ChangeGrant(g)) => AgentEvent::GrantChanged(g),
                Some(UiEvent::GoOn) => AgentEvent::GoOn,
                Some(UiEvent::End) | None => AgentEvent::EndClicked,
                Some(_) => continue,
            },
            _ = screen_writer_end(&mut shell.sharing) => AgentEvent::ScreenBroken,
            closed = conn.closed() => {
                tracing::info!(reason = %closed, "the connection to the viewer closed");
                AgentEvent::ViewerGone
            }
        };
        actions.extend(machine.handle(event, Instant::now()));
    };
    shell.stop_sharing().await;
    let SessionShell { ctrl, reports, .. } = shell;
    goodbye(&conn, &endpoint, ctrl, ctrl_task).await;
    report_end(&reports, &conn, outcome);
    close_reporter(reports, reporter).await;
    Ok(match outcome {
        EndReason::ConsentDenied => Outcome::Denied,
        reason => Outcome::Ended(reason),
    })
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
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

/// Prints and reports the session's path when it changed.
fn watch_path(watch: &mut PathWatch, conn: &Connection, reports: &mpsc::Sender<ToRelay>) {
    let Some(now) = watch.look(conn).filter(|p| p.changed) else {
        return;
    };
    status(protocol::status::Status::Path {
        kind: now.kind,
        rtt_ms: now.rtt_ms,
        after_ms: None,
        relay_rtt_ms: None,
    });
    report(reports, now.report());
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

/// Lets the last control message (the end and its reason) reach the viewer if it still
/// reads, and closes; bounded in time.
async fn goodbye(
    conn: &Connection,
    endpoint: &SessionEndpoint,
    ctrl: mpsc::Sender<AgentMessage>,
    mut ctrl_task: tokio::task::JoinHandle<()>,
) {
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
