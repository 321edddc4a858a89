//! A private PostgreSQL server for the tests, from the Debian package's binaries: one per
//! test process, on a free loopback port, trust authentication, gone when the process is.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The running server's port, or why there is none.
static SERVER: OnceLock<Result<u16, String>> = OnceLock::new();

fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs `cmd` as the `postgres` user when we are root (initdb and postgres refuse root).
fn as_server_user(program: &std::path::Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn start() -> Result<u16, String> {
    let bin = bin_dir().ok_or("PostgreSQL not installed (Debian package postgresql)")?;
    let dir = std::env::temp_dir().join(format!("fh-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if is_root() {
        Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?;
    }
    let data = dir.join("data");
    let out = as_server_user(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("initdb: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    // The server goes when this test process goes: a watcher stops it (by /proc, as the
    // server user may not signal a root process to see whether it lives).
    let script = format!(
        "{} -D {} -p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off > {}/log 2>&1 & pg=$!; \
         while [ -d /proc/{} ]; do sleep 1; done; kill $pg",
        bin.join("postgres").display(),
        data.display(),
        dir.display(),
        dir.display(),
        std::process::id()
    );
    let mut watcher = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", &script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &script]);
        c
    };
    watcher.spawn().map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if postgres::Client::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            postgres::NoTls,
        )
        .is_ok()
        {
            return Ok(port);
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "postgres did not start: {}",
                std::fs::read_to_string(dir.join("log")).unwrap_or_default()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A fresh database `name` on the test server, as a connection string; `None` (with a note)
/// where PostgreSQL is not installed outside CI. In CI a missing server fails the test.
pub fn fresh_database(name: &str) -> Option<String> {
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
