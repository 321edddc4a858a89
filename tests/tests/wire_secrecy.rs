//! Captures all loopback traffic of a session with tcpdump, on every path it may take (QUIC
//! signaling, the relay path over TCP, direct UDP, address discovery), and proves that none of
//! the plaintext the session carried is on the wire: not the code, not the typed text, and no
//! 16-byte run of any decrypted message the viewer received (encoded tiles included).

use e2e::*;
use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn windows16(data: &[u8]) -> impl Iterator<Item = [u8; 16]> + '_ {
    data.windows(16).map(|w| w.try_into().unwrap())
}

#[test]
fn captured_traffic_contains_no_plaintext() {
    if !require_tools(
        "captured_traffic_contains_no_plaintext",
        &["Xvfb", "xdotool", "tcpdump"],
    ) {
        return;
    }
    if !require_root("captured_traffic_contains_no_plaintext") {
        return;
    }
    let dir = temp_dir("secrecy");
    let pcap = dir.join("session.pcap");
    let record = dir.join("plaintext.bin");
    let display = Display::start(1280, 800);
    let probe = probe(&display, &dir);
    let relay = Relay::start(&dir);
    let mut dump = Command::new("tcpdump")
        .args(["-i", "lo", "-U", "-n", "-s", "0", "-w"])
        .arg(&pcap)
        .args(["udp", "or", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tcpdump");
    // tcpdump needs a moment before it captures.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !pcap.exists() || std::fs::metadata(&pcap).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "tcpdump did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));

    let agent = agent(&relay, &display, "4711", "PC-12", &dir, &[]);
    let code = current_code(&agent);
    let mut viewer = viewer(
        &relay,
        &relay.token,
        "4711",
        &code,
        &dir,
        &["--record-plaintext", record.to_str().unwrap()],
    );
    agent.wait_for(Status::ConsentAsked, T);
    let (x, y) = button(&agent, "consent", "Control");
    display.click(x, y);
    viewer.wait_line("grant Control", T);
    viewer.wait_line("frame ", T);
    let secret_text = "Vertraulich-Zeugnisnoten-7B";
    viewer.send("move 640 500");
    viewer.send(&format!("type {secret_text}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while probe_lines(&probe, "key").len() < secret_text.chars().count() {
        assert!(
            std::time::Instant::now() < deadline,
            "typed text did not arrive: {:?}",
            probe.lines()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    viewer.send("end");
    viewer.wait_exit(T);
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-INT", &dump.id().to_string()])
        .status();
    let _ = dump.wait();

    let wire = std::fs::read(&pcap).expect("pcap");
    let plain = std::fs::read(&record).expect("recorded plaintext");
    assert!(
        wire.len() > 100_000,
        "capture too small to be the session: {} bytes",
        wire.len()
    );
    assert!(
        plain.len() > 10_000,
        "recorded plaintext too small: {} bytes",
        plain.len()
    );
    let find = |needle: &[u8]| wire.windows(needle.len()).any(|w| w == needle);
    assert!(!find(secret_text.as_bytes()), "typed text on the wire");
    let digits: String = code.chars().filter(char::is_ascii_digit).collect();
    assert!(
        !find(code.as_bytes()) && !find(digits.as_bytes()),
        "session code on the wire"
    );

    let on_wire: HashSet<[u8; 16]> = windows16(&wire).collect();
    let mut checked = 0usize;
    // Structural runs (zero padding, small integers, transparent cursor pixels) carry no content
    // and can coincide with capture headers, which are mostly zeros and small numbers; content
    // (compressed tiles, text) has many distinct bytes in any 16. Once in about 15 runs a
    // structural run matched, so runs with fewer than 6 distinct bytes are not counted.
    let distinct = |w: &[u8; 16]| w.iter().collect::<HashSet<_>>().len();
    for (at, w) in windows16(&plain)
        .enumerate()
        .filter(|(_, w)| distinct(w) >= 6)
    {
        checked += 1;
        if on_wire.contains(&w) {
            let wire_at = wire.windows(16).position(|x| x == w).unwrap_or(0);
            panic!("a 16-byte run of decrypted session data is on the wire: {w:02x?} (plaintext offset {at}, capture offset {wire_at}, capture bytes around it: {:02x?})", &wire[wire_at.saturating_sub(16)..(wire_at + 32).min(wire.len())]);
        }
    }
    assert!(
        checked > 10_000,
        "too few plaintext runs checked: {checked}"
    );
    eprintln!(
        "checked {checked} plaintext runs against {} captured bytes",
        wire.len()
    );
}
