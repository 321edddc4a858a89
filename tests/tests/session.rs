//! A whole session across real processes: relay, agent on an Xvfb display, headless viewer.

use e2e::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn tools(test: &str) -> bool {
    require_tools(test, &["Xvfb", "xdotool"])
}

/// Pixel-exact screen after *view* consent (clicked on the real button), and no input at all
/// in view-only mode, even from a viewer that sends it anyway.
#[test]
fn view_consent_shows_screen_pixel_exact_and_blocks_input() {
    if !tools("view_consent_shows_screen_pixel_exact_and_blocks_input") {
        return;
    }
    let mut s = Session::until_consent("view", &["--misbehave"]);
    // Before the answer: no pixel has left, and input is not injected.
    s.viewer.send("move 200 300");
    s.viewer.send("type vorher");
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        !s.viewer.lines().iter().any(|l| l.starts_with("frame")),
        "frame before consent"
    );
    assert!(
        probe_lines(&s.probe, "key").is_empty(),
        "input before consent"
    );
    assert_ne!(
        s.display.pointer(),
        (200, 300),
        "pointer moved before consent"
    );

    s.answer("View");
    s.viewer.wait_line("grant View", T);
    s.settle(Duration::from_millis(700), T);
    let got = s.viewer_snapshot("view.png");
    let truth = s.display.screenshot();
    assert_eq!(got.dimensions(), truth.dimensions());
    let diff = got
        .pixels()
        .zip(truth.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(diff, 0, "{diff} pixels differ between viewer and display");

    // View only: a misbehaving viewer's input is dropped by the agent.
    let pointer = s.display.pointer();
    s.viewer.send("move 5 5");
    s.viewer.send("down left");
    s.viewer.send("up left");
    s.viewer.send("type nicht erlaubt");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        s.display.pointer(),
        pointer,
        "pointer moved in view-only mode"
    );
    assert!(
        probe_lines(&s.probe, "key").is_empty()
            && probe_lines(&s.probe, "button")
                .iter()
                .all(|l| !l.ends_with(" 5 5")),
        "input arrived in view-only mode: {:?}",
        s.probe.lines()
    );

    // The technician ends: both sides close within a second.
    s.viewer.send("end");
    assert_eq!(s.viewer.wait_exit(Duration::from_secs(3)), 0);
    assert_eq!(s.agent.wait_exit(Duration::from_secs(3)), 0);
    assert!(
        s.agent.lines().iter().any(|l| l == "ended EndedByViewer"),
        "{:?}",
        s.agent.lines()
    );
}

/// After *control* consent pointer, buttons, non-ASCII text and shortcuts arrive on the
/// display; after the person downgrades to view, nothing arrives; *Beenden* ends both sides.
#[test]
fn control_consent_injects_input_until_revoked() {
    if !tools("control_consent_injects_input_until_revoked") {
        return;
    }
    let mut s = Session::until_consent("control", &["--misbehave"]);
    s.answer("Control");
    s.viewer.wait_line("grant Control", T);
    s.settle(Duration::from_millis(300), T);

    s.viewer.send("move 300 400");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while s.display.pointer() != (300, 400) {
        assert!(
            std::time::Instant::now() < deadline,
            "pointer did not arrive: {:?}",
            s.display.pointer()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s.viewer.send("down left");
    s.viewer.send("up left");
    s.probe.wait_line("button 1 300 400", T);
    s.viewer.send("wheel -1");
    s.probe.wait_line("button 5 300 400", T);

    s.viewer.send("type Grüße ß €");
    let want: Vec<String> = "Grüße ß €".chars().map(|c| format!("key {c}")).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = probe_lines(&s.probe, "key");
        if got == want {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "typed text differs: got {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for cmd in [
        "key Control down",
        "key c down",
        "key c up",
        "key Control up",
    ] {
        s.viewer.send(cmd);
    }
    s.probe.wait_line("key ctrl+c", T);

    // The person at the PC takes control back from the indicator.
    let (x, y) = button(&s.agent, "indicator", "Toggle");
    s.display.click(x, y);
    s.agent.wait_line("grant View", T);
    s.viewer.wait_line("grant View", T);
    let keys_before = probe_lines(&s.probe, "key").len();
    s.viewer.send("move 10 10");
    s.viewer.send("type danach");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        probe_lines(&s.probe, "key").len(),
        keys_before,
        "input arrived after revocation"
    );
    assert_ne!(
        s.display.pointer(),
        (10, 10),
        "pointer moved after revocation"
    );

    // Beenden on the agent's screen ends the session on both sides within a second.
    let (x, y) = button(&s.agent, "indicator", "End");
    let clicked = std::time::Instant::now();
    s.display.click(x, y);
    s.viewer.wait_line("ended", Duration::from_secs(3));
    assert!(
        clicked.elapsed() < Duration::from_millis(1500),
        "ending took {:?}",
        clicked.elapsed()
    );
    assert_eq!(s.agent.wait_exit(Duration::from_secs(3)), 0);
    assert_eq!(s.viewer.wait_exit(Duration::from_secs(3)), 0);
    // The relay's record: the session, each decision of the person as the agent reported it,
    // and the end with its reason, in order, in a chain that verifies.
    let audit = s.relay.audit();
    let kinds: Vec<String> = audit
        .iter()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let r = &v["record"];
            let kind = r["kind"].as_str()?.to_owned();
            Some(match kind.as_str() {
                "consent" => format!("consent {} {}", r["change"].as_str()?, r["grant"].as_str()?),
                "session_ended" => format!("session_ended {}", r["reason"].as_str()?),
                "path_changed" => return None,
                _ => kind,
            })
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "relay_started",
            "agent_registered",
            "viewer_joined",
            "session_started",
            "consent given control",
            "consent changed view",
            "consent revoked nothing",
            "session_ended ended_at_agent",
            "agent_left",
        ],
        "{audit:#?}"
    );
    let ended = audit.iter().find(|l| l.contains("session_ended")).unwrap();
    assert!(
        ended.contains("\"staff\":\"Anna Schmidt\"") && ended.contains("agent_bytes_sent"),
        "{ended}"
    );
    assert!(
        s.relay
            .audit_cmd(&["verify"])
            .starts_with("audit chain intact"),
        "{}",
        s.relay.audit_cmd(&["verify"])
    );
    let shown = s.relay.audit_cmd(&["show", "4711"]);
    assert!(
        shown.contains("Zustimmung erteilt: ansehen und steuern")
            && shown.contains("Sitzung beendet (am PC beendet)"),
        "{shown}"
    );
}

/// A static screen sends nothing: no frame after the screen settled.
#[test]
fn static_screen_sends_no_updates() {
    if !tools("static_screen_sends_no_updates") {
        return;
    }
    let s = Session::until_consent("static", &[]);
    s.answer("View");
    let seq = s.settle(Duration::from_millis(500), T);
    std::thread::sleep(Duration::from_secs(2));
    let after = s
        .viewer
        .lines()
        .iter()
        .filter(|l| l.starts_with("frame "))
        .count();
    let last = s.settle(Duration::from_millis(10), T);
    assert_eq!(
        seq, last,
        "updates kept coming on a static screen ({after} frames)"
    );
}

/// A session nobody uses ends by itself: the indicator warns before (here a quarter of the
/// 16 s idle limit), the person at the PC may go on once, and the end is on the record as
/// such, in the audit and in the timeline the ticket report is made of.
#[test]
fn an_unused_session_ends_by_itself_after_a_warning() {
    if !require_tools(
        "an_unused_session_ends_by_itself_after_a_warning",
        &["Xvfb", "xdotool"],
    ) {
        return;
    }
    let dir = temp_dir("idlelimit");
    let display = Display::start(1280, 800);
    let _probe = probe(&display, &dir);
    let relay = Relay::start(&dir);
    let agent = agent(
        &relay,
        &display,
        "4711",
        "PC-12",
        &dir,
        &["--idle-timeout-secs", "16"],
    );
    let code = current_code(&agent);
    let mut viewer = viewer(&relay, &relay.token, "4711", &code, &dir, &[]);
    answer_consent(&agent, &display, "View");
    viewer.wait_line("grant View", T);
    let (n, _) = agent.wait_line_from(0, |l| l.starts_with("limit warning Idle"), T, "the warning");
    let (x, y) = button(&agent, "indicator", "GoOn");
    display.click(x, y);
    let (n, _) = agent.wait_line_from(n, |l| l == "session continued at the PC", T, "going on");
    // Not used again: warned again, and ended.
    let (n, _) = agent.wait_line_from(
        n,
        |l| l.starts_with("limit warning Idle"),
        T,
        "the second warning",
    );
    agent.wait_line_from(n, |l| l == "session ended reason=IdleTimeout", T, "the end");
    assert_eq!(viewer.wait_exit(T), 0, "{}", viewer.stderr());
    let audit = relay.audit();
    assert!(
        audit
            .iter()
            .any(|l| l.contains("\"session_ended\"") && l.contains("\"idle_timeout\"")),
        "{audit:#?}"
    );
    let timeline = relay.audit_cmd(&["show", "4711", "--lang", "en"]);
    assert!(timeline.contains("ended unused (idle limit)"), "{timeline}");
}
