//! The Windows binaries in real sessions: the Windows agent and the Windows viewer (release
//! builds) run under Wine on Xvfb against the Linux relay and the Linux peer.
//!
//! The session tests print a `wine-figure` line with what they measured (docs/windows.md
//! quotes them).

use e2e::wine::{require_wine, windows_bin_dir, Wine};
use e2e::{
    agent, agent_command, answer_consent, button, click_on, current_code, pixels_differing,
    probe_with, settle, temp_dir, viewer, viewer_command, viewer_snapshot, wait_until, Display,
    Proc, Relay,
};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

/// The Windows agent under Wine, with Wine's notepad open: it registers at the Linux relay
/// over QUIC on the plain UDP socket, the consent dialog is clicked, the Linux viewer gets the
/// screen pixel for pixel, its typing (`Grüße €`) lands in notepad, and *Beenden* ends both.
#[test]
fn windows_agent_under_wine_serves_a_linux_viewer() {
    if !require_wine("windows_agent_under_wine_serves_a_linux_viewer") {
        return;
    }
    let dir = temp_dir("wine-agent");
    let display = Display::start(1280, 800);
    let wine = Wine::new("agent", &display);
    let _notepad = wine.notepad(&dir);
    let relay = Relay::start(&dir);

    let linux_agent = agent_command(
        &relay.addr,
        ["--relay-fingerprint", &relay.fingerprint],
        "4711",
        &display,
    );
    let mut cmd = wine.run(&windows_bin_dir().join("fernhilfe-agent.exe"), &[]);
    cmd.args(linux_agent.get_args())
        // QUIC only: the plain UDP fallback must carry the signaling, not TLS/TCP.
        .args([
            "--host-name",
            "PC-WINE",
            "--lang",
            "de",
            "--relay-transport",
            "quic",
        ])
        .env("RUST_LOG", "warn");
    let started = Instant::now();
    let mut agent = Proc::spawn("agent-wine", cmd, &dir);
    let code = current_code(&agent);
    let code_line = agent
        .lines()
        .iter()
        .position(|l| l.starts_with("code "))
        .unwrap();
    let to_code = agent.arrival(code_line) - started;
    assert!(
        agent.stderr().contains("using a plain UDP socket"),
        "no log line for the plain UDP fallback: {}",
        agent.stderr()
    );

    let mut viewer = viewer(&relay, &relay.token, "4711", &code, &dir, &[]);
    agent.wait_line("consent asked", T);
    viewer.wait_line("status waiting for consent", T);
    answer_consent(&agent, &display, "Control");
    viewer.wait_line("grant Control", T);
    let first_frame = viewer.wait_line("first-frame ", T);

    // Pixel for pixel. Wine's GDI capture polls, so a picture can be one poll behind the
    // display: compare again after the next settle before calling it a difference.
    let mut diff = usize::MAX;
    for attempt in 0..5 {
        settle(&viewer, Duration::from_millis(700), T);
        let got = viewer_snapshot(&mut viewer, &dir, &format!("wine-agent-{attempt}.png"));
        let truth = display.screenshot();
        diff = pixels_differing(&got, &truth);
        if diff == 0 {
            break;
        }
        truth
            .save(dir.join(format!("display-{attempt}.png")))
            .unwrap();
    }
    assert_eq!(diff, 0, "{diff} pixels differ between viewer and display");

    // Control: click into notepad's text area, then type.
    viewer.send("move 300 300");
    viewer.send("down left");
    std::thread::sleep(Duration::from_millis(100));
    viewer.send("up left");
    std::thread::sleep(Duration::from_millis(300));
    let typed = Instant::now();
    viewer.send("type Grüße €");
    let mut text = None;
    let arrived = wait_until(Duration::from_secs(10), || {
        text = wine.window_text("Notepad", "Edit");
        text.as_deref() == Some("Grüße €")
    });
    assert!(arrived, "notepad holds {text:?}, not \"Grüße €\"");
    let to_text = typed.elapsed();

    // Beenden on the agent's screen ends the session on both sides.
    let (x, y) = button(&agent, "indicator", "End");
    display.click(x, y);
    viewer.wait_line("ended", Duration::from_secs(5));
    assert_eq!(viewer.wait_exit(Duration::from_secs(5)), 0);
    assert_eq!(agent.wait_exit(Duration::from_secs(5)), 0);
    assert!(
        agent.lines().iter().any(|l| l == "ended EndedAtAgent"),
        "{:?}",
        agent.lines()
    );
    println!(
        "wine-figure agent start_to_code_ms={} {} text_in_notepad_ms={} prefix_boot_ms={}",
        to_code.as_millis(),
        first_frame.replace(' ', "_"),
        to_text.as_millis(),
        wine.boot.as_millis()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Windows viewer under Wine against a Linux agent: its window shows the agent's screen
/// (compared pixel for pixel, but for the remote pointer it draws), and a click and `Grüße`
/// typed on a German keyboard in the window arrive on the agent's display.
#[test]
fn windows_viewer_under_wine_shows_and_controls_a_linux_agent() {
    if !require_wine("windows_viewer_under_wine_shows_and_controls_a_linux_agent")
        || !e2e::require_tools(
            "windows_viewer_under_wine_shows_and_controls_a_linux_agent",
            &["setxkbmap"],
        )
    {
        return;
    }
    let dir = temp_dir("wine-viewer");
    let school = Display::start(1280, 800);
    let probe = probe_with(&school, &dir, &[]);
    // Room for the 1280×828 window at 1:1, so its pixels can be compared with the school's.
    let desk = Display::start(1600, 1000);
    // A German keyboard, set before Wine reads it: ü, ß and € have keys of their own, so
    // xdotool need not remap keys while Wine is reading them (which loses characters).
    desk.set_layout("de");
    let wine = Wine::new("viewer", &desk);
    let relay = Relay::start(&dir);
    let agent = agent(&relay, &school, "4711", "PC-12", &dir, &[]);
    let code = current_code(&agent);

    let linux_viewer = viewer_command(
        &relay.addr,
        ["--relay-fingerprint", &relay.fingerprint],
        &relay.token,
        "4711",
        &code,
    );
    let mut cmd = wine.run(&windows_bin_dir().join("fernhilfe-viewer.exe"), &[]);
    cmd.args(linux_viewer.get_args())
        .env("FERNHILFE_STAFF_TOKEN", &relay.token)
        .env("RUST_LOG", "warn");
    let started = Instant::now();
    let mut win_viewer = Proc::spawn("viewer-wine", cmd, &dir);
    agent.wait_line("consent asked", T);
    let to_consent = started.elapsed();
    answer_consent(&agent, &school, "Control");

    // The window: find it on the desk's display and compare its picture with the school's,
    // but for the arrow it draws where the school's pointer is.
    let mut geometry = String::new();
    let shown = wait_until(T, || {
        geometry = desk
            .xdotool(&[
                "search",
                "--name",
                "Fernhilfe – Ticket #4711.*control",
                "getwindowgeometry",
                "--shell",
            ])
            .unwrap_or_default();
        geometry.contains("X=")
    });
    assert!(shown, "the viewer window never showed control");
    let field = |k: &str| -> u32 {
        geometry
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {geometry}"))
    };
    let (wx, wy, ww, wh) = (field("X="), field("Y="), field("WIDTH="), field("HEIGHT="));
    assert!(ww >= 1280 && wh >= 800, "window too small: {geometry}");
    let mut diff = usize::MAX;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(500));
        let (px, py) = school.pointer();
        let (px, py) = (px as u32, py as u32);
        let truth = school.screenshot();
        let shown = image::imageops::crop_imm(&desk.screenshot(), wx, wy, 1280, 800).to_image();
        diff = truth
            .enumerate_pixels()
            .filter(|(x, y, p)| {
                let near_pointer = x.abs_diff(px) < 32 && y.abs_diff(py) < 32;
                !near_pointer && shown.get_pixel(*x, *y) != *p
            })
            .count();
        if diff == 0 {
            break;
        }
        shown.save(dir.join("viewer-window.png")).unwrap();
        truth.save(dir.join("school.png")).unwrap();
    }
    assert_eq!(
        diff, 0,
        "{diff} pixels differ between the viewer window and the school's display"
    );

    // A click in the window lands at the same place on the school's display.
    click_on(&desk.name, (wx + 300) as i32, (wy + 400) as i32);
    probe.wait_line("button 1 300 400", T);
    // Typing in the window arrives as typed. No AltGr (€): with both cores busy, Wine once
    // read xdotool's AltGr+E as a plain e (the Linux viewer's window test types €).
    desk.xdotool(&["type", "--delay", "50", "Grüße"]).unwrap();
    let want: Vec<String> = "Grüße".chars().map(|c| format!("key {c}")).collect();
    let arrived = wait_until(Duration::from_secs(10), || {
        e2e::probe_lines(&probe, "key") == want
    });
    assert!(
        arrived,
        "typed {:?}, want {want:?}",
        e2e::probe_lines(&probe, "key")
    );

    // Closing the window ends the session for the agent too. Once in about ten runs Wine did
    // not act on the close request; a person closes again, and so does the test (and says so).
    let closed = Instant::now();
    let mut closes = 0;
    while closes < 3 {
        assert!(desk.close_window("Fernhilfe – Ticket #4711") || closes > 0);
        closes += 1;
        if wait_until(Duration::from_secs(10), || !win_viewer.running()) {
            break;
        }
        eprintln!("the Windows viewer window did not close on request {closes}");
    }
    let mut agent = agent;
    let viewer_exit = win_viewer.wait_exit(Duration::from_secs(30));
    assert_eq!(agent.wait_exit(Duration::from_secs(30)), 0);
    let ended_line = agent
        .lines()
        .iter()
        .position(|l| l == "ended EndedByViewer")
        .unwrap_or_else(|| panic!("{:?}", agent.lines()));
    let agent_ended = agent.arrival(ended_line) - closed;
    assert_eq!(viewer_exit, 0);
    println!(
        "wine-figure viewer start_to_consent_asked_ms={} window_closed_to_agent_ended_ms={} close_requests={closes} prefix_boot_ms={}",
        to_consent.as_millis(),
        agent_ended.as_millis(),
        wine.boot.as_millis()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A failing Windows agent shows why in a window of its own, in German and English, and
/// exits when it is closed: on Windows it has no console.
#[test]
fn windows_agent_shows_its_errors_in_a_window() {
    if !require_wine("windows_agent_shows_its_errors_in_a_window") {
        return;
    }
    let dir = temp_dir("wine-agent-error");
    let display = Display::start(1280, 800);
    let wine = Wine::new("agent-error", &display);
    let fingerprint = ["00"; 32].join(":");
    let mut cmd = wine.run(
        &windows_bin_dir().join("fernhilfe-agent.exe"),
        &[
            "--ticket",
            "4711",
            "--relay",
            "127.0.0.1:9",
            "--relay-fingerprint",
            &fingerprint,
        ],
    );
    cmd.env("RUST_LOG", "error");
    let mut agent = Proc::spawn("agent-wine-error", cmd, &dir);
    let (x, y) = button(&agent, "error", "Cancel");
    assert!(
        display
            .xdotool(&["search", "--name", "Fernhilfe – Fehler / Error"])
            .is_ok(),
        "no error window"
    );
    assert!(
        agent
            .stderr()
            .contains("cannot reach the relay at 127.0.0.1:9"),
        "{}",
        agent.stderr()
    );
    // The window says it: some of its pixels are the error heading's red (once it is drawn).
    let mut red = 0;
    let drawn = wait_until(Duration::from_secs(10), || {
        let shot = display.screenshot();
        red = shot.pixels().filter(|p| p.0 == [0xB3, 0x26, 0x1E]).count();
        red > 200
    });
    assert!(drawn, "no red heading in the error window ({red} pixels)");
    assert!(
        agent.running(),
        "the agent exited before its error window was closed"
    );
    // As a person would, click again if the first click came before the window took clicks.
    let closed = (0..3).any(|_| {
        display.click(x, y);
        wait_until(Duration::from_secs(3), || !agent.running())
    });
    assert!(
        closed,
        "the error window did not close on Schließen / Close"
    );
    assert_eq!(agent.wait_exit(Duration::from_secs(1)), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Windows agent double-clicked (no `--ticket`) asks for the number in its window: a
/// letter is refused with a warning on screen, and the number typed registers the agent.
#[test]
fn windows_agent_asks_for_the_ticket_in_its_window() {
    if !require_wine("windows_agent_asks_for_the_ticket_in_its_window") {
        return;
    }
    let dir = temp_dir("wine-agent-ticket");
    let display = Display::start(1280, 800);
    let wine = Wine::new("agent-ticket", &display);
    let relay = Relay::start(&dir);
    let mut cmd = wine.run(
        &windows_bin_dir().join("fernhilfe-agent.exe"),
        &[
            "--relay",
            &relay.addr,
            "--relay-fingerprint",
            &relay.fingerprint,
            "--host-name",
            "PC-WINE",
            "--lang",
            "de",
        ],
    );
    cmd.env("RUST_LOG", "warn");
    let agent = Proc::spawn("agent-wine-ticket", cmd, &dir);
    agent.wait_line("ui ticket asked", T);
    // Focus by clicking into the window, as a person would (and as Wine takes focus).
    let (x, y) = button(&agent, "ticket", "Next");
    display.click(x, y - 120);
    let type_keys = |keys: &str| {
        display
            .xdotool(&["type", "--delay", "120", keys])
            .expect("xdotool type");
    };
    type_keys("47x");
    agent.wait_line("ui ticket problem NotDigits", T);
    let mut red = 0;
    let shown = wait_until(Duration::from_secs(10), || {
        red = display
            .screenshot()
            .pixels()
            .filter(|p| p.0 == [0xB3, 0x26, 0x1E])
            .count();
        red > 100
    });
    assert!(shown, "no warning on screen ({red} red pixels)");
    type_keys("11");
    display.xdotool(&["key", "Return"]).expect("xdotool key");
    agent.wait_line("ticket typed #4711", T);
    agent.wait_line("registered ticket=#4711", T);
    agent.wait_line("code ", T);
    let _ = std::fs::remove_dir_all(&dir);
}
