//! Injects the viewer's input with enigo, on a thread of its own, and only while the person at
//! the PC has granted control: the grant is checked right before every single event, so a
//! revocation stops input at once, whatever is still queued.

use crate::consent_gate::ConsentGate;
use enigo::{Axis, Button, Coordinate, Direction, Enigo, Keyboard, Mouse, Settings};
use protocol::session::{InputEvent, Key, MouseButton, NamedKey};
use std::sync::mpsc;

/// Starts the injector thread; events sent to the returned channel are injected if allowed.
pub fn spawn_injector(gate: ConsentGate) -> anyhow::Result<mpsc::SyncSender<InputEvent>> {
    let (tx, rx) = mpsc::sync_channel::<InputEvent>(1024);
    let (ready_tx, ready_rx) = mpsc::channel();
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
            while let Ok(ev) = rx.recv() {
                if !gate.may_inject() {
                    continue;
                }
                if let Err(e) = inject(&mut enigo, &ev) {
                    tracing::warn!(error = %e, "input event could not be injected");
                }
            }
        })?;
    ready_rx.recv()??;
    Ok(tx)
}

fn inject(e: &mut Enigo, ev: &InputEvent) -> Result<(), enigo::InputError> {
    match ev {
        InputEvent::PointerMove { x, y } => e.move_mouse(*x as i32, *y as i32, Coordinate::Abs),
        InputEvent::Button { button, pressed } => e.button(
            match button {
                MouseButton::Left => Button::Left,
                MouseButton::Middle => Button::Middle,
                MouseButton::Right => Button::Right,
            },
            if *pressed {
                Direction::Press
            } else {
                Direction::Release
            },
        ),
        InputEvent::Wheel { dx, dy } => {
            if *dy != 0 {
                // Protocol: positive dy scrolls up (as minifb reports); enigo: positive is down.
                e.scroll(-(*dy as i32), Axis::Vertical)?;
            }
            if *dx != 0 {
                e.scroll(*dx as i32, Axis::Horizontal)?;
            }
            Ok(())
        }
        InputEvent::Key { key, pressed } => e.key(
            enigo_key(*key),
            if *pressed {
                Direction::Press
            } else {
                Direction::Release
            },
        ),
        InputEvent::Text(t) => {
            for c in t.chars() {
                match c {
                    // enigo types '\n' as Linefeed, which applications do not treat as Enter.
                    '\n' => e.key(enigo::Key::Return, Direction::Click)?,
                    '\t' => e.key(enigo::Key::Tab, Direction::Click)?,
                    c => e.key(enigo::Key::Unicode(c), Direction::Click)?,
                }
            }
            Ok(())
        }
    }
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
