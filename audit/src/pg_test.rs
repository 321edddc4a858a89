//! A private PostgreSQL server for the tests, from the Debian package's binaries: one per
//! test process, on a free loopback port, trust authentication, gone when the process is.

use std::process::Command;
use std::sync::OnceLock;

/// The running server's port, or why there is none.
static SERVER: OnceLock<Result<u16, String>> = OnceLock::new();

/// Starts the server with `scripts/test-postgres.sh` (shared with the end-to-end tests).
fn start() -> Result<u16, String> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-postgres.sh");
    let dir = std::env::temp_dir().join(format!("fh-pg-{}", std::process::id()));
    let out = Command::new(script)
        .arg(&dir)
        .arg(std::process::id().to_string())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("test-postgres.sh printed no port: {e}"))
}

/// A fresh database `name` on the test server, as a connection string; `None` (with a note)
/// where PostgreSQL is not installed outside CI. In CI a missing server fails the test.
pub(crate) fn fresh_database(name: &str) -> Option<String> {
    let port = match SERVER.get_or_init(start) {
        Ok(p) => *p,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL tests need a server: {e}")
        }
        Err(e) => {
            eprintln!(
                "SKIPPED PostgreSQL half of the test: {e} (install: scripts/setup.sh postgresql)"
            );
            return None;
        }
    };
    let admin = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    let mut c =
        postgres::Client::connect(&admin, postgres::NoTls).expect("connect to the test server");
    // One statement each: several in one message run as one transaction, which these refuse.
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .expect("drop the old test database");
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create the test database");
    Some(format!(
        "host=127.0.0.1 port={port} user=postgres dbname={name}"
    ))
}
