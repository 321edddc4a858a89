//! Injects the viewer's input with enigo, on a thread of its own, and only while the person at
//! the PC has granted control: the grant is checked right before every single event, every
//! character of typed text and every wheel notch, so a revocation stops input at once, whatever
//! is still queued. Each event's effect is bounded: the decoder refuses long wheel events and
//! long texts, and pointer positions are clamped to the screen.
//!
//! Stopping never waits on the thread: the session's end and the agent's exit must not hang on
//! an injection in progress (an X server that stalls a round trip, say).
//!
//! The injector remembers which keys and buttons the viewer holds down. The moment control
//! ends (the gate tells it) or the session ends, it releases all of them, so a viewer cannot
//! leave Ctrl or a mouse button pressed on the school PC. A release the viewer sends for a key
//! it holds always passes, as it can only make the PC safer.

use crate::consent_gate::ConsentGate;
use enigo::{Axis, Button, Coordinate, Direction, Enigo, Keyboard, Mouse, Settings};
use protocol::session::{InputEvent, Key, MouseButton, NamedKey};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Events the viewer may have queued at the injector before new ones are dropped.
const QUEUE: usize = 1024;

enum Job {
    Event(InputEvent),
    /// Control ended: release everything held.
    Revoked,
    /// The session is over: release everything and stop.
    Stop,
}

/// The running injector.
pub(crate) struct Injector {
    jobs: mpsc::SyncSender<Job>,
    /// Set on stop; the thread looks at it before every job.
    stopping: Arc<AtomicBool>,
    /// Fires when the thread has released everything and ended.
    done: tokio::sync::oneshot::Receiver<()>,
}

impl Injector {
    /// Queues an event; false if the queue is full (the event is dropped).
    pub(crate) fn try_send(&self, ev: InputEvent) -> bool {
        self.jobs.try_send(Job::Event(ev)).is_ok()
    }

    /// Tells the thread to release whatever the viewer holds and end, and waits for that at
    /// most `limit`, without blocking the caller's thread. Says whether the thread ended.
    pub(crate) async fn stop(self, limit: Duration) -> bool {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes an idle thread; a busy one sees the flag before its next job.
        let _ = self.jobs.try_send(Job::Stop);
        tokio::time::timeout(limit, self.done).await.is_ok()
    }
}

/// Keys and buttons pressed by the viewer and not yet released.
#[derive(Default)]
struct Held {
    keys: Vec<Key>,
    buttons: Vec<MouseButton>,
}

impl Held {
    fn release_all(&mut self, e: &mut Enigo) {
        for b in self.buttons.drain(..) {
            if let Err(err) = e.button(enigo_button(b), Direction::Release) {
                tracing::warn!(error = %err, "could not release a mouse button");
            }
        }
        for k in self.keys.drain(..).rev() {
            if let Err(err) = e.key(enigo_key(k), Direction::Release) {
                tracing::warn!(error = %err, "could not release a key");
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.buttons.is_empty()
    }
}

/// Starts the injector thread; events are injected only while `gate` allows control.
pub(crate) fn spawn_injector(gate: ConsentGate) -> anyhow::Result<Injector> {
    let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
    let (ready_tx, ready_rx) = mpsc::channel();
    let watcher = tx.clone();
    gate.watch(move |g| {
        if !g.allows_control() {
            // If the queue is full the thread is busy and checks the gate before each event.
            let _ = watcher.try_send(Job::Revoked);
        }
    });
    let stopping = Arc::new(AtomicBool::new(false));
    let stop_seen = stopping.clone();
    let (done_tx, done) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            let mut enigo = match Enigo::new(&Settings::default()) {
                Ok(e) => {
                    let _ = ready_tx.send(Ok(()));
                    e
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow::anyhow!("cannot inject input: {e}")));
                    return;
                }
            };
            // Pointer positions beyond the screen are clamped to its edge.
            let screen = enigo.main_display().unwrap_or((i32::MAX, i32::MAX));
            let may_inject = || !stop_seen.load(Ordering::SeqCst) && gate.may_inject();
            let mut held = Held::default();
            while let Ok(job) = rx.recv() {
                if stop_seen.load(Ordering::SeqCst) {
                    break;
                }
                let ev = match job {
                    Job::Stop => break,
                    Job::Revoked => {
                        held.release_all(&mut enigo);
                        continue;
                    }
                    Job::Event(ev) => ev,
                };
                if !may_inject() {
                    if !held.is_empty() {
                        held.release_all(&mut enigo);
                    }
                    continue;
                }
                if let Err(e) = inject(&mut enigo, &ev, &mut held, screen, &may_inject) {
                    tracing::warn!(error = %e, "input event could not be injected");
                }
            }
            held.release_all(&mut enigo);
            let _ = done_tx.send(());
        })?;
    ready_rx.recv()??;
    Ok(Injector {
        jobs: tx,
        stopping,
        done,
    })
}

fn enigo_button(b: MouseButton) -> Button {
    match b {
        MouseButton::Left => Button::Left,
        MouseButton::Middle => Button::Middle,
        MouseButton::Right => Button::Right,
    }
}

/// Injects one event while `may_inject` holds, looking again before every part of it that
/// takes a round trip of its own (a wheel notch, a typed character).
fn inject(
    e: &mut Enigo,
    ev: &InputEvent,
    held: &mut Held,
    (width, height): (i32, i32),
    may_inject: &impl Fn() -> bool,
) -> Result<(), enigo::InputError> {
    match ev {
        InputEvent::PointerMove { x, y } => {
            let x = i32::from(*x).min(width.saturating_sub(1));
            let y = i32::from(*y).min(height.saturating_sub(1));
            e.move_mouse(x, y, Coordinate::Abs)
        }
        InputEvent::Button { button, pressed } => {
            held.buttons.retain(|b| b != button);
            if *pressed {
                held.buttons.push(*button);
            }
            e.button(
                enigo_button(*button),
                if *pressed {
                    Direction::Press
                } else {
                    Direction::Release
                },
            )
        }
        InputEvent::Wheel { dx, dy } => {
            // Protocol: positive dy scrolls up (as minifb reports); enigo: positive is down.
            // The decoder bounds the notches; each is a round trip, so each is gated.
            let notches = [
                (-i32::from(*dy), Axis::Vertical),
                (i32::from(*dx), Axis::Horizontal),
            ];
            for (n, axis) in notches {
                for _ in 0..n.unsigned_abs() {
                    if !may_inject() {
                        return Ok(());
                    }
                    e.scroll(n.signum(), axis)?;
                }
            }
            Ok(())
        }
        InputEvent::Key { key, pressed } => {
            held.keys.retain(|k| k != key);
            if *pressed {
                held.keys.push(*key);
            }
            e.key(
                enigo_key(*key),
                if *pressed {
                    Direction::Press
                } else {
                    Direction::Release
                },
            )
        }
        InputEvent::Text(t) => {
            for c in t.chars() {
                // Up to 256 characters take a while to type: a revocation stops them mid-text.
                if !may_inject() {
                    break;
                }
                match c {
                    // enigo types '\n' as Linefeed, which applications do not treat as Enter.
                    '\n' => e.key(enigo::Key::Return, Direction::Click)?,
                    '\t' => e.key(enigo::Key::Tab, Direction::Click)?,
                    c => type_char(e, c)?,
                }
            }
            Ok(())
        }
    }
}

/// Types one character as the person would see it typed. `text` and not `key(Unicode)`:
/// on Windows the latter maps the character to a virtual key without its shift state ('G'
/// arrived as 'g'), while `text` sends it as a Unicode character; on X11 `text` is
/// `key(Unicode)` per character.
fn type_char(e: &mut Enigo, c: char) -> enigo::InputResult<()> {
    e.text(c.encode_utf8(&mut [0; 4]))
}

fn enigo_key(k: Key) -> enigo::Key {
    use enigo::Key as E;
    match k {
        Key::Char(c) => E::Unicode(c),
        Key::Named(n) => match n {
            NamedKey::Return => E::Return,
            NamedKey::Backspace => E::Backspace,
            NamedKey::Tab => E::Tab,
            NamedKey::Escape => E::Escape,
            NamedKey::Delete => E::Delete,
            NamedKey::Insert => E::Insert,
            NamedKey::Left => E::LeftArrow,
            NamedKey::Right => E::RightArrow,
            NamedKey::Up => E::UpArrow,
            NamedKey::Down => E::DownArrow,
            NamedKey::Home => E::Home,
            NamedKey::End => E::End,
            NamedKey::PageUp => E::PageUp,
            NamedKey::PageDown => E::PageDown,
            NamedKey::Space => E::Space,
            NamedKey::Shift => E::Shift,
            NamedKey::Control => E::Control,
            NamedKey::Alt => E::Alt,
            NamedKey::Meta => E::Meta,
            NamedKey::CapsLock => E::CapsLock,
            NamedKey::F(n) => [
                E::F1,
                E::F2,
                E::F3,
                E::F4,
                E::F5,
                E::F6,
                E::F7,
                E::F8,
                E::F9,
                E::F10,
                E::F11,
                E::F12,
            ][(n.clamp(1, 12) - 1) as usize],
        },
    }
}
