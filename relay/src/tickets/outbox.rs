//! Delivers the queued session reports to the ticket system, on a thread of its own with its
//! own connection to the audit database: in order of queueing (a ticket's end report never
//! before its start report), retried with growing pauses
//! while the system is down, never posted twice (the connector checks before a retry), and
//! marked failed once retrying cannot help or has gone on for about two days.

use super::report::SessionReport;
use super::{Connector, ConnectorError};
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// Tries before a report is marked failed; with the pauses below, about two days.
const MAX_ATTEMPTS: u32 = 60;
/// The longest pause between tries.
const MAX_PAUSE_SECS: i64 = 3600;
/// Reports taken per turn.
const TURN: i64 = 16;

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The pause after `attempts` failed tries: `base` doubled each time, at most an hour.
pub fn pause(base_secs: i64, attempts: u32) -> i64 {
    base_secs
        .saturating_mul(1i64 << attempts.saturating_sub(1).min(20))
        .min(MAX_PAUSE_SECS)
}

/// Starts the delivery thread over the audit database in `dir`; `wake` says a report was
/// queued. `retry_base_secs` is the first pause after a failed try.
pub fn spawn(
    dir: &Path,
    connector: std::sync::Arc<dyn Connector>,
    wake: mpsc::Receiver<()>,
    retry_base_secs: u32,
) -> std::io::Result<()> {
    let path = dir.join(crate::audit::store::FILE);
    std::thread::Builder::new()
        .name("ticket-reports".into())
        .spawn(move || {
            let conn = match Connection::open(&path).and_then(|c| {
                c.busy_timeout(Duration::from_secs(5))?;
                Ok(c)
            }) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "ticket reports: cannot open the audit database; no reports will be sent");
                    return;
                }
            };
            deliver_loop(&conn, connector.as_ref(), &wake, i64::from(retry_base_secs.max(1)));
        })?;
    Ok(())
}

fn deliver_loop(
    conn: &Connection,
    connector: &dyn Connector,
    wake: &mpsc::Receiver<()>,
    base: i64,
) {
    loop {
        match turn(conn, connector, base) {
            Ok(()) => {}
            Err(e) => tracing::error!(error = %e, "ticket reports: the audit database failed"),
        }
        let next: Option<i64> = conn
            .query_row(
                "SELECT MIN(next_attempt_unix) FROM report_outbox WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )
            .unwrap_or(None);
        let wait = next.map_or(60, |t| (t - now_unix()).clamp(0, 60)) as u64;
        match wake.recv_timeout(Duration::from_secs(wait)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            // The relay is shutting down; what is left goes out after the next start.
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        while wake.try_recv().is_ok() {}
    }
}

/// Tries every report that is due once.
fn turn(conn: &Connection, connector: &dyn Connector, base: i64) -> rusqlite::Result<()> {
    let due: Vec<(i64, String, String, u32)> = {
        let mut q = conn.prepare(
            // A ticket's reports go in order: none while an earlier one of it is pending.
            "SELECT id, idempotency_key, payload, attempts FROM report_outbox r WHERE state = 'pending' AND next_attempt_unix <= ?1
             AND NOT EXISTS (SELECT 1 FROM report_outbox o WHERE o.ticket = r.ticket AND o.state = 'pending' AND o.id < r.id)
             ORDER BY id LIMIT ?2",
        )?;
        let rows = q.query_map(params![now_unix(), TURN], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    for (id, key, payload, attempts) in due {
        let result = match serde_json::from_str::<SessionReport>(&payload) {
            Ok(report) => connector.post(&report, &key, attempts > 0),
            Err(e) => Err(ConnectorError::Permanent(format!(
                "queued report unreadable: {e}"
            ))),
        };
        let attempts = attempts + 1;
        match result {
            Ok(()) => {
                tracing::info!(
                    key,
                    attempts,
                    system = connector.name(),
                    "session report delivered"
                );
                conn.execute(
                    "UPDATE report_outbox SET state = 'delivered', attempts = ?2, delivered_unix = ?3, last_error = NULL WHERE id = ?1",
                    params![id, attempts, now_unix()],
                )?;
            }
            Err(ConnectorError::Transient(e)) if attempts < MAX_ATTEMPTS => {
                let after = pause(base, attempts);
                tracing::warn!(key, attempts, retry_in_s = after, error = %e, "session report not delivered; will retry");
                conn.execute(
                    "UPDATE report_outbox SET attempts = ?2, next_attempt_unix = ?3, last_error = ?4 WHERE id = ?1",
                    params![id, attempts, now_unix() + after, e],
                )?;
            }
            Err(e) => {
                tracing::error!(key, attempts, error = %e, "session report failed for good");
                conn.execute(
                    "UPDATE report_outbox SET state = 'failed', attempts = ?2, last_error = ?3 WHERE id = ?1",
                    params![id, attempts, e.to_string()],
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pauses_double_up_to_an_hour() {
        let p: Vec<i64> = (1..=12).map(|a| super::pause(5, a)).collect();
        assert_eq!(&p[..6], &[5, 10, 20, 40, 80, 160]);
        assert_eq!(p[11], 3600);
    }
}
