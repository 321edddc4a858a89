//! Test probe on the agent's display: covers the screen with a known picture and prints every
//! key and button it receives, so tests can check what the agent injected, on the display
//! itself, while the agent is still connected.
//!
//! With `--echo`, every key press also paints the top-left 128×128 pixels with new noise, so a
//! test can see the screen change that typing causes come back to the viewer.
//!
//! With `--raw`, it shows no window and prints every pointer motion and button press the X
//! server receives from any device, wherever the pointer is (XInput 2 raw events on the root
//! window), as `raw motion` and `raw button N`: what was injected, over whatever window.
//!
//! Output lines: `ready`, `button N X Y`, `key TEXT` (TEXT is the character typed, or
//! `ctrl+c` style for shortcuts). Without `--raw`, pointer motion is not printed: tests read
//! the pointer with xdotool.

use std::io::Write;
use x11rb::connection::Connection;
use x11rb::protocol::xinput::{self, ConnectionExt as _};
use x11rb::protocol::xproto::*;
use x11rb::protocol::Event;
use x11rb::wrapper::ConnectionExt as _;

/// The known picture: gradients, a checkerboard and fine stripes, so tile edges, colours and
/// single-pixel detail all have to come through exactly.
pub fn pattern(x: u32, y: u32) -> [u8; 3] {
    let checker = ((x / 37) + (y / 23)).is_multiple_of(2);
    let r = (x * 255 / 1279).min(255) as u8;
    let g = (y * 255 / 799).min(255) as u8;
    let b = if checker { 0x30 } else { 0xC0 } ^ ((x ^ y) & 0x0F) as u8;
    if y.is_multiple_of(97) || x.is_multiple_of(131) {
        return [255 - r, 255 - g, 255 - b];
    }
    [r, g, b]
}

/// Side of the square `--echo` repaints.
const ECHO: usize = 128;

fn keysym_to_text(sym: u32) -> Option<String> {
    let c = match sym {
        0x20..=0x7e | 0xa0..=0xff => char::from_u32(sym)?,
        0x20ac => '€',
        0x0100_0000..=0x0110_ffff => char::from_u32(sym - 0x0100_0000)?,
        0xff0d => '\n',
        0xff09 => '\t',
        _ => return None,
    };
    Some(c.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let echo = std::env::args().any(|a| a == "--echo");
    let raw = std::env::args().any(|a| a == "--raw");
    let mut keys_seen: u32 = 0;
    let (conn, screen_num) = x11rb::connect(None)?;
    let screen = &conn.setup().roots[screen_num];
    if raw {
        return log_raw_input(&conn, screen.root);
    }
    let (w, h) = (screen.width_in_pixels, screen.height_in_pixels);
    let win = conn.generate_id()?;
    conn.create_window(
        screen.root_depth,
        win,
        screen.root,
        0,
        0,
        w,
        h,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new()
            .override_redirect(1)
            .background_pixel(0)
            .event_mask(EventMask::EXPOSURE | EventMask::KEY_PRESS | EventMask::BUTTON_PRESS),
    )?;
    conn.change_property8(
        PropMode::REPLACE,
        win,
        AtomEnum::WM_NAME,
        AtomEnum::STRING,
        b"xprobe",
    )?;
    let gc = conn.generate_id()?;
    conn.create_gc(gc, win, &CreateGCAux::new())?;
    let mut rows = Vec::with_capacity(w as usize * h as usize * 4);
    for y in 0..h as u32 {
        for x in 0..w as u32 {
            let [r, g, b] = pattern(x, y);
            rows.extend_from_slice(&[b, g, r, 0]);
        }
    }
    conn.map_window(win)?;
    // Put the pointer's focus on us without a window manager.
    conn.set_input_focus(InputFocus::POINTER_ROOT, 1u32, x11rb::CURRENT_TIME)?;
    conn.flush()?;
    let draw =
        |conn: &x11rb::rust_connection::RustConnection| -> Result<(), Box<dyn std::error::Error>> {
            let band = 32usize;
            for y0 in (0..h as usize).step_by(band) {
                let bh = band.min(h as usize - y0);
                let data = &rows[y0 * w as usize * 4..(y0 + bh) * w as usize * 4];
                conn.put_image(
                    ImageFormat::Z_PIXMAP,
                    win,
                    gc,
                    w,
                    bh as u16,
                    0,
                    y0 as i16,
                    0,
                    screen.root_depth,
                    data,
                )?;
            }
            conn.flush()?;
            Ok(())
        };
    let mut out = std::io::stdout();
    let mut announced = false;
    loop {
        match conn.wait_for_event()? {
            Event::Expose(e) if e.count == 0 => {
                draw(&conn)?;
                if !announced {
                    conn.sync()?;
                    writeln!(out, "ready")?;
                    announced = true;
                }
            }
            Event::ButtonPress(b) => {
                writeln!(out, "button {} {} {}", b.detail, b.root_x, b.root_y)?
            }
            Event::KeyPress(k) => {
                // Ask for the mapping now: the agent maps characters to spare keycodes on demand.
                let map = conn.get_keyboard_mapping(k.detail, 1)?.reply()?;
                let per = map.keysyms_per_keycode as usize;
                let shifted = u16::from(k.state) & u16::from(KeyButMask::SHIFT) != 0;
                let col = if shifted && per > 1 && map.keysyms[1] != 0 {
                    1
                } else {
                    0
                };
                let sym = map.keysyms.get(col).copied().unwrap_or(0);
                let ctrl = u16::from(k.state) & u16::from(KeyButMask::CONTROL) != 0;
                match (keysym_to_text(sym), ctrl) {
                    (Some(t), true) => writeln!(out, "key ctrl+{t}")?,
                    (Some(t), false) => {
                        writeln!(out, "key {}", if t == "\n" { "RET".into() } else { t })?
                    }
                    (None, _) => {}
                }
                if echo {
                    keys_seen += 1;
                    // Noise, so the change costs what a small dialog would, not one colour.
                    let mut x = keys_seen.wrapping_mul(0x9e37_79b9) | 1;
                    let mut noise = Vec::with_capacity(ECHO * ECHO * 4);
                    for _ in 0..ECHO * ECHO {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        noise.extend_from_slice(&x.to_le_bytes()[..3]);
                        noise.push(0);
                    }
                    conn.put_image(
                        ImageFormat::Z_PIXMAP,
                        win,
                        gc,
                        ECHO as u16,
                        ECHO as u16,
                        0,
                        0,
                        0,
                        screen.root_depth,
                        &noise,
                    )?;
                    conn.flush()?;
                }
            }
            _ => {}
        }
        out.flush()?;
    }
}

/// `--raw`: prints the pointer input the server receives from any device, until killed.
fn log_raw_input(
    conn: &x11rb::rust_connection::RustConnection,
    root: Window,
) -> Result<(), Box<dyn std::error::Error>> {
    let version = conn.xinput_xi_query_version(2, 0)?.reply()?;
    if version.major_version < 2 {
        return Err("the X server has no XInput 2".into());
    }
    conn.xinput_xi_select_events(
        root,
        &[xinput::EventMask {
            deviceid: xinput::Device::ALL.into(),
            mask: vec![xinput::XIEventMask::RAW_MOTION | xinput::XIEventMask::RAW_BUTTON_PRESS],
        }],
    )?
    .check()?;
    let mut out = std::io::stdout();
    writeln!(out, "ready")?;
    out.flush()?;
    loop {
        // Each event comes once from the device that made it and once more through the
        // master device it is attached to: print it once (before, a test that waited for the
        // first copy could see the second one late, as an event of its own).
        match conn.wait_for_event()? {
            Event::XinputRawMotion(m) if m.deviceid == m.sourceid => writeln!(out, "raw motion")?,
            Event::XinputRawButtonPress(b) if b.deviceid == b.sourceid => {
                writeln!(out, "raw button {}", b.detail)?
            }
            _ => {}
        }
        out.flush()?;
    }
}
