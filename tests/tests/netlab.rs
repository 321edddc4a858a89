//! Sessions across real Linux NATs in network namespaces (`tests/netlab.rs`): the relay on a
//! public segment, the agent's PC and the viewer's PC each behind a router. Each test checks
//! that the NAT it asked for really translated packets, then that a whole session works
//! across it: consent, frames, and input arriving on the PC. Today every session is relayed;
//! the path each took is printed (from the relay's audit log).

use e2e::netlab::{Lab, Router, RELAY_IP};
use e2e::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn session_across(test: &str, agent_side: Router, viewer_side: Router) {
    if !require_tools(test, &["Xvfb", "xdotool", "ip", "iptables"]) || !require_root(test) {
        return;
    }
    let lab = Lab::new(agent_side, viewer_side);
    let dir = temp_dir(test);
    let display = Display::start(1280, 800);
    let probe = probe(&display, &dir);
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
    let agent = Proc::spawn("agent", lab.command_in(&lab.agent_host, &cmd), &dir);
    let code = current_code(&agent);
    let mut cmd = viewer_command(
        &relay.addr,
        ["--relay-fingerprint", &relay.fingerprint],
        &relay.token,
        "4711",
        &code,
    );
    cmd.arg("--headless");
    let mut viewer = Proc::spawn("viewer", lab.command_in(&lab.viewer_host, &cmd), &dir);
    agent.wait_line("consent asked", T);
    answer_consent(&agent, &display, "Control");
    viewer.wait_line("grant Control", T);
    viewer.wait_line("frame seq=", T);
    viewer.send("type netz");
    for c in ["n", "e", "t", "z"] {
        probe.wait_line(&format!("key {c}"), T);
    }
    viewer.send("end");
    assert_eq!(viewer.wait_exit(T), 0);
    let audit = relay.audit().join("\n");
    let path = audit
        .split("path=")
        .nth(1)
        .and_then(|p| p.split('"').next())
        .unwrap_or("?")
        .to_owned();
    println!("{test}: agent {agent_side:?} x viewer {viewer_side:?}: path {path}");
    if agent_side != Router::NoNat {
        assert!(
            lab.agent_router_nat_packets() > 0,
            "the agent's router translated no packet"
        );
    }
    assert!(audit.contains("session_started"), "{audit}");
}

#[test]
fn no_nat_on_either_side() {
    session_across("netlab_no_nat", Router::NoNat, Router::NoNat);
}

#[test]
fn nat_on_both_sides() {
    session_across("netlab_nat_nat", Router::Nat, Router::Nat);
}

#[test]
fn symmetric_nat_on_both_sides() {
    session_across(
        "netlab_symmetric",
        Router::SymmetricNat,
        Router::SymmetricNat,
    );
}

/// Behind a school firewall that blocks UDP the agent cannot reach the relay today (the
/// TCP/443 path is issue 7's): it must say so clearly and exit, not hang.
#[test]
fn udp_blocked_fails_with_a_clear_error_for_now() {
    let test = "netlab_udp_blocked";
    if !require_tools(test, &["Xvfb", "ip", "iptables"]) || !require_root(test) {
        return;
    }
    let lab = Lab::new(Router::UdpBlocked, Router::Nat);
    let dir = temp_dir(test);
    let display = Display::start(800, 600);
    let relay = Relay::start_at(&dir, "", &format!("{RELAY_IP}:4433"), |c| {
        lab.command_in(&lab.public, &c)
    });
    let cmd = agent_command(
        &relay.addr,
        ["--relay-fingerprint", &relay.fingerprint],
        "4711",
        &display,
    );
    let mut agent = Proc::spawn("agent", lab.command_in(&lab.agent_host, &cmd), &dir);
    assert_eq!(agent.wait_exit(T), 1);
    assert!(
        agent
            .stderr()
            .contains("cannot reach the relay at 203.0.113.1:4433")
            && agent.stderr().contains("UDP"),
        "{}",
        agent.stderr()
    );
}
