//! The agent's side of a running session as a state machine with no IO: from the end-to-end
//! connection to the end. The agent's shell feeds it what happened (the person's clicks, the
//! viewer's control messages, the passing of time) and carries out what it returns (ask for
//! consent, set the gate, send, report, inject, show, end).
//!
//! Decided here, nowhere else: nothing is shared before the person's answer; an answer not
//! given in [`CONSENT_TIMEOUT`] is a refusal; input reaches the injector only while control
//! is granted; a viewer's protocol violation ends the session; idle and longest-duration
//! limits warn and end; *Beenden* withdraws consent on the record. The gate itself is set by
//! the agent's windows on the click (so a busy shell cannot delay *Beenden*); the machine only
//! ever closes it.

use crate::consent::Grant;
use crate::session::{AgentMessage, EndReason, InputEvent, ViewerMessage};
use crate::session_limits::{Limit, LimitStep, SessionLimits};
use crate::signaling::ToRelay;
use crate::status::Status;
use std::time::{Duration, Instant};

/// How long the person at the PC has to answer the consent dialog.
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(120);

/// What happened, as the agent's shell tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// The end-to-end connection and its control stream are up.
    Connected,
    /// The person at the PC answered the consent dialog (closing it is [`Grant::Denied`]).
    ConsentAnswered(Grant),
    /// The person changed the grant in the indicator.
    GrantChanged(Grant),
    /// The person chose to go on at a limit warning.
    GoOn,
    /// The person clicked *Beenden*, or closed the agent's window.
    EndClicked,
    /// A control message from the viewer, as received (not yet decoded).
    FromViewer(Vec<u8>),
    /// The viewer's acknowledgement named an update that was never written.
    AckBeyondWritten(u64),
    /// The viewer closed the control stream or the connection.
    ViewerGone,
    /// The control stream broke (a frame over its bound, a reset).
    ControlBroken,
    /// The screen stream stopped: the viewer no longer takes it.
    ScreenBroken,
}

/// What the shell does now, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentAction {
    /// Show the consent dialog.
    AskConsent,
    /// Close the consent gate the screen and input paths check. Only the machine's own
    /// decisions (an end, an unanswered dialog) close it here: a grant is set by the windows
    /// on the person's click, and the machine never sets one, or a change it hears late could
    /// widen what the person has narrowed since.
    CloseGate,
    /// Show the indicator (what runs, with *Beenden*).
    ShowIndicator(Grant),
    /// Start capture, injection and the screen stream.
    StartSharing,
    /// Send a control message to the viewer.
    Send(AgentMessage),
    /// Report to the relay for the session record.
    Report(ToRelay),
    /// Hand input to the injector (it checks the gate again right before injecting).
    Inject(InputEvent),
    /// The viewer applied updates up to this one: wake the capture.
    Acknowledge(u64),
    /// Warn in the indicator that the session ends soon.
    WarnLimit { limit: Limit, ends_in: Duration },
    /// Take the warning away.
    ClearWarning,
    /// Print a status line.
    Status(Status),
    /// Close every window of the session.
    CloseWindows,
    /// The session is over: stop sharing, report the end, close (bounded: the last message
    /// to the viewer gets a moment, never more).
    Finish(EndReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the connection's control stream.
    Connecting,
    /// The dialog is shown; unanswered at `deadline` counts as a refusal.
    AskingConsent { deadline: Instant },
    /// The screen is shared as `grant` allows.
    Sharing,
    /// Over; every further event is ignored.
    Ended,
}

/// One session of the agent.
#[derive(Debug)]
pub struct AgentSession {
    phase: Phase,
    grant: Grant,
    limits: SessionLimits,
    idle: Duration,
    max: Duration,
}

impl AgentSession {
    /// A session with these limits: ended after `idle` without use, and after `max` unless
    /// the person at the PC goes on.
    pub fn new(idle: Duration, max: Duration, now: Instant) -> Self {
        Self {
            phase: Phase::Connecting,
            grant: Grant::Denied,
            limits: SessionLimits::new(idle, max, now),
            idle,
            max,
        }
    }

    /// What the person at the PC has granted now ([`Grant::Denied`] before the answer).
    pub fn grant(&self) -> Grant {
        self.grant
    }

    /// Whether the session is over.
    pub fn ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// When [`AgentSession::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::AskingConsent { deadline } => Some(deadline),
            Phase::Sharing => Some(self.limits.next_deadline()),
            Phase::Connecting | Phase::Ended => None,
        }
    }

    /// Time passed: a consent dialog unanswered, a limit to warn of or to end by.
    pub fn tick(&mut self, now: Instant) -> Vec<AgentAction> {
        let mut out = Vec::new();
        match self.phase {
            Phase::AskingConsent { deadline } if now >= deadline => {
                self.answered(Grant::Denied, now, &mut out);
            }
            Phase::Sharing => self.limit_step(now, &mut out),
            _ => {}
        }
        out
    }

    /// Handles one event at `now`; the actions to carry out, in order.
    pub fn handle(&mut self, event: AgentEvent, now: Instant) -> Vec<AgentAction> {
        let mut out = Vec::new();
        match (self.phase, event) {
            (Phase::Ended, _) => {}
            (Phase::Connecting, AgentEvent::Connected) => {
                self.phase = Phase::AskingConsent {
                    deadline: now + CONSENT_TIMEOUT,
                };
                out.push(AgentAction::Status(Status::E2eConnected));
                out.push(AgentAction::AskConsent);
                out.push(AgentAction::Status(Status::ConsentAsked));
            }
            (Phase::AskingConsent { .. }, AgentEvent::ConsentAnswered(g)) => {
                self.answered(g, now, &mut out)
            }
            (Phase::Sharing, AgentEvent::GrantChanged(g)) => self.change(g, &mut out),
            (Phase::Sharing, AgentEvent::GoOn) => {
                self.limits.go_on(now);
                out.push(AgentAction::Status(Status::ContinuedAtPc));
                out.push(AgentAction::ClearWarning);
            }
            (Phase::Sharing, AgentEvent::FromViewer(bytes)) => {
                self.viewer_message(&bytes, now, &mut out)
            }
            (Phase::Sharing, AgentEvent::AckBeyondWritten(_)) => {
                self.end(EndReason::ProtocolViolation, &mut out)
            }
            // Closing the dialog or the agent before answering is declining.
            (Phase::AskingConsent { .. }, AgentEvent::EndClicked) => {
                self.answered(Grant::Denied, now, &mut out)
            }
            (Phase::AskingConsent { .. }, AgentEvent::FromViewer(bytes)) => {
                self.before_answer(&bytes, &mut out)
            }
            (_, AgentEvent::EndClicked) => self.end(EndReason::EndedAtAgent, &mut out),
            (_, AgentEvent::ViewerGone) => self.end(EndReason::EndedByViewer, &mut out),
            (_, AgentEvent::ControlBroken) => self.end(EndReason::ProtocolViolation, &mut out),
            (Phase::Sharing, AgentEvent::ScreenBroken) => self.end(EndReason::Failure, &mut out),
            // Out of order (a grant change without a session, a second answer): no effect.
            _ => {}
        }
        out
    }

    fn answered(&mut self, g: Grant, now: Instant, out: &mut Vec<AgentAction>) {
        self.grant = g;
        out.push(AgentAction::Status(Status::Consent(g)));
        out.push(AgentAction::Send(AgentMessage::Grant(g)));
        out.push(AgentAction::Report(ToRelay::ConsentReport { grant: g }));
        if g == Grant::Denied {
            self.end(EndReason::ConsentDenied, out);
            return;
        }
        self.phase = Phase::Sharing;
        // The limits count from the grant: the dialog's time is not session time.
        self.limits = SessionLimits::new(self.idle, self.max, now);
        out.push(AgentAction::ShowIndicator(g));
        out.push(AgentAction::StartSharing);
    }

    fn change(&mut self, g: Grant, out: &mut Vec<AgentAction>) {
        if g == Grant::Denied {
            // Withdrawing everything is ending the session, on the record as the person's.
            self.end(EndReason::EndedAtAgent, out);
            return;
        }
        self.grant = g;
        out.push(AgentAction::Status(Status::GrantChanged(g)));
        out.push(AgentAction::Send(AgentMessage::Grant(g)));
        out.push(AgentAction::Report(ToRelay::ConsentReport { grant: g }));
    }

    fn viewer_message(&mut self, bytes: &[u8], now: Instant, out: &mut Vec<AgentAction>) {
        match ViewerMessage::decode(bytes) {
            Ok(ViewerMessage::Input(ev)) => {
                // Any input is use, allowed or not (a changing screen is not: a clock or the
                // indicator's own countdown would keep a forgotten session open).
                self.limits.used(now);
                self.limit_step(now, out);
                if self.grant.allows_control() {
                    out.push(AgentAction::Inject(ev));
                }
            }
            Ok(ViewerMessage::FrameAck { seq }) => out.push(AgentAction::Acknowledge(seq)),
            Ok(ViewerMessage::End(_)) => self.end(EndReason::EndedByViewer, out),
            Err(_) => self.end(EndReason::ProtocolViolation, out),
        }
    }

    /// A viewer message while the dialog is open. Input is dropped, never kept for after the
    /// answer: the person consents to what happens from then on, not to what was typed
    /// before. Nothing was sent yet, so nothing can be acknowledged.
    fn before_answer(&mut self, bytes: &[u8], out: &mut Vec<AgentAction>) {
        match ViewerMessage::decode(bytes) {
            Ok(ViewerMessage::Input(_)) => {}
            Ok(ViewerMessage::End(_)) => self.end(EndReason::EndedByViewer, out),
            Ok(ViewerMessage::FrameAck { .. }) | Err(_) => {
                self.end(EndReason::ProtocolViolation, out)
            }
        }
    }

    fn limit_step(&mut self, now: Instant, out: &mut Vec<AgentAction>) {
        match self.limits.step(now) {
            LimitStep::End(Limit::Idle) => self.end(EndReason::IdleTimeout, out),
            LimitStep::End(Limit::Max) => self.end(EndReason::MaxDuration, out),
            LimitStep::Warn { limit, ends_in } => {
                out.push(AgentAction::Status(Status::LimitWarning {
                    limit,
                    ends_in_s: ends_in.as_secs(),
                }));
                out.push(AgentAction::WarnLimit { limit, ends_in });
            }
            LimitStep::Clear => {
                out.push(AgentAction::Status(Status::LimitCleared));
                out.push(AgentAction::ClearWarning);
            }
            LimitStep::Nothing => {}
        }
    }

    fn end(&mut self, reason: EndReason, out: &mut Vec<AgentAction>) {
        self.phase = Phase::Ended;
        self.grant = Grant::Denied;
        out.push(AgentAction::CloseGate);
        out.push(AgentAction::CloseWindows);
        out.push(AgentAction::Status(Status::SessionEnded(reason)));
        if reason == EndReason::EndedAtAgent {
            // The person's *Beenden* withdraws consent: on the record as such.
            out.push(AgentAction::Report(ToRelay::ConsentReport {
                grant: Grant::Denied,
            }));
        }
        // The viewer hears why, if it still reads (a denial is also its last word).
        out.push(AgentAction::Send(AgentMessage::End(reason)));
        out.push(AgentAction::Finish(reason));
    }
}
