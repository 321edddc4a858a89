//! The screen pipeline with real X clients on the PC: a scrolling terminal, a dragged window
//! and a photo slideshow reach the viewer bit for bit, and scrolls and moves travel as copies;
//! the pointer's moves reach the viewer without any drawing.

use e2e::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

/// A session past *Nur ansehen*, with an empty desktop and nothing on it yet.
struct Viewing {
    dir: PathBuf,
    display: Display,
    _relay: Relay,
    _agent: Proc,
    viewer: Proc,
}

fn viewing(test: &str) -> Option<Viewing> {
    if !require_tools(test, &["Xvfb", "xdotool", "xterm"]) {
        return None;
    }
    let dir = temp_dir(test);
    let display = Display::start(1280, 800);
    let relay = Relay::start(&dir);
    let agent = agent(&relay, &display, "4711", "PC-12", &dir, &[]);
    let code = current_code(&agent);
    let viewer = viewer(&relay, &relay.token, "4711", &code, &dir, &[]);
    agent.wait_for(Status::ConsentAsked, T);
    answer_consent(&agent, &display, "View");
    viewer.wait_line("grant View", T);
    settle(&viewer, Duration::from_millis(500), T);
    Some(Viewing {
        dir,
        display,
        _relay: relay,
        _agent: agent,
        viewer,
    })
}

impl Viewing {
    /// Starts an X client on the PC's display.
    fn client(&self, name: &str, program: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new(program);
        cmd.args(args).env("DISPLAY", &self.display.name);
        Proc::spawn(name, cmd, &self.dir)
    }

    /// Waits for the window titled `title` on the PC's display; its id.
    fn window(&self, title: &str) -> String {
        let mut win = String::new();
        assert!(
            wait_until(T, || {
                let found = self.display.xdotool(&["search", "--name", title]);
                win = found
                    .unwrap_or_default()
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                !win.is_empty()
            }),
            "the window '{title}' did not open"
        );
        win
    }

    /// Waits until an update puts the cursor at (x, y) on the viewer; panics after `T`.
    fn cursor_arrives(&self, x: i32, y: i32, how: &str) {
        let want = format!("cursor={x},{y}");
        assert!(
            wait_until(T, || self
                .viewer
                .lines()
                .iter()
                .any(|l| l.starts_with("frame ") && l.ends_with(&want))),
            "the pointer {how} to {x},{y}, but the viewer never learnt it"
        );
    }

    /// Copy operations the viewer applied so far.
    fn copies(&self) -> usize {
        self.viewer
            .lines()
            .iter()
            .filter_map(|l| l.strip_prefix("frame "))
            .filter_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("copies=")))
            .map(|n| n.parse::<usize>().unwrap())
            .sum()
    }

    /// Waits until the screen is still, then compares the viewer's picture with the display.
    fn assert_exact(&mut self, what: &str) {
        settle(&self.viewer, Duration::from_millis(700), T);
        let got = viewer_snapshot(&mut self.viewer, &self.dir, &format!("{what}.png"));
        let truth = self.display.screenshot();
        let diff = pixels_differing(&got, &truth);
        if diff > 0 {
            truth
                .save(self.dir.join(format!("{what}-display.png")))
                .ok();
        }
        assert_eq!(
            diff,
            0,
            "{what}: {diff} pixels differ (see {})",
            self.dir.display()
        );
    }
}

#[test]
fn a_scrolling_terminal_travels_as_copies_and_arrives_exactly() {
    let Some(mut v) = viewing("scrolling_terminal") else {
        return;
    };
    let script = "i=0; while [ $i -lt 300 ]; do i=$((i+1)); \
                  echo \"Zeile $i: der Drucker in Raum 204 meldet Fehler E-52, bitte pruefen\"; \
                  sleep 0.02; done; echo fertig; exec sleep 1000";
    let _term = v.client(
        "xterm",
        "xterm",
        &[
            "-geometry",
            "100x40+20+20",
            "-title",
            "zeilen",
            "-e",
            "sh",
            "-c",
            script,
        ],
    );
    let start = Instant::now();
    v.window("zeilen");
    // 300 lines at 20 ms: the terminal scrolls for at least 6 s.
    std::thread::sleep(Duration::from_secs(7).saturating_sub(start.elapsed()));
    v.assert_exact("terminal");
    let copies = v.copies();
    assert!(
        copies >= 20,
        "a terminal scrolling 300 lines took {copies} copy operations"
    );
    println!("terminal scroll: {copies} copies");
}

#[test]
fn a_dragged_window_travels_as_copies_and_arrives_exactly() {
    let Some(mut v) = viewing("dragged_window") else {
        return;
    };
    let _term = v.client(
        "xterm",
        "xterm",
        &[
            "-geometry",
            "70x20+100+100",
            "-title",
            "ziehen",
            "-e",
            "sh",
            "-c",
            "ls -l /usr/bin | head -19; exec sleep 1000",
        ],
    );
    let win = v.window("ziehen");
    v.assert_exact("before-drag");
    let before = v.copies();
    for i in 0..40 {
        let (x, y) = (100 + i * 12, 100 + i * 7);
        v.display
            .xdotool(&["windowmove", &win, &x.to_string(), &y.to_string()])
            .unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    v.assert_exact("after-drag");
    let copies = v.copies() - before;
    assert!(
        copies >= 10,
        "40 moves of a window took {copies} copy operations"
    );
    println!("window drag: {copies} copies");
}

#[test]
fn a_photo_slideshow_arrives_exactly() {
    let Some(mut v) = viewing("slideshow") else {
        return;
    };
    // Photo-like pictures: smooth gradients with fine noise, every pixel different.
    let mut photos = Vec::new();
    for seed in 1..=2u32 {
        let img = image::RgbImage::from_fn(800, 500, |x, y| {
            let n = (x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503 * seed)) >> 28;
            image::Rgb([
                ((x * seed / 4) % 200) as u8 + n as u8,
                ((y / 2 + x / 5) % 220) as u8 + n as u8,
                (((x + y) * seed / 7) % 230) as u8 + n as u8,
            ])
        });
        let path = v.dir.join(format!("photo{seed}.png"));
        img.save(&path).unwrap();
        photos.push(path.display().to_string());
    }
    let show = bin_dir().join("screenbench");
    let mut args = vec!["slideshow", &v.display.name, "4"];
    args.extend(photos.iter().map(String::as_str));
    let _show = v.client("slideshow", show.to_str().unwrap(), &args);
    std::thread::sleep(Duration::from_millis(800));
    v.assert_exact("photo1");
    std::thread::sleep(Duration::from_millis(4000));
    v.assert_exact("photo2");
}

#[test]
fn the_pointer_moved_on_the_pc_shows_on_the_viewer_without_any_drawing() {
    let Some(v) = viewing("pointer_moves") else {
        return;
    };
    // By a device (XTest, as a mouse): raw motion events wake the capture.
    for (x, y) in [(300, 200), (640, 401), (17, 780)] {
        v.display
            .xdotool(&["mousemove", &x.to_string(), &y.to_string()])
            .unwrap();
        v.cursor_arrives(x, y, "was moved by a device");
    }
    // By an application (WarpPointer): no device reports it; the capture looks once per wait.
    let warp = bin_dir().join("screenbench");
    let out = Command::new(warp)
        .args(["warp", &v.display.name, "1000", "123"])
        .output()
        .unwrap();
    assert!(out.status.success(), "warp failed: {out:?}");
    v.cursor_arrives(1000, 123, "was warped by an application");
}
