//! The screen benchmark's hands and eyes (`bench/screen.sh`): draws the scripted workloads on
//! the PC's display and watches the viewer's display, the same way for every system measured.
//!
//! - `calibrate PC VIEWER`: paints a marker on the PC, finds it on the viewer's display and
//!   prints `offset X Y` (where the PC's (0,0) shows on the viewer's display).
//! - `latency PC VIEWER OX OY N OUT`: N times paints a square in a new colour, and times until
//!   the viewer's display shows it (screen to screen); writes the milliseconds to OUT.
//! - `slideshow PC SECONDS_EACH PNG...`: shows the photos one after the other in one window.
//! - `video PC VIEWER OX OY SECONDS FPS PNG`: pans the photo across the whole screen at FPS
//!   while its brightness pulses (so no frame is a moved copy of the last, as in a film), with
//!   the frame number in a corner block, and counts how many distinct frames the viewer showed:
//!   prints `video sent N shown M`.
//! - `drag PC WINDOW_ID SECONDS`: moves the window along a loop, 25 moves per second.
//! - `plot OUT.png NAME=FILE...`: the latency distributions side by side.
//! - `warp PC X Y`: moves the pointer as an application does (`WarpPointer`), which no input
//!   device reports.

use std::io::Write;
use std::time::{Duration, Instant};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::*;
use x11rb::rust_connection::RustConnection;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Display {
    conn: RustConnection,
    root: Window,
    depth: u8,
    width: u16,
    height: u16,
}

impl Display {
    fn open(name: &str) -> Res<Self> {
        let (conn, n) = x11rb::connect(Some(name))?;
        let s = &conn.setup().roots[n];
        let (root, depth, width, height) =
            (s.root, s.root_depth, s.width_in_pixels, s.height_in_pixels);
        Ok(Self {
            conn,
            root,
            depth,
            width,
            height,
        })
    }

    /// An override-redirect window (no window manager gets involved), mapped.
    fn window(&self, x: i16, y: i16, w: u16, h: u16, colour: u32) -> Res<Window> {
        let win = self.conn.generate_id()?;
        self.conn.create_window(
            self.depth,
            win,
            self.root,
            x,
            y,
            w,
            h,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new()
                .override_redirect(1)
                .background_pixel(colour),
        )?;
        self.conn.map_window(win)?;
        self.sync()?;
        Ok(win)
    }

    fn fill(&self, win: Window, colour: u32) -> Res<()> {
        self.conn.change_window_attributes(
            win,
            &ChangeWindowAttributesAux::new().background_pixel(colour),
        )?;
        self.conn.clear_area(false, win, 0, 0, 0, 0)?;
        self.sync()
    }

    /// Waits until the server has done everything asked so far.
    fn sync(&self) -> Res<()> {
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }

    /// Puts BGRX pixels into a window, in strips that fit any request size.
    fn put(&self, win: Window, gc: Gcontext, w: u16, h: u16, bgrx: &[u8]) -> Res<()> {
        let rows = (200_000 / (w as usize * 4)).max(1);
        for y0 in (0..h as usize).step_by(rows) {
            let n = rows.min(h as usize - y0);
            self.conn.put_image(
                ImageFormat::Z_PIXMAP,
                win,
                gc,
                w,
                n as u16,
                0,
                y0 as i16,
                0,
                self.depth,
                &bgrx[y0 * w as usize * 4..][..n * w as usize * 4],
            )?;
        }
        Ok(())
    }

    fn gc(&self, win: Window) -> Res<Gcontext> {
        let gc = self.conn.generate_id()?;
        self.conn.create_gc(gc, win, &CreateGCAux::new())?;
        Ok(gc)
    }

    /// The pixel at (x, y) as 0xRRGGBB.
    fn pixel(&self, x: i16, y: i16) -> Res<u32> {
        let img = self
            .conn
            .get_image(ImageFormat::Z_PIXMAP, self.root, x, y, 1, 1, !0)?
            .reply()?;
        let d = &img.data;
        Ok(u32::from_le_bytes([d[0], d[1], d[2], 0]))
    }

    /// The whole screen, BGRX.
    fn screen(&self) -> Res<Vec<u8>> {
        let mut out = Vec::with_capacity(self.width as usize * self.height as usize * 4);
        let rows = 100u16;
        for y in (0..self.height).step_by(rows as usize) {
            let n = rows.min(self.height - y);
            let img = self
                .conn
                .get_image(
                    ImageFormat::Z_PIXMAP,
                    self.root,
                    0,
                    y as i16,
                    self.width,
                    n,
                    !0,
                )?
                .reply()?;
            out.extend_from_slice(&img.data);
        }
        Ok(out)
    }
}

/// Whether two colours match within what a JPEG-coding peer changes.
fn close(a: u32, b: u32) -> bool {
    [16, 8, 0]
        .iter()
        .all(|s| ((a >> s) as u8).abs_diff((b >> s) as u8) <= 24)
}

/// The probe square: where on the PC and how big.
const PROBE: (i16, i16, u16) = (1700, 420, 64);

fn calibrate(pc: &str, viewer: &str) -> Res<()> {
    let (pc, v) = (Display::open(pc)?, Display::open(viewer)?);
    let marker = 0xFF00FF;
    let win = pc.window(PROBE.0, PROBE.1, PROBE.2, PROBE.2, marker)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let shot = v.screen()?;
        let (mut n, mut sx, mut sy) = (0u64, 0u64, 0u64);
        for (i, p) in shot.chunks_exact(4).enumerate() {
            if close(u32::from_le_bytes([p[0], p[1], p[2], 0]), marker) {
                n += 1;
                sx += (i % v.width as usize) as u64;
                sy += (i / v.width as usize) as u64;
            }
        }
        if n > (PROBE.2 as u64).pow(2) / 2 {
            let (cx, cy) = ((sx / n) as i64, (sy / n) as i64);
            let half = PROBE.2 as i64 / 2;
            println!(
                "offset {} {}",
                cx - PROBE.0 as i64 - half,
                cy - PROBE.1 as i64 - half
            );
            pc.conn.destroy_window(win)?;
            pc.sync()?;
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the marker never showed on the viewer's display".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn latency(pc: &str, viewer: &str, ox: i16, oy: i16, n: usize, out: &str) -> Res<()> {
    let (pc, v) = (Display::open(pc)?, Display::open(viewer)?);
    let half = PROBE.2 as i16 / 2;
    let (vx, vy) = (PROBE.0 + half + ox, PROBE.1 + half + oy);
    let colours = [0x00C8FF, 0xFF7800, 0x28DC3C, 0xE6E6E6];
    let win = pc.window(PROBE.0, PROBE.1, PROBE.2, PROBE.2, colours[3])?;
    std::thread::sleep(Duration::from_millis(500));
    let mut file = std::fs::File::create(out)?;
    let mut missed = 0;
    for i in 0..n {
        let c = colours[i % 3];
        pc.fill(win, c)?;
        let t0 = Instant::now();
        loop {
            if close(v.pixel(vx, vy)?, c) {
                writeln!(file, "{:.2}", t0.elapsed().as_secs_f64() * 1000.0)?;
                break;
            }
            if t0.elapsed() > Duration::from_secs(2) {
                missed += 1;
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        // Irregular pauses, so the probe does not lock onto a capture rhythm.
        std::thread::sleep(Duration::from_millis(120 + (i as u64 * 37) % 80));
    }
    pc.conn.destroy_window(win)?;
    pc.sync()?;
    println!("latency samples {} missed {missed}", n - missed);
    Ok(())
}

/// A PNG as BGRX.
fn load(path: &str) -> Res<(u16, u16, Vec<u8>)> {
    let img = image::open(path)?.to_rgb8();
    let (w, h) = img.dimensions();
    let mut bgrx = Vec::with_capacity(w as usize * h as usize * 4);
    for p in img.pixels() {
        bgrx.extend_from_slice(&[p[2], p[1], p[0], 0]);
    }
    Ok((w as u16, h as u16, bgrx))
}

fn slideshow(pc: &str, each: f64, photos: &[String]) -> Res<()> {
    let pc = Display::open(pc)?;
    let imgs = photos.iter().map(|p| load(p)).collect::<Res<Vec<_>>>()?;
    let (w, h) = (imgs[0].0, imgs[0].1);
    let x = (pc.width - w) as i16 / 2;
    let y = (pc.height - h) as i16 / 2;
    let win = pc.window(x, y, w, h, 0)?;
    let gc = pc.gc(win)?;
    for (_, _, px) in &imgs {
        pc.put(win, gc, w, h, px)?;
        pc.sync()?;
        std::thread::sleep(Duration::from_secs_f64(each));
    }
    pc.conn.destroy_window(win)?;
    pc.sync()?;
    Ok(())
}

fn frame_colour(i: u32) -> u32 {
    // Far apart from one frame to the next, so a JPEG-coding peer cannot blur two together.
    let v = i.wrapping_mul(0x9E37_79B9);
    (v >> 8) & 0xC0C0C0 | 0x202020
}

fn video(
    pc_name: &str,
    viewer: &str,
    ox: i16,
    oy: i16,
    secs: f64,
    fps: f64,
    photo: &str,
) -> Res<()> {
    let pc = Display::open(pc_name)?;
    let (pw, ph, px) = load(photo)?;
    let (w, h) = (pc.width, pc.height);
    let win = pc.window(0, 0, w, h, 0)?;
    let gc = pc.gc(win)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let viewer = viewer.to_owned();
        std::thread::spawn(move || -> Res<usize> {
            let v = Display::open(&viewer)?;
            let mut seen = std::collections::HashSet::new();
            let mut last = None;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let p = v.pixel(16 + ox, 16 + oy)?;
                if last != Some(p) {
                    last = Some(p);
                    seen.insert(p);
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            Ok(seen.len())
        })
    };
    let mut frame = vec![0u8; w as usize * h as usize * 4];
    let start = Instant::now();
    let mut sent = 0u32;
    while start.elapsed().as_secs_f64() < secs {
        let shift = (sent as usize * 12) % pw as usize;
        let gain = 200 + (sent % 16) * 4;
        for y in 0..h as usize {
            let sy = (y * ph as usize / h as usize).min(ph as usize - 1);
            for x in 0..w as usize {
                let sx = (x + shift) % pw as usize;
                let src = &px[(sy * pw as usize + sx) * 4..][..4];
                let dst = &mut frame[(y * w as usize + x) * 4..][..4];
                for c in 0..3 {
                    dst[c] = (src[c] as u32 * gain / 256).min(255) as u8;
                }
            }
        }
        let c = frame_colour(sent).to_le_bytes();
        for y in 0..32 {
            for x in 0..32 {
                frame[(y * w as usize + x) * 4..][..4].copy_from_slice(&[c[0], c[1], c[2], 0]);
            }
        }
        pc.put(win, gc, w, h, &frame)?;
        pc.sync()?;
        sent += 1;
        let next = Duration::from_secs_f64(sent as f64 / fps);
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let shown = watcher.join().map_err(|_| "watcher panicked")??;
    pc.conn.destroy_window(win)?;
    pc.sync()?;
    // The first colour seen is the desktop's before the video window.
    println!(
        "video sent {sent} shown {} seconds {:.2}",
        shown.saturating_sub(1),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn drag(pc: &str, win: u32, secs: f64) -> Res<()> {
    let pc = Display::open(pc)?;
    let geo = pc.conn.get_geometry(win)?.reply()?;
    let (x0, y0) = (geo.x as f64, geo.y as f64);
    let start = Instant::now();
    let mut i = 0u32;
    while start.elapsed().as_secs_f64() < secs {
        let t = start.elapsed().as_secs_f64() / secs * std::f64::consts::TAU;
        let (x, y) = (x0 + 500.0 * (t / 2.0).sin(), y0 + 250.0 * t.sin());
        pc.conn
            .configure_window(win, &ConfigureWindowAux::new().x(x as i32).y(y as i32))?;
        pc.sync()?;
        i += 1;
        let next = Duration::from_millis(40 * i as u64);
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    pc.conn.configure_window(
        win,
        &ConfigureWindowAux::new().x(geo.x as i32).y(geo.y as i32),
    )?;
    pc.sync()?;
    println!("drag moves {i}");
    Ok(())
}

fn plot(out: &str, series: &[String]) -> Res<()> {
    let (w, h) = (1000usize, 110 + 70 * series.len());
    let mut canvas = vec![0xFFFFFFu32; w * h];
    let text = text_render::TextRenderer::new();
    let data: Vec<(String, Vec<f64>)> = series
        .iter()
        .map(|s| -> Res<_> {
            let (name, file) = s.split_once('=').ok_or("NAME=FILE")?;
            let mut v: Vec<f64> = std::fs::read_to_string(file)?
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            v.sort_by(f64::total_cmp);
            Ok((name.to_owned(), v))
        })
        .collect::<Res<_>>()?;
    let quantile = |v: &[f64], p: f64| {
        v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let max = data
        .iter()
        .map(|(_, v)| quantile(v, 0.99))
        .filter(|m| m.is_finite())
        .fold(10.0f64, f64::max)
        .min(250.0)
        * 1.1;
    let left = 260usize;
    let scale = |ms: f64| left + ((ms / max).min(1.0) * (w - left - 30) as f64) as usize;
    let put = |x: usize, y: usize, c: u32, canvas: &mut Vec<u32>| {
        if x < w && y < h {
            canvas[y * w + x] = c;
        }
    };
    let palette = [0x0072B2, 0xD55E00, 0x009E73, 0xCC79A7, 0x56B4E9];
    text.draw(
        (&mut canvas, w),
        (10, 8),
        "change -> pixels on the viewer's screen, ms (ticks: samples, bar: p50, dashes: p99)",
        18.0,
        0,
    );
    for (i, (name, v)) in data.iter().enumerate() {
        let top = 40 + 70 * i;
        let c = palette[i % palette.len()];
        let label = format!(
            "{name}: p50 {:.1} / p99 {:.1}",
            quantile(v, 0.5),
            quantile(v, 0.99)
        );
        text.draw((&mut canvas, w), (10, top + 14), &label, 15.0, 0);
        for s in v {
            for dy in 10..40 {
                put(scale(*s), top + dy, c, &mut canvas);
            }
        }
        if !v.is_empty() {
            for dy in 0..50 {
                put(scale(quantile(v, 0.5)), top + dy, 0, &mut canvas);
                put(scale(quantile(v, 0.5)) + 1, top + dy, 0, &mut canvas);
                if dy % 6 < 3 {
                    put(scale(quantile(v, 0.99)), top + dy, 0, &mut canvas);
                }
            }
        }
    }
    let axis_y = h - 55;
    for x in scale(0.0)..=scale(max) {
        put(x, axis_y, 0, &mut canvas);
    }
    let step = if max > 100.0 { 20.0 } else { 10.0 };
    let mut ms = 0.0;
    while ms <= max {
        for dy in 0..8 {
            put(scale(ms), axis_y + dy, 0, &mut canvas);
        }
        text.draw(
            (&mut canvas, w),
            (scale(ms).saturating_sub(8), axis_y + 12),
            &format!("{ms}"),
            14.0,
            0,
        );
        ms += step;
    }
    let rgb: Vec<u8> = canvas
        .iter()
        .flat_map(|p| [(p >> 16) as u8, (p >> 8) as u8, *p as u8])
        .collect();
    image::save_buffer(
        out,
        &rgb,
        w as u32,
        h as u32,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| -> Res<&str> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| "missing argument (see the file's header)".into())
    };
    let num = |i: usize| -> Res<f64> { Ok(a(i)?.parse()?) };
    match a(0)? {
        "calibrate" => calibrate(a(1)?, a(2)?),
        "latency" => latency(
            a(1)?,
            a(2)?,
            num(3)? as i16,
            num(4)? as i16,
            num(5)? as usize,
            a(6)?,
        ),
        "slideshow" => slideshow(a(1)?, num(2)?, &args[3..]),
        "video" => video(
            a(1)?,
            a(2)?,
            num(3)? as i16,
            num(4)? as i16,
            num(5)?,
            num(6)?,
            a(7)?,
        ),
        "drag" => drag(a(1)?, num(2)? as u32, num(3)?),
        "plot" => plot(a(1)?, &args[2..]),
        "warp" => {
            let pc = Display::open(a(1)?)?;
            pc.conn.warp_pointer(
                x11rb::NONE,
                pc.root,
                0,
                0,
                0,
                0,
                num(2)? as i16,
                num(3)? as i16,
            )?;
            pc.sync()
        }
        other => Err(format!("unknown command '{other}'").into()),
    }
}
