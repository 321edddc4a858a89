//! Two relays sharing one audit database on PostgreSQL, as a county with many schools runs
//! them (docs/operations.md, "Several relays"): each pairs its own agents and viewers, both
//! append to one hash chain that verifies from either, and either shows any ticket's history.

use e2e::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[test]
fn two_relays_keep_one_verifiable_record_in_one_postgresql() {
    if !require_tools("two_relays_one_postgresql", &["Xvfb", "xdotool", "psql"]) {
        return;
    }
    let Some(db) = postgres_database("fernhilfe_scale_out") else {
        return;
    };
    let dir = temp_dir("scale_out");
    for side in ["a", "b"] {
        std::fs::create_dir_all(dir.join(side)).unwrap();
    }
    let config = format!("audit_database = \"{db}\"\n");
    let a = Relay::start_with_config(&dir.join("a"), &config);
    // Relays of one database sign its checkpoints with one key: the second gets the first's
    // before it starts, as docs/operations.md tells ops to do.
    let b_state = dir.join("b").join("relay-state");
    std::fs::create_dir_all(&b_state).unwrap();
    std::fs::copy(a.state.join("audit-key.pk8"), b_state.join("audit-key.pk8")).unwrap();
    let b = Relay::start_with_config(&dir.join("b"), &config);

    // One session through each relay, at the same time, each agent on its own display.
    let mut sessions = Vec::new();
    for (relay, ticket, host) in [(&a, "4711", "PC-A"), (&b, "4712", "PC-B")] {
        let display = Display::start(640, 480);
        let agent = agent(relay, &display, ticket, host, &dir, &[]);
        let code = current_code(&agent);
        let viewer = viewer(relay, &relay.token, ticket, &code, &dir, &[]);
        agent.wait_for(Status::ConsentAsked, T);
        answer_consent(&agent, &display, "View");
        viewer.wait_line("grant View", T);
        sessions.push((display, agent, viewer));
    }
    // A viewer at the other relay finds no agent there: pairing is per relay, which is why
    // the ticket's start comment names the relay the agent registered at.
    let b_code = current_code(&sessions[1].1);
    let mut lost = viewer(&a, &a.token, "4712", &b_code, &dir, &[]);
    assert_eq!(lost.wait_exit(T), 2, "a viewer paired across relays");
    for (_, _, viewer) in &mut sessions {
        viewer.send("end");
        assert_eq!(viewer.wait_exit(T), 0);
    }
    for (_, agent, _) in &mut sessions {
        assert_eq!(agent.wait_exit(T), 0);
    }

    // One chain with both relays' records, verified and shown from either relay.
    std::thread::sleep(Duration::from_millis(500));
    let records = a.audit();
    for host in ["PC-A", "PC-B"] {
        let ended = records
            .iter()
            .filter(|r| r.contains(host) && r.contains("session_ended"))
            .count();
        assert_eq!(ended, 1, "{host}: {records:#?}");
    }
    for relay in [&a, &b] {
        let (code, out) = relay_audit(&relay.state, &["verify"]);
        assert_eq!(code, 0, "audit verify failed: {out}");
    }
    let shown = b.audit_cmd(&["show", "4711", "--lang", "en"]);
    assert!(
        shown.contains("PC-A"),
        "relay b does not show relay a's session: {shown}"
    );
}
