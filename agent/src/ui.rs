//! The agent's windows: small minifb windows with text drawn by fontdue, the same code on
//! Windows and Linux, and real buttons a test can click under Xvfb.
//!
//! minifb windows are not `Send`, so all of them live on the main thread; the session logic
//! talks to them through [`UiCommand`] and [`UiEvent`].

use crate::consent_gate::ConsentGate;
use crate::texts::{Lang, TicketProblem};
#[cfg(not(windows))]
use minifb::MouseButton;
use minifb::{Key, MouseMode, Window, WindowOptions};
use protocol::consent::Grant;
use protocol::ids::TicketNumber;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use text_render::TextRenderer;

const BG: u32 = 0xF4F6F8;
const FG: u32 = 0x1B1F24;
const ACCENT: u32 = 0x0B5CAD;
const BUTTON: u32 = 0xDDE3EA;
const DANGER: u32 = 0xB3261E;

/// How often the windows look for clicks and keys.
const POLL: Duration = Duration::from_millis(15);
/// How often the waiting window looks while the pointer is elsewhere: a click starts with the
/// pointer over the window, and a person's press lasts longer than this. Each look is a round
/// trip to the display server. Not the session window: closing it from its title bar (outside
/// the drawing area) or with the keyboard revokes consent, which must take effect within
/// 100 ms (a test measured 112 ms at this interval).
const POLL_POINTER_AWAY: Duration = Duration::from_millis(60);

/// What the session logic asks the UI to show.
pub(crate) enum UiCommand {
    /// Ask for the ticket number (the agent was started without `--ticket`), saying what was
    /// wrong with the last one, if anything.
    AskTicket {
        problem: Option<TicketProblem>,
    },
    /// Show (or update) the waiting window with the code and the wrong tries so far.
    Waiting {
        ticket: TicketNumber,
        code: String,
        wrong: u32,
        max_wrong: u32,
        reconnecting: bool,
    },
    /// Ask for consent; the dialog sets `gate` itself on the click.
    AskConsent {
        staff: String,
        ticket: TicketNumber,
        gate: ConsentGate,
    },
    /// Show the session indicator; its buttons set `gate` themselves.
    Indicator {
        staff: String,
        grant: Grant,
        gate: ConsentGate,
    },
    /// The session ends by itself in `ends_in` unless the person goes on: say so in the
    /// indicator, with a button to go on.
    LimitWarning {
        limit: protocol::session_limits::Limit,
        ends_in: Duration,
    },
    /// The warning no longer holds.
    LimitCleared,
    /// Too many wrong codes: tell the person to call again.
    LockedOut,
    CloseAll,
    Exit,
}

/// What the person at the PC did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UiEvent {
    CancelWaiting,
    /// The ticket number typed into the ticket window.
    Ticket(TicketNumber),
    /// The person closed the final message.
    Dismissed,
    Consent(Grant),
    ChangeGrant(Grant),
    /// The person goes on with a session that was about to end by itself.
    GoOn,
    End,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Action {
    Cancel,
    Next,
    Deny,
    View,
    Control,
    End,
    Toggle,
    GoOn,
}

struct Button {
    x: usize,
    y: usize,
    w: usize,
    h: usize,
    label: String,
    action: Action,
    color: u32,
}

/// One of the agent's windows.
struct Panel {
    /// Before `window`, so it is dropped first and gives the window its procedure back.
    #[cfg(windows)]
    latch: crate::click_latch::ClickLatch,
    window: Window,
    name: &'static str,
    w: usize,
    h: usize,
    origin: (isize, isize),
    buf: Vec<u32>,
    buttons: Vec<Button>,
    /// Whether the button was down at the last look (where presses are not latched).
    #[cfg(not(windows))]
    was_down: bool,
    /// Whether `buf` changed since it was last shown: redrawing an unchanged window would
    /// damage the screen and make the capture thread look at it again.
    dirty: bool,
    /// Key presses, for windows that take typing ([`Panel::capture_keys`]).
    pressed: Option<std::rc::Rc<std::cell::RefCell<Vec<Key>>>>,
    /// Set for the session indicator: kept above other windows and shown again if hidden.
    on_top: Option<crate::always_on_top::KeepOnTop>,
}

/// Collects key presses as minifb reports them, one by one.
struct KeyPresses(std::rc::Rc<std::cell::RefCell<Vec<Key>>>);

impl minifb::InputCallback for KeyPresses {
    fn add_char(&mut self, _uni_char: u32) {}

    fn set_key_state(&mut self, key: Key, down: bool) {
        if down {
            self.0.borrow_mut().push(key);
        }
    }
}

impl Panel {
    fn open(
        title: &str,
        name: &'static str,
        w: usize,
        h: usize,
        origin: (isize, isize),
    ) -> anyhow::Result<Self> {
        let mut window = Window::new(
            title,
            w,
            h,
            WindowOptions {
                resize: false,
                ..WindowOptions::default()
            },
        )
        .map_err(|e| {
            anyhow::anyhow!("cannot open a window: {e} / Fenster kann nicht geöffnet werden")
        })?;
        window.set_position(origin.0, origin.1);
        // 60 rather than 30: a click on *Beenden* is seen within ~16 ms.
        window.set_target_fps(60);
        Ok(Self {
            #[cfg(windows)]
            latch: crate::click_latch::ClickLatch::install(&window),
            window,
            name,
            w,
            h,
            origin,
            buf: vec![BG; w * h],
            buttons: Vec::new(),
            #[cfg(not(windows))]
            was_down: false,
            dirty: true,
            pressed: None,
            on_top: None,
        })
    }

    /// From now on the window stays above all others and comes back when covered or
    /// minimised.
    fn keep_on_top(&mut self) {
        self.on_top = Some(crate::always_on_top::KeepOnTop::new(&self.window));
    }

    fn draw(&mut self, text: &TextRenderer, lines: &[(String, f32, u32)]) {
        self.dirty = true;
        self.buf.fill(BG);
        for x in 0..self.w {
            self.buf[x] = ACCENT;
            self.buf[self.w + x] = ACCENT;
        }
        let mut y = 16;
        for (line, size, color) in lines {
            let x = (self.w.saturating_sub(text.width(line, *size))) / 2;
            text.draw((&mut self.buf, self.w), (x, y), line, *size, *color);
            y += line_height(*size);
        }
        for b in &self.buttons {
            for yy in b.y..b.y + b.h {
                self.buf[yy * self.w + b.x..yy * self.w + b.x + b.w].fill(b.color);
            }
            let fg = if b.color == BUTTON { FG } else { 0xFFFFFF };
            let tx = b.x + b.w.saturating_sub(text.width(&b.label, 17.0)) / 2;
            text.draw(
                (&mut self.buf, self.w),
                (tx, b.y + (b.h.saturating_sub(20)) / 2),
                &b.label,
                17.0,
                fg,
            );
        }
    }

    /// Lays out buttons in one row at the bottom, and says where they are on stdout so
    /// operators and tests can find them (`ui button <window> <action> <x> <y>`).
    fn set_buttons(&mut self, specs: &[(&str, Action, u32)]) {
        // A redraw with the same buttons (the indicator's countdown, once a second) lays out
        // nothing again: asking the X server where the window is takes a connection.
        let same = self.buttons.len() == specs.len()
            && self
                .buttons
                .iter()
                .zip(specs)
                .all(|(b, (label, action, color))| {
                    b.label == *label && b.action == *action && b.color == *color
                });
        if same {
            return;
        }
        let gap = 12;
        let h = 40;
        let total_gap = gap * (specs.len() + 1);
        let w = (self.w - total_gap) / specs.len().max(1);
        let y = self.h - h - 16;
        self.buttons = specs
            .iter()
            .enumerate()
            .map(|(i, (label, action, color))| Button {
                x: gap + i * (w + gap),
                y,
                w,
                h,
                label: label.to_string(),
                action: *action,
                color: *color,
            })
            .collect();
        let origin = self.client_origin();
        for b in &self.buttons {
            println!(
                "ui button {} {:?} {} {}",
                self.name,
                b.action,
                origin.0 + (b.x + b.w / 2) as isize,
                origin.1 + (b.y + b.h / 2) as isize
            );
        }
    }

    /// Where the window's drawing area starts on the screen. Windows places the outer frame at
    /// the position asked for, and the drawing area sits inside the frame (Wine keeps that
    /// offset even where no window manager draws a frame).
    #[cfg(windows)]
    fn client_origin(&self) -> (isize, isize) {
        use windows::Win32::Foundation::{HWND, POINT};
        use windows::Win32::Graphics::Gdi::ClientToScreen;
        let mut p = POINT { x: 0, y: 0 };
        // SAFETY: the handle is this panel's live window; ClientToScreen only reads it.
        let ok = unsafe { ClientToScreen(HWND(self.window.get_window_handle()), &mut p) };
        if ok.as_bool() {
            (p.x as isize, p.y as isize)
        } else {
            self.origin
        }
    }

    /// Where the window's drawing area starts on the screen: where X11 put it (inside a window
    /// manager's frame, if there is one).
    #[cfg(target_os = "linux")]
    fn client_origin(&self) -> (isize, isize) {
        crate::always_on_top::x11_client_origin(&self.window).unwrap_or(self.origin)
    }

    #[cfg(not(any(windows, target_os = "linux")))]
    fn client_origin(&self) -> (isize, isize) {
        self.origin
    }

    /// From now on, every key press is kept for [`Self::keys`]: polling the keyboard's state
    /// once a frame would miss a key pressed and released within one frame (fast typing,
    /// pasting tools, barcode scanners).
    fn capture_keys(&mut self) {
        let pressed = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        self.pressed = Some(pressed.clone());
        self.window
            .set_input_callback(Box::new(KeyPresses(pressed)));
    }

    /// The keys pressed since the last call (with the keyboard's repeat), in order.
    fn keys(&self) -> Vec<Key> {
        self.pressed
            .as_ref()
            .map(|p| std::mem::take(&mut *p.borrow_mut()))
            .unwrap_or_default()
    }

    /// Whether the pointer was over the window when it last looked.
    fn pointer_over(&self) -> bool {
        self.window.get_mouse_pos(MouseMode::Discard).is_some()
    }

    /// Shows the buffer and returns the button clicked since the last call, or `None`.
    fn poll(&mut self) -> Result<Option<Action>, ()> {
        if !self.window.is_open() {
            return Err(());
        }
        if let Some(t) = &mut self.on_top {
            t.tend();
        }
        if std::mem::take(&mut self.dirty) {
            self.window
                .update_with_buffer(&self.buf, self.w, self.h)
                .map_err(|_| ())?;
        } else {
            self.window.update();
        }
        Ok(self
            .presses()
            .into_iter()
            .find_map(|(x, y)| self.button_at(x, y)))
    }

    /// Where the left button went down since the last look: every press message (Windows).
    #[cfg(windows)]
    fn presses(&mut self) -> Vec<(i32, i32)> {
        self.latch.take()
    }

    /// Where the left button went down since the last look: the button's state as it is now,
    /// against the last look, at the pointer's position asked of the X server after the press
    /// was read. minifb asks for the position *before* it reads the queued events, so a press
    /// that came with the move to it (a quick flick and click; xdotool's move and press) was
    /// taken at the old place, outside any button, and lost.
    #[cfg(not(windows))]
    fn presses(&mut self) -> Vec<(i32, i32)> {
        let down = self.window.get_mouse_down(MouseButton::Left);
        let pressed = down && !self.was_down;
        self.was_down = down;
        if !pressed {
            return Vec::new();
        }
        #[cfg(target_os = "linux")]
        let now = crate::always_on_top::x11_pointer_in(&self.window);
        #[cfg(not(target_os = "linux"))]
        let now = None;
        now.or_else(|| {
            self.window
                .get_mouse_pos(MouseMode::Discard)
                .map(|(x, y)| (x as i32, y as i32))
        })
        .into_iter()
        .collect()
    }

    /// The action of the button at `(x, y)` in the window, if one is there.
    fn button_at(&self, x: i32, y: i32) -> Option<Action> {
        let (Ok(x), Ok(y)) = (usize::try_from(x), usize::try_from(y)) else {
            return None;
        };
        self.buttons
            .iter()
            .find(|b| x >= b.x && x < b.x + b.w && y >= b.y && y < b.y + b.h)
            .map(|b| b.action)
    }
}

/// The ticket number as it is typed: digits only, checked when the person goes on.
#[derive(Debug, Default)]
struct TicketField {
    typed: String,
    problem: Option<TicketProblem>,
}

/// One key in the ticket window, as far as the field cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKey {
    Digit(char),
    Backspace,
    Enter,
    /// Anything that would type something other than a digit.
    Other,
}

impl FieldKey {
    /// The field's view of a key; `None` for keys that type nothing (Shift, arrows, …).
    fn from_key(k: Key) -> Option<Self> {
        use Key::*;
        let digit = |d: u8| Some(FieldKey::Digit(char::from(b'0' + d)));
        match k {
            Key0 | NumPad0 => digit(0),
            Key1 | NumPad1 => digit(1),
            Key2 | NumPad2 => digit(2),
            Key3 | NumPad3 => digit(3),
            Key4 | NumPad4 => digit(4),
            Key5 | NumPad5 => digit(5),
            Key6 | NumPad6 => digit(6),
            Key7 | NumPad7 => digit(7),
            Key8 | NumPad8 => digit(8),
            Key9 | NumPad9 => digit(9),
            Backspace | Delete => Some(FieldKey::Backspace),
            Enter | NumPadEnter => Some(FieldKey::Enter),
            LeftShift | RightShift | LeftCtrl | RightCtrl | LeftAlt | RightAlt | LeftSuper
            | RightSuper | CapsLock | NumLock | ScrollLock | Tab | Left | Right | Up | Down
            | Home | End | Escape | Menu | Unknown => None,
            _ => Some(FieldKey::Other),
        }
    }
}

impl TicketField {
    /// Takes a key; returns the number when Enter submits a valid one. Whatever the person
    /// types, the field holds at most one digit more than a ticket number has.
    fn key(&mut self, k: FieldKey) -> Option<TicketNumber> {
        match k {
            FieldKey::Digit(d) => {
                if self.typed.len() <= TicketNumber::MAX_DIGITS {
                    self.typed.push(d);
                }
                self.problem = None;
            }
            FieldKey::Backspace => {
                self.typed.pop();
                self.problem = None;
            }
            FieldKey::Other => self.problem = Some(TicketProblem::NotDigits),
            FieldKey::Enter => return self.submit(),
        }
        None
    }

    /// The number, or the problem with it.
    fn submit(&mut self) -> Option<TicketNumber> {
        if self.typed.is_empty() {
            self.problem = Some(TicketProblem::Empty);
            return None;
        }
        match self.typed.parse::<TicketNumber>() {
            Ok(t) => Some(t),
            Err(_) if self.typed.len() > TicketNumber::MAX_DIGITS => {
                self.problem = Some(TicketProblem::TooLong);
                None
            }
            Err(_) => {
                self.problem = Some(TicketProblem::NotDigits);
                None
            }
        }
    }
}

/// Draws the ticket window: the prompt, the number so far, and what is wrong with it.
fn draw_ticket(p: &mut Panel, text: &TextRenderer, lang: Lang, f: &TicketField) {
    let shown = if f.typed.is_empty() {
        "_".to_owned()
    } else {
        f.typed.clone()
    };
    let mut lines = vec![
        (lang.ticket_prompt().to_owned(), 16.0, FG),
        (shown, 34.0, ACCENT),
    ];
    if let Some(problem) = f.problem {
        let [de, en] = Lang::ticket_problem(problem);
        lines.push((de.to_owned(), 14.0, DANGER));
        lines.push((en.to_owned(), 14.0, DANGER));
        println!("ui ticket problem {problem:?}");
    }
    p.draw(text, &lines);
}

/// Height of a line of text at `px` in a panel, spacing included.
fn line_height(px: f32) -> usize {
    (px * 1.45) as usize
}

enum Shown {
    Nothing,
    Ticket(Panel, TicketField),
    Waiting(Panel),
    Consent(Panel, ConsentGate),
    Indicator(Panel, IndicatorState, ConsentGate),
    LockedOut(Panel),
}

/// Runs the windows on the calling (main) thread until told to exit.
pub(crate) fn run(
    lang: Lang,
    screen: (usize, usize),
    commands: mpsc::Receiver<UiCommand>,
    events: tokio::sync::mpsc::UnboundedSender<UiEvent>,
) -> anyhow::Result<()> {
    let text = TextRenderer::new();
    let (sw, sh) = (screen.0 as isize, screen.1 as isize);
    let centered = |w: usize, h: usize| ((sw - w as isize) / 2, (sh - h as isize) / 2);
    let mut shown = Shown::Nothing;
    loop {
        let wait = match &shown {
            Shown::Waiting(p) if !p.pointer_over() => POLL_POINTER_AWAY,
            _ => POLL,
        };
        match commands.recv_timeout(wait) {
            Ok(UiCommand::AskTicket { problem }) => {
                let (w, h) = (560, 260);
                let mut p = Panel::open(lang.ticket_title(), "ticket", w, h, centered(w, h))?;
                p.capture_keys();
                p.set_buttons(&[
                    (lang.cancel(), Action::Cancel, BUTTON),
                    (lang.next(), Action::Next, ACCENT),
                ]);
                let field = TicketField {
                    typed: String::new(),
                    problem,
                };
                draw_ticket(&mut p, &text, lang, &field);
                println!("ui ticket asked");
                shown = Shown::Ticket(p, field);
            }
            Ok(UiCommand::Waiting {
                ticket,
                code,
                wrong,
                max_wrong,
                reconnecting,
            }) => {
                // Redraw in place: a new window on every wrong try would flicker.
                let mut p = match std::mem::replace(&mut shown, Shown::Nothing) {
                    Shown::Waiting(p) => p,
                    _ => {
                        let (w, h) = (500, 280);
                        let mut p =
                            Panel::open(lang.waiting_title(), "waiting", w, h, centered(w, h))?;
                        p.set_buttons(&[(lang.cancel(), Action::Cancel, BUTTON)]);
                        p
                    }
                };
                let l = lang.waiting_lines(ticket, &code);
                let mut lines = vec![
                    (l[0].clone(), 16.0, FG),
                    (l[1].clone(), 16.0, FG),
                    (l[2].clone(), 34.0, ACCENT),
                    (l[3].clone(), 14.0, FG),
                ];
                if reconnecting {
                    lines.push((lang.reconnecting().to_owned(), 14.0, DANGER));
                } else if wrong > 0 {
                    lines.push((lang.wrong_tries(wrong, max_wrong), 14.0, DANGER));
                }
                p.draw(&text, &lines);
                shown = Shown::Waiting(p);
            }
            Ok(UiCommand::LockedOut) => {
                let (w, h) = (640, 230);
                let mut p = Panel::open(lang.locked_title(), "locked", w, h, centered(w, h))?;
                // Both languages whatever is set: the person may not read the chosen one.
                p.set_buttons(&[("Schließen / Close", Action::Cancel, BUTTON)]);
                let [de1, de2, en1, en2] = Lang::locked_lines();
                let lines: Vec<(String, f32, u32)> = vec![
                    (de1.into(), 16.0, DANGER),
                    (de2.into(), 14.0, FG),
                    (String::new(), 8.0, FG),
                    (en1.into(), 16.0, DANGER),
                    (en2.into(), 14.0, FG),
                ];
                p.draw(&text, &lines);
                shown = Shown::LockedOut(p);
            }
            Ok(UiCommand::AskConsent {
                staff,
                ticket,
                gate,
            }) => {
                let (w, h) = (620, 190);
                let mut p = Panel::open(lang.consent_title(), "consent", w, h, centered(w, h))?;
                p.set_buttons(&[
                    (lang.deny(), Action::Deny, BUTTON),
                    (lang.view_only(), Action::View, BUTTON),
                    (lang.view_and_control(), Action::Control, ACCENT),
                ]);
                let l = lang.consent_lines(&staff, ticket);
                p.draw(&text, &[(l[0].clone(), 19.0, FG), (l[1].clone(), 15.0, FG)]);
                shown = Shown::Consent(p, gate);
            }
            Ok(UiCommand::Indicator { staff, grant, gate }) => {
                let (w, h) = (460, 150);
                let mut p = Panel::open(
                    lang.indicator_title(),
                    "indicator",
                    w,
                    h,
                    (sw - w as isize - 8, 8),
                )?;
                p.keep_on_top();
                let mut state = IndicatorState {
                    staff,
                    grant,
                    ending: None,
                    shown_secs: None,
                };
                draw_indicator(&mut p, &text, lang, &mut state);
                shown = Shown::Indicator(p, state, gate);
            }
            Ok(UiCommand::LimitWarning { limit, ends_in }) => {
                if let Shown::Indicator(p, state, _) = &mut shown {
                    state.ending = Some((limit, Instant::now() + ends_in));
                    draw_indicator(p, &text, lang, state);
                }
            }
            Ok(UiCommand::LimitCleared) => {
                if let Shown::Indicator(p, state, _) = &mut shown {
                    if state.ending.take().is_some() {
                        draw_indicator(p, &text, lang, state);
                    }
                }
            }
            Ok(UiCommand::CloseAll) => shown = Shown::Nothing,
            Ok(UiCommand::Exit) | Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let event = match &mut shown {
            Shown::Nothing => None,
            Shown::Ticket(p, field) => match p.poll() {
                Err(()) | Ok(Some(Action::Cancel)) => Some(UiEvent::CancelWaiting),
                clicked => {
                    let before = (field.typed.clone(), field.problem);
                    let mut number = None;
                    for k in p.keys().into_iter().filter_map(FieldKey::from_key) {
                        number = number.or(field.key(k));
                    }
                    if clicked == Ok(Some(Action::Next)) && number.is_none() {
                        number = field.submit();
                    }
                    if (field.typed.clone(), field.problem) != before {
                        draw_ticket(p, &text, lang, field);
                    }
                    number.map(UiEvent::Ticket)
                }
            },
            Shown::Waiting(p) => match p.poll() {
                Err(()) | Ok(Some(Action::Cancel)) => Some(UiEvent::CancelWaiting),
                _ => None,
            },
            Shown::LockedOut(p) => match p.poll() {
                Err(()) | Ok(Some(Action::Cancel)) => Some(UiEvent::Dismissed),
                _ => None,
            },
            Shown::Consent(p, gate) => {
                let answer = match p.poll() {
                    // Closing the dialog is a refusal.
                    Err(()) | Ok(Some(Action::Deny)) => Some(Grant::Denied),
                    Ok(Some(Action::View)) => Some(Grant::View),
                    Ok(Some(Action::Control)) => Some(Grant::Control),
                    _ => None,
                };
                answer.map(|g| {
                    gate.set(g);
                    UiEvent::Consent(g)
                })
            }
            Shown::Indicator(p, state, gate) => match p.poll() {
                Err(()) | Ok(Some(Action::End)) => {
                    // Effective here and now: nothing more is captured or injected, held
                    // keys are released, whatever the session task is waiting for.
                    gate.set(Grant::Denied);
                    Some(UiEvent::End)
                }
                Ok(Some(Action::Toggle)) => {
                    state.grant = if state.grant == Grant::Control {
                        Grant::View
                    } else {
                        Grant::Control
                    };
                    gate.set(state.grant);
                    draw_indicator(p, &text, lang, state);
                    Some(UiEvent::ChangeGrant(state.grant))
                }
                Ok(Some(Action::GoOn)) if state.ending.is_some() => {
                    state.ending = None;
                    draw_indicator(p, &text, lang, state);
                    Some(UiEvent::GoOn)
                }
                _ => {
                    // The countdown, once a second.
                    if state.ending.is_some() && state.countdown_changed() {
                        draw_indicator(p, &text, lang, state);
                    }
                    None
                }
            },
        };
        if let Some(ev) = event {
            if matches!(
                ev,
                UiEvent::Consent(_)
                    | UiEvent::CancelWaiting
                    | UiEvent::End
                    | UiEvent::Dismissed
                    | UiEvent::Ticket(_)
            ) {
                shown = Shown::Nothing;
            }
            if events.send(ev).is_err() {
                return Ok(());
            }
        }
    }
}

/// Shows why the agent could not start or go on, in German and English, until the person
/// closes it. On Windows the agent has no console, so this window is the only place the
/// message can be read.
#[cfg(windows)]
pub fn show_error(summary: [&str; 2], message: &str) -> anyhow::Result<()> {
    use windows::Win32::UI::WindowsAndMessaging::{GetSystemMetrics, SM_CXSCREEN, SM_CYSCREEN};
    let text = TextRenderer::new();
    let (w, px) = (640, 15.0);
    let mut lines: Vec<(String, f32, u32)> = vec![
        (
            "Fernhilfe konnte nicht fortfahren / Fernhilfe could not go on".into(),
            17.0,
            DANGER,
        ),
        (String::new(), 4.0, FG),
    ];
    for (part, size) in [(summary[0], 16.0), (summary[1], 16.0), (message, px)] {
        lines.extend(
            wrap(&text, part, size, w - 40)
                .into_iter()
                .map(|l| (l, size, FG)),
        );
        lines.push((String::new(), 4.0, FG));
    }
    let h = 16 + lines.iter().map(|l| line_height(l.1)).sum::<usize>() + 80;
    // SAFETY: GetSystemMetrics only reads system settings.
    let (sw, sh) = unsafe { (GetSystemMetrics(SM_CXSCREEN), GetSystemMetrics(SM_CYSCREEN)) };
    let origin = (
        (sw as isize - w as isize).max(0) / 2,
        (sh as isize - h as isize).max(0) / 2,
    );
    let mut p = Panel::open("Fernhilfe – Fehler / Error", "error", w, h, origin)?;
    p.set_buttons(&[("Schließen / Close", Action::Cancel, BUTTON)]);
    p.draw(&text, &lines);
    while let Ok(None) = p.poll() {
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// Breaks `message` into lines no wider than `max_w` pixels at `px`, at spaces where it can.
#[cfg(any(windows, test))]
fn wrap(text: &TextRenderer, message: &str, px: f32, max_w: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in message.lines() {
        let mut line = String::new();
        for word in paragraph.split(' ') {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if text.width(&candidate, px) <= max_w || line.is_empty() {
                line = candidate;
            } else {
                lines.push(std::mem::replace(&mut line, word.to_owned()));
            }
        }
        lines.push(line);
    }
    lines
}

/// What the indicator shows.
struct IndicatorState {
    staff: String,
    grant: Grant,
    /// The session ends by itself at this moment, for this reason, unless the person goes on.
    ending: Option<(protocol::session_limits::Limit, Instant)>,
    /// The seconds the countdown shows.
    shown_secs: Option<u64>,
}

impl IndicatorState {
    /// Seconds left until the session ends by itself.
    fn seconds_left(&self) -> Option<u64> {
        self.ending.map(|(_, at)| {
            at.saturating_duration_since(Instant::now())
                .as_secs_f64()
                .ceil() as u64
        })
    }

    /// Whether the shown countdown is out of date (its second passed).
    fn countdown_changed(&self) -> bool {
        self.seconds_left() != self.shown_secs
    }
}

fn draw_indicator(p: &mut Panel, text: &TextRenderer, lang: Lang, state: &mut IndicatorState) {
    state.shown_secs = state.seconds_left();
    let toggle = if state.grant == Grant::Control {
        lang.revoke_control()
    } else {
        lang.allow_control()
    };
    let mut lines = vec![(
        lang.indicator_line(&state.staff, state.grant == Grant::Control),
        16.0,
        FG,
    )];
    match (state.ending, state.seconds_left()) {
        (Some((limit, _)), Some(secs)) => {
            p.set_buttons(&[
                (toggle, Action::Toggle, BUTTON),
                (lang.go_on(), Action::GoOn, ACCENT),
                (lang.end(), Action::End, DANGER),
            ]);
            lines.push((lang.ending_line(limit, secs), 15.0, DANGER));
        }
        _ => p.set_buttons(&[
            (toggle, Action::Toggle, BUTTON),
            (lang.end(), Action::End, DANGER),
        ]),
    }
    p.draw(text, &lines);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ticket_field_takes_digits_only_and_says_what_is_wrong() {
        let mut f = TicketField::default();
        assert_eq!(f.key(FieldKey::Enter), None);
        assert_eq!(f.problem, Some(TicketProblem::Empty));
        for d in "47a".chars() {
            let k = if d.is_ascii_digit() {
                FieldKey::Digit(d)
            } else {
                FieldKey::Other
            };
            assert_eq!(f.key(k), None);
        }
        assert_eq!(
            (f.typed.as_str(), f.problem),
            ("47", Some(TicketProblem::NotDigits))
        );
        f.key(FieldKey::Digit('1'));
        f.key(FieldKey::Digit('9'));
        f.key(FieldKey::Backspace);
        f.key(FieldKey::Digit('1'));
        assert_eq!(f.problem, None);
        assert_eq!(f.key(FieldKey::Enter), Some("4711".parse().unwrap()));
        // Typing on and on stops one digit past the longest ticket number, which is refused.
        let mut long = TicketField::default();
        for _ in 0..40 {
            long.key(FieldKey::Digit('9'));
        }
        assert_eq!(long.typed.len(), TicketNumber::MAX_DIGITS + 1);
        assert_eq!(long.key(FieldKey::Enter), None);
        assert_eq!(long.problem, Some(TicketProblem::TooLong));
        // Zero is no ticket.
        let mut zero = TicketField::default();
        zero.key(FieldKey::Digit('0'));
        assert_eq!(zero.key(FieldKey::Enter), None);
    }

    #[test]
    fn wrap_keeps_every_word_in_order_within_the_width() {
        let text = TextRenderer::new();
        let message = "cannot reach the relay at 127.0.0.1:9: no answer within 5 s. Check the address and port / Relay nicht erreichbar: Adresse und Port prüfen";
        let lines = wrap(&text, message, 15.0, 300);
        assert!(lines.len() > 2, "{lines:?}");
        assert!(
            lines.iter().all(|l| text.width(l, 15.0) <= 300),
            "{lines:?}"
        );
        assert_eq!(lines.join(" "), message);
        // A word wider than the window gets a line of its own rather than being lost.
        let long = "x".repeat(200);
        assert_eq!(wrap(&text, &long, 15.0, 100), vec![long]);
    }
}
