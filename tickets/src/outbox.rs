//! Delivers the queued session reports to the ticket system, on a thread of its own with its
//! own connection to the audit database: in order of queueing (a ticket's end report never
//! before its start report), retried with growing pauses
//! while the system is down, never posted twice (the connector checks before a retry), and
//! marked failed once retrying cannot help or has gone on for about two days.

use super::{Connector, ConnectorError};
use audit::db::{Db, DbError, Location};
use audit::report::SessionReport;
use std::sync::mpsc;
use std::time::Duration;

/// Tries before a report is marked failed; with the pauses below, about two days.
const MAX_ATTEMPTS: u32 = 60;
/// The longest pause between tries.
const MAX_PAUSE_SECS: i64 = 3600;
/// Reports taken per turn.
const TURN: i64 = 16;
/// A report taken is not taken again (by this or another relay sharing the database) for
/// this long, unless its try ends first: longer than a try can take.
const LEASE_SECS: i64 = 120;

/// The pause after `attempts` failed tries: `base` doubled each time, at most an hour.
pub fn pause(base_secs: i64, attempts: u32) -> i64 {
    base_secs
        .saturating_mul(1i64 << attempts.saturating_sub(1).min(20))
        .min(MAX_PAUSE_SECS)
}

/// Starts the delivery thread over the audit database at `at`; `wake` says a report was
/// queued. `retry_base_secs` is the first pause after a failed try. With `public_address`,
/// start reports carry the `fernhilfe://` link to this relay and the ticket.
pub fn spawn(
    at: Location,
    connector: std::sync::Arc<dyn Connector>,
    wake: mpsc::Receiver<()>,
    retry_base_secs: u32,
    public_address: Option<String>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ticket-reports".into())
        .spawn(move || {
            let mut db = match Db::open(&at) {
                Ok(db) => db,
                Err(e) => {
                    tracing::error!(error = %e, "ticket reports: cannot open the audit database; no reports will be sent");
                    return;
                }
            };
            let base = i64::from(retry_base_secs.max(1));
            deliver_loop(&mut db, connector.as_ref(), &wake, base, public_address.as_deref());
        })?;
    Ok(())
}

fn deliver_loop(
    db: &mut Db,
    connector: &dyn Connector,
    wake: &mpsc::Receiver<()>,
    base: i64,
    public_address: Option<&str>,
) {
    loop {
        if let Err(e) = turn(db, connector, base, public_address) {
            tracing::error!(error = %e, "ticket reports: the audit database failed");
        }
        count_for_metrics(db);
        let next = db
            .query(
                "SELECT MIN(next_attempt_unix) FROM report_outbox WHERE state = 'pending'",
                &[],
            )
            .ok()
            .and_then(|rows| rows.first().and_then(|r| r[0].int()));
        let wait = next.map_or(60, |t| (t - audit::clock::unix_now()).clamp(0, 60)) as u64;
        match wake.recv_timeout(Duration::from_secs(wait)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            // The relay is shutting down; what is left goes out after the next start.
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        while wake.try_recv().is_ok() {}
    }
}

/// Sets the metrics' pending and failed report counts (of every relay sharing the database).
fn count_for_metrics(db: &mut Db) {
    let Ok(rows) = db.query(
        "SELECT state, COUNT(*) FROM report_outbox WHERE state IN ('pending', 'failed') GROUP BY state",
        &[],
    ) else {
        return;
    };
    let m = crate::metrics::metrics();
    let (mut pending, mut failed) = (0, 0);
    for r in rows {
        match r[0].text().as_str() {
            "pending" => pending = r[1].int().unwrap_or(0),
            _ => failed = r[1].int().unwrap_or(0),
        }
    }
    m.ticket_reports_pending.set(pending);
    m.ticket_reports_failed.set(failed);
}

/// Takes the reports that are due (a ticket's in order: none while an earlier one of it is
/// pending), leasing them so no other relay tries them at the same time.
fn take_due(db: &mut Db) -> Result<Vec<(i64, String, String, u32)>, DbError> {
    let now = audit::clock::unix_now();
    db.transaction(true, |db| {
        let due = db.query(
            "SELECT id, idempotency_key, payload, attempts FROM report_outbox r WHERE state = 'pending' AND next_attempt_unix <= ?1
             AND NOT EXISTS (SELECT 1 FROM report_outbox o WHERE o.ticket = r.ticket AND o.state = 'pending' AND o.id < r.id)
             ORDER BY id LIMIT ?2",
            &[now.into(), TURN.into()],
        )?;
        let mut out = Vec::new();
        for r in due {
            let id = r[0].int().unwrap_or(0);
            db.execute(
                "UPDATE report_outbox SET next_attempt_unix = ?1 WHERE id = ?2",
                &[(now + LEASE_SECS).into(), id.into()],
            )?;
            out.push((id, r[1].text(), r[2].text(), r[3].int().unwrap_or(0) as u32));
        }
        Ok(out)
    })
}

/// Tries every report that is due once.
fn turn(
    db: &mut Db,
    connector: &dyn Connector,
    base: i64,
    public_address: Option<&str>,
) -> Result<(), DbError> {
    for (id, key, payload, attempts) in take_due(db)? {
        let result = match serde_json::from_str::<SessionReport>(&payload) {
            Ok(mut report) => {
                report.link = public_address.and_then(|relay| {
                    let ticket = protocol::ids::TicketNumber::from_u64(report.ticket).ok()?;
                    let link = protocol::link::SessionLink {
                        relay: relay.to_owned(),
                        ticket,
                    };
                    Some(link.to_string())
                });
                connector.post(&report, &key, attempts > 0)
            }
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
                db.execute(
                    "UPDATE report_outbox SET state = 'delivered', attempts = ?1, delivered_unix = ?2, last_error = NULL WHERE id = ?3",
                    &[i64::from(attempts).into(), audit::clock::unix_now().into(), id.into()],
                )?;
            }
            Err(ConnectorError::Transient(e)) if attempts < MAX_ATTEMPTS => {
                let after = pause(base, attempts);
                tracing::warn!(key, attempts, retry_in_s = after, error = %e, "session report not delivered; will retry");
                db.execute(
                    "UPDATE report_outbox SET attempts = ?1, next_attempt_unix = ?2, last_error = ?3 WHERE id = ?4",
                    &[i64::from(attempts).into(), (audit::clock::unix_now() + after).into(), e.into(), id.into()],
                )?;
            }
            Err(e) => {
                tracing::error!(key, attempts, error = %e, "session report failed for good");
                db.execute(
                    "UPDATE report_outbox SET state = 'failed', attempts = ?1, last_error = ?2 WHERE id = ?3",
                    &[i64::from(attempts).into(), e.to_string().into(), id.into()],
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
