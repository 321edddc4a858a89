//! The trust model under attack: a hostile relay that guesses codes, a fake agent that claims
//! a code match, a viewer that holds keys and stops reading, and a relay that restarts while an
//! agent waits.

use e2e::*;
use protocol::ids::SessionCode;
use protocol::pairing::{Pairing, PairingContext, Role};
use protocol::signaling::{FromRelay, ToRelay, MAX_SIGNALING_LEN};
use std::process::Command;
use std::time::{Duration, Instant};
use transport::framed::{send_frame, FramedRecv};

const T: Duration = Duration::from_secs(20);
/// The agent's waits after wrong codes, shortened for the test (test builds only).
const SCALE: f64 = 0.01;
/// The agent's lifetime cap on wrong codes (`agent/src/code_guard.rs`).
const MAX_WRONG_CODES: usize = 20;

fn tools(test: &str) -> bool {
    require_tools(test, &["Xvfb", "xdotool"])
}

/// What the hostile relay saw of the agent.
#[derive(Default, Debug)]
struct GuessLog {
    /// When the agent took up each guess (sent its SPAKE2 message).
    tried: Vec<Instant>,
    /// Joins the agent put off.
    deferred: usize,
    /// Whether the agent ended the connection.
    agent_left: bool,
}

/// A relay gone bad: it accepts the agent's registration, then sends viewer joins as fast as
/// the agent answers, each with a guessed code, for `budget`.
async fn hostile_relay(endpoint: quinn::Endpoint, budget: Duration) -> GuessLog {
    let mut log = GuessLog::default();
    let conn = endpoint.accept().await.unwrap().await.unwrap();
    let (mut send, recv) = conn.accept_bi().await.unwrap();
    let mut recv = FramedRecv::new(recv, MAX_SIGNALING_LEN);
    let hello = ToRelay::decode(&recv.next().await.unwrap().unwrap()).unwrap();
    let ToRelay::RegisterAgent {
        ticket, host_name, ..
    } = hello
    else {
        panic!("expected a registration, got {hello:?}")
    };
    let reply = FromRelay::AgentRegistered {
        renew_within_secs: 120,
    };
    send_frame(&mut send, &reply.encode()).await.unwrap();
    let deadline = Instant::now() + budget;
    let mut pairing = 0u64;
    while Instant::now() < deadline {
        pairing += 1;
        let staff = "Mallory".to_owned();
        let join = FromRelay::ViewerJoined {
            pairing,
            staff_name: staff.clone(),
        };
        if send_frame(&mut send, &join.encode()).await.is_err() {
            log.agent_left = true;
            break;
        }
        let msg = match tokio::time::timeout(T, recv.next())
            .await
            .expect("agent answers")
        {
            Ok(Some(m)) => ToRelay::decode(&m).unwrap(),
            _ => {
                log.agent_left = true;
                break;
            }
        };
        let agent_spake = match msg {
            // The agent names its session endpoint first; this relay admits anything.
            ToRelay::AdmitEndpoint { pairing: p, .. } => {
                assert_eq!(p, pairing);
                let ok = FromRelay::EndpointAdmitted {
                    pairing,
                    qad_port: 0,
                };
                send_frame(&mut send, &ok.encode()).await.unwrap();
                match tokio::time::timeout(T, recv.next())
                    .await
                    .expect("agent answers")
                {
                    Ok(Some(m)) => match ToRelay::decode(&m).unwrap() {
                        ToRelay::Pairing { pairing: p, msg } if p == pairing => msg,
                        other => panic!("unexpected {other:?}"),
                    },
                    _ => {
                        log.agent_left = true;
                        break;
                    }
                }
            }
            ToRelay::PairingDeferred { pairing: p, .. } => {
                assert_eq!(p, pairing, "a deferral names its pairing");
                log.deferred += 1;
                continue;
            }
            ToRelay::Pairing { pairing: p, msg } => {
                assert_eq!(p, pairing);
                msg
            }
            other => panic!("unexpected {other:?}"),
        };
        log.tried.push(Instant::now());
        // Play the viewer with a guessed code.
        let guess = SessionCode::generate(&mut rand_core::OsRng);
        let context = PairingContext {
            ticket,
            staff_name: staff,
            host_name: host_name.clone(),
        };
        let (mut v, v1) = Pairing::start(Role::Viewer, &guess, context, &mut rand_core::OsRng);
        let own = protocol::peer::PeerEndpoint {
            id: [7; 32],
            direct_addrs: Vec::new(),
        };
        let protocol::pairing::PairingStep::Send(confirm) = v.handle(&agent_spake, &own).unwrap()
        else {
            panic!("viewer confirms after the SPAKE2 message")
        };
        for m in [v1, confirm] {
            let to_agent = FromRelay::Pairing { pairing, msg: m };
            send_frame(&mut send, &to_agent.encode()).await.unwrap();
        }
        match tokio::time::timeout(T, recv.next()).await.expect("verdict") {
            Ok(Some(m)) => match ToRelay::decode(&m).unwrap() {
                ToRelay::PairingOutcome { pairing: p, proof } => {
                    assert_eq!(p, pairing);
                    assert!(proof.is_none(), "a random guess matched a 9-digit code");
                }
                other => panic!("unexpected {other:?}"),
            },
            _ => {
                log.agent_left = true;
                break;
            }
        }
    }
    log
}

/// A relay played by the test: a runtime, a QUIC server endpoint on loopback with a fresh
/// identity, its address and the fingerprint clients pin.
fn relay_of_our_own() -> (tokio::runtime::Runtime, quinn::Endpoint, String, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let id = transport::identity::Identity::generate("fernhilfe-relay").unwrap();
    let fingerprint = id.fingerprint().to_string();
    let endpoint = rt.block_on(async {
        quinn::Endpoint::server(
            transport::config::relay_server_config(&id).unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap()
    });
    let addr = endpoint.local_addr().unwrap().to_string();
    (rt, endpoint, addr, fingerprint)
}

/// A compromised relay floods the agent with viewer joins and guessed codes: the agent takes
/// them up no faster than its own growing delays allow, shows a new code every 5 wrong ones,
/// and after 20 stops for good, telling the person (in German and English) to call again.
#[test]
fn hostile_relay_cannot_guess_faster_than_the_agent_allows() {
    if !tools("hostile_relay_cannot_guess_faster_than_the_agent_allows") {
        return;
    }
    let dir = temp_dir("hostilerelay");
    let display = Display::start(1280, 800);
    let (rt, endpoint, addr, fingerprint) = relay_of_our_own();
    let relay_task = rt.spawn(hostile_relay(endpoint, Duration::from_secs(60)));
    let mut cmd = agent_command(
        &addr,
        ["--relay-fingerprint", &fingerprint],
        "4711",
        &display,
    );
    cmd.args(["--host-name", "PC-12", "--lang", "de"])
        .env("FERNHILFE_TEST_DELAY_SCALE", SCALE.to_string());
    let mut agent = Proc::spawn("agent", cmd, &dir);
    let first_code = current_code(&agent);
    assert_eq!(
        first_code.len(),
        11,
        "a 9-digit code in three groups: {first_code}"
    );
    agent.wait_line("locked out: too many wrong codes", Duration::from_secs(60));
    // The person reads the final message and closes it.
    let (x, y) = button(&agent, "locked", "Cancel");
    display.click(x, y);
    assert_eq!(agent.wait_exit(T), 5, "exit code after the lifetime cap");
    assert!(
        agent.stderr().contains("Hotline") && agent.stderr().contains("hotline"),
        "{}",
        agent.stderr()
    );
    let log = rt.block_on(relay_task).unwrap();
    assert_eq!(
        log.tried.len(),
        MAX_WRONG_CODES,
        "guesses the agent took up: {log:?}"
    );
    assert!(log.agent_left);
    assert!(
        log.deferred > 0,
        "a flooding relay is put off, not served: {log:?}"
    );
    // Each guess came no sooner than the agent's delay after the previous wrong one
    // (1 s doubling up to 60 s, here scaled by SCALE).
    for (n, pair) in log.tried.windows(2).enumerate() {
        let wrong = n as u32 + 1;
        let delay = Duration::from_secs(1)
            .saturating_mul(1 << (wrong - 1).min(16))
            .min(Duration::from_secs(60))
            .mul_f64(SCALE);
        let gap = pair[1] - pair[0];
        assert!(
            gap >= delay,
            "guess {} came {gap:?} after guess {}, before the agent's delay of {delay:?}",
            n + 2,
            n + 1
        );
    }
    let codes: Vec<String> = agent
        .lines()
        .iter()
        .filter(|l| *l != "code rotated")
        .filter_map(|l| l.strip_prefix("code ").map(str::to_owned))
        .collect();
    assert_eq!(
        codes.len(),
        4,
        "a new code after every 5 wrong ones: {codes:?}"
    );
    assert!(agent
        .lines()
        .iter()
        .any(|l| l == "pairing failed: code incorrect (wrong 20 of 20)"));
}

/// What the fake agent saw of the relay.
#[derive(Debug)]
struct FakeAgentLog {
    /// The relay's answer to the claimed match.
    answer: Option<FromRelay>,
}

/// A stranger's program registered under a live ticket: it pairs with a guessed code, sends
/// the viewer a made-up confirmation, and claims to the relay that the code matched.
async fn fake_agent(addr: String, fingerprint: String) -> FakeAgentLog {
    use protocol::pairing::{PairingProof, PairingStep};
    use transport::relay_client::RelayClient;
    let trust = transport::config::RelayTrust::Pinned(fingerprint.parse().unwrap());
    let link = transport::config::connect_relay(&addr, &trust)
        .await
        .unwrap();
    let mut relay = RelayClient::from_link(link).await.unwrap();
    let ticket = "4711".parse().unwrap();
    relay
        .send(&ToRelay::RegisterAgent {
            version: protocol::PROTOCOL_VERSION,
            ticket,
            host_name: "PC-12".into(),
            agent_version: "0.1.0".into(),
        })
        .await
        .unwrap();
    assert!(matches!(
        relay.next_timely().await.unwrap(),
        FromRelay::AgentRegistered { .. }
    ));
    let (pairing, staff_name) = match relay.next().await.unwrap() {
        FromRelay::ViewerJoined {
            pairing,
            staff_name,
        } => (pairing, staff_name),
        other => panic!("expected a viewer, got {other:?}"),
    };
    let key = transport::paths::session_key(&mut rand_core::OsRng);
    relay
        .admit_endpoint(pairing, *key.public().as_bytes())
        .await
        .unwrap();
    let own = protocol::peer::PeerEndpoint {
        id: *key.public().as_bytes(),
        direct_addrs: Vec::new(),
    };
    let context = PairingContext {
        ticket,
        staff_name,
        host_name: "PC-12".into(),
    };
    let guess = SessionCode::generate(&mut rand_core::OsRng);
    let (mut p, first) = Pairing::start(Role::Agent, &guess, context, &mut rand_core::OsRng);
    relay
        .send(&ToRelay::Pairing {
            pairing,
            msg: first,
        })
        .await
        .unwrap();
    // The viewer's SPAKE2 message and its confirmation, which does not check out.
    for expect_wait in [true, false] {
        let FromRelay::Pairing { msg, .. } = relay.next_timely().await.unwrap() else {
            panic!("expected a pairing message")
        };
        let step = p.handle(&msg, &own);
        assert_eq!(step.is_ok_and(|s| s == PairingStep::Wait), expect_wait);
    }
    // Made up: a confirmation (tag 2, a MAC, the endpoint) and a proof, both random.
    let mut forged = protocol::wire::Writer::new();
    forged.u8(2).bytes(&[0x55; 32]);
    own.encode_into(&mut forged);
    relay
        .send(&ToRelay::Pairing {
            pairing,
            msg: forged.finish(),
        })
        .await
        .unwrap();
    relay
        .send(&ToRelay::PairingOutcome {
            pairing,
            proof: Some(PairingProof([0x55; 32])),
        })
        .await
        .unwrap();
    let answer = tokio::time::timeout(T, relay.next())
        .await
        .ok()
        .and_then(Result::ok);
    FakeAgentLog { answer }
}

/// A stranger registers a program of their own under a live ticket number and claims a code
/// match when staff join. The relay starts no session: the viewer's proof is missing, so the
/// pairing is refused on the record, the fake agent is disconnected as a protocol violation,
/// the viewer says so, and the ticket system hears nothing.
#[test]
fn a_fake_agent_that_claims_a_match_gets_no_session_on_the_record() {
    let dir = temp_dir("fakeagent");
    // A webhook receiver that is never expected to be called.
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    hook.set_nonblocking(true).unwrap();
    let mut relay = Relay::start_with_config(
        &dir,
        &format!(
            "[tickets]\nsystem = \"webhook\"\nurl = \"http://{}/hook\"\nsecret = \"fernhilfe-test-secret-0123\"\nretry_base_secs = 1\n",
            hook.local_addr().unwrap()
        ),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.spawn(fake_agent(relay.addr.clone(), relay.fingerprint.clone()));
    assert!(
        wait_until(T, || relay.stderr().contains("agent registered")),
        "the fake agent did not register: {}",
        relay.stderr()
    );
    let mut v = viewer(&relay, &relay.token, "4711", "123-456-789", &dir, &[]);
    assert_eq!(v.wait_exit(T), 2, "refused: {}", v.stderr());
    assert!(
        v.stderr().contains("did not prove the code"),
        "{}",
        v.stderr()
    );
    let log = rt.block_on(fake).unwrap();
    assert_eq!(
        log.answer,
        Some(FromRelay::Refused(
            protocol::signaling::Refusal::ProtocolViolation
        )),
        "the claimed match is a protocol violation"
    );
    let audit = relay.audit();
    assert!(
        audit.iter().any(|l| l.contains("\"pairing_unconfirmed\"")),
        "the refused pairing is on the record: {audit:#?}"
    );
    for kind in [
        "session_started",
        "consent",
        "path_changed",
        "session_ended",
    ] {
        assert!(
            !audit
                .iter()
                .any(|l| l.contains(&format!("\"kind\":\"{kind}\""))),
            "no {kind} for a pairing nobody proved: {audit:#?}"
        );
    }
    // The ticket system was never asked to post anything.
    assert!(
        matches!(hook.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the relay contacted the ticket system"
    );
}

/// A viewer with control holds Ctrl and the left mouse button, then stops reading (so the
/// agent's writes to it block). The person closes the session indicator: within 100 ms
/// nothing is held on the PC any more, and within 1 s the agent is gone.
#[test]
fn person_ends_session_while_a_stalled_viewer_holds_keys() {
    if !tools("person_ends_session_while_a_stalled_viewer_holds_keys") {
        return;
    }
    const CONTROL: u16 = 0x4;
    const BUTTON1: u16 = 0x100;
    let mut s = Session::until_consent("stalledviewer", &["--misbehave"]);
    s.answer("Control");
    s.viewer.wait_line("grant Control", T);
    s.viewer.send("move 640 500");
    s.viewer.send("key Control down");
    s.viewer.send("down left");
    let deadline = Instant::now() + T;
    while s.display.held_mask() & (CONTROL | BUTTON1) != CONTROL | BUTTON1 {
        assert!(Instant::now() < deadline, "viewer input never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.viewer.send("stall");
    s.viewer.wait_line("stalled", T);
    // Keep the screen changing, so the agent has updates its writer cannot get rid of.
    for i in 0..5 {
        s.viewer.send(&format!("move {} 500", 600 + i * 10));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        s.display.held_mask() & (CONTROL | BUTTON1),
        CONTROL | BUTTON1,
        "still held before the person acts"
    );
    // The held left button gives its window an implicit pointer grab, so a click elsewhere
    // would not reach the indicator (as with a real mouse): the person closes the indicator
    // window, which the agent treats exactly like *Beenden*.
    let indicator: u32 = s
        .display
        .xdotool(&["search", "--name", "Sitzung"])
        .expect("no indicator window")
        .trim()
        .parse()
        .expect("one indicator window");
    let start = Instant::now();
    s.display.close_window_id(indicator);
    let mut released = None;
    while start.elapsed() < T {
        if s.display.held_mask() & (CONTROL | BUTTON1) == 0 {
            released = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let released = released.unwrap_or_else(|| {
        panic!(
            "keys and buttons stayed held: mask {:#x}\nagent: {:?}\n{}",
            s.display.held_mask(),
            s.agent.lines(),
            s.agent.stderr()
        )
    });
    let mut gone = None;
    while start.elapsed() < Duration::from_secs(5) {
        if !s.agent.running() {
            gone = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let gone = gone.expect("the agent did not exit");
    println!("released after {released:?}, agent gone after {gone:?}");
    assert!(
        released <= Duration::from_millis(100),
        "held input released only after {released:?}"
    );
    assert!(
        gone <= Duration::from_secs(1),
        "agent exited only after {gone:?}: {:?}",
        s.agent.lines()
    );
    assert_ended_at_agent(&s.agent);
}

/// A relay restart while the agent waits: the agent registers again by itself, under the same
/// ticket and with the same code, so the code already read out on the phone still works. The
/// relay here lets registrations lapse after 3 s: the agent's renewals keep it registered.
#[test]
fn relay_restart_keeps_the_code_read_out_on_the_phone() {
    if !tools("relay_restart_keeps_the_code_read_out_on_the_phone") {
        return;
    }
    let dir = temp_dir("relayrestart");
    let display = Display::start(1280, 800);
    let mut relay = Relay::start_with_config(&dir, "[limits]\nregistration_ttl_secs = 3\n");
    let agent = agent(&relay, &display, "4711", "PC-12", &dir, &[]);
    let code = current_code(&agent);
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !relay.stderr().contains("registration expired"),
        "renewals keep the agent registered"
    );
    assert!(
        !agent
            .lines()
            .iter()
            .any(|l| l == "relay lost, reconnecting"),
        "{:?}",
        agent.lines()
    );
    relay.restart(&dir);
    // A relay that died says nothing: the agent notices when the connection goes idle (20 s).
    let (n, _) = agent.wait_line_from(
        0,
        |l| l == "relay lost, reconnecting",
        Duration::from_secs(40),
        "reconnect",
    );
    agent.wait_line_from(
        n,
        |l| l.starts_with("registered ticket=#4711"),
        T,
        "re-registration",
    );
    let v = viewer(&relay, &relay.token, "4711", &code, &dir, &[]);
    agent.wait_for(Status::ConsentAsked, T);
    v.wait_line("status waiting for consent", T);
    assert_eq!(
        agent
            .lines()
            .iter()
            .filter(|l| l.starts_with("code ") && *l != "code rotated")
            .count(),
        1,
        "the code stayed: {:?}",
        agent.lines()
    );
}

/// The agent says the person at the PC ended the session.
fn assert_ended_at_agent(agent: &Proc) {
    assert!(
        agent
            .lines()
            .iter()
            .any(|l| l == "session ended reason=EndedAtAgent"),
        "{:?}",
        agent.lines()
    );
}

/// Waits until `pred` holds for the display's held mask; returns how long that took.
fn until_mask(s: &Session, pred: impl Fn(u16) -> bool, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if pred(s.display.held_mask()) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// A viewer with control holds Ctrl and stops reading. The person clicks *Nur ansehen* on the
/// indicator (a real click, with Ctrl still down): Ctrl is released within 100 ms and later
/// input is dropped, although the agent cannot even tell the viewer; then *Beenden* (a real
/// click) ends everything within a second.
#[test]
fn person_downgrades_and_ends_while_a_stalled_viewer_holds_ctrl() {
    if !tools("person_downgrades_and_ends_while_a_stalled_viewer_holds_ctrl") {
        return;
    }
    const CONTROL: u16 = 0x4;
    let mut s = Session::until_consent("stalleddowngrade", &["--misbehave"]);
    s.answer("Control");
    s.viewer.wait_line("grant Control", T);
    s.viewer.send("key Control down");
    until_mask(&s, |m| m & CONTROL != 0, T).expect("Ctrl never arrived");
    s.viewer.send("stall");
    s.viewer.wait_line("stalled", T);
    let (x, y) = button(&s.agent, "indicator", "Toggle");
    // The indicator acts on the press; xdotool holds the button 150 ms, as a person does, so
    // the click runs on a thread while Ctrl is watched (the time includes starting xdotool).
    let clicked = Instant::now();
    let display = s.display.name.clone();
    std::thread::spawn(move || click_on(&display, x, y));
    let released = until_mask(&s, |m| m & CONTROL == 0, Duration::from_secs(3))
        .map(|_| clicked.elapsed())
        .expect("Ctrl stayed held after the downgrade");
    s.agent.wait_line("grant View", T);
    println!("Ctrl released {released:?} after the click on Nur ansehen");
    assert!(
        released <= Duration::from_millis(100),
        "Ctrl released only after {released:?}"
    );
    // Input the viewer sends now is dropped: Ctrl stays up.
    s.viewer.send("key Control down");
    assert_eq!(
        until_mask(&s, |m| m & CONTROL != 0, Duration::from_millis(500)),
        None,
        "input injected after the downgrade"
    );
    let (x, y) = button(&s.agent, "indicator", "End");
    let clicked = Instant::now();
    s.display.click(x, y);
    let deadline = clicked + Duration::from_secs(5);
    while s.agent.running() {
        assert!(
            Instant::now() < deadline,
            "agent still running: {:?}",
            s.agent.lines()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let gone = clicked.elapsed();
    println!("agent gone {gone:?} after the click on Beenden");
    // The click itself holds the button 150 ms before the indicator sees the release.
    assert!(
        gone <= Duration::from_secs(1),
        "agent exited only after {gone:?}"
    );
    assert_ended_at_agent(&s.agent);
}

/// A viewer that acknowledges a frame the agent never sent breaks the protocol: the agent ends
/// the session.
#[test]
fn acknowledging_a_frame_never_sent_ends_the_session() {
    if !tools("acknowledging_a_frame_never_sent_ends_the_session") {
        return;
    }
    let mut s = Session::until_consent("bogusack", &["--misbehave"]);
    s.answer("View");
    s.viewer.wait_line("grant View", T);
    s.settle(Duration::from_millis(500), T);
    // FrameAck (tag 2) for sequence number 1,000,000.
    s.viewer.send("raw 02 00 00 00 00 00 0f 42 40");
    s.agent.wait_ended(EndReason::ProtocolViolation, T);
    assert_eq!(s.agent.wait_exit(T), 0);
}

/// Lines of the raw input logger (`xprobe --raw`) from line `from` on, with when they arrived.
fn raw_input(log: &Proc, from: usize) -> Vec<(Instant, String)> {
    log.lines()
        .into_iter()
        .enumerate()
        .skip(from)
        .map(|(i, l)| (log.arrival(i), l))
        .collect()
}

/// The largest wheel event the wire can carry (`dy` = -32768) was minutes of scrolling, one
/// X round trip per notch, on after a revocation. Now it is a protocol violation: the agent
/// ends the session and not one notch reaches the display.
#[test]
fn the_largest_wheel_event_ends_the_session_instead_of_scrolling() {
    if !tools("the_largest_wheel_event_ends_the_session_instead_of_scrolling") {
        return;
    }
    let mut s = Session::until_consent("longwheel", &[]);
    let raw = probe_with(&s.display, &s.dir, &["--raw"]);
    s.answer("Control");
    s.viewer.wait_line("grant Control", T);
    // One ordinary notch arrives, so the logger is known to see wheel input.
    s.viewer.send("wheel -1");
    raw.wait_line("raw button 5", T);
    let before = raw.lines().len();
    s.viewer.send("wheel -32768");
    s.agent.wait_ended(EndReason::ProtocolViolation, T);
    assert_eq!(s.agent.wait_exit(T), 0);
    let notches: Vec<_> = raw_input(&raw, before)
        .into_iter()
        .filter(|(_, l)| l.starts_with("raw button"))
        .collect();
    assert!(notches.is_empty(), "scrolled after all: {notches:?}");
}

/// A viewer with control floods the PC: wheel events of the most notches allowed and pointer
/// moves, in bursts of 10,000, without pause. The person clicks `action` on the indicator: no
/// motion or notch reaches the display later than 100 ms after that click (read on the
/// display by the raw input logger); returns the time from the click to the agent's exit.
fn person_acts_during_an_input_flood(name: &str, action: &str) -> Option<Duration> {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut s = Session::until_consent(name, &[]);
    let raw = probe_with(&s.display, &s.dir, &["--raw"]);
    s.answer("Control");
    s.viewer.wait_line("grant Control", T);
    let (x, y) = button(&s.agent, "indicator", action);
    let mut stdin = s.viewer.take_stdin();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flooding = stop.clone();
    let max = protocol::session::MAX_WHEEL_NOTCHES;
    // The moves keep the pointer on the button (x and x+1), as a person's hand would fight
    // for it; the notches go both ways, so the page does not run away.
    let flood = std::thread::spawn(move || {
        let started = Instant::now();
        let mut burst = String::new();
        for i in 0..10_000 {
            burst.push_str(&format!("move {} {y}\n", x + i % 2));
            if i % 100 == 0 {
                burst.push_str(&format!(
                    "wheel {}\n",
                    if i % 200 == 0 { max } else { -max }
                ));
            }
        }
        while !flooding.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(20) {
            if stdin
                .write_all(burst.as_bytes())
                .and_then(|()| stdin.flush())
                .is_err()
            {
                break;
            }
        }
    });
    // The flood is under way: motion and notches arrive on the display.
    let arrived = || {
        let lines = raw.lines();
        let motions = lines.iter().filter(|l| *l == "raw motion").count();
        let notches = lines
            .iter()
            .filter(|l| *l == "raw button 4" || *l == "raw button 5")
            .count();
        (motions, notches)
    };
    assert!(
        wait_until(T, || {
            let (motions, notches) = arrived();
            motions > 500 && notches > 0
        }),
        "the flood never reached the display: (motions, notches) = {:?}; agent: {}",
        arrived(),
        s.agent.lines().join(" | ")
    );
    let from = raw.lines().len();
    let display = s.display.name.clone();
    let clicker = std::thread::spawn(move || click_on(&display, x, y));
    let grant = if action == "End" {
        "session ended"
    } else {
        "grant View"
    };
    s.agent.wait_line(grant, T);
    // The click's press, as the display received it.
    let (press, _) = raw.wait_line_from(from, |l| l == "raw button 1", T, "the click");
    let clicked = raw.arrival(press);
    let gone = if action == "End" {
        let deadline = clicked + Duration::from_secs(5);
        while s.agent.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Some(clicked.elapsed())
    } else {
        None
    };
    // Look for input that comes late for a second after the click.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    clicker.join().unwrap();
    let late: Vec<_> = raw_input(&raw, from)
        .into_iter()
        .filter(|(t, l)| *t > clicked + Duration::from_millis(100) && l != "raw button 1")
        .map(|(t, l)| (t - clicked, l))
        .collect();
    let last = raw_input(&raw, from)
        .into_iter()
        .filter(|(_, l)| l != "raw button 1")
        .map(|(t, _)| t.saturating_duration_since(clicked))
        .max();
    println!("{action}: last injected input {last:?} after the click, agent gone after {gone:?}");
    assert!(
        late.is_empty(),
        "{} inputs reached the display more than 100 ms after the click, the first {:?}",
        late.len(),
        late.first()
    );
    drop(s);
    let _ = flood.join();
    gone
}

#[test]
fn person_takes_back_control_from_a_flooding_viewer() {
    if !tools("person_takes_back_control_from_a_flooding_viewer") {
        return;
    }
    person_acts_during_an_input_flood("floodtoggle", "Toggle");
}

#[test]
fn person_ends_the_session_of_a_flooding_viewer() {
    if !tools("person_ends_the_session_of_a_flooding_viewer") {
        return;
    }
    let gone = person_acts_during_an_input_flood("floodend", "End").expect("timed");
    assert!(
        gone <= Duration::from_secs(1),
        "agent exited only after {gone:?}"
    );
}

/// The topmost client window as the window manager stacks them (`_NET_CLIENT_LIST_STACKING`,
/// bottom to top), if it says.
fn topmost_client(display: &Display) -> Option<u32> {
    let out = Command::new("xprop")
        .args(["-root", "_NET_CLIENT_LIST_STACKING"])
        .env("DISPLAY", &display.name)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.split(['#', ',']).next_back()?.trim();
    u32::from_str_radix(last.trim_start_matches("0x"), 16).ok()
}

fn viewable(display: &Display, window: u32) -> bool {
    Command::new("xwininfo")
        .args(["-id", &window.to_string()])
        .env("DISPLAY", &display.name)
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Map State: IsViewable"))
}

/// Under a real window manager (openbox, from Debian), the indicator stays in sight: a
/// maximised window activated over it, or the indicator minimised, and it is on top and
/// visible again within a moment.
#[test]
fn the_indicator_stays_on_top_under_a_window_manager() {
    let name = "the_indicator_stays_on_top_under_a_window_manager";
    if !require_tools(
        name,
        &["Xvfb", "xdotool", "openbox", "xprop", "xwininfo", "xterm"],
    ) {
        return;
    }
    let mut s = Session::until_consent("ontop", &[]);
    s.answer("View");
    s.viewer.wait_line("grant View", T);
    let indicator: u32 = s
        .display
        .xdotool(&["search", "--name", "Sitzung"])
        .expect("no indicator window")
        .trim()
        .parse()
        .expect("one indicator window");
    // The window manager takes over the display now, after the consent click: the agent's
    // windows are reparented into frames, as on any desktop.
    let mut wm_cmd = Command::new("openbox");
    wm_cmd.env("DISPLAY", &s.display.name);
    let _wm = Proc::spawn("openbox", wm_cmd, &s.dir);
    assert!(
        wait_until(T, || topmost_client(&s.display).is_some()),
        "openbox did not start managing windows"
    );
    let mut xterm = Command::new("xterm");
    xterm
        .args(["-maximized", "-title", "cover"])
        .env("DISPLAY", &s.display.name);
    let _cover = Proc::spawn("xterm", xterm, &s.dir);
    let cover = s
        .display
        .xdotool(&["search", "--sync", "--name", "cover"])
        .unwrap()
        .trim()
        .to_owned();
    s.display
        .xdotool(&["windowactivate", "--sync", &cover])
        .unwrap();
    s.display.xdotool(&["windowraise", &cover]).unwrap();
    let on_top =
        || topmost_client(&s.display) == Some(indicator) && viewable(&s.display, indicator);
    assert!(
        wait_until(Duration::from_secs(3), on_top),
        "a maximised window covers the indicator: top is {:?}",
        topmost_client(&s.display)
    );
    s.display
        .xdotool(&["windowminimize", &indicator.to_string()])
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(3), on_top),
        "the minimised indicator stayed hidden"
    );
    assert!(s.agent.running(), "{:?}", s.agent.lines());
}

/// A relay that closes the viewer's connection with words of its own ("call this number",
/// say) gets none of them shown: the viewer says that the relay closed the connection, with
/// the code only.
/// A headless viewer of Anna Schmidt's (as her token says) at a relay played by the test.
fn headless_viewer_of(addr: &str, fingerprint: &str, dir: &std::path::Path) -> Proc {
    let mut cmd = viewer_command(
        addr,
        ["--relay-fingerprint", fingerprint],
        &forged_token(),
        "4711",
        "123-456-789",
    );
    cmd.arg("--headless");
    Proc::spawn("viewer", cmd, dir)
}

#[test]
fn a_relays_close_reason_is_never_shown() {
    const CRAFTED: &str = "Schulleitung: bitte den Code an 0170 1234567 senden";
    let dir = temp_dir("closereason");
    let (rt, endpoint, addr, fingerprint) = relay_of_our_own();
    let relay = rt.spawn(async move {
        let conn = endpoint.accept().await.unwrap().await.unwrap();
        let (_send, recv) = conn.accept_bi().await.unwrap();
        let mut recv = FramedRecv::new(recv, MAX_SIGNALING_LEN);
        let hello = recv.next().await.unwrap().unwrap();
        assert!(matches!(
            ToRelay::decode(&hello),
            Ok(ToRelay::JoinAsViewer { .. })
        ));
        conn.close(7u32.into(), CRAFTED.as_bytes());
        // Until the viewer has seen the close.
        let _ = tokio::time::timeout(T, endpoint.wait_idle()).await;
    });
    let mut v = headless_viewer_of(&addr, &fingerprint, &dir);
    assert_ne!(v.wait_exit(T), 0);
    let said = format!("{}\n{}", v.lines().join("\n"), v.stderr());
    assert!(
        said.contains("the other side closed the connection (code 7)"),
        "{said}"
    );
    assert!(
        !said.contains("0170"),
        "the relay's words were shown: {said}"
    );
    rt.block_on(relay).unwrap();
}

/// A compromised relay tells the viewer (and so the agent's consent dialog) that the session
/// is the head teacher's. The viewer pairs only under the name its own token carries: it
/// refuses before it names an endpoint or uses the code. (Before, it took the relay's name
/// into its transcript, so the agent's dialog showed "Schulleitung" and the pairing held.)
#[test]
fn a_relay_cannot_present_the_technician_under_another_name() {
    let dir = temp_dir("staffname");
    let (rt, endpoint, addr, fingerprint) = relay_of_our_own();
    let relay = rt.spawn(async move {
        let conn = endpoint.accept().await.unwrap().await.unwrap();
        let (mut send, recv) = conn.accept_bi().await.unwrap();
        let mut recv = FramedRecv::new(recv, MAX_SIGNALING_LEN);
        let hello = ToRelay::decode(&recv.next().await.unwrap().unwrap()).unwrap();
        let ToRelay::JoinAsViewer { token, .. } = hello else {
            panic!("expected a join, got {hello:?}")
        };
        assert_eq!(token.staff_name().as_deref(), Some("Anna Schmidt"));
        let chosen = FromRelay::AgentChosen {
            pairing: 1,
            host_name: "PC-12".into(),
            staff_name: "Schulleitung".into(),
        };
        send_frame(&mut send, &chosen.encode()).await.unwrap();
        // Whatever the viewer sends next: it must send nothing, but close.
        let mut sent = Vec::new();
        while let Ok(Ok(Some(m))) = tokio::time::timeout(T, recv.next()).await {
            sent.push(ToRelay::decode(&m).unwrap());
        }
        sent
    });
    let mut v = headless_viewer_of(&addr, &fingerprint, &dir);
    assert_eq!(v.wait_exit(T), 1, "{}", v.stderr());
    assert!(
        v.stderr()
            .contains("another staff name than your token's (Anna Schmidt)"),
        "{}",
        v.stderr()
    );
    assert!(
        !v.stderr().contains("Schulleitung"),
        "the relay's words were shown: {}",
        v.stderr()
    );
    let sent = rt.block_on(relay).unwrap();
    assert!(
        sent.is_empty(),
        "the viewer went on with the relay's name: {sent:?}"
    );
}
