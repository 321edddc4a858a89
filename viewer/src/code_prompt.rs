//! The small window that asks the technician for the session code when the viewer was opened
//! from a ticket's `fernhilfe://` link: the link names relay and ticket, never the code, which
//! the person at the school reads out on the phone.

use anyhow::{bail, Result};
use minifb::{Key, Window, WindowOptions};
use protocol::ids::{SessionCode, TicketNumber};
use std::cell::RefCell;
use std::rc::Rc;
use text_render::TextRenderer;

const BG: u32 = 0xF4F5F7;
const FG: u32 = 0x1B1F24;
const ACCENT: u32 = 0x0B5CAD;
const DANGER: u32 = 0xB00020;
/// Title the tests find the window by.
pub(crate) const TITLE: &str = "Fernhilfe – Sitzungscode / session code";

/// What the person typed since the last frame.
#[derive(Default)]
struct Typed {
    chars: Vec<char>,
    enter: bool,
    backspace: usize,
}

/// Collects typing as minifb reports it, key by key (a frame's key state loses fast typing).
struct Collect(Rc<RefCell<Typed>>);

impl minifb::InputCallback for Collect {
    fn add_char(&mut self, c: u32) {
        if let Some(c) = char::from_u32(c).filter(|c| !c.is_control()) {
            self.0.borrow_mut().chars.push(c);
        }
    }

    fn set_key_state(&mut self, key: Key, down: bool) {
        let mut t = self.0.borrow_mut();
        match (key, down) {
            (Key::Enter | Key::NumPadEnter, true) => t.enter = true,
            (Key::Backspace | Key::Delete, true) => t.backspace += 1,
            _ => {}
        }
    }
}

/// The digits typed so far in the code's groups: `483-29`.
fn grouped(digits: &str) -> String {
    let mut s = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && i % 3 == 0 {
            s.push('-');
        }
        s.push(d);
    }
    s
}

/// Takes typed characters into `digits`: digits up to a code's length; dashes and blanks
/// (people type the code as they read it) pass; anything else is a problem to show.
fn take(digits: &mut String, typed: &[char]) -> bool {
    let mut fine = true;
    for &c in typed {
        match c {
            '0'..='9' if digits.len() < SessionCode::DIGITS => digits.push(c),
            '0'..='9' | '-' | ' ' => {}
            _ => fine = false,
        }
    }
    fine
}

/// Asks for the code of a session on `ticket`; an error if the window is closed instead.
pub(crate) fn ask(ticket: TicketNumber) -> Result<SessionCode> {
    let (w, h) = (560, 230);
    let mut window = Window::new(TITLE, w, h, WindowOptions::default())?;
    window.set_target_fps(30);
    let typed = Rc::new(RefCell::new(Typed::default()));
    window.set_input_callback(Box::new(Collect(typed.clone())));
    let text = TextRenderer::new();
    let mut buf = vec![BG; w * h];
    let (mut digits, mut problem) = (String::new(), None::<&str>);
    let mut dirty = true;
    println!("ui code asked");
    while window.is_open() && !window.is_key_down(Key::Escape) {
        let t = std::mem::take(&mut *typed.borrow_mut());
        if !t.chars.is_empty() || t.backspace > 0 || t.enter {
            dirty = true;
            problem = None;
        }
        for _ in 0..t.backspace {
            digits.pop();
        }
        if !take(&mut digits, &t.chars) {
            problem = Some("Nur Ziffern / digits only");
            println!("ui code problem digits");
        }
        if t.enter {
            match digits.parse::<SessionCode>() {
                Ok(code) if digits.len() == SessionCode::DIGITS => return Ok(code),
                _ => {
                    problem = Some("Der Code hat 9 Ziffern / the code has 9 digits");
                    println!("ui code problem length");
                }
            }
        }
        if dirty {
            buf.fill(BG);
            let lines = [
                (format!("Ticket {ticket}"), 15.0, FG),
                (
                    "Code, den die Schule vorliest / code the school reads out:".to_owned(),
                    15.0,
                    FG,
                ),
                (
                    if digits.is_empty() {
                        "_".into()
                    } else {
                        grouped(&digits)
                    },
                    34.0,
                    ACCENT,
                ),
                (
                    problem.unwrap_or("Enter: verbinden / connect").to_owned(),
                    14.0,
                    if problem.is_some() { DANGER } else { FG },
                ),
            ];
            let mut y = 18;
            for (line, px, colour) in &lines {
                text.draw((&mut buf, w), (24, y), line, *px, *colour);
                y += (*px * 1.6) as usize;
            }
            dirty = false;
        }
        window.update_with_buffer(&buf, w, h)?;
    }
    bail!("no session code entered: the viewer ends / kein Sitzungscode eingegeben")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_taken_as_read_out_and_nothing_else() {
        let mut d = String::new();
        assert!(take(&mut d, &"483-291 075".chars().collect::<Vec<_>>()));
        assert_eq!(grouped(&d), "483-291-075");
        assert!(
            take(&mut d, &['9']),
            "a tenth digit is ignored, not an error"
        );
        assert_eq!(d.len(), SessionCode::DIGITS);
        let mut e = String::new();
        assert!(!take(&mut e, &['4', 'x', '7']));
        assert_eq!(e, "47");
    }
}
