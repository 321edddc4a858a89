//! The viewer window: the remote screen scaled to fit, the session state in the title bar,
//! and mouse and keyboard forwarded while control is granted.

use minifb::{
    InputCallback, Key as MKey, MouseButton as MButton, ScaleMode, Window, WindowOptions,
};
use protocol::consent::Grant;
use protocol::screen::{Framebuffer, Rect};
use protocol::session::{EndReason, InputEvent, Key, MouseButton, NamedKey, ViewerMessage};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use text_render::TextRenderer;
use tokio::sync::mpsc;
use viewer::session::SessionEvent;

/// Keyboard input in the order it happened: minifb's per-frame key sets lose the order of a
/// quick Ctrl+C, its callback does not.
enum Typed {
    Down(MKey),
    Up(MKey),
    Char(char),
}

struct KeyLog(Arc<Mutex<Vec<Typed>>>);

impl InputCallback for KeyLog {
    fn add_char(&mut self, c: u32) {
        if let Some(c) = char::from_u32(c).filter(|c| !c.is_control()) {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Typed::Char(c));
        }
    }

    fn set_key_state(&mut self, key: MKey, down: bool) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(if down {
                Typed::Down(key)
            } else {
                Typed::Up(key)
            });
    }
}

/// Turns the ordered key log into input events: characters as text, named keys and
/// Ctrl/Alt/Super shortcuts as key presses (Shift is already in the characters).
#[derive(Default)]
struct KeyTranslator {
    modifiers_down: u32,
    shortcut_down: Vec<char>,
    text: String,
}

impl KeyTranslator {
    fn feed(&mut self, ev: Typed, out: &mut Vec<InputEvent>) {
        match ev {
            Typed::Char(c) => {
                if self.modifiers_down == 0 {
                    self.text.push(c);
                }
                return;
            }
            Typed::Down(k) | Typed::Up(k) if self.flush_first(k) => self.flush(out),
            _ => {}
        }
        match ev {
            Typed::Down(k) => {
                if let Some(n) = named(k) {
                    if matches!(n, NamedKey::Control | NamedKey::Alt | NamedKey::Meta) {
                        self.modifiers_down += 1;
                    }
                    out.push(InputEvent::Key {
                        key: Key::Named(n),
                        pressed: true,
                    });
                } else if let (true, Some(c)) = (self.modifiers_down > 0, shortcut_char(k)) {
                    self.shortcut_down.push(c);
                    out.push(InputEvent::Key {
                        key: Key::Char(c),
                        pressed: true,
                    });
                }
            }
            Typed::Up(k) => {
                if let Some(n) = named(k) {
                    if matches!(n, NamedKey::Control | NamedKey::Alt | NamedKey::Meta) {
                        self.modifiers_down = self.modifiers_down.saturating_sub(1);
                    }
                    out.push(InputEvent::Key {
                        key: Key::Named(n),
                        pressed: false,
                    });
                } else if let Some(c) = shortcut_char(k).filter(|c| self.shortcut_down.contains(c))
                {
                    self.shortcut_down.retain(|d| *d != c);
                    out.push(InputEvent::Key {
                        key: Key::Char(c),
                        pressed: false,
                    });
                }
            }
            Typed::Char(_) => {}
        }
    }

    /// Text typed before a named key or shortcut must arrive before it.
    fn flush_first(&self, k: MKey) -> bool {
        !self.text.is_empty() && (named(k).is_some() || self.modifiers_down > 0)
    }

    fn flush(&mut self, out: &mut Vec<InputEvent>) {
        if !self.text.is_empty() {
            out.push(InputEvent::Text(std::mem::take(&mut self.text)));
        }
    }
}

fn named(k: MKey) -> Option<NamedKey> {
    use NamedKey as N;
    Some(match k {
        MKey::Enter | MKey::NumPadEnter => N::Return,
        MKey::Backspace => N::Backspace,
        MKey::Tab => N::Tab,
        MKey::Escape => N::Escape,
        MKey::Delete => N::Delete,
        MKey::Insert => N::Insert,
        MKey::Left => N::Left,
        MKey::Right => N::Right,
        MKey::Up => N::Up,
        MKey::Down => N::Down,
        MKey::Home => N::Home,
        MKey::End => N::End,
        MKey::PageUp => N::PageUp,
        MKey::PageDown => N::PageDown,
        MKey::LeftCtrl | MKey::RightCtrl => N::Control,
        MKey::LeftAlt | MKey::RightAlt => N::Alt,
        MKey::LeftSuper | MKey::RightSuper => N::Meta,
        MKey::F1 => N::F(1),
        MKey::F2 => N::F(2),
        MKey::F3 => N::F(3),
        MKey::F4 => N::F(4),
        MKey::F5 => N::F(5),
        MKey::F6 => N::F(6),
        MKey::F7 => N::F(7),
        MKey::F8 => N::F(8),
        MKey::F9 => N::F(9),
        MKey::F10 => N::F(10),
        MKey::F11 => N::F(11),
        MKey::F12 => N::F(12),
        _ => return None,
    })
}

/// A letter or digit key, for shortcuts like Ctrl+C (plain typing travels as text).
fn shortcut_char(k: MKey) -> Option<char> {
    let i = k as u32;
    if (MKey::A as u32..=MKey::Z as u32).contains(&i) {
        return char::from_u32('a' as u32 + i - MKey::A as u32);
    }
    if (MKey::Key0 as u32..=MKey::Key9 as u32).contains(&i) {
        return char::from_u32('0' as u32 + i - MKey::Key0 as u32);
    }
    None
}

/// Height of the status bar under the screen: 28 pixels at 1280 wide, grown with wider
/// screens so it keeps its size when the window scales the picture down.
fn status_bar_height(screen_width: usize) -> usize {
    (28.0 * (screen_width as f32 / 1280.0).max(1.0)) as usize
}

/// How long the window waits for a frame before it looks at the mouse and keyboard again.
const INPUT_POLL: Duration = Duration::from_millis(4);
/// How often the window is drawn whole where no connection of ours takes Expose events, to
/// heal what another window uncovered (about 8 ms of the viewer's time at Full HD).
const WHOLE_REDRAW_EVERY: Duration = Duration::from_secs(1);
const BAR_COLOUR: u32 = 0x1B1F24;

/// Paints the status bar: `footer` is `w` pixels wide and `bar` rows high.
fn draw_status(footer: &mut [u32], w: usize, bar: usize, status: &str, text: &TextRenderer) {
    footer.fill(BAR_COLOUR);
    let px = bar as f32 * 0.6;
    text.draw(
        (footer, w),
        (8, (bar as f32 * 0.15) as usize),
        status,
        px,
        0xF4F6F8,
    );
}

/// Runs the window on the main thread until the session ends or the window closes.
pub(crate) fn run(
    title: &str,
    (width, height): (usize, usize),
    input: mpsc::UnboundedSender<ViewerMessage>,
    events: std::sync::mpsc::Receiver<SessionEvent>,
) -> anyhow::Result<()> {
    let mut window = Window::new(
        &format!("{title} – connecting"),
        width,
        height + status_bar_height(width),
        WindowOptions {
            resize: true,
            scale_mode: ScaleMode::AspectRatioStretch,
            ..WindowOptions::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("cannot open the viewer window: {e}"))?;
    // Frames are drawn when they arrive; between them the loop waits on the session's events.
    window.set_target_fps(0);
    let key_log = Arc::new(Mutex::new(Vec::new()));
    window.set_input_callback(Box::new(KeyLog(key_log.clone())));
    let mut keys = KeyTranslator::default();
    let mut fb: Option<Arc<Mutex<Framebuffer>>> = None;
    let (mut sw, mut sh) = (width, height);
    let text = TextRenderer::new();
    let mut status = String::from("connecting");
    let mut path = String::new();
    let mut dirty = true;
    let mut composed: Vec<u32> = Vec::new();
    let mut grant: Option<Grant> = None;
    let mut last_pos: Option<(u16, u16)> = None;
    let mut buttons = [false; 3];
    let mut ended = false;
    let mut frame_arrived = false;
    let blit = partial_blit(&window);
    // The picture size minifb last drew whole; until then, and after a change, it draws whole.
    let mut drawn_whole: Option<(usize, usize)> = None;
    // When the window was last drawn whole.
    let mut last_whole = Instant::now();
    // What the X server asked to be drawn again (another window uncovered it).
    let mut exposed: Vec<Rect> = Vec::new();
    while window.is_open() {
        let first = match events.recv_timeout(INPUT_POLL) {
            Ok(ev) => Some(ev),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                // The session is over; the window stays until it is closed.
                std::thread::sleep(INPUT_POLL);
                None
            }
        };
        for ev in first
            .into_iter()
            .chain(std::iter::from_fn(|| events.try_recv().ok()))
        {
            match ev {
                SessionEvent::Status(s) => {
                    window.set_title(&format!("{title} – {s}"));
                    status = s;
                    dirty = true;
                }
                SessionEvent::Grant(g) => grant = Some(g),
                SessionEvent::Path { kind, rtt_ms } => {
                    let now = format!("{kind} · {rtt_ms} ms");
                    if path != now {
                        path = now;
                        dirty = true;
                    }
                }
                SessionEvent::Frame { framebuffer, .. } => {
                    fb = Some(framebuffer);
                    frame_arrived = true;
                }
                SessionEvent::Ended(_) | SessionEvent::Failed(_) => {
                    status = match ev {
                        SessionEvent::Failed(e) => format!("error: {e}"),
                        SessionEvent::Ended(r) => format!("ended: {r}"),
                        _ => unreachable!("matched above"),
                    };
                    window.set_title(&format!("{title} – {status}"));
                    ended = true;
                    dirty = true;
                }
            }
        }
        // What another window uncovered stays damaged until drawn again, and changed boxes
        // may never touch it. Our own connection hears of it; minifb alone does not, so
        // without one the window is drawn whole once a second.
        if let Some(b) = &blit {
            let areas = uncovered_areas(b);
            if !areas.is_empty() {
                exposed.extend(areas);
                dirty |= fb.is_none();
            }
        } else if fb.is_some() && last_whole.elapsed() >= WHOLE_REDRAW_EVERY {
            drawn_whole = None;
            dirty = true;
        }
        let line = || {
            if path.is_empty() {
                format!("{title} · {status}")
            } else {
                format!("{title} · {status} · {path}")
            }
        };
        if let (Some(shared), true) = (&fb, frame_arrived || dirty || !exposed.is_empty()) {
            // The window shows the framebuffer itself: the cursor goes on for the drawing and
            // comes off again, the status bar lives in the framebuffer's footer rows.
            let mut f = shared.lock().unwrap_or_else(|e| e.into_inner());
            (sw, sh) = (f.width, f.height);
            let bar = status_bar_height(sw);
            if f.total_height() != sh + bar {
                f.set_footer(bar);
                dirty = true;
            }
            let one_to_one = window.get_size() == (sw, sh + bar);
            let whole = drawn_whole != Some((sw, sh + bar)) || !one_to_one;
            // A new status line (the path's round trip changes often) is the footer alone.
            let status = std::mem::take(&mut dirty).then(|| {
                draw_status(f.footer_mut(), sw, bar, &line(), &text);
                Rect {
                    x: 0,
                    y: sh as u16,
                    w: sw as u16,
                    h: bar as u16,
                }
            });
            f.show_cursor();
            let changed = f.take_dirty();
            let shown = match &blit {
                // Where the picture is 1:1 our connection draws everything, the whole picture
                // too: requests of two connections are not ordered, so a whole picture from
                // minifb could land after a newer changed box and cover it.
                Some(b) if one_to_one => {
                    let everything = Rect {
                        x: 0,
                        y: 0,
                        w: sw as u16,
                        h: (sh + bar) as u16,
                    };
                    let areas: Vec<Rect> = if whole {
                        drawn_whole = Some((sw, sh + bar));
                        last_whole = Instant::now();
                        exposed.clear();
                        vec![everything]
                    } else {
                        let uncovered = exposed.drain(..).filter_map(|r| r.clip(sw, sh + bar));
                        changed.into_iter().chain(status).chain(uncovered).collect()
                    };
                    let shown = areas
                        .into_iter()
                        .try_for_each(|area| put(b, &f.pixels, sw, area));
                    window.update();
                    shown
                }
                None if !whole && changed.is_none() && status.is_none() => {
                    window.update();
                    Ok(())
                }
                _ => {
                    exposed.clear();
                    drawn_whole = Some((sw, sh + bar));
                    last_whole = Instant::now();
                    window
                        .update_with_buffer(&f.pixels, sw, sh + bar)
                        .map_err(Into::into)
                }
            };
            f.hide_cursor();
            shown?;
            frame_arrived = false;
        } else if std::mem::take(&mut dirty) {
            exposed.clear();
            let bar = status_bar_height(sw);
            composed.clear();
            composed.resize(sw * sh, 0x202020);
            composed.resize(sw * (sh + bar), 0);
            draw_status(&mut composed[sw * sh..], sw, bar, &line(), &text);
            window.update_with_buffer(&composed, sw, sh + bar)?;
        } else {
            window.update();
        }
        if ended || grant != Some(Grant::Control) || fb.is_none() {
            key_log.lock().unwrap_or_else(|e| e.into_inner()).clear();
            continue;
        }
        // Map window coordinates to the remote screen, undoing the aspect-ratio fit.
        let (ww, wh) = window.get_size();
        let total_h = (sh + status_bar_height(sw)) as f32;
        let scale = (ww as f32 / sw as f32).min(wh as f32 / total_h);
        let (ox, oy) = (
            (ww as f32 - sw as f32 * scale) / 2.0,
            (wh as f32 - total_h * scale) / 2.0,
        );
        if let Some((mx, my)) = pointer_in(&window) {
            let (rx, ry) = ((mx - ox) / scale, (my - oy) / scale);
            if rx >= 0.0 && ry >= 0.0 && (rx as usize) < sw && (ry as usize) < sh {
                let pos = (rx as u16, ry as u16);
                if last_pos != Some(pos) {
                    last_pos = Some(pos);
                    let _ = input.send(ViewerMessage::Input(InputEvent::PointerMove {
                        x: pos.0,
                        y: pos.1,
                    }));
                }
            }
        }
        for (i, (mb, b)) in [
            (MButton::Left, MouseButton::Left),
            (MButton::Middle, MouseButton::Middle),
            (MButton::Right, MouseButton::Right),
        ]
        .into_iter()
        .enumerate()
        {
            let down = window.get_mouse_down(mb);
            if down != buttons[i] {
                buttons[i] = down;
                let _ = input.send(ViewerMessage::Input(InputEvent::Button {
                    button: b,
                    pressed: down,
                }));
            }
        }
        if let Some((dx, dy)) = window.get_scroll_wheel() {
            // The agent refuses longer events; a fast flick loses nothing a person would miss.
            let notches = |d: f32| {
                let max = f32::from(protocol::session::MAX_WHEEL_NOTCHES);
                d.round().clamp(-max, max) as i16
            };
            let _ = input.send(ViewerMessage::Input(InputEvent::Wheel {
                dx: notches(dx),
                dy: notches(dy),
            }));
        }
        let logged: Vec<Typed> =
            std::mem::take(&mut *key_log.lock().unwrap_or_else(|e| e.into_inner()));
        let mut events = Vec::new();
        for ev in logged {
            keys.feed(ev, &mut events);
        }
        keys.flush(&mut events);
        for ev in events {
            let _ = input.send(ViewerMessage::Input(ev));
        }
    }
    if !ended {
        let _ = input.send(ViewerMessage::End(EndReason::EndedByViewer));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
use crate::x11_blit::PartialBlit;

/// Where the pointer is in the window's drawing area, read after the window handled its
/// messages. minifb on Windows reads it before: a press that came with the move to it (a
/// quick flick and click; under Wine, every warp and click) was sent at the old place.
fn pointer_in(window: &Window) -> Option<(f32, f32)> {
    #[cfg(windows)]
    {
        use windows::Win32::Foundation::{HWND, POINT};
        use windows::Win32::Graphics::Gdi::ScreenToClient;
        use windows::Win32::UI::WindowsAndMessaging::GetCursorPos;
        let mut p = POINT::default();
        // SAFETY: the handle is this thread's live window; both calls only fill `p`.
        let found = unsafe {
            GetCursorPos(&mut p).is_ok()
                && ScreenToClient(HWND(window.get_window_handle()), &mut p).as_bool()
        };
        let (w, h) = window.get_size();
        let inside = p.x >= 0 && p.y >= 0 && (p.x as usize) < w && (p.y as usize) < h;
        (found && inside).then_some((p.x as f32, p.y as f32))
    }
    #[cfg(not(windows))]
    window.get_unscaled_mouse_pos(minifb::MouseMode::Discard)
}

/// Where the changed part alone can be drawn (X11): a connection of our own to the window.
#[cfg(target_os = "linux")]
fn partial_blit(window: &Window) -> Option<PartialBlit> {
    let blit = PartialBlit::new(window.get_window_handle() as usize as u32);
    match blit {
        Some(_) => println!("window draws changed boxes"),
        None => tracing::info!("this display takes no partial drawing; the window is drawn whole"),
    }
    blit
}

#[cfg(target_os = "linux")]
fn put(blit: &PartialBlit, pixels: &[u32], stride: usize, area: Rect) -> anyhow::Result<()> {
    blit.put(pixels, stride, area)
}

/// What the X server asked to be drawn again since the last look.
#[cfg(target_os = "linux")]
fn uncovered_areas(blit: &PartialBlit) -> Vec<Rect> {
    blit.exposed()
}

/// Elsewhere minifb draws the window whole (Windows: one `StretchDIBits` from memory).
#[cfg(not(target_os = "linux"))]
type PartialBlit = std::convert::Infallible;

#[cfg(not(target_os = "linux"))]
fn partial_blit(_: &Window) -> Option<PartialBlit> {
    None
}

#[cfg(not(target_os = "linux"))]
fn put(blit: &PartialBlit, _: &[u32], _: usize, _: Rect) -> anyhow::Result<()> {
    match *blit {}
}

#[cfg(not(target_os = "linux"))]
fn uncovered_areas(blit: &PartialBlit) -> Vec<Rect> {
    match *blit {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(log: Vec<Typed>) -> Vec<InputEvent> {
        let mut t = KeyTranslator::default();
        let mut out = Vec::new();
        for ev in log {
            t.feed(ev, &mut out);
        }
        t.flush(&mut out);
        out
    }

    #[test]
    fn quick_ctrl_c_keeps_its_order() {
        let out = translate(vec![
            Typed::Char('a'),
            Typed::Down(MKey::LeftCtrl),
            Typed::Down(MKey::C),
            Typed::Up(MKey::C),
            Typed::Up(MKey::LeftCtrl),
        ]);
        let k = |key, pressed| InputEvent::Key { key, pressed };
        assert_eq!(
            out,
            vec![
                InputEvent::Text("a".into()),
                k(Key::Named(NamedKey::Control), true),
                k(Key::Char('c'), true),
                k(Key::Char('c'), false),
                k(Key::Named(NamedKey::Control), false),
            ]
        );
    }

    #[test]
    fn plain_typing_is_text_without_key_events() {
        let out = translate(vec![
            Typed::Down(MKey::G),
            Typed::Char('G'),
            Typed::Up(MKey::G),
            Typed::Char('ü'),
            Typed::Char('€'),
        ]);
        assert_eq!(out, vec![InputEvent::Text("Gü€".into())]);
    }
}
