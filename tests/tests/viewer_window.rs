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
    let code = current_code(&agent);
    let mut cmd = viewer_command(
        &relay.addr,
        ["--relay-fingerprint", &relay.fingerprint],
        &relay.token,
        "4711",
        &code,
    );
    cmd.env("DISPLAY", &desk.name);
    let mut viewer = Proc::spawn("viewer-window", cmd, &dir);
    agent.wait_line("consent asked", T);
    let (x, y) = button(&agent, "consent", "Control");
    pc.click(x, y);
    agent.wait_line("consent Control", T);
    viewer.wait_line("first-frame", T);

    // The window is 1280x800 plus the 28-pixel status bar, so remote pixels map 1:1.
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
    // The window shows the PC's screen 1:1 (and the status bar under it).
    let pos = geometry
        .split("Position: ")
        .nth(1)
        .and_then(|p| p.split_whitespace().next())
        .unwrap();
    let (wx, wy) = pos
        .split_once(',')
        .map(|(x, y)| (x.parse::<u32>().unwrap(), y.parse::<u32>().unwrap()))
        .unwrap();
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
    assert!(desk.close_window("Ticket"));
    assert_eq!(viewer.wait_exit(Duration::from_secs(3)), 0);
    assert_eq!(agent_exit(agent), 0);
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
    for (token, addr, message) in [
        ("", "127.0.0.1:9", "the staff token is empty"),
        (
            "fh_x",
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
        desk.close_window_id(win.parse().expect("window id"));
        assert_eq!(viewer.wait_exit(Duration::from_secs(5)), 1);
        let printed = viewer.stderr();
        let shown = title.trim().split("error: ").nth(1).unwrap();
        assert!(
            printed.contains(shown),
            "the window says '{shown}', the command line '{printed}'"
        );
    }
}
