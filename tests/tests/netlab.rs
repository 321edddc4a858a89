//! Sessions across real Linux NATs in network namespaces (`tests/netlab.rs`): the relay on a
//! public segment, the agent's PC and the viewer's PC each behind a router. Each row checks
//! the NAT behaviour it actually got (`natprobe`: which address one UDP socket shows to two
//! destinations; and the router's MASQUERADE counter), then the path the session took, then that frames and input flow on that path. Each prints one row of the
//! figures in `docs/paths.md` (`netlab row: ...`; `scripts/paths_figures.sh` collects them).

use e2e::netlab::{Lab, Router, UdpMapping, RELAY_IP};
use e2e::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);
/// How long a session may take to go direct where the NATs allow it.
const DIRECT_WITHIN: Duration = Duration::from_secs(15);

/// Length of the scripted session each row runs.
const SCRIPT: Duration = Duration::from_secs(30);
/// Pace of the scripted session's keys.
const KEY_EVERY: Duration = Duration::from_millis(250);

/// What the scripted session measured.
struct Script {
    /// Key to pixels: viewer input → PC → screen change → frame decoded by the viewer.
    p50: Duration,
    p99: Duration,
    /// Change to pixels: the PC's screen changes → frame decoded by the viewer.
    change_p50: Duration,
    change_p99: Duration,
    keys: usize,
    /// Share of the agent PC's IP bytes that did not go to or come from the relay.
    direct_share: f64,
    bytes: u64,
}

/// The path a row must end on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Direct,
    /// Direct, and the viewer sees that both sides are on one LAN.
    DirectLan,
    Relayed,
    /// Direct if hole punching works, else relayed: the row reports which.
    Either,
}

/// A running session across the lab, with the figures measured on the way.
struct Session {
    lab: Lab,
    display: Display,
    probe: Proc,
    relay: Relay,
    agent: Proc,
    viewer: Proc,
    dir: std::path::PathBuf,
    first_frame_ms: f64,
    /// What the WAN links did to packets.
    link: String,
    /// From starting the agent to its code on screen (registration, over TCP where UDP is
    /// blocked).
    code_shown: Duration,
}

fn value(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// Delays and drops packets on both WANs: netem's 40 ms and 1 % where the kernel has netem;
/// where it has not (this build machine's kernel), a 4 Mbit/s limit (its queue delays under
/// load) and 1 % random drops by iptables. Says which.
fn degrade_wans(lab: &Lab) -> String {
    let mut what = String::new();
    for agent in [true, false] {
        let (r, wan) = (lab.router(agent).to_owned(), lab.wan(agent));
        let netem = [
            "tc", "qdisc", "add", "dev", wan, "root", "netem", "delay", "40ms", "loss", "1%",
        ];
        if lab.try_exec(&r, &netem) {
            what = "netem delay 40ms loss 1% on both WANs".into();
            continue;
        }
        lab.exec(
            &r,
            &[
                "tc", "qdisc", "add", "dev", wan, "root", "tbf", "rate", "4mbit", "burst",
                "32kbit", "latency", "200ms",
            ],
        );
        lab.exec(
            &r,
            &[
                "iptables",
                "-I",
                "FORWARD",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                "0.01",
                "-j",
                "DROP",
            ],
        );
        what = "no netem in this kernel: tbf 4mbit and 1 % random drop on both WANs".into();
    }
    what
}

/// Limits both WANs to `rate` (a token bucket whose queue holds at most 200 ms): a school's
/// thin uplink.
fn shape_wans(lab: &Lab, rate: &str) -> String {
    for agent in [true, false] {
        let (r, wan) = (lab.router(agent).to_owned(), lab.wan(agent));
        lab.exec(
            &r,
            &[
                "tc", "qdisc", "add", "dev", wan, "root", "tbf", "rate", rate, "burst", "32kbit",
                "latency", "200ms",
            ],
        );
    }
    format!("tbf {rate} on both WANs")
}

/// What the WAN links do to packets.
#[derive(Debug, Clone, Copy)]
enum Wan {
    Clean,
    /// See [`degrade_wans`].
    SlowLossy,
    /// See [`shape_wans`].
    Rate(&'static str),
}

/// Where the two PCs sit.
#[derive(Debug, Clone, Copy)]
enum Sites {
    /// Each behind its own router: (agent's, viewer's).
    Apart(Router, Router),
    /// Both on one LAN behind one router.
    SameLan(Router),
}

/// Starts a session across `sites` (on WAN links as `wan` says), up to control
/// granted and a first frame; `None` when root or a tool is missing.
fn start(test: &str, sites: Sites, agent_args: &[&str], wan: Wan) -> Option<Session> {
    if !require_tools(test, &["Xvfb", "xdotool", "ip", "iptables", "tc"]) || !require_root(test) {
        return None;
    }
    let lab = match sites {
        Sites::Apart(a, v) => Lab::new(a, v),
        Sites::SameLan(r) => Lab::same_lan(r),
    };
    let link = match wan {
        Wan::Clean => "clean".into(),
        Wan::SlowLossy => degrade_wans(&lab),
        Wan::Rate(rate) => shape_wans(&lab, rate),
    };
    let dir = temp_dir(test);
    let display = Display::start(1280, 800);
    let probe = probe_with(&display, &dir, &["--echo"]);
    let relay = Relay::start_at(&dir, "", &format!("{RELAY_IP}:4433"), |c| {
        lab.command_in(&lab.public, &c)
    });
    let mut cmd = agent_command(
        &relay.addr,
        ["--relay-fingerprint", &relay.fingerprint],
        "4711",
        &display,
    );
    cmd.args(["--host-name", "PC-12", "--lang", "de"]);
    cmd.args(agent_args);
    let agent_started = Instant::now();
    let agent = Proc::spawn("agent", lab.command_in(&lab.agent_host, &cmd), &dir);
    let code = current_code(&agent);
    let code_shown = agent_started.elapsed();
    let mut cmd = viewer_command(
        &relay.addr,
        ["--relay-fingerprint", &relay.fingerprint],
        &relay.token,
        "4711",
        &code,
    );
    cmd.arg("--headless");
    let viewer = Proc::spawn("viewer", lab.command_in(&lab.viewer_host, &cmd), &dir);
    agent.wait_for(Status::ConsentAsked, T);
    answer_consent(&agent, &display, "Control");
    viewer.wait_line("grant Control", T);
    let first_frame_ms = viewer.wait_status(T, |s| match s {
        Status::FirstFrame { ms, .. } => Some(ms),
        _ => None,
    });
    Some(Session {
        link,
        first_frame_ms,
        code_shown,
        lab,
        display,
        probe,
        relay,
        agent,
        viewer,
        dir,
    })
}

impl Session {
    /// The path lines the viewer printed so far: (kind, rtt ms, ms after connecting).
    fn paths(&self) -> Vec<(String, f64, f64)> {
        self.viewer
            .statuses()
            .into_iter()
            .filter_map(|s| match s {
                Status::Path {
                    kind,
                    rtt_ms,
                    after_ms,
                    ..
                } => Some((
                    kind.label().replace(' ', "_"),
                    f64::from(rtt_ms),
                    after_ms.map_or(f64::NAN, |a| a as f64),
                )),
                _ => None,
            })
            .collect()
    }

    /// Waits until the viewer reports a direct path; its line, or `None` after `limit`.
    fn wait_direct(&self, limit: Duration) -> Option<(String, f64, f64)> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(p) = self.paths().into_iter().find(|p| p.0.starts_with("direct")) {
                return Some(p);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Proves input reaches the PC and the screen comes back, on whatever path is in use now:
    /// types `word` and waits for every key, then for a frame after that.
    fn input_and_frames_flow(&mut self, word: &str) -> Duration {
        let before = self.viewer.lines().len();
        let t0 = Instant::now();
        self.viewer.send(&format!("type {word}"));
        for c in word.chars() {
            self.probe.wait_line(&format!("key {c}"), T);
        }
        self.viewer.wait_line_from(
            before,
            |l| l.starts_with("frame seq="),
            T,
            "a frame after typing",
        );
        t0.elapsed()
    }

    /// The scripted session: for `length`, one key every 250 ms, each repainting 128×128
    /// pixels of noise on the PC. Measures each key's way to the pixels (viewer input → PC →
    /// screen change → frame decoded by the viewer), the change's own way (from the probe's
    /// line, printed just before it paints, to the viewer's frame line; both read by this
    /// process as they arrive), and the share of the agent PC's bytes that did not go through
    /// the relay.
    fn scripted(&mut self, length: Duration) -> Script {
        self.lab.agent_bytes();
        let start = Instant::now();
        let (mut times, mut changes) = (Vec::new(), Vec::new());
        for c in ('a'..='z').cycle() {
            let tick = start + KEY_EVERY * times.len() as u32;
            if tick > start + length {
                break;
            }
            std::thread::sleep(tick.saturating_duration_since(Instant::now()));
            let (v0, p0) = (self.viewer.lines().len(), self.probe.lines().len());
            let key = format!("key {c}");
            let t0 = Instant::now();
            self.viewer.send(&format!("type {c}"));
            let (k, _) = self.probe.wait_line_from(p0, |l| l == key, T, &key);
            let (f, _) =
                self.viewer
                    .wait_line_from(v0, |l| l.starts_with("frame seq="), T, "its frame");
            let (pressed, shown) = (self.probe.arrival(k), self.viewer.arrival(f));
            // The probe prints the key just before it paints: from there to the viewer's
            // decoded frame is the change's way to the technician's pixels.
            changes.push(shown.saturating_duration_since(pressed));
            times.push(shown.saturating_duration_since(t0));
        }
        let (relay, direct) = self.lab.agent_bytes();
        times.sort();
        changes.sort();
        let at = |v: &[Duration], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Script {
            p50: at(&times, 0.5),
            p99: at(&times, 0.99),
            change_p50: at(&changes, 0.5),
            change_p99: at(&changes, 0.99),
            keys: times.len(),
            direct_share: direct as f64 / (relay + direct).max(1) as f64,
            bytes: relay + direct,
        }
    }

    /// Ends the session from the viewer and checks the relay's record of it.
    fn end(mut self) -> String {
        self.viewer.send("end");
        assert_eq!(self.viewer.wait_exit(T), 0);
        assert_eq!(self.agent.wait_exit(T), 0);
        let _ = &self.dir;
        let audit = self.relay.audit().join("\n");
        assert!(audit.contains("session_started"), "{audit}");
        assert!(
            audit.contains("path_changed"),
            "no path in the record: {audit}"
        );
        // The agent's own report of the end reached the relay, over TCP where UDP is blocked:
        // not a lost connection.
        assert!(
            audit.contains(r#""reason":"ended_by_viewer""#),
            "the agent's end report is missing: {audit}"
        );
        audit
    }
}

/// One row of the lab: checks NAT, path and flow, runs the scripted 30 s, and prints its
/// figures.
fn row(test: &str, sites: Sites, expect: Expect, agent_args: &[&str], slow_lossy: bool) {
    let wan = if slow_lossy {
        Wan::SlowLossy
    } else {
        Wan::Clean
    };
    let Some(mut s) = start(test, sites, agent_args, wan) else {
        return;
    };
    let (agent_router, viewer_router) = match sites {
        Sites::Apart(a, v) => (a, Some(v)),
        Sites::SameLan(r) => (r, None),
    };
    // The NAT behaviour each router really has, before any path is asserted.
    for (agent, router) in [(true, Some(agent_router)), (false, viewer_router)] {
        let Some(router) = router else { continue };
        let mapping = s.lab.udp_mapping(agent);
        let ok = match (router, &mapping) {
            (Router::NoNat, UdpMapping::EndpointIndependent(a)) => a.starts_with("10.0."),
            (Router::Nat, UdpMapping::EndpointIndependent(a)) => a.starts_with("203.0.113."),
            (Router::SymmetricNat, UdpMapping::PerDestination(..)) => true,
            (Router::UdpBlocked, UdpMapping::Blocked) => true,
            _ => false,
        };
        assert!(ok, "router {router:?} maps UDP as {mapping:?}");
    }
    if agent_router != Router::NoNat {
        assert!(
            s.lab.agent_router_nat_packets() > 0,
            "the agent's router translated no packet: no NAT was tested"
        );
    }
    let direct = match expect {
        Expect::Relayed => None,
        Expect::Direct | Expect::DirectLan => {
            Some(s.wait_direct(DIRECT_WITHIN).unwrap_or_else(|| {
                panic!("no direct path within {DIRECT_WITHIN:?}: {:?}", s.paths())
            }))
        }
        Expect::Either => s.wait_direct(DIRECT_WITHIN),
    };
    s.input_and_frames_flow("netz");
    let script = s.scripted(SCRIPT);
    let paths = s.paths();
    let now = paths.last().map(|p| p.0.clone()).unwrap_or_default();
    match expect {
        Expect::Relayed => assert_eq!(now, "relayed", "must stay relayed: {paths:?}"),
        Expect::Direct => assert_eq!(now, "direct", "must be direct: {paths:?}"),
        Expect::DirectLan => assert_eq!(now, "direct_LAN", "must be direct on the LAN: {paths:?}"),
        Expect::Either => {}
    }
    let relayed_rtt = s
        .viewer
        .lines()
        .iter()
        .filter(|l| l.starts_with("path "))
        .find_map(|l| {
            value(l, "relay_rtt_ms").or_else(|| {
                l.starts_with("path relayed")
                    .then(|| value(l, "rtt_ms"))
                    .flatten()
            })
        })
        .map_or("-".into(), |ms| format!("{ms:.0} ms"));
    let first_frame = s.first_frame_ms;
    let code_ms = s.code_shown.as_millis();
    let handshake = s
        .viewer
        .lines()
        .iter()
        .find(|l| l.starts_with("e2e-connected "))
        .and_then(|l| value(l, "ms"))
        .map_or("-".into(), |ms| format!("{ms:.0}"));
    let signaling = if s.agent.lines().iter().any(|l| l == "signaling over tcp") {
        "tcp"
    } else {
        "quic"
    };
    let link = s.link.clone();
    s.end();
    println!(
        "netlab row: {test} | {sites:?} | path {now} | signaling {signaling} | code after {code_ms} ms | e2e handshake {handshake} ms | first frame {first_frame:.0} ms | direct after {} | rtt relayed {relayed_rtt} | rtt direct {} | key to pixels p50 {} ms p99 {} ms | change to pixels p50 {:.1} ms p99 {:.1} ms ({} keys) | direct bytes {:.1} % of {} kB | link {link}",
        direct.as_ref().map_or("-".into(), |d| format!("{:.0} ms", d.2)),
        direct.as_ref().map_or("-".into(), |d| format!("{:.0} ms", d.1)),
        script.p50.as_millis(),
        script.p99.as_millis(),
        script.change_p50.as_secs_f64() * 1e3,
        script.change_p99.as_secs_f64() * 1e3,
        script.keys,
        script.direct_share * 100.0,
        script.bytes / 1000,
    );
}

#[test]
fn no_nat_on_either_side_goes_direct() {
    row(
        "netlab_no_nat",
        Sites::Apart(Router::NoNat, Router::NoNat),
        Expect::Direct,
        &[],
        false,
    );
}

#[test]
fn nat_on_both_sides_goes_direct() {
    row(
        "netlab_nat_nat",
        Sites::Apart(Router::Nat, Router::Nat),
        Expect::Direct,
        &[],
        false,
    );
}

#[test]
fn nat_and_symmetric_nat() {
    row(
        "netlab_nat_symmetric",
        Sites::Apart(Router::Nat, Router::SymmetricNat),
        Expect::Either,
        &[],
        false,
    );
}

#[test]
fn symmetric_nat_on_both_sides_stays_relayed() {
    row(
        "netlab_symmetric",
        Sites::Apart(Router::SymmetricNat, Router::SymmetricNat),
        Expect::Relayed,
        &[],
        false,
    );
}

/// A school firewall that blocks UDP: signaling and the session both go over TCP to the
/// relay, found automatically (no flag).
#[test]
fn udp_blocked_school_goes_over_tcp() {
    row(
        "netlab_udp_blocked",
        Sites::Apart(Router::UdpBlocked, Router::Nat),
        Expect::Relayed,
        &[],
        false,
    );
}

#[test]
fn udp_blocked_on_both_sides_goes_over_tcp() {
    row(
        "netlab_udp_blocked_both",
        Sites::Apart(Router::UdpBlocked, Router::UdpBlocked),
        Expect::Relayed,
        &[],
        false,
    );
}

/// Both PCs in one school LAN behind one NAT: the session goes direct on the LAN.
#[test]
fn same_lan_goes_direct_on_the_lan() {
    row(
        "netlab_same_lan",
        Sites::SameLan(Router::Nat),
        Expect::DirectLan,
        &[],
        false,
    );
}

/// The direct path is cut mid-session: the session falls back to the relay and goes on, no
/// input typed after the cut is lost, and once the network heals the session goes direct
/// again.
#[test]
fn direct_path_cut_falls_back_to_the_relay() {
    let test = "netlab_cut_direct";
    let Some(mut s) = start(
        test,
        Sites::Apart(Router::Nat, Router::Nat),
        &[],
        Wan::Clean,
    ) else {
        return;
    };
    s.wait_direct(DIRECT_WITHIN)
        .unwrap_or_else(|| panic!("no direct path to cut: {:?}", s.paths()));
    s.input_and_frames_flow("vor");
    // Every UDP packet through the agent's router is dropped from now on: the direct path is
    // gone, the relay path (TCP) stays.
    let router = s.lab.router(true).to_owned();
    s.lab.exec(
        &router,
        &["iptables", "-I", "FORWARD", "-p", "udp", "-j", "DROP"],
    );
    let cut = Instant::now();
    let typed = "nachdemschnitt";
    let latency = s.input_and_frames_flow(typed);
    let deadline = Instant::now() + T;
    while s.paths().last().map(|p| p.0.as_str()) != Some("relayed") {
        assert!(
            Instant::now() < deadline,
            "no fall back to the relay: {:?}",
            s.paths()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let back_on_relay = cut.elapsed();
    // The network heals: the session finds the direct path again by itself.
    let relayed_lines = s.paths().len();
    s.lab.exec(
        &router,
        &["iptables", "-D", "FORWARD", "-p", "udp", "-j", "DROP"],
    );
    let healed = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s
        .paths()
        .iter()
        .skip(relayed_lines)
        .any(|p| p.0.starts_with("direct"))
    {
        assert!(
            Instant::now() < deadline,
            "no direct path again after the network healed: {:?}",
            s.paths()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let direct_again = healed.elapsed();
    s.input_and_frames_flow("wieder");
    println!(
        "netlab row: {test} | typed {} keys after the cut, all arrived after {} ms | back on relayed after {} ms | direct again {} ms after the network healed",
        typed.len(),
        latency.as_millis(),
        back_on_relay.as_millis(),
        direct_again.as_millis()
    );
    s.end();
}

/// The relay restarts during a direct session: the session goes on.
#[test]
fn relay_restart_during_a_direct_session() {
    let test = "netlab_relay_restart";
    let Some(mut s) = start(
        test,
        Sites::Apart(Router::Nat, Router::Nat),
        &[],
        Wan::Clean,
    ) else {
        return;
    };
    s.wait_direct(DIRECT_WITHIN)
        .unwrap_or_else(|| panic!("no direct path: {:?}", s.paths()));
    let dir = s.dir.clone();
    let public = s.lab.public.clone();
    s.relay.process().kill();
    std::thread::sleep(Duration::from_secs(1));
    let latency = s.input_and_frames_flow("weiter");
    let mut cmd = std::process::Command::new(bin_dir().join("fernhilfe-relay"));
    cmd.arg("--state-dir")
        .arg(&s.relay.state)
        .args(["serve", "--listen", &s.relay.addr]);
    *s.relay.process() = Proc::spawn("relay-restarted", s.lab.command_in(&public, &cmd), &dir);
    s.relay
        .process()
        .wait_line("fernhilfe-relay listening on udp ", T);
    s.input_and_frames_flow("nochmal");
    println!(
        "netlab row: {test} | session went on without the relay: typing to frame {} ms",
        latency.as_millis()
    );
    s.viewer.send("end");
    assert_eq!(s.viewer.wait_exit(T), 0);
}

/// Slow, lossy WANs on both sides (see `degrade_wans`): the session holds.
#[test]
fn slow_lossy_wans_hold() {
    row(
        "netlab_slow_lossy",
        Sites::Apart(Router::Nat, Router::Nat),
        Expect::Either,
        &[],
        true,
    );
}

/// Latest frame wins on a 2 Mbit/s link: 40 keys, one every 30 ms, each repainting 128×128
/// pixels of noise (49 kB losslessly; 12 kB once the region counts as in motion and goes
/// lossy), ask for more than the link carries. Nothing may queue: the viewer skips stale
/// pictures, shows the last one within a couple of seconds of the last key, and ends bit for
/// bit equal to the PC's screen (the lossy region refined).
#[test]
fn a_slow_link_shows_the_newest_screen_without_a_queue() {
    let test = "netlab_pacing";
    let Some(mut s) = start(
        test,
        Sites::Apart(Router::NoNat, Router::NoNat),
        &[],
        Wan::Rate("2mbit"),
    ) else {
        return;
    };
    settle(&s.viewer, Duration::from_millis(500), T);
    let keys: String = ('a'..='z').chain('a'..='n').collect();
    let (v0, p0) = (s.viewer.lines().len(), s.probe.lines().len());
    for c in keys.chars() {
        s.viewer.send(&format!("type {c}"));
        std::thread::sleep(Duration::from_millis(30));
    }
    let last = format!("key {}", keys.chars().last().unwrap());
    let (k, _) = s
        .probe
        .wait_line_from(p0 + keys.len() - 1, |l| l == last, T, &last);
    let last_key = s.probe.arrival(k);
    let first_key = s.probe.arrival(p0);
    // Done when the viewer has had no new frame for a second.
    let quiet = settle(&s.viewer, Duration::from_secs(1), T);
    let lines = s.viewer.lines();
    let frames: Vec<usize> = (v0..lines.len())
        .filter(|&i| lines[i].starts_with("frame seq="))
        .collect();
    let caught_up = frames
        .last()
        .map(|&i| s.viewer.arrival(i).saturating_duration_since(last_key))
        .unwrap_or_default();
    let got = viewer_snapshot(&mut s.viewer, &s.dir, "pacing.png");
    let truth = s.display.screenshot();
    let diff = pixels_differing(&got, &truth);
    println!(
        "netlab pacing: {} keys over {} ms, {} frames, last frame {} ms after the last key (seq {quiet}), {diff} pixels differ at the end; link: {}",
        keys.len(),
        last_key.saturating_duration_since(first_key).as_millis(),
        frames.len(),
        caught_up.as_millis(),
        s.link
    );
    assert!(
        frames.len() < keys.len(),
        "every stale picture was sent: {} frames for {} keys",
        frames.len(),
        keys.len()
    );
    assert!(
        caught_up < Duration::from_millis(2500),
        "the viewer caught up {} ms after the last key: a queue",
        caught_up.as_millis()
    );
    assert_eq!(diff, 0, "the viewer's picture differs from the PC's screen");
}
