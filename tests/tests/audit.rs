//! The relay's audit store after a real session: typed records in order, a chain that
//! verifies, and `audit verify` naming the place where someone edited, deleted or reordered
//! rows with the `sqlite3` tool.

use e2e::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn sqlite(db: &Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tampering_with_the_audit_store_is_named_by_verify() {
    if !require_tools(
        "tampering_with_the_audit_store_is_named_by_verify",
        &["Xvfb", "xdotool", "sqlite3"],
    ) {
        return;
    }
    let s = Session::until_consent("audittamper", &[]);
    s.answer("View");
    s.viewer.wait_line("grant View", T);
    let (x, y) = button(&s.agent, "indicator", "End");
    s.display.click(x, y);
    s.viewer.wait_line("ended", T);
    let records = s.relay.audit();
    let seq_of = |kind: &str| -> i64 {
        records
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["record"]["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {records:#?}"))["seq"]
            .as_i64()
            .unwrap()
    };
    let (started, consent) = (seq_of("session_started"), seq_of("consent"));
    assert!(records
        .iter()
        .all(|l| !l.contains(&current_code(&s.agent).replace('-', ""))));

    // Each attack on a consistent copy of the live store, with the relay's checkpoint key.
    let attacks = [
        (
            "edit",
            format!("UPDATE audit_record SET body = replace(body, 'Anna Schmidt', 'Bert Meier') WHERE seq = {started}"),
            format!("record {started} was edited"),
        ),
        (
            "delete",
            format!("DELETE FROM audit_record WHERE seq = {consent}"),
            format!("records before {} were deleted", consent + 1),
        ),
        (
            "reorder",
            format!(
                "UPDATE audit_record SET seq = -1 WHERE seq = {started};
                 UPDATE audit_record SET seq = {started} WHERE seq = {consent};
                 UPDATE audit_record SET seq = {consent} WHERE seq = -1;"
            ),
            format!("record {started} does not follow"),
        ),
    ];
    let (code, intact) = relay_audit(&s.relay.state, &["verify"]);
    assert_eq!(code, 0, "{intact}");
    assert!(intact.starts_with("audit chain intact"), "{intact}");
    for (name, sql, expected) in attacks {
        let copy = s.dir.join(format!("state-{name}"));
        std::fs::create_dir_all(&copy).unwrap();
        sqlite(
            &s.relay.state.join("audit.sqlite"),
            &format!(".backup '{}'", copy.join("audit.sqlite").display()),
        );
        std::fs::copy(
            s.relay.state.join("audit-key.pk8"),
            copy.join("audit-key.pk8"),
        )
        .unwrap();
        assert_eq!(
            relay_audit(&copy, &["verify"]).0,
            0,
            "{name}: the copy verifies"
        );
        sqlite(&copy.join("audit.sqlite"), &sql);
        let (code, said) = relay_audit(&copy, &["verify"]);
        println!("{name}: {said}");
        assert_eq!(code, 1, "{name}: {said}");
        assert!(
            said.contains(&expected),
            "{name}: expected '{expected}', got '{said}'"
        );
    }

    // The export says the same in CSV, one line per record plus the header.
    let (code, csv) = relay_audit(
        &s.relay.state,
        &["export", "--format", "csv", "--since", "2020-01-01"],
    );
    assert_eq!(code, 0);
    assert_eq!(csv.lines().count(), records.len() + 1, "{csv}");
    let (_, en) = relay_audit(&s.relay.state, &["show", "4711", "--lang", "en"]);
    assert!(
        en.contains("consent given: view only") && en.contains("session ended (ended at the PC)"),
        "{en}"
    );
}
