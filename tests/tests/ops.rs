//! The relay as ops see it: the HTTP listener for health, readiness and metrics, what the
//! metrics count in a real session, that they never name a ticket, a person or an address, and
//! that the listener stays up for a monitoring system while someone holds connections open.

use e2e::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// One HTTP/1.1 request; (status, body).
fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the ops listener");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("a reply");
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of one series (`name` with its labels, as printed) in a metrics text.
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

fn scrape(relay: &Relay) -> String {
    let (status, body) = http(&relay.ops, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn metrics_count_a_real_session_and_name_no_ticket_person_or_address() {
    if !require_tools("metrics_count_a_real_session", &["Xvfb", "xdotool"]) {
        return;
    }
    let mut s = Session::until_consent("ops_metrics", &[]);
    let relay_ops = s.relay.ops.clone();
    assert_eq!(http(&relay_ops, "GET", "/healthz"), (200, "ok\n".into()));
    assert_eq!(http(&relay_ops, "GET", "/readyz"), (200, "ready\n".into()));
    assert_eq!(http(&relay_ops, "POST", "/metrics").0, 405);
    assert_eq!(http(&relay_ops, "GET", "/").0, 404);

    // A stranger with a bad token, while the agent waits for consent.
    let code = current_code(&s.agent);
    let mut stranger = viewer(&s.relay, &forged_token(), "4711", &code, &s.dir, &[]);
    stranger.wait_exit(T);
    s.answer("View");
    s.viewer.wait_line("grant View", T);
    let during = wait_for(&s.relay, |m| {
        value(m, r#"fernhilfe_relay_sessions_running{path="direct_lan"}"#)
            + value(m, r#"fernhilfe_relay_sessions_running{path="direct"}"#)
            + value(m, r#"fernhilfe_relay_sessions_running{path="relayed"}"#)
            == 1.0
    });
    assert_eq!(
        value(&during, "fernhilfe_relay_sessions_started_total"),
        1.0,
        "{during}"
    );
    assert_eq!(
        value(
            &during,
            r#"fernhilfe_relay_refusals_total{reason="bad_staff_token"}"#
        ),
        1.0,
        "{during}"
    );
    assert_eq!(
        value(&during, "fernhilfe_relay_agents_waiting"),
        0.0,
        "{during}"
    );
    assert!(
        value(&during, "fernhilfe_relay_audit_write_seconds_count") >= 1.0,
        "{during}"
    );
    assert!(
        during.contains("iroh_relayserver_bytes_sent_total"),
        "{during}"
    );

    // The viewer ends the session: no session runs, and the end is counted by how.
    s.viewer.send("end");
    let after = wait_for(&s.relay, |m| {
        value(
            m,
            r#"fernhilfe_relay_sessions_ended_total{reason="ended_by_viewer"}"#,
        ) == 1.0
    });
    for path in ["pending", "direct", "direct_lan", "relayed"] {
        let series = format!(r#"fernhilfe_relay_sessions_running{{path="{path}"}}"#);
        assert_eq!(value(&after, &series), 0.0, "{after}");
    }
    // Nothing of the school, the person or the network: not in a label, not anywhere.
    for secret in [
        "4711",
        "PC-12",
        "Anna",
        "Schmidt",
        "127.0.0.1",
        code.as_str(),
    ] {
        for line in after.lines().filter(|l| !l.starts_with('#')) {
            let labels = line.split(' ').next().unwrap_or("");
            assert!(!labels.contains(secret), "{secret} in {line}");
        }
    }
    for secret in ["PC-12", "Anna", "Schmidt", "127.0.0.1", code.as_str()] {
        assert!(!after.contains(secret), "{secret} in the metrics:\n{after}");
    }
    // Every series the Grafana dashboard shows exists.
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../packaging/grafana/fernhilfe-relay.json"),
    )
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut shown = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("fernhilfe_") || w.starts_with("iroh_"))
            {
                shown += 1;
                assert!(
                    after.lines().any(|l| l.starts_with(name)),
                    "the dashboard shows {name}, which the relay does not serve:\n{after}"
                );
            }
        }
    }
    assert!(shown >= 10, "{shown} series in the dashboard");
}

/// Scrapes until `done` holds (records and gauges follow events by a moment).
fn wait_for(relay: &Relay, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + T;
    loop {
        let m = scrape(relay);
        if done(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "metrics never got there:\n{m}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn waiting_agents_are_counted_and_health_holds_against_held_connections() {
    if !require_tools("waiting_agents_are_counted", &["Xvfb"]) {
        return;
    }
    let dir = temp_dir("ops_waiting");
    let display = Display::start(640, 480);
    // A process: metrics are per process, and other tests' relays run in this one.
    let relay = Relay::start_process(&dir);
    let _agent = agent(&relay, &display, "4711", "PC-12", &dir, &[]);
    wait_for(&relay, |m| {
        value(m, "fernhilfe_relay_agents_waiting") == 1.0
    });

    // Someone opens connections and sends nothing (or half a request): the listener cuts them
    // off after its header timeout and keeps answering the monitoring system meanwhile.
    let held: Vec<TcpStream> = (0..40)
        .map(|i| {
            let mut c = TcpStream::connect(&relay.ops).expect("connect");
            if i % 2 == 0 {
                c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                    .unwrap();
            }
            c
        })
        .collect();
    let started = Instant::now();
    assert_eq!(http(&relay.ops, "GET", "/healthz").0, 200);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(12), "healthz took {took:?}");
    drop(held);
    assert_eq!(http(&relay.ops, "GET", "/readyz").0, 200);
}

#[test]
fn json_logs_are_one_object_per_line_without_secrets() {
    let dir = temp_dir("ops_json");
    let mut relay = Relay::start_at(&dir, "", "127.0.0.1:0", |mut c| {
        c.args(["--log-format", "json"]);
        c
    });
    assert!(wait_until(T, || relay.stderr().contains("relay running")));
    relay.process().kill();
    let stderr = relay.stderr();
    for l in stderr.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(
            v.get("message").is_some() && v.get("level").is_some(),
            "{l}"
        );
    }
    assert!(!stderr.contains(&relay.token), "the staff token in the log");
}

/// An audit store that stops taking records (the database dropped under a running relay): the
/// relay says it is not ready, so a load balancer sends no new sessions to a relay that cannot
/// keep evidence, and the failure is counted.
#[test]
fn a_relay_whose_audit_store_fails_is_not_ready() {
    if !require_tools("audit_store_fails", &["Xvfb", "psql"]) {
        return;
    }
    let Some(db) = postgres_database("fernhilfe_ops_readiness") else {
        return;
    };
    let dir = temp_dir("ops_readiness");
    let relay = Relay::start_with_config(&dir, &format!("audit_database = \"{db}\"\n"));
    assert_eq!(http(&relay.ops, "GET", "/readyz"), (200, "ready\n".into()));
    postgres_admin(&db, "DROP DATABASE fernhilfe_ops_readiness WITH (FORCE)");
    // Something to record: a PC registers.
    let display = Display::start(640, 480);
    let _agent = agent(&relay, &display, "4711", "PC-12", &dir, &[]);
    let deadline = Instant::now() + T;
    loop {
        let (status, body) = http(&relay.ops, "GET", "/readyz");
        if status == 503 {
            assert_eq!(body, "not ready: the audit store failed to write\n");
            break;
        }
        assert!(Instant::now() < deadline, "still ready: {status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        value(
            &scrape(&relay),
            "fernhilfe_relay_audit_write_failures_total"
        ) >= 1.0
    );
    assert_eq!(
        http(&relay.ops, "GET", "/healthz").0,
        200,
        "alive, only not ready"
    );
}
