//! Agent and viewer session machines driven against each other in memory, with a virtual
//! clock, the way quinn's tests drive two endpoints: [`Pair`] carries every `Send` of one side
//! to the other as encoded bytes, runs a small real screen through the real codec and pacing,
//! and records what each side did. Sessions are tested here in milliseconds; the Xvfb tests
//! keep what needs a real screen, window or network.

use crate::agent_session::{AgentAction, AgentEvent, AgentSession, CONSENT_TIMEOUT};
use crate::consent::Grant;
use crate::screen::{
    FrameChanges, FrameView, Framebuffer, ScreenDecoder, ScreenEncoder, UpdatePacing,
};
use crate::session::{EndReason, InputEvent, MouseButton, ViewerMessage};
use crate::session_limits::Limit;
use crate::signaling::ToRelay;
use crate::status::Status;
use crate::viewer_session::{ViewerAction, ViewerEnd, ViewerEvent, ViewerSession};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const WIDTH: usize = 64;
const HEIGHT: usize = 48;

/// The PC's side of a test session: the machine, and what its shell would have done.
struct AgentSide {
    session: AgentSession,
    gate: Grant,
    sharing: bool,
    injected: Vec<InputEvent>,
    reports: Vec<ToRelay>,
    statuses: Vec<Status>,
    asked: bool,
    warning: Option<Limit>,
    finished: Option<EndReason>,
    encoder: ScreenEncoder,
    pacing: UpdatePacing,
    screen: Vec<u8>,
    /// Updates written but not yet read by the viewer (the screen stream).
    in_flight: VecDeque<Vec<u8>>,
}

/// The technician's side.
struct ViewerSide {
    session: ViewerSession,
    decoder: ScreenDecoder,
    framebuffer: Framebuffer,
    shown: Vec<Grant>,
    frames: u64,
    statuses: Vec<Status>,
    finished: Option<ViewerEnd>,
    /// A stalled viewer reads nothing (the test of a viewer that stops reading).
    stalled: bool,
}

/// Two machines wired together.
struct Pair {
    now: Instant,
    agent: AgentSide,
    viewer: ViewerSide,
    /// Control messages on their way, each way.
    to_viewer: VecDeque<Vec<u8>>,
    to_agent: VecDeque<Vec<u8>>,
    /// Every control message the agent received, in order.
    agent_received: Vec<ViewerMessage>,
}

impl Pair {
    /// A pair whose end-to-end connection just came up, with the agent's limits.
    fn connected(idle: Duration, max: Duration) -> Self {
        let now = Instant::now();
        let mut pair = Pair {
            now,
            agent: AgentSide {
                session: AgentSession::new(idle, max, now),
                gate: Grant::Denied,
                sharing: false,
                injected: Vec::new(),
                reports: Vec::new(),
                statuses: Vec::new(),
                asked: false,
                warning: None,
                finished: None,
                encoder: ScreenEncoder::new(),
                pacing: UpdatePacing::default(),
                screen: (0..WIDTH * HEIGHT * 4).map(|i| (i * 7) as u8).collect(),
                in_flight: VecDeque::new(),
            },
            viewer: ViewerSide {
                session: ViewerSession::new(),
                decoder: ScreenDecoder::new(),
                framebuffer: Framebuffer::default(),
                shown: Vec::new(),
                frames: 0,
                statuses: Vec::new(),
                finished: None,
                stalled: false,
            },
            to_viewer: VecDeque::new(),
            to_agent: VecDeque::new(),
            agent_received: Vec::new(),
        };
        pair.agent_event(AgentEvent::Connected);
        pair
    }

    fn default_limits() -> Self {
        Self::connected(Duration::from_secs(1800), Duration::from_secs(4 * 3600))
    }

    fn agent_event(&mut self, e: AgentEvent) {
        let actions = self.agent.session.handle(e, self.now);
        self.agent_actions(actions);
    }

    fn agent_actions(&mut self, actions: Vec<AgentAction>) {
        for a in actions {
            match a {
                AgentAction::AskConsent => self.agent.asked = true,
                AgentAction::CloseGate => self.agent.gate = Grant::Denied,
                AgentAction::ShowIndicator(_) => {}
                AgentAction::StartSharing => self.agent.sharing = true,
                AgentAction::Send(m) => self.to_viewer.push_back(m.encode()),
                AgentAction::Report(r) => self.agent.reports.push(r),
                // What the machine hands the injector (which checks the gate once more; that
                // second check is not modelled, so these tests see the machine's decision).
                AgentAction::Inject(ev) => self.agent.injected.push(ev),
                AgentAction::Acknowledge(seq) => {
                    if self.agent.pacing.acknowledged(seq).is_err() {
                        let more = self
                            .agent
                            .session
                            .handle(AgentEvent::AckBeyondWritten(seq), self.now);
                        self.agent_actions(more);
                    }
                }
                AgentAction::WarnLimit { limit, .. } => self.agent.warning = Some(limit),
                AgentAction::ClearWarning => self.agent.warning = None,
                AgentAction::Status(s) => self.agent.statuses.push(s),
                AgentAction::CloseWindows => self.agent.asked = false,
                AgentAction::Finish(r) => {
                    self.agent.sharing = false;
                    self.agent.finished = Some(r);
                }
            }
        }
    }

    fn viewer_event(&mut self, e: ViewerEvent) {
        for a in self.viewer.session.handle(e, self.now) {
            match a {
                ViewerAction::Send(m) => self.to_agent.push_back(m.encode()),
                ViewerAction::Decode(bytes) => {
                    let applied = self
                        .viewer
                        .decoder
                        .apply(&bytes, &mut self.viewer.framebuffer)
                        .expect("the agent's updates decode");
                    self.viewer.frames += 1;
                    self.viewer_event(ViewerEvent::Shown {
                        seq: applied.seq,
                        ack_requested: applied.ack_requested,
                        bytes: bytes.len(),
                        rects: applied.rects,
                    });
                }
                ViewerAction::ShowGrant(g) => self.viewer.shown.push(g),
                ViewerAction::Note(_) => {}
                ViewerAction::Status(s) => self.viewer.statuses.push(s),
                ViewerAction::Finish(end) => self.viewer.finished = Some(end),
            }
        }
    }

    /// The agent's screen changes in a corner (a clock ticking).
    fn change_screen(&mut self) {
        let first = self.agent.screen[0];
        self.agent.screen[..16].fill(first.wrapping_add(1));
    }

    /// One capture turn: encode what changed if the pacing has room and viewing is granted;
    /// the update goes onto the screen stream only while the gate allows it.
    fn capture(&mut self) {
        if !self.agent.sharing || !self.agent.pacing.has_room() {
            return;
        }
        let frame = FrameView {
            width: WIDTH,
            height: HEIGHT,
            stride: WIDTH * 4,
            bgrx: &self.agent.screen,
        };
        let changes = FrameChanges {
            damage: None,
            moves: &[],
            now: Some(self.now),
        };
        if let Some(mut update) = self.agent.encoder.encode(&frame, &changes, None, None) {
            let seq = self.agent.encoder.last_seq();
            self.agent.pacing.encoded(seq, &mut update);
            if self.agent.gate.allows_view() {
                self.agent.pacing.written(seq);
                self.agent.in_flight.push_back(update);
            } else {
                self.agent.pacing.dropped(seq);
            }
        }
    }

    /// Delivers everything in flight, both ways, until nothing moves; then advances the clock
    /// by `dt` and lets both sides' timers fire.
    fn run(&mut self, dt: Duration) {
        loop {
            let mut moved = false;
            self.capture();
            if !self.viewer.stalled {
                if let Some(m) = self.to_viewer.pop_front() {
                    self.viewer_event(ViewerEvent::FromAgent(m));
                    moved = true;
                }
                if let Some(u) = self.agent.in_flight.pop_front() {
                    self.viewer_event(ViewerEvent::ScreenUpdate(u));
                    moved = true;
                }
            }
            if let Some(m) = self.to_agent.pop_front() {
                if let Ok(decoded) = ViewerMessage::decode(&m) {
                    self.agent_received.push(decoded);
                }
                self.agent_event(AgentEvent::FromViewer(m));
                moved = true;
            }
            if !moved {
                break;
            }
        }
        self.now += dt;
        let due = self.agent.session.tick(self.now);
        self.agent_actions(due);
    }

    /// The person at the PC answers the dialog.
    fn answer(&mut self, g: Grant) {
        assert!(self.agent.asked, "no dialog to answer");
        // The dialog sets the gate on the click, before the session hears of it.
        self.agent.gate = g;
        self.agent_event(AgentEvent::ConsentAnswered(g));
        self.run(Duration::from_millis(1));
    }

    /// The person clicks `g` in the indicator: the gate at once, then the event.
    fn click(&mut self, g: Grant) {
        self.agent.gate = g;
        self.agent_event(AgentEvent::GrantChanged(g));
    }

    /// The viewer shows exactly the agent's screen.
    fn pixels_equal(&self) -> bool {
        let fb = self.viewer.framebuffer.screen();
        fb.len() == WIDTH * HEIGHT
            && fb.iter().zip(self.agent.screen.chunks(4)).all(|(p, bgrx)| {
                *p == u32::from_le_bytes([bgrx[0], bgrx[1], bgrx[2], 0]) & 0x00ff_ffff
            })
    }
}

fn click() -> InputEvent {
    InputEvent::Button {
        button: MouseButton::Left,
        pressed: true,
    }
}

#[test]
fn nothing_leaves_the_pc_before_the_answer_and_input_before_it_is_dropped() {
    let mut p = Pair::default_limits();
    p.run(Duration::from_millis(10));
    assert!(p.agent.asked && !p.agent.sharing);
    // A misbehaving viewer types before the answer: not injected, not kept for later.
    p.to_agent
        .push_back(ViewerMessage::Input(InputEvent::Text("vorher".into())).encode());
    p.run(Duration::from_millis(10));
    assert_eq!(p.viewer.frames, 0);
    p.answer(Grant::Control);
    p.run(Duration::from_millis(10));
    assert!(p.agent.injected.is_empty(), "{:?}", p.agent.injected);
    assert!(p.viewer.frames > 0 && p.pixels_equal());
    assert_eq!(p.viewer.shown, vec![Grant::Control]);
    assert_eq!(
        p.agent.reports,
        vec![ToRelay::ConsentReport {
            grant: Grant::Control
        }]
    );
}

#[test]
fn view_only_blocks_input_and_control_lets_it_through() {
    let mut p = Pair::default_limits();
    p.answer(Grant::View);
    p.viewer_event(ViewerEvent::Input(click()));
    // The viewer does not even send it; a misbehaving one that does is not injected either.
    assert!(p.to_agent.is_empty());
    p.to_agent.push_back(ViewerMessage::Input(click()).encode());
    p.run(Duration::from_millis(10));
    assert!(p.agent.injected.is_empty());
    p.click(Grant::Control);
    p.run(Duration::from_millis(10));
    assert_eq!(p.viewer.shown, vec![Grant::View, Grant::Control]);
    p.viewer_event(ViewerEvent::Input(click()));
    p.run(Duration::from_millis(10));
    assert_eq!(p.agent.injected, vec![click()]);
    // Back to view only: the next input stops at the agent even if the viewer missed it.
    p.click(Grant::View);
    p.to_agent.push_back(ViewerMessage::Input(click()).encode());
    p.run(Duration::from_millis(10));
    assert_eq!(p.agent.injected.len(), 1);
    assert!(p
        .agent
        .statuses
        .contains(&Status::GrantChanged(Grant::View)));
}

#[test]
fn a_refusal_or_no_answer_ends_without_a_pixel() {
    let mut p = Pair::default_limits();
    p.answer(Grant::Denied);
    assert_eq!(p.agent.finished, Some(EndReason::ConsentDenied));
    assert_eq!(p.viewer.finished, Some(ViewerEnd::Denied));
    assert_eq!(p.viewer.frames, 0);

    let mut p = Pair::default_limits();
    p.run(CONSENT_TIMEOUT - Duration::from_millis(1));
    assert_eq!(p.agent.finished, None);
    p.run(Duration::from_millis(1));
    p.run(Duration::from_millis(1));
    assert_eq!(p.agent.finished, Some(EndReason::ConsentDenied));
    assert_eq!(p.viewer.finished, Some(ViewerEnd::Denied));
    assert_eq!(p.viewer.frames, 0);
}

#[test]
fn beenden_ends_at_once_withdraws_consent_on_the_record_and_tells_the_viewer() {
    let mut p = Pair::default_limits();
    p.answer(Grant::Control);
    p.agent_event(AgentEvent::EndClicked);
    // Within the same step: the gate is closed before anything else runs.
    assert_eq!(p.agent.gate, Grant::Denied);
    assert_eq!(p.agent.finished, Some(EndReason::EndedAtAgent));
    assert_eq!(
        p.agent.reports.last(),
        Some(&ToRelay::ConsentReport {
            grant: Grant::Denied
        })
    );
    // Input arriving after the end is never injected.
    p.to_agent.push_back(ViewerMessage::Input(click()).encode());
    p.run(Duration::from_millis(1));
    assert!(p.agent.injected.is_empty());
    assert_eq!(
        p.viewer.finished,
        Some(ViewerEnd::Ended("ended by the agent (EndedAtAgent)".into()))
    );
}

#[test]
fn the_technician_ends_and_the_agent_records_it_as_theirs() {
    let mut p = Pair::default_limits();
    p.answer(Grant::View);
    p.viewer_event(ViewerEvent::EndClicked);
    p.run(Duration::from_millis(1));
    assert_eq!(
        p.viewer.finished,
        Some(ViewerEnd::Ended("ended by you".into()))
    );
    assert_eq!(p.agent.finished, Some(EndReason::EndedByViewer));
    assert_eq!(p.agent.gate, Grant::Denied);
}

#[test]
fn a_stalled_viewer_holds_back_the_capture_but_not_the_end() {
    let mut p = Pair::default_limits();
    p.answer(Grant::Control);
    p.viewer.stalled = true;
    for _ in 0..200 {
        p.change_screen();
        p.run(Duration::from_millis(16));
    }
    // The pacing stops encoding once its asked-for updates are unanswered: what waits for
    // the viewer stops growing (at the pacing's bound of small unasked updates).
    let queued = p.agent.in_flight.len();
    for _ in 0..200 {
        p.change_screen();
        p.run(Duration::from_millis(16));
    }
    assert_eq!(
        p.agent.in_flight.len(),
        queued,
        "the queue grew for a viewer that reads nothing"
    );
    assert!(
        queued < 100,
        "{queued} updates queued for a viewer that reads nothing"
    );
    p.agent_event(AgentEvent::EndClicked);
    assert_eq!(p.agent.finished, Some(EndReason::EndedAtAgent));
    // Reading again, the viewer catches up and hears the end.
    p.viewer.stalled = false;
    p.run(Duration::from_millis(1));
    assert!(matches!(p.viewer.finished, Some(ViewerEnd::Ended(_))));
}

#[test]
fn protocol_violations_end_the_session_on_either_side() {
    // An acknowledgement of an update never sent.
    let mut p = Pair::default_limits();
    p.answer(Grant::View);
    p.to_agent
        .push_back(ViewerMessage::FrameAck { seq: 1_000_000 }.encode());
    p.run(Duration::from_millis(1));
    assert_eq!(p.agent.finished, Some(EndReason::ProtocolViolation));
    assert_eq!(p.agent.gate, Grant::Denied);

    // A malformed control message.
    let mut p = Pair::default_limits();
    p.answer(Grant::Control);
    p.to_agent.push_back(vec![0x01, 0xff, 0x00]);
    p.run(Duration::from_millis(1));
    assert_eq!(p.agent.finished, Some(EndReason::ProtocolViolation));

    // An acknowledgement before the answer (nothing was sent yet).
    let mut p = Pair::default_limits();
    p.to_agent
        .push_back(ViewerMessage::FrameAck { seq: 0 }.encode());
    p.run(Duration::from_millis(1));
    assert_eq!(p.agent.finished, Some(EndReason::ProtocolViolation));
    assert_eq!(p.viewer.frames, 0);

    // Screen content before the answer, at the viewer.
    let mut v = ViewerSession::new();
    let acts = v.handle(ViewerEvent::ScreenUpdate(vec![0; 8]), Instant::now());
    assert!(matches!(
        acts.as_slice(),
        [ViewerAction::Finish(ViewerEnd::Violation(_))]
    ));
}

#[test]
fn an_idle_session_warns_then_ends_and_use_or_going_on_keeps_it() {
    let idle = Duration::from_secs(600);
    let mut p = Pair::connected(idle, Duration::from_secs(4 * 3600));
    p.answer(Grant::Control);
    // Warned a minute before the end; input takes the warning away.
    p.run(idle - Duration::from_secs(60));
    p.run(Duration::from_millis(1));
    assert_eq!(p.agent.warning, Some(Limit::Idle));
    p.viewer_event(ViewerEvent::Input(click()));
    p.run(Duration::from_millis(1));
    assert_eq!(p.agent.warning, None);
    // No more use: it ends at the idle limit after the last input.
    p.run(idle);
    p.run(Duration::from_millis(1));
    assert_eq!(p.agent.finished, Some(EndReason::IdleTimeout));
    assert_eq!(
        p.viewer.finished,
        Some(ViewerEnd::Ended("ended by the agent (IdleTimeout)".into()))
    );

    // The longest duration: going on at the warning grants another one.
    let max = Duration::from_secs(3600);
    let mut p = Pair::connected(Duration::from_secs(7200), max);
    p.answer(Grant::View);
    p.run(max - Duration::from_secs(30));
    p.run(Duration::from_millis(1));
    assert_eq!(p.agent.warning, Some(Limit::Max));
    p.agent_event(AgentEvent::GoOn);
    p.run(Duration::from_secs(60));
    p.run(Duration::from_millis(1));
    assert_eq!(p.agent.finished, None);
    assert!(p.agent.statuses.contains(&Status::ContinuedAtPc));
}

#[test]
fn revocation_takes_effect_in_the_step_that_carries_it() {
    // Control withdrawn: the input that follows in the same delivery is not injected. The
    // shell sets the gate on the click as well, so 100 ms is the windows' bound, not ours.
    let mut p = Pair::default_limits();
    p.answer(Grant::Control);
    p.click(Grant::View);
    assert_eq!(p.agent.gate, Grant::View);
    p.to_agent.push_back(ViewerMessage::Input(click()).encode());
    p.run(Duration::from_millis(1));
    assert!(p.agent.injected.is_empty());
    // View withdrawn by ending: nothing more is captured.
    let frames = p.viewer.frames;
    p.agent_event(AgentEvent::EndClicked);
    p.change_screen();
    p.run(Duration::from_millis(16));
    assert_eq!(p.viewer.frames, frames);
}

#[test]
fn a_grant_change_heard_late_never_widens_what_the_person_set_since() {
    // The person clicks *Steuern erlauben* and at once *Nur ansehen*: the indicator set the
    // gate to View on the second click; the session hears both clicks only now.
    let mut p = Pair::default_limits();
    p.answer(Grant::View);
    p.agent.gate = Grant::View;
    p.agent_event(AgentEvent::GrantChanged(Grant::Control));
    assert_eq!(p.agent.gate, Grant::View, "a stale grant reopened control");
    p.agent_event(AgentEvent::GrantChanged(Grant::View));
    assert_eq!(p.agent.gate, Grant::View);
}

#[test]
fn the_technician_can_end_before_the_answer_and_the_dialog_goes() {
    let mut p = Pair::default_limits();
    p.run(Duration::from_millis(1));
    assert!(p.agent.asked);
    p.viewer_event(ViewerEvent::EndClicked);
    p.run(Duration::from_millis(1));
    assert_eq!(p.agent.finished, Some(EndReason::EndedByViewer));
    assert!(!p.agent.asked, "the consent dialog stayed open");
    assert_eq!(p.viewer.frames, 0);
}
