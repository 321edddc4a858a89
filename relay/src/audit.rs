//! The relay's audit log: one JSON object per line, appended, never rewritten. It records who
//! paired with which ticket and when, never codes, tokens or screen content. (A hash-chained
//! SQLite store is the direction; this is the record the first version keeps.)

use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// What happened.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    AgentRegistered,
    AgentLeft,
    ViewerRefused,
    WrongCode,
    SessionStarted,
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

/// The append-only log file.
pub struct AuditLog {
    file: Mutex<std::fs::File>,
    path: PathBuf,
}

impl AuditLog {
    /// Opens (or creates) `audit.jsonl` in the state directory for appending.
    pub fn open(dir: &std::path::Path) -> std::io::Result<Self> {
        let path = dir.join("audit.jsonl");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(Self {
            file: Mutex::new(file),
            path,
        })
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
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = f.write_all(line.as_bytes()).and_then(|_| f.flush()) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot append to the audit log");
        }
    }
}
