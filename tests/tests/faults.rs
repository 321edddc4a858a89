//! Bad input and faults: each gets a clear error, a non-zero exit, and changes nothing else.

use e2e::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn tools(test: &str) -> bool {
    require_tools(test, &["Xvfb", "xdotool"])
}

fn setup(name: &str) -> (std::path::PathBuf, Display, Relay, Proc) {
    let dir = temp_dir(name);
    let display = Display::start(1280, 800);
    let relay = Relay::start(&dir);
    let agent = agent(&relay, &display, "4711", "PC-12", &dir, &[]);
    current_code(&agent);
    (dir, display, relay, agent)
}

/// Reads the relay's answer to a hostile message: it must be the protocol-violation refusal.
async fn expect_protocol_violation<R: tokio::io::AsyncRead + Unpin>(
    recv: &mut transport::framed::FramedRecv<R>,
) {
    use protocol::signaling::{FromRelay, Refusal};
    let answer = tokio::time::timeout(Duration::from_secs(5), recv.next())
        .await
        .expect("relay answers");
    match answer {
        Ok(Some(f)) => assert_eq!(
            FromRelay::decode(&f).unwrap(),
            FromRelay::Refused(Refusal::ProtocolViolation)
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn wrong_code(code: &str) -> String {
    let digits: String = code.chars().filter(char::is_ascii_digit).collect();
    let n: u32 = digits.parse().unwrap();
    format!("{:09}", (n + 1) % 1_000_000_000)
}

#[test]
fn consent_denied_sends_no_frame() {
    if !tools("consent_denied_sends_no_frame") {
        return;
    }
    let mut s = Session::until_consent("deny", &[]);
    s.answer("Deny");
    assert_eq!(
        s.viewer.wait_exit(T),
        4,
        "viewer exit code for a declined session"
    );
    assert!(
        s.viewer.stderr().contains("declined"),
        "{}",
        s.viewer.stderr()
    );
    assert!(
        !s.viewer.lines().iter().any(|l| l.starts_with("frame")),
        "a frame was sent after denial"
    );
    assert_eq!(s.agent.wait_exit(T), 0);
    assert!(s.agent.lines().iter().any(|l| l == "session declined"));
}

/// A technician who mistypes the code and tries again at once, while the PC still waits after
/// the wrong code, is told in words how long to wait, with an exit code of its own.
#[test]
fn a_retry_right_after_a_wrong_code_is_told_to_wait() {
    if !tools("a_retry_right_after_a_wrong_code_is_told_to_wait") {
        return;
    }
    let dir = temp_dir("retrywait");
    let display = Display::start(1280, 800);
    let relay = Relay::start(&dir);
    // The agent waits 1 s after a first wrong code; lengthened to 20 s, so the retry below
    // meets the wait however slowly the machine starts the second viewer.
    let agent = agent_env(
        &relay,
        &display,
        "4711",
        "PC-12",
        &dir,
        &[],
        &[("FERNHILFE_TEST_DELAY_SCALE", "20")],
    );
    let code = current_code(&agent);
    let mut v = viewer(&relay, &relay.token, "4711", &wrong_code(&code), &dir, &[]);
    assert_eq!(v.wait_exit(T), 3);
    let mut v = viewer(&relay, &relay.token, "4711", &code, &dir, &[]);
    assert_eq!(v.wait_exit(T), 5, "{}", v.stderr());
    let said = v.stderr();
    // The wait left of the agent's 20 s, in words.
    let secs: u32 = said
        .split("waits ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no wait in: {said}"));
    assert!((10..=20).contains(&secs), "{said}");
    assert!(said.contains(&format!("try again in {secs} s")), "{said}");
    assert!(!said.contains("I/O error"), "{said}");
    agent.wait_line("try deferred for ", T);
}

#[test]
fn wrong_codes_rotate_the_code_and_slow_down_the_ticket() {
    if !tools("wrong_codes_rotate_the_code_and_slow_down_the_ticket") {
        return;
    }
    let dir = temp_dir("wrongcode");
    let _display = Display::start(1280, 800);
    // A process: the test reads its log.
    let mut relay = Relay::start_process(&dir);
    // The agent's own waits after wrong codes are another test's subject (trust_model.rs):
    // here they are off, so the relay's throttle is what the viewers meet.
    let mut agent = agent_env(
        &relay,
        &_display,
        "4711",
        "PC-12",
        &dir,
        &[],
        &[("FERNHILFE_TEST_DELAY_SCALE", "0")],
    );
    let first = current_code(&agent);
    for i in 1..=5 {
        let mut v = viewer(&relay, &relay.token, "4711", &wrong_code(&first), &dir, &[]);
        assert_eq!(v.wait_exit(T), 3, "try {i}: exit code for a wrong code");
        assert!(
            v.stderr().contains("code incorrect"),
            "try {i}: {}",
            v.stderr()
        );
        agent.wait_line(
            &format!("pairing failed: code incorrect (wrong {i} of 20)"),
            T,
        );
    }
    agent.wait_line("code rotated", T);
    let second = current_code(&agent);
    assert_ne!(first, second, "the code must change after 5 wrong tries");
    assert!(agent.running(), "the agent keeps waiting");
    // The relay now slows down tries for this ticket, even with the right code.
    let mut v = viewer(&relay, &relay.token, "4711", &second, &dir, &[]);
    assert_eq!(v.wait_exit(T), 5, "exit code for 'try again later'");
    assert!(v.stderr().contains("try again in"), "{}", v.stderr());
    // After the wait, the old code no longer pairs: it is refused as wrong.
    std::thread::sleep(Duration::from_secs(6));
    let mut v = viewer(&relay, &relay.token, "4711", &first, &dir, &[]);
    assert_eq!(v.wait_exit(T), 3, "the rotated-away code must not pair");
    agent.wait_line("pairing failed: code incorrect (wrong 6 of 20)", T);
    let audit = relay.audit().join("\n");
    assert_eq!(audit.matches("wrong_code").count(), 6, "{audit}");
    // Nothing a person typed is in the relay's log or audit.
    let log = relay.stderr();
    for code in [&first, &second] {
        let digits: String = code.chars().filter(char::is_ascii_digit).collect();
        assert!(
            !log.contains(code.as_str()) && !log.contains(&digits) && !audit.contains(&digits),
            "code in relay log"
        );
    }
    assert!(
        !log.contains(&relay.token) && !audit.contains(&relay.token),
        "token in relay log"
    );
}

#[test]
fn bad_staff_token_unknown_and_malformed_ticket() {
    if !tools("bad_staff_token_unknown_and_malformed_ticket") {
        return;
    }
    let (dir, display, relay, mut agent) = setup("badinput");
    let code = current_code(&agent);
    let mut v = viewer(&relay, &forged_token(), "4711", &code, &dir, &[]);
    assert_eq!(v.wait_exit(T), 2);
    assert!(
        v.stderr().contains("staff token rejected"),
        "{}",
        v.stderr()
    );
    // A token from before tokens named their holder: the viewer could not check the name the
    // relay presents it under, so it goes nowhere with it.
    let unnamed = format!("fh_{}", "ab".repeat(32));
    let mut v = viewer(&relay, &unnamed, "4711", &code, &dir, &[]);
    assert_eq!(v.wait_exit(T), 1);
    assert!(
        v.stderr()
            .contains("this staff token names no staff member"),
        "{}",
        v.stderr()
    );
    let mut v = viewer(&relay, "", "4711", &code, &dir, &[]);
    assert_ne!(v.wait_exit(T), 0);
    assert!(v.stderr().contains("staff token"), "{}", v.stderr());
    let mut v = viewer(&relay, &relay.token, "9999", &code, &dir, &[]);
    assert_eq!(v.wait_exit(T), 2);
    assert!(
        v.stderr().contains("no agent is waiting under this ticket"),
        "{}",
        v.stderr()
    );
    let mut v = viewer(&relay, &relay.token, "47a1", &code, &dir, &[]);
    assert_eq!(v.wait_exit(T), 1);
    assert!(
        v.stderr().contains("ticket number '47a1' is invalid"),
        "{}",
        v.stderr()
    );
    let mut a = e2e::agent(&relay, &display, "#12x", "PC-13", &dir, &[]);
    assert_eq!(a.wait_exit(T), 1);
    assert!(
        a.stderr().contains("Ticketnummer ungültig"),
        "{}",
        a.stderr()
    );
    assert!(agent.running(), "the waiting agent is unaffected");
}

#[test]
fn fingerprint_mismatch_and_unreachable_relay() {
    if !tools("fingerprint_mismatch_and_unreachable_relay") {
        return;
    }
    let (dir, display, relay, agent) = setup("fingerprint");
    let code = current_code(&agent);
    let fake = "AA:".repeat(31) + "AA";
    let mut cmd = viewer_command(
        &relay.addr,
        ["--relay-fingerprint", &fake],
        &relay.token,
        "4711",
        &code,
    );
    cmd.arg("--headless");
    let mut v = Proc::spawn("viewer-fp", cmd, &dir);
    assert_eq!(v.wait_exit(T), 1);
    assert!(
        v.stderr().contains("certificate fingerprint is")
            && v.stderr().contains(&relay.fingerprint),
        "{}",
        v.stderr()
    );
    let cmd = agent_command(
        &relay.addr,
        ["--relay-fingerprint", &fake],
        "4711",
        &display,
    );
    let mut a = Proc::spawn("agent-fp", cmd, &dir);
    assert_eq!(a.wait_exit(T), 1);
    assert!(
        a.stderr().contains("this is not your relay"),
        "{}",
        a.stderr()
    );
    // Nothing listens on this port.
    let mut cmd = viewer_command(
        "127.0.0.1:9",
        ["--relay-fingerprint", &relay.fingerprint],
        &relay.token,
        "4711",
        &code,
    );
    cmd.arg("--headless");
    let mut v = Proc::spawn("viewer-unreachable", cmd, &dir);
    assert_eq!(v.wait_exit(T), 1);
    assert!(
        v.stderr().contains("cannot reach the relay at 127.0.0.1:9"),
        "{}",
        v.stderr()
    );
}

/// A peer that sends garbage or oversized messages to the relay is disconnected with a reason;
/// a malformed end-to-end message ends that session; the relay serves the next session.
#[test]
fn garbage_peers_are_disconnected_and_others_unaffected() {
    if !tools("garbage_peers_are_disconnected_and_others_unaffected") {
        return;
    }
    let (dir, display, relay, agent) = setup("garbage");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fp: protocol::fingerprint::CertFingerprint = relay.fingerprint.parse().unwrap();
    let trust = transport::config::RelayTrust::Pinned(fp);
    rt.block_on(async {
        // 1. Garbage as first message.
        for payload in [
            vec![0xFFu8, 1, 2, 3],
            (10_000_000u32).to_be_bytes().to_vec(),
        ] {
            let conn = transport::config::connect_relay(&relay.addr, &trust)
                .await
                .unwrap()
                .conn;
            let (mut send, recv) = conn.open_bi().await.unwrap();
            if payload.len() == 4 && payload[0] == 0xFF {
                transport::framed::send_frame(&mut send, &payload)
                    .await
                    .unwrap();
            } else {
                // A length prefix announcing 10 MB: refused before anything is buffered.
                send.write_all(&payload).await.unwrap();
            }
            let mut recv = transport::framed::FramedRecv::new(recv, 4096);
            expect_protocol_violation(&mut recv).await;
            let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed())
                .await
                .expect("relay closes the connection");
            assert!(
                matches!(&closed, quinn::ConnectionError::ApplicationClosed(c) if &c.reason[..] == b"protocol violation"),
                "the relay must close with the reason, got: {closed}"
            );
        }
    });
    // 2. A viewer sending a malformed control message ends its session with a reason.
    let code = current_code(&agent);
    let mut v = viewer(&relay, &relay.token, "4711", &code, &dir, &["--misbehave"]);
    agent.wait_for(Status::ConsentAsked, T);
    let (x, y) = button(&agent, "consent", "View");
    display.click(x, y);
    v.wait_line("grant View", T);
    v.send("raw 01ff00");
    agent.wait_ended(EndReason::ProtocolViolation, T);
    v.wait_line("ended", T);
    drop(v);
    // 3. The relay still pairs a fresh agent and viewer.
    let a2 = e2e::agent(&relay, &display, "4712", "PC-14", &dir, &[]);
    let code2 = current_code(&a2);
    let v2 = viewer(&relay, &relay.token, "4712", &code2, &dir, &[]);
    a2.wait_for(Status::ConsentAsked, T);
    v2.wait_line("status waiting for consent", T);
}

/// Two PCs wait under one ticket: the viewer is told both host names and picks one.
#[test]
fn several_agents_under_one_ticket_are_listed_by_host() {
    if !tools("several_agents_under_one_ticket_are_listed_by_host") {
        return;
    }
    let (dir, display, relay, agent1) = setup("twoagents");
    let display2 = Display::start(800, 600);
    let agent2 = e2e::agent(&relay, &display2, "4711", "PC-13", &dir, &[]);
    let code2 = current_code(&agent2);
    let mut v = viewer(&relay, &relay.token, "4711", &code2, &dir, &[]);
    assert_eq!(v.wait_exit(T), 2);
    assert!(
        v.stderr().contains("several PCs wait under this ticket")
            && v.stderr().contains("PC-12")
            && v.stderr().contains("PC-13"),
        "{}",
        v.stderr()
    );
    let v = viewer(
        &relay,
        &relay.token,
        "4711",
        &code2,
        &dir,
        &["--host", "PC-13"],
    );
    agent2.wait_for(Status::ConsentAsked, T);
    v.wait_line("status waiting for consent", T);
    assert!(
        !agent1.lines().iter().any(|l| l.starts_with("viewer")),
        "the other PC was not contacted"
    );
    // A third PC that calls itself like the first is refused: the list must stay unambiguous.
    let mut twin = e2e::agent(&relay, &display2, "4711", "PC-12", &dir, &[]);
    assert_eq!(twin.wait_exit(T), 1);
    assert!(
        twin.stderr().contains("another PC with this host name")
            && twin.stderr().contains("Ein anderer PC mit diesem Namen"),
        "{}",
        twin.stderr()
    );
    drop(display);
}

/// Closing the consent dialog (the window's close button) declines: nothing is sent.
#[test]
fn closing_the_consent_dialog_declines() {
    if !tools("closing_the_consent_dialog_declines") {
        return;
    }
    let mut s = Session::until_consent("dialogclosed", &[]);
    button(&s.agent, "consent", "Deny");
    assert!(s.display.close_window("Zustimmung"), "no consent dialog");
    s.agent.wait_line("consent Denied", T);
    assert_eq!(
        s.viewer.wait_exit(T),
        4,
        "viewer exit code for a declined session"
    );
    assert!(
        !s.viewer.lines().iter().any(|l| l.starts_with("frame")),
        "a frame was sent"
    );
    assert_eq!(s.agent.wait_exit(T), 0);
    assert!(
        s.agent.lines().iter().any(|l| l == "consent Denied"),
        "{:?}",
        s.agent.lines()
    );
}

/// Signaling over TLS on TCP, forced with `--relay-transport tcp`: a session pairs over it
/// end to end; a wrong pin is refused on it as over QUIC; garbage and an oversized length on
/// an upgraded stream are refused with a reason and the connection closed.
#[test]
fn signaling_over_tcp_is_forceable_pinned_and_bounded() {
    if !tools("signaling_over_tcp_is_forceable_pinned_and_bounded") {
        return;
    }
    let dir = temp_dir("tcp_signaling");
    let display = Display::start(1280, 800);
    let relay = Relay::start(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fp: protocol::fingerprint::CertFingerprint = relay.fingerprint.parse().unwrap();
    let trust = transport::config::RelayTrust::Pinned(fp);
    rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        use transport::signal_tcp::{tcp, upgraded_stream};
        let fake: protocol::fingerprint::CertFingerprint =
            ("AA:".repeat(31) + "AA").parse().unwrap();
        let wrong = tcp(&relay.addr, &transport::config::RelayTrust::Pinned(fake)).await;
        let err = wrong
            .err()
            .expect("a wrong pin must be refused")
            .to_string();
        assert!(err.contains(&relay.fingerprint), "{err}");
        for garbage in [true, false] {
            let mut stream = upgraded_stream(&relay.addr, &trust).await.unwrap();
            if garbage {
                transport::framed::send_frame(&mut stream, &[0xFF, 1, 2, 3])
                    .await
                    .unwrap();
            } else {
                // A length prefix announcing 10 MB: refused before anything is buffered.
                stream
                    .write_all(&10_000_000u32.to_be_bytes())
                    .await
                    .unwrap();
            }
            let mut recv = transport::framed::FramedRecv::new(stream, 4096);
            expect_protocol_violation(&mut recv).await;
            let end = tokio::time::timeout(Duration::from_secs(5), recv.next())
                .await
                .expect("relay closes the stream");
            assert!(
                !matches!(end, Ok(Some(_))),
                "nothing may follow the refusal"
            );
        }
    });
    let agent = agent(
        &relay,
        &display,
        "4711",
        "PC-12",
        &dir,
        &["--relay-transport", "tcp"],
    );
    agent.wait_line("signaling over tcp", T);
    let code = current_code(&agent);
    let mut v = viewer(
        &relay,
        &relay.token,
        "4711",
        &code,
        &dir,
        &["--relay-transport", "tcp"],
    );
    agent.wait_for(Status::ConsentAsked, T);
    let (x, y) = button(&agent, "consent", "View");
    display.click(x, y);
    v.wait_line("first-frame ms=", T);
    v.send("end");
    agent.wait_line("session ended", T);
}

/// A stranger's flood of bad staff tokens against a ticket costs the audit store at most its
/// address's budget of rows (the rest is counted, in one record per minute), where every
/// attempt was a row kept for a year.
#[test]
fn a_bad_token_flood_costs_a_bounded_number_of_audit_rows() {
    let dir = temp_dir("tokenflood");
    let relay = Relay::start(&dir);
    let out = run_checked(
        std::process::Command::new(bin_dir().join("flood"))
            .args([&relay.addr, &relay.fingerprint, "127.0.0.2"])
            .args(["bad-tokens", "150"]),
    );
    let tally = String::from_utf8_lossy(&out.stdout);
    assert!(
        tally.contains("bad token: refused BadStaffToken: 150"),
        "{tally}"
    );
    let rows = relay
        .audit()
        .iter()
        .filter(|l| l.contains("\"viewer_refused\""))
        .count();
    assert_eq!(rows, 60, "audit rows for 150 bad tokens from one address");
}
