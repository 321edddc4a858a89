//! The viewer's side of a running session as a state machine with no IO: from the end-to-end
//! connection to the end. The viewer's shell feeds it the agent's control messages, the
//! screen stream's updates and the technician's input; it answers what to send, what to
//! decode and show, and how the session ended.
//!
//! Decided here: screen content before the person's answer is a protocol violation; input
//! leaves only while control is granted (a courtesy: the agent enforces the grant itself);
//! an update is acknowledged only when the agent asked, after it was shown.

use crate::consent::Grant;
use crate::session::{AgentMessage, EndReason, InputEvent, ViewerMessage};
use crate::status::Status;
use std::time::Instant;

/// What happened, as the viewer's shell tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewerEvent {
    /// A control message from the agent, as received (not yet decoded).
    FromAgent(Vec<u8>),
    /// A screen update arrived on the screen stream (not yet decoded).
    ScreenUpdate(Vec<u8>),
    /// The shell decoded and showed an update.
    Shown {
        seq: u64,
        ack_requested: bool,
        bytes: usize,
        rects: usize,
    },
    /// The technician's input.
    Input(InputEvent),
    /// The technician ended the session.
    EndClicked,
    /// The technician closed the viewer.
    Closed,
    /// The agent closed the control or screen stream.
    AgentGone,
    /// The connection was lost.
    ConnectionLost,
    /// A stream broke or a frame exceeded its bound.
    StreamBroken,
}

/// How a session ended, for the front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewerEnd {
    /// The person at the PC declined (no screen content was sent).
    Denied,
    /// The session ended; the words the front end shows.
    Ended(String),
    /// The agent broke the protocol; the viewer fails with this message.
    Violation(&'static str),
}

/// What the shell does now, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewerAction {
    /// Send a control message to the agent.
    Send(ViewerMessage),
    /// Decode this update into the framebuffer and show it, then report [`ViewerEvent::Shown`].
    Decode(Vec<u8>),
    /// The grant changed: show it.
    ShowGrant(Grant),
    /// A status line for the front end ("view only", "control").
    Note(&'static str),
    /// A status line for scripts.
    Status(Status),
    /// Close the connection (after the last message was sent) and end with this.
    Finish(ViewerEnd),
}

/// One session of the viewer.
#[derive(Debug, Default)]
pub struct ViewerSession {
    grant: Option<Grant>,
    granted_at: Option<Instant>,
    first_frame_seen: bool,
    ended: bool,
}

impl ViewerSession {
    /// A session whose end-to-end connection just came up.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the person at the PC granted, `None` before the answer.
    pub fn grant(&self) -> Option<Grant> {
        self.grant
    }

    /// Whether the session is over.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Handles one event at `now`; the actions to carry out, in order.
    pub fn handle(&mut self, event: ViewerEvent, now: Instant) -> Vec<ViewerAction> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        match event {
            ViewerEvent::FromAgent(bytes) => self.agent_message(&bytes, now, &mut out),
            ViewerEvent::ScreenUpdate(bytes) => {
                if self.grant.is_none() {
                    self.finish(
                        ViewerEnd::Violation("protocol violation: screen content before consent"),
                        &mut out,
                    );
                } else {
                    out.push(ViewerAction::Decode(bytes));
                }
            }
            ViewerEvent::Shown {
                seq,
                ack_requested,
                bytes,
                rects,
            } => {
                // Only the updates the agent paces by: every message costs it an ACK packet.
                if ack_requested {
                    out.push(ViewerAction::Send(ViewerMessage::FrameAck { seq }));
                }
                if !self.first_frame_seen {
                    self.first_frame_seen = true;
                    let ms = self
                        .granted_at
                        .map_or(0.0, |t| now.duration_since(t).as_secs_f64() * 1000.0);
                    out.push(ViewerAction::Status(Status::FirstFrame {
                        ms,
                        bytes,
                        rects,
                    }));
                }
            }
            ViewerEvent::Input(ev) => {
                if self.grant == Some(Grant::Control) {
                    out.push(ViewerAction::Send(ViewerMessage::Input(ev)));
                }
            }
            ViewerEvent::EndClicked => {
                out.push(ViewerAction::Send(ViewerMessage::End(
                    EndReason::EndedByViewer,
                )));
                self.finish(ViewerEnd::Ended("ended by you".into()), &mut out);
            }
            ViewerEvent::Closed => self.finish(ViewerEnd::Ended("viewer closed".into()), &mut out),
            ViewerEvent::AgentGone => self.finish(
                ViewerEnd::Ended("the agent closed the session".into()),
                &mut out,
            ),
            ViewerEvent::ConnectionLost => self.finish(
                ViewerEnd::Ended("connection to the agent lost".into()),
                &mut out,
            ),
            ViewerEvent::StreamBroken => self.finish(
                ViewerEnd::Violation("protocol violation: a stream from the agent broke"),
                &mut out,
            ),
        }
        out
    }

    fn agent_message(&mut self, bytes: &[u8], now: Instant, out: &mut Vec<ViewerAction>) {
        match AgentMessage::decode(bytes) {
            Ok(AgentMessage::Grant(Grant::Denied))
            | Ok(AgentMessage::End(EndReason::ConsentDenied)) => {
                self.finish(ViewerEnd::Denied, out)
            }
            Ok(AgentMessage::Grant(g)) => {
                if self.grant.is_none() {
                    self.granted_at = Some(now);
                }
                self.grant = Some(g);
                out.push(ViewerAction::ShowGrant(g));
                out.push(ViewerAction::Note(if g == Grant::Control {
                    "control"
                } else {
                    "view only"
                }));
            }
            Ok(AgentMessage::End(r)) => {
                self.finish(ViewerEnd::Ended(format!("ended by the agent ({r:?})")), out)
            }
            Err(_) => self.finish(
                ViewerEnd::Violation("protocol violation: malformed control message"),
                out,
            ),
        }
    }

    fn finish(&mut self, end: ViewerEnd, out: &mut Vec<ViewerAction>) {
        self.ended = true;
        self.grant = None;
        out.push(ViewerAction::Finish(end));
    }
}
