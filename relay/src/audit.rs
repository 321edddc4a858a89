//! The relay's audit log: one JSON object per line, appended, never rewritten. It records who
//! paired with which ticket and when, never codes, tokens or screen content. (A hash-chained
//! SQLite store is the direction; this is the record the first version keeps.)
//!
//! Records are written by a thread of their own, so a slow disk never stalls the runtime that
//! pairs sessions; the file is readable by its owner only.

use serde::Serialize;
use std::io::Write;
use std::sync::mpsc;

/// What happened.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    AgentRegistered,
    AgentLeft,
    ViewerRefused,
    WrongCode,
    SessionStarted,
    /// The session's connection took another path (relayed, direct, direct LAN).
    PathChanged,
    SessionEnded,
}

#[derive(Serialize)]
struct Record<'a> {
    time_unix: u64,
    event: &'a AuditEvent,
    ticket: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    staff: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

/// The append-only log file, fed through its writer thread.
pub struct AuditLog {
    lines: mpsc::Sender<String>,
}

impl AuditLog {
    /// Opens (or creates, mode 0600) `audit.jsonl` in the state directory for appending, and
    /// starts its writer thread.
    pub fn open(dir: &std::path::Path) -> std::io::Result<Self> {
        let path = dir.join("audit.jsonl");
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(&path)?;
        let (lines, rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || {
                for line in rx {
                    if let Err(e) = file.write_all(line.as_bytes()).and_then(|_| file.flush()) {
                        tracing::error!(path = %path.display(), error = %e, "cannot append to the audit log");
                    }
                }
            })?;
        Ok(Self { lines })
    }

    /// Appends one record; a failing disk is logged, not fatal, so sessions keep working.
    pub fn record(
        &self,
        event: AuditEvent,
        ticket: protocol::ids::TicketNumber,
        host: Option<&str>,
        staff: Option<&str>,
        detail: Option<&str>,
    ) {
        let time_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let rec = Record {
            time_unix,
            event: &event,
            ticket: ticket.get(),
            host,
            staff,
            detail,
        };
        let mut line = serde_json::to_string(&rec).expect("audit record serializes");
        line.push('\n');
        if self.lines.send(line).is_err() {
            tracing::error!("the audit writer stopped; record lost");
        }
    }
}
