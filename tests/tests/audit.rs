//! The relay's audit store after a real session: typed records in order, a chain that
//! verifies, and `audit verify` naming the place where someone edited, deleted or reordered
//! rows with the `sqlite3` tool; and, on copies of a real session's store in SQLite and in
//! PostgreSQL, the attacks of someone who can write the database but has no key: all
//! checkpoints deleted, the newest records cut off with their checkpoints, the oldest cut off
//! without a pruning record, and the chain recomputed after an edit with the later
//! checkpoints dropped.

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

/// Where a copy of a real session's store lives, and how to run SQL on it.
enum Store {
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL connection string.
    Postgres(String),
}

impl Store {
    fn sql(&self, sql: &str) {
        match self {
            Store::Sqlite(db) => sqlite(db, sql),
            Store::Postgres(db) => psql(db, sql),
        }
    }

    /// Rows of `query`, fields split at tabs.
    fn rows(&self, query: &str) -> Vec<Vec<String>> {
        let out = match self {
            Store::Sqlite(db) => run_checked(
                Command::new("sqlite3")
                    .args(["-batch", "-noheader", "-separator", "\t"])
                    .arg(db)
                    .arg(query),
            ),
            Store::Postgres(db) => run_checked(Command::new("psql").arg(db).args([
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-F",
                "\t",
                "-c",
                query,
            ])),
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }

    /// SQL for a hash column as hex, and for hex as a hash value.
    fn hex_of(&self, column: &str) -> String {
        match self {
            Store::Sqlite(_) => format!("lower(hex({column}))"),
            Store::Postgres(_) => format!("encode({column}, 'hex')"),
        }
    }

    fn hash_value(&self, hex: &str) -> String {
        match self {
            Store::Sqlite(_) => format!("X'{hex}'"),
            Store::Postgres(_) => format!("decode('{hex}', 'hex')"),
        }
    }
}

fn psql(db: &str, sql: &str) {
    run_checked(
        Command::new("psql")
            .arg(db)
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql]),
    );
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A record's hash as the relay computes it: what an attacker without the key can redo.
fn record_hash(prev: &[u8], seq: i64, time: i64, ticket: i64, kind: &str, body: &str) -> Vec<u8> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"fernhilfe-audit-record-1");
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(time.to_be_bytes());
    h.update(ticket.to_be_bytes());
    h.update((kind.len() as u32).to_be_bytes());
    h.update(kind.as_bytes());
    h.update(body.as_bytes());
    h.finalize().to_vec()
}

/// Edits the body of record `seq` and recomputes the hash chain from there on.
fn edit_and_recompute(store: &Store, seq: i64, from: &str, to: &str) {
    let rows = store.rows(&format!(
        "SELECT seq, time_unix, coalesce(ticket, 0), kind, body, {} FROM audit_record WHERE seq >= {seq} ORDER BY seq",
        store.hex_of("prev_hash")
    ));
    let mut prev = from_hex(&rows[0][5]);
    for r in rows {
        let n: i64 = r[0].parse().unwrap();
        let body = if n == seq {
            assert!(r[4].contains(from), "{r:?}");
            r[4].replace(from, to)
        } else {
            r[4].clone()
        };
        let hash = record_hash(
            &prev,
            n,
            r[1].parse().unwrap(),
            r[2].parse().unwrap(),
            &r[3],
            &body,
        );
        store.sql(&format!(
            "UPDATE audit_record SET body = '{}', prev_hash = {}, hash = {} WHERE seq = {n}",
            body.replace('\'', "''"),
            store.hash_value(&to_hex(&prev)),
            store.hash_value(&to_hex(&hash)),
        ));
        prev = hash;
    }
}

/// A real session, ended at the PC, on a relay that then stops cleanly; its state directory
/// and the records' numbers by kind.
fn session_then_clean_stop(
    name: &str,
    relay_toml: &str,
) -> (std::path::PathBuf, Vec<(i64, String)>, String) {
    let dir = temp_dir(name);
    let display = Display::start(1280, 800);
    let mut relay = Relay::start_with_config(&dir, relay_toml);
    let agent = agent(&relay, &display, "4711", "PC-12", &dir, &[]);
    let code = current_code(&agent);
    let viewer = viewer(&relay, &relay.token, "4711", &code, &dir, &[]);
    answer_consent(&agent, &display, "View");
    viewer.wait_line("grant View", T);
    let (x, y) = button(&agent, "indicator", "End");
    display.click(x, y);
    viewer.wait_line("ended", T);
    assert!(wait_until(T, || relay
        .audit()
        .iter()
        .any(|l| l.contains("\"session_ended\""))));
    let exit = relay.process().terminate(T);
    let log = relay.stderr();
    assert_eq!(exit, 0, "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("audit checkpoint signed") && l.contains("shutdown")),
        "the clean stop is a logged checkpoint: {log}"
    );
    let kinds = relay
        .audit()
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["seq"].as_i64().unwrap(),
                v["record"]["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (relay.state.clone(), kinds, log)
}

/// Runs the four attacks, each on a fresh copy made by `copy`, and checks that `verify`
/// (as of an hour later: what the attacker cannot wait out) exits 1 naming what it found,
/// while the untouched copy verifies.
fn cut_and_rewrite_attacks(
    kinds: &[(i64, String)],
    copy: impl Fn(&str) -> (std::path::PathBuf, Store),
) {
    let seq_of = |kind: &str| {
        kinds
            .iter()
            .find(|(_, k)| k == kind)
            .unwrap_or_else(|| panic!("no {kind} in {kinds:?}"))
            .0
    };
    let (started, consent) = (seq_of("session_started"), seq_of("consent"));
    let later = format!(
        "@{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600
    );
    let verify = |state: &Path| relay_audit(state, &["verify", "--as-of", &later]);
    let (state, _) = copy("intact");
    let (code, said) = verify(&state);
    assert_eq!(
        code, 0,
        "a cleanly stopped relay's record verifies an hour later: {said}"
    );
    type Attack = Box<dyn Fn(&Store)>;
    let attacks: Vec<(&str, Attack, &str)> = vec![
        (
            "all checkpoints deleted",
            Box::new(|s: &Store| s.sql("DELETE FROM audit_signed_checkpoint")),
            "no signed checkpoint covers any record",
        ),
        (
            "newest records and their checkpoints deleted",
            Box::new(move |s: &Store| {
                s.sql(&format!("DELETE FROM audit_record WHERE seq >= {consent}"));
                s.sql(&format!(
                    "DELETE FROM audit_signed_checkpoint WHERE last_seq >= {consent}"
                ));
            }),
            "covered by no signed checkpoint",
        ),
        (
            "oldest records deleted up to a checkpoint without a pruning record",
            Box::new(move |s: &Store| {
                s.sql(&format!("DELETE FROM audit_record WHERE seq < {started}"))
            }),
            "records were removed from the start without a pruning record",
        ),
        (
            "chain recomputed after an edit, later checkpoints dropped",
            Box::new(move |s: &Store| {
                edit_and_recompute(s, consent, "\"view\"", "\"control\"");
                s.sql(&format!(
                    "DELETE FROM audit_signed_checkpoint WHERE last_seq >= {consent}"
                ));
            }),
            "covered by no signed checkpoint",
        ),
    ];
    for (i, (name, attack, expected)) in attacks.iter().enumerate() {
        let (state, store) = copy(&format!("attack{i}"));
        assert_eq!(verify(&state).0, 0, "{name}: the copy verifies");
        attack(&store);
        let (code, said) = verify(&state);
        println!("{name}: {said}");
        assert_eq!(code, 1, "{name}: {said}");
        assert!(
            said.contains(expected),
            "{name}: expected '{expected}', got '{said}'"
        );
    }
}

/// The state directory a copy needs besides the database: the key and the signer name.
fn copy_keys(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["audit-key.pk8", "audit-signer"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

#[test]
fn cutting_or_rewriting_the_sqlite_record_without_the_key_is_named() {
    if !require_tools(
        "cutting_or_rewriting_the_sqlite_record_without_the_key_is_named",
        &["Xvfb", "xdotool", "sqlite3"],
    ) {
        return;
    }
    let (state, kinds, _) = session_then_clean_stop("auditcut", "");
    cut_and_rewrite_attacks(&kinds, |name| {
        let copy = state.with_file_name(format!("copy-{name}"));
        copy_keys(&state, &copy);
        let db = copy.join("audit.sqlite");
        sqlite(
            &state.join("audit.sqlite"),
            &format!(".backup '{}'", db.display()),
        );
        (copy, Store::Sqlite(db))
    });
}

#[test]
fn cutting_or_rewriting_the_postgres_record_without_the_key_is_named() {
    if !require_tools(
        "cutting_or_rewriting_the_postgres_record_without_the_key_is_named",
        &["Xvfb", "xdotool", "psql"],
    ) {
        return;
    }
    let Some(db) = postgres_database("fernhilfe_audit_cut") else {
        return;
    };
    let (state, kinds, _) =
        session_then_clean_stop("auditcutpg", &format!("audit_database = \"{db}\"\n"));
    cut_and_rewrite_attacks(&kinds, |name| {
        let copy = state.with_file_name(format!("copy-{name}"));
        copy_keys(&state, &copy);
        let copy_name = format!("fernhilfe_audit_cut_{name}");
        postgres_admin(&db, &format!("DROP DATABASE IF EXISTS {copy_name}"));
        postgres_admin(
            &db,
            &format!("CREATE DATABASE {copy_name} TEMPLATE fernhilfe_audit_cut"),
        );
        let copy_db = db.replace("dbname=fernhilfe_audit_cut", &format!("dbname={copy_name}"));
        std::fs::write(
            copy.join("relay.toml"),
            format!("audit_database = \"{copy_db}\"\n"),
        )
        .unwrap();
        (copy, Store::Postgres(copy_db))
    });
}
