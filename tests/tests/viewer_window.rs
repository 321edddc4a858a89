//! The viewer's real window: on a second Xvfb display, xdotool moves, clicks and types into
//! the minifb window, and the input arrives on the agent's display, scaled back to its pixels.

use e2e::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

#[test]
fn window_input_reaches_the_agent_display() {
    if !require_tools(
        "window_input_reaches_the_agent_display",
        &["Xvfb", "xdotool"],
    ) {
        return;
    }
    let dir = temp_dir("window");
    let pc = Display::start(1280, 800);
    let desk = Display::start(1280, 900);
    let probe = probe(&pc, &dir);
    // ü, ß and € on keys of their own, as on the technician's German keyboard, before the
    // viewer starts (Xlib reads the keymap once; xdotool would otherwise remap keys on the fly).
    desk.map_keysyms(&[0xfc, 0xdf, 0x20ac]);
    let relay = Relay::start(&dir);
    let agent = agent(&relay, &pc, "4711", "PC-12", &dir, &[]);
    let mut viewer = window_viewer(&relay, &agent, &desk, &dir);
    agent.wait_for(Status::ConsentAsked, T);
    answer_consent(&agent, &pc, "Control");
    agent.wait_line("consent Control", T);
    viewer.wait_line("first-frame", T);

    let (win, (wx, wy)) = viewer_window(&desk);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (shot, truth) = (desk.screenshot(), pc.screenshot());
        let same = [(100, 100), (640, 500), (5, 790)]
            .iter()
            .all(|&(x, y)| shot.get_pixel(wx + x, wy + y) == truth.get_pixel(x, y));
        if same {
            break;
        }
        if Instant::now() > deadline {
            shot.save(dir.join("viewer-window.png")).unwrap();
            panic!(
                "the viewer window does not show the PC's screen; see {}",
                dir.join("viewer-window.png").display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    desk.xdotool(&["windowfocus", "--sync", &win]).unwrap();
    desk.xdotool(&["mousemove", "--window", &win, "400", "300"])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while pc.pointer() != (400, 300) {
        assert!(
            Instant::now() < deadline,
            "pointer on the PC: {:?}",
            pc.pointer()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    desk.xdotool(&["mousedown", "1", "sleep", "0.1", "mouseup", "1"])
        .unwrap();
    probe.wait_line("button 1 400 300", T);

    desk.xdotool(&["type", "--delay", "40", "Grüße ß €"])
        .unwrap();
    let want: Vec<String> = "Grüße ß €".chars().map(|c| format!("key {c}")).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = probe_lines(&probe, "key");
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "typed in the window: got {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    desk.xdotool(&["key", "ctrl+c"]).unwrap();
    probe.wait_line("key ctrl+c", T);

    // Closing the viewer window ends the session on both sides.
    let win = win.parse().expect("window id");
    assert_eq!(
        desk.close_and_wait_exit(win, &mut viewer, Duration::from_secs(3)),
        0
    );
    assert_eq!(agent_exit(agent), 0);
}

/// A viewer in its window on `desk`, for the code `agent` shows.
fn window_viewer(relay: &Relay, agent: &Proc, desk: &Display, dir: &std::path::Path) -> Proc {
    let code = current_code(agent);
    let mut cmd = viewer_command(
        &relay.addr,
        ["--relay-fingerprint", &relay.fingerprint],
        &relay.token,
        "4711",
        &code,
    );
    cmd.env("DISPLAY", &desk.name);
    Proc::spawn("viewer-window", cmd, dir)
}

/// The viewer's window on `desk` (1280x800 plus the 28-pixel status bar, so remote pixels map
/// 1:1): its id and where the picture starts.
fn viewer_window(desk: &Display) -> (String, (u32, u32)) {
    let win = desk
        .xdotool(&["search", "--name", "Ticket"])
        .expect("viewer window")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let geometry = desk.xdotool(&["getwindowgeometry", &win]).unwrap();
    assert!(
        geometry.contains("1280x828"),
        "unexpected viewer window geometry: {geometry}"
    );
    let pos = geometry
        .split("Position: ")
        .nth(1)
        .and_then(|p| p.split_whitespace().next())
        .unwrap();
    let origin = pos
        .split_once(',')
        .map(|(x, y)| (x.parse::<u32>().unwrap(), y.parse::<u32>().unwrap()))
        .unwrap();
    (win, origin)
}

/// Pixels of the PC's screen the window at `origin` shows differently, outside the 64x64 box
/// around the pointer (where the viewer draws the cursor).
fn window_differs(desk: &Display, pc: &Display, (wx, wy): (u32, u32)) -> usize {
    let (shot, truth) = (desk.screenshot(), pc.screenshot());
    let (px, py) = pc.pointer();
    let near_pointer = |x: u32, y: u32| (x as i32 - px).abs() < 32 && (y as i32 - py).abs() < 32;
    let mut differ = 0;
    for y in 0..800 {
        for x in 0..1280 {
            if !near_pointer(x, y) && shot.get_pixel(wx + x, wy + y) != truth.get_pixel(x, y) {
                differ += 1;
            }
        }
    }
    differ
}

/// Waits until the window shows the PC's screen exactly; fails with pictures after `T`.
fn shows_exactly(
    desk: &Display,
    pc: &Display,
    origin: (u32, u32),
    dir: &std::path::Path,
    what: &str,
) {
    let deadline = Instant::now() + T;
    loop {
        let differ = window_differs(desk, pc, origin);
        if differ == 0 {
            return;
        }
        if Instant::now() > deadline {
            desk.screenshot().save(dir.join("desk.png")).unwrap();
            pc.screenshot().save(dir.join("pc.png")).unwrap();
            panic!(
                "{what}: {differ} pixels of the window differ from the PC's screen; see {}",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The window draws only what changed (X11): after a terminal scrolled and was typed into,
/// and after another window covered it and went away while the PC's screen stood still, it
/// shows the PC's screen pixel for pixel.
#[test]
fn the_window_shows_the_screen_exactly_after_scrolling_and_being_covered() {
    if !require_tools(
        "the_window_shows_the_screen_exactly_after_scrolling_and_being_covered",
        &["Xvfb", "xdotool", "xterm"],
    ) {
        return;
    }
    let dir = temp_dir("window_exact");
    let pc = Display::start(1280, 800);
    let desk = Display::start(1280, 900);
    let relay = Relay::start(&dir);
    let agent = agent(&relay, &pc, "4711", "PC-12", &dir, &[]);
    let viewer = window_viewer(&relay, &agent, &desk, &dir);
    agent.wait_for(Status::ConsentAsked, T);
    viewer.wait_line("window draws changed boxes", T);
    answer_consent(&agent, &pc, "View");
    agent.wait_line("consent View", T);
    pc.xdotool(&["mousemove", "1270", "790"]).unwrap();
    let (_, origin) = viewer_window(&desk);
    shows_exactly(&desk, &pc, origin, &dir, "first picture");

    let script = "i=0; while [ $i -lt 150 ]; do i=$((i+1)); \
                  echo \"Zeile $i: der Drucker in Raum 204 meldet Fehler E-52\"; sleep 0.01; done; \
                  for w in Fehler behoben; do printf '%s ' $w; sleep 0.1; done; exec sleep 1000";
    let mut term = std::process::Command::new("xterm");
    term.args(["-geometry", "90x30+40+40", "-e", "sh", "-c", script])
        .env("DISPLAY", &pc.name);
    let _term = Proc::spawn("xterm", term, &dir);
    std::thread::sleep(Duration::from_secs(3));
    shows_exactly(&desk, &pc, origin, &dir, "after scrolling and typing");

    // Another window over the viewer's, until it shows there; then it goes away while the
    // PC's screen stands still, so only the viewer drawing what the X server says was
    // uncovered (Expose) can bring the picture back: there is no periodic whole redraw.
    let mut cover = std::process::Command::new("xterm");
    cover
        .args(["-geometry", "80x20+100+100", "-bg", "red"])
        .env("DISPLAY", &desk.name);
    let mut cover = Proc::spawn("cover", cover, &dir);
    let deadline = Instant::now() + T;
    while window_differs(&desk, &pc, origin) == 0 {
        assert!(
            Instant::now() < deadline,
            "the covering window never showed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    cover.kill();
    shows_exactly(&desk, &pc, origin, &dir, "after being uncovered");
}

fn agent_exit(mut agent: Proc) -> i32 {
    agent.wait_exit(Duration::from_secs(3))
}

/// Failures before the session (no token; relay unreachable) show in the window's title and
/// status bar with the message the command line prints, and the window closes when asked.
#[test]
fn early_failures_show_in_the_window_and_it_closes() {
    if !require_tools(
        "early_failures_show_in_the_window_and_it_closes",
        &["Xvfb", "xdotool"],
    ) {
        return;
    }
    let dir = temp_dir("window_errors");
    let desk = Display::start(1280, 900);
    let fp = "AA:".repeat(31) + "AA";
    let forged = forged_token();
    for (token, addr, message) in [
        ("", "127.0.0.1:9", "the staff token is empty"),
        (
            "fh_x",
            "127.0.0.1:9",
            "this staff token names no staff member",
        ),
        (
            forged.as_str(),
            "127.0.0.1:9",
            "cannot reach the relay at 127.0.0.1:9",
        ),
    ] {
        let mut cmd = viewer_command(
            addr,
            ["--relay-fingerprint", &fp],
            token,
            "4711",
            "123-456-789",
        );
        cmd.env("DISPLAY", &desk.name);
        let mut viewer = Proc::spawn("viewer-error", cmd, &dir);
        let deadline = Instant::now() + T;
        let win = loop {
            if let Ok(w) = desk.xdotool(&["search", "--name", &format!("error: {message}")]) {
                break w.split_whitespace().next().unwrap().to_owned();
            }
            assert!(Instant::now() < deadline, "no window showing '{message}'");
            std::thread::sleep(Duration::from_millis(100));
        };
        let title = desk.xdotool(&["getwindowname", &win]).unwrap();
        let win = win.parse().expect("window id");
        assert_eq!(
            desk.close_and_wait_exit(win, &mut viewer, Duration::from_secs(5)),
            1
        );
        let printed = viewer.stderr();
        let shown = title.trim().split("error: ").nth(1).unwrap();
        assert!(
            printed.contains(shown),
            "the window says '{shown}', the command line '{printed}'"
        );
    }
}
