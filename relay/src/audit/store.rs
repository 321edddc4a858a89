//! The audit store: SQLite in the state directory, one row per record, hash-chained.
//!
//! Each record's hash covers the previous record's hash and everything stored in the row, so
//! an edited, deleted or reordered row breaks the chain at that place. A plain hash chain can
//! be recomputed by whoever can write the file, so the relay also signs checkpoints (record
//! number and hash) with a key of its own (`audit-key.pk8`, 0600): rewriting history before
//! the last checkpoint needs that key. Retention deletes old rows only after signing a
//! checkpoint for the first row it keeps, so the shortened chain still verifies.

use super::record::AuditRecord;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The store's file in the state directory.
pub const FILE: &str = "audit.sqlite";
/// The checkpoint signing key in the state directory.
pub const KEY_FILE: &str = "audit-key.pk8";
/// The hash before the first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// Schema versions, applied in order; `PRAGMA user_version` says how many ran.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE audit_record (
        seq INTEGER PRIMARY KEY,
        time_unix INTEGER NOT NULL,
        ticket INTEGER,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        prev_hash BLOB NOT NULL,
        hash BLOB NOT NULL
    );
    CREATE INDEX audit_record_ticket ON audit_record (ticket, seq);
    CREATE INDEX audit_record_time ON audit_record (time_unix);
    CREATE TABLE audit_checkpoint (
        seq INTEGER PRIMARY KEY,
        hash BLOB NOT NULL,
        time_unix INTEGER NOT NULL,
        signature BLOB NOT NULL
    );",
    // Session reports for the ticket system, queued with the record they report.
    "CREATE TABLE report_outbox (
        id INTEGER PRIMARY KEY,
        record_seq INTEGER NOT NULL UNIQUE,
        ticket INTEGER NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        payload TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_unix INTEGER NOT NULL,
        last_error TEXT,
        delivered_unix INTEGER
    );
    CREATE INDEX report_outbox_due ON report_outbox (state, next_attempt_unix);
    CREATE INDEX report_outbox_ticket ON report_outbox (ticket);",
];

/// Errors of the audit store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("audit database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("audit key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("audit database {path} is from a newer relay (schema {found}, this relay knows {known}): upgrade the relay")]
    NewerSchema {
        path: String,
        found: u32,
        known: usize,
    },
    #[error("audit record cannot be stored: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// One stored record as read back.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub seq: i64,
    pub time_unix: i64,
    pub ticket: Option<u64>,
    pub kind: String,
    pub body: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl StoredRecord {
    /// The typed record, if the body still parses.
    pub fn record(&self) -> Option<AuditRecord> {
        serde_json::from_str(&self.body).ok()
    }
}

/// The first place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The record number where it shows.
    pub seq: i64,
    pub what: BreakKind,
}

/// How the chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// The row's contents no longer give its hash.
    Edited,
    /// Rows before this one are missing.
    Deleted,
    /// The row does not follow the one stored before it.
    Reordered,
    /// The chain starts after record 1 without a valid signed checkpoint.
    UnanchoredStart,
    /// A checkpoint's signature or hash does not match.
    BadCheckpoint,
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.seq;
        match self.what {
            BreakKind::Edited => write!(f, "record {s} was edited: its contents do not give its hash"),
            BreakKind::Deleted => write!(f, "records before {s} were deleted: the numbering has a gap"),
            BreakKind::Reordered => write!(f, "record {s} does not follow the record stored before it (reordered, or one replaced)"),
            BreakKind::UnanchoredStart => write!(f, "the record starts at {s} without a signed checkpoint: the records before it were removed outside retention"),
            BreakKind::BadCheckpoint => write!(f, "the signed checkpoint at record {s} does not match (forged, or the record was rewritten)"),
        }
    }
}

/// What `verify` found.
#[derive(Debug)]
pub struct Verified {
    pub records: u64,
    pub first: Option<i64>,
    pub last: Option<i64>,
    pub checkpoints: u64,
    pub broken: Option<ChainBreak>,
}

/// An open store with its signing key.
pub struct AuditStore {
    conn: Connection,
    key: EcdsaKeyPair,
    last: (i64, [u8; 32]),
    since_checkpoint: u32,
    /// Set when a ticket system takes reports: woken after each queued report.
    reports: Option<std::sync::mpsc::Sender<()>>,
}

/// A queued session report and where its delivery stands.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    pub record_seq: i64,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub kind: String,
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The hash of a row: everything stored in it, after the previous row's hash.
pub fn record_hash(
    prev: &[u8],
    seq: i64,
    time_unix: i64,
    ticket: Option<u64>,
    kind: &str,
    body: &str,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fernhilfe-audit-record-1");
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(time_unix.to_be_bytes());
    h.update(ticket.unwrap_or(0).to_be_bytes());
    h.update((kind.len() as u32).to_be_bytes());
    h.update(kind.as_bytes());
    h.update(body.as_bytes());
    h.finalize().into()
}

fn checkpoint_message(seq: i64, hash: &[u8]) -> Vec<u8> {
    let mut m = b"fernhilfe-audit-checkpoint-1".to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m
}

/// Loads the checkpoint key from the state directory, creating it (0600) on first use.
fn load_or_create_key(dir: &Path) -> Result<EcdsaKeyPair, StoreError> {
    let path = dir.join(KEY_FILE);
    let err = |reason: String| StoreError::Key {
        path: path.display().to_string(),
        reason,
    };
    let rng = SystemRandom::new();
    let pkcs8 = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| err("cannot generate a key".into()))?;
            transport::identity::write_private(&path, doc.as_ref())?;
            doc.as_ref().to_vec()
        }
        Err(e) => return Err(err(e.to_string())),
    };
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
        .map_err(|e| err(format!("not a P-256 key: {e}")))
}

impl AuditStore {
    /// Opens (or creates, 0600) the store in `dir`, applying pending schema migrations.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(FILE);
        if !path.exists() {
            // Created empty with the right mode first: SQLite would create it world-readable.
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            opts.open(&path)?;
        }
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version as usize > MIGRATIONS.len() {
            return Err(StoreError::NewerSchema {
                path: path.display().to_string(),
                found: version,
                known: MIGRATIONS.len(),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as u32)?;
            tx.commit()?;
        }
        let key = load_or_create_key(dir)?;
        let last = conn
            .query_row(
                "SELECT seq, hash FROM audit_record ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()?
            .map(|(s, h)| (s, h.try_into().unwrap_or(GENESIS)))
            .unwrap_or((0, GENESIS));
        Ok(Self {
            conn,
            key,
            last,
            since_checkpoint: 0,
            reports: None,
        })
    }

    /// From now on, session starts and ends also queue a report for the ticket system;
    /// `wake` hears of each.
    pub fn queue_reports(&mut self, wake: std::sync::mpsc::Sender<()>) {
        self.reports = Some(wake);
    }

    /// Appends records in one transaction; returns how many.
    pub fn append(
        &mut self,
        batch: &[(i64, Option<u64>, AuditRecord)],
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let mut last = self.last;
        let mut queued = 0;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO audit_record (seq, time_unix, ticket, kind, body, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (time_unix, ticket, record) in batch {
                let body = serde_json::to_string(record)?;
                let seq = last.0 + 1;
                let hash = record_hash(&last.1, seq, *time_unix, *ticket, record.kind(), &body);
                insert.execute(params![
                    seq,
                    time_unix,
                    ticket.map(|t| t as i64),
                    record.kind(),
                    body,
                    &last.1[..],
                    &hash[..]
                ])?;
                last = (seq, hash);
                if let (Some(_), Some(ticket)) = (&self.reports, ticket) {
                    queued += queue_report(&tx, *ticket, seq, &hash, *time_unix, record)?;
                }
            }
        }
        tx.commit()?;
        if queued > 0 {
            if let Some(wake) = &self.reports {
                let _ = wake.send(());
            }
        }
        self.last = last;
        self.since_checkpoint += batch.len() as u32;
        Ok(batch.len())
    }

    /// Signs a checkpoint for the last record, if any came since the last one.
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        if self.since_checkpoint == 0 || self.last.0 == 0 {
            return Ok(());
        }
        let (seq, hash) = self.last;
        self.sign_checkpoint(seq, &hash)?;
        self.since_checkpoint = 0;
        Ok(())
    }

    /// Records since the last checkpoint.
    pub fn since_checkpoint(&self) -> u32 {
        self.since_checkpoint
    }

    fn sign_checkpoint(&self, seq: i64, hash: &[u8]) -> Result<(), StoreError> {
        let sig = self
            .key
            .sign(&SystemRandom::new(), &checkpoint_message(seq, hash))
            .map_err(|_| StoreError::Key {
                path: KEY_FILE.into(),
                reason: "signing failed".into(),
            })?;
        self.conn.execute(
            "INSERT OR REPLACE INTO audit_checkpoint (seq, hash, time_unix, signature) VALUES (?1, ?2, ?3, ?4)",
            params![seq, hash, now_unix(), sig.as_ref()],
        )?;
        Ok(())
    }

    /// Deletes records older than `cutoff_unix`, keeping the chain verifiable: the first kept
    /// record gets a signed checkpoint before anything is deleted. The last record is always
    /// kept. Returns how many were deleted.
    pub fn prune(&mut self, cutoff_unix: i64) -> Result<usize, StoreError> {
        let first: Option<i64> =
            self.conn
                .query_row("SELECT MIN(seq) FROM audit_record", [], |r| r.get(0))?;
        let Some(first) = first else { return Ok(0) };
        let keep_from: i64 = self
            .conn
            .query_row(
                "SELECT MIN(seq) FROM audit_record WHERE time_unix >= ?1",
                [cutoff_unix],
                |r| r.get::<_, Option<i64>>(0),
            )?
            .unwrap_or(self.last.0);
        if keep_from <= first {
            return Ok(0);
        }
        let hash: Vec<u8> = self.conn.query_row(
            "SELECT hash FROM audit_record WHERE seq = ?1",
            [keep_from],
            |r| r.get(0),
        )?;
        let tx = self.conn.unchecked_transaction()?;
        self.sign_checkpoint(keep_from, &hash)?;
        let n = tx.execute("DELETE FROM audit_record WHERE seq < ?1", [keep_from])?;
        tx.execute("DELETE FROM audit_checkpoint WHERE seq < ?1", [keep_from])?;
        tx.commit()?;
        Ok(n)
    }

    /// Walks the whole chain and every checkpoint; reports the first break.
    pub fn verify(&self) -> Result<Verified, StoreError> {
        let public = UnparsedPublicKey::new(
            &ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref().to_vec(),
        );
        let mut checkpoints = std::collections::BTreeMap::new();
        {
            let mut q = self
                .conn
                .prepare("SELECT seq, hash, signature FROM audit_checkpoint ORDER BY seq")?;
            let rows = q.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?;
            for row in rows {
                let (seq, hash, sig) = row?;
                checkpoints.insert(seq, (hash, sig));
            }
        }
        let mut out = Verified {
            records: 0,
            first: None,
            last: None,
            checkpoints: checkpoints.len() as u64,
            broken: None,
        };
        let brk = |seq, what| Some(ChainBreak { seq, what });
        for (&seq, (hash, sig)) in &checkpoints {
            if public.verify(&checkpoint_message(seq, hash), sig).is_err() {
                out.broken = brk(seq, BreakKind::BadCheckpoint);
                return Ok(out);
            }
        }
        let mut q = self.conn.prepare("SELECT seq, time_unix, ticket, kind, body, prev_hash, hash FROM audit_record ORDER BY seq")?;
        let mut rows = q.query([])?;
        let mut prev: Option<(i64, Vec<u8>)> = None;
        while let Some(r) = rows.next()? {
            let rec = read_row(r)?;
            out.records += 1;
            out.first.get_or_insert(rec.seq);
            out.last = Some(rec.seq);
            match &prev {
                None if rec.seq == 1 => {
                    if rec.prev_hash[..] != GENESIS[..] {
                        out.broken = brk(rec.seq, BreakKind::Reordered);
                        return Ok(out);
                    }
                }
                None => {
                    // The start after pruning: its hash must be vouched for by a checkpoint.
                    if checkpoints
                        .get(&rec.seq)
                        .map(|(h, _)| h[..] == rec.hash[..])
                        != Some(true)
                    {
                        out.broken = brk(rec.seq, BreakKind::UnanchoredStart);
                        return Ok(out);
                    }
                }
                Some((pseq, phash)) => {
                    if rec.prev_hash[..] != phash[..] {
                        let what = if rec.seq != pseq + 1 {
                            BreakKind::Deleted
                        } else {
                            BreakKind::Reordered
                        };
                        out.broken = brk(rec.seq, what);
                        return Ok(out);
                    }
                    if rec.seq != pseq + 1 {
                        out.broken = brk(rec.seq, BreakKind::Reordered);
                        return Ok(out);
                    }
                }
            }
            // Linkage first: a moved row still hashes to itself, but no longer follows its
            // predecessor, and is named for what happened to it.
            let computed = record_hash(
                &rec.prev_hash,
                rec.seq,
                rec.time_unix,
                rec.ticket,
                &rec.kind,
                &rec.body,
            );
            if computed[..] != rec.hash[..] {
                out.broken = brk(rec.seq, BreakKind::Edited);
                return Ok(out);
            }
            if let Some((h, _)) = checkpoints.get(&rec.seq) {
                if h[..] != rec.hash[..] {
                    out.broken = brk(rec.seq, BreakKind::BadCheckpoint);
                    return Ok(out);
                }
            }
            prev = Some((rec.seq, rec.hash));
        }
        // A checkpoint beyond the last record: records were cut off the end.
        if let Some((&seq, _)) = checkpoints.iter().next_back() {
            if out.last.is_none_or(|l| seq > l) {
                out.broken = brk(seq, BreakKind::Deleted);
            }
        }
        Ok(out)
    }

    /// The records of one ticket, oldest first.
    pub fn for_ticket(&self, ticket: u64) -> Result<Vec<StoredRecord>, StoreError> {
        self.query("SELECT seq, time_unix, ticket, kind, body, prev_hash, hash FROM audit_record WHERE ticket = ?1 ORDER BY seq", [ticket as i64])
    }

    /// The records from `since_unix` on, oldest first.
    pub fn since(&self, since_unix: i64) -> Result<Vec<StoredRecord>, StoreError> {
        self.query("SELECT seq, time_unix, ticket, kind, body, prev_hash, hash FROM audit_record WHERE time_unix >= ?1 ORDER BY seq", [since_unix])
    }

    /// The reports queued for a ticket and their delivery.
    pub fn reports_for_ticket(&self, ticket: u64) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut q = self.conn.prepare(
            "SELECT record_seq, state, attempts, last_error, json_extract(payload, '$.kind') FROM report_outbox WHERE ticket = ?1 ORDER BY record_seq",
        )?;
        let rows = q.query_map([ticket as i64], |r| {
            Ok(OutboxEntry {
                record_seq: r.get(0)?,
                state: r.get(1)?,
                attempts: r.get(2)?,
                last_error: r.get(3)?,
                kind: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn query(&self, sql: &str, p: [i64; 1]) -> Result<Vec<StoredRecord>, StoreError> {
        let mut q = self.conn.prepare(sql)?;
        let mut rows = q.query(p)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(read_row(r)?);
        }
        Ok(out)
    }
}

/// Queues the report a session start or end calls for, in the transaction that stores the
/// record; returns how many (0 or 1).
fn queue_report(
    tx: &rusqlite::Transaction<'_>,
    ticket: u64,
    seq: i64,
    hash: &[u8; 32],
    time_unix: i64,
    record: &AuditRecord,
) -> Result<usize, StoreError> {
    use crate::tickets::report::{ReportKind, SessionReport};
    let (kind, host) = match record {
        AuditRecord::SessionStarted { host, .. } => (ReportKind::Start, host),
        AuditRecord::SessionEnded { host, .. } => (ReportKind::End, host),
        _ => return Ok(0),
    };
    // The session's records: from its start (the last one of this PC under this ticket) on.
    let start: i64 = tx
        .query_row(
            "SELECT seq FROM audit_record WHERE ticket = ?1 AND kind = 'session_started' AND json_extract(body, '$.host') = ?2 AND seq <= ?3 ORDER BY seq DESC LIMIT 1",
            params![ticket as i64, host, seq],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(seq);
    let mut q = tx.prepare_cached(
        "SELECT time_unix, body FROM audit_record WHERE ticket = ?1 AND seq BETWEEN ?2 AND ?3 AND json_extract(body, '$.host') = ?4 ORDER BY seq",
    )?;
    let records = q
        .query_map(params![ticket as i64, start, seq, host], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?
        .filter_map(|row| {
            let (t, b) = row.ok()?;
            Some((t, serde_json::from_str::<AuditRecord>(&b).ok()?))
        })
        .collect::<Vec<_>>();
    let Some(report) = SessionReport::from_records(kind, ticket, &records) else {
        return Ok(0);
    };
    let key = format!(
        "fernhilfe-{}-{seq}",
        hash[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    tx.execute(
        "INSERT INTO report_outbox (record_seq, ticket, idempotency_key, payload, state, next_attempt_unix) VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
        params![seq, ticket as i64, key, serde_json::to_string(&report)?, time_unix],
    )?;
    Ok(1)
}

fn read_row(r: &rusqlite::Row<'_>) -> Result<StoredRecord, rusqlite::Error> {
    Ok(StoredRecord {
        seq: r.get(0)?,
        time_unix: r.get(1)?,
        ticket: r.get::<_, Option<i64>>(2)?.map(|t| t as u64),
        kind: r.get(3)?,
        body: r.get(4)?,
        prev_hash: r.get(5)?,
        hash: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{AuditRecord, EndKind};

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("fh-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn filled(name: &str, n: i64) -> (std::path::PathBuf, AuditStore) {
        let d = dir(name);
        let mut s = AuditStore::open(&d).unwrap();
        let batch: Vec<_> = (1..=n)
            .map(|i| {
                (
                    1_700_000_000 + i * 3600,
                    Some(4711),
                    AuditRecord::SessionEnded {
                        host: format!("PC-{i}"),
                        staff: "Anna Schmidt".into(),
                        reason: EndKind::EndedAtAgent,
                        duration_s: i as u64,
                        agent_bytes_sent: None,
                        agent_bytes_received: None,
                    },
                )
            })
            .collect();
        s.append(&batch).unwrap();
        s.checkpoint().unwrap();
        (d, s)
    }

    fn broken(s: &AuditStore) -> Option<ChainBreak> {
        s.verify().unwrap().broken
    }

    #[test]
    fn an_untouched_chain_verifies_and_survives_reopening() {
        let (d, s) = filled("intact", 10);
        let v = s.verify().unwrap();
        assert_eq!(
            (v.records, v.first, v.last, v.broken),
            (10, Some(1), Some(10), None)
        );
        drop(s);
        let mut s = AuditStore::open(&d).unwrap();
        s.append(&[(1, None, AuditRecord::AgentLeft { host: "PC".into() })])
            .unwrap();
        assert_eq!(broken(&s), None);
        assert_eq!(s.verify().unwrap().last, Some(11));
    }

    #[test]
    fn an_edited_record_is_named() {
        let (_d, s) = filled("edit", 10);
        s.conn
            .execute(
                "UPDATE audit_record SET body = replace(body, 'Anna', 'Bert') WHERE seq = 4",
                [],
            )
            .unwrap();
        assert_eq!(
            broken(&s),
            Some(ChainBreak {
                seq: 4,
                what: BreakKind::Edited
            })
        );
    }

    #[test]
    fn a_deleted_record_is_named() {
        let (_d, s) = filled("delete", 10);
        s.conn
            .execute("DELETE FROM audit_record WHERE seq = 6", [])
            .unwrap();
        assert_eq!(
            broken(&s),
            Some(ChainBreak {
                seq: 7,
                what: BreakKind::Deleted
            })
        );
    }

    #[test]
    fn swapped_records_are_named() {
        let (_d, s) = filled("reorder", 10);
        // Swap the numbers of records 3 and 5, contents and hashes kept.
        s.conn
            .execute_batch(
                "UPDATE audit_record SET seq = -3 WHERE seq = 3;
             UPDATE audit_record SET seq = 3 WHERE seq = 5;
             UPDATE audit_record SET seq = 5 WHERE seq = -3;",
            )
            .unwrap();
        assert_eq!(
            broken(&s),
            Some(ChainBreak {
                seq: 3,
                what: BreakKind::Reordered
            })
        );
    }

    #[test]
    fn a_chain_recomputed_after_an_edit_fails_at_the_signed_checkpoint() {
        let (_d, s) = filled("rewrite", 10);
        // The attacker edits record 2 and recomputes every hash after it, without the key.
        let rows = s.since(0).unwrap();
        let mut prev = GENESIS.to_vec();
        for r in rows {
            let body = if r.seq == 2 {
                r.body.replace("Anna", "Bert")
            } else {
                r.body.clone()
            };
            let h = record_hash(&prev, r.seq, r.time_unix, r.ticket, &r.kind, &body);
            s.conn
                .execute(
                    "UPDATE audit_record SET body = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
                    params![body, prev, &h[..], r.seq],
                )
                .unwrap();
            prev = h.to_vec();
        }
        assert_eq!(
            broken(&s),
            Some(ChainBreak {
                seq: 10,
                what: BreakKind::BadCheckpoint
            })
        );
    }

    #[test]
    fn cutting_records_off_the_end_is_seen_at_the_checkpoint() {
        let (_d, s) = filled("tail", 10);
        s.conn
            .execute("DELETE FROM audit_record WHERE seq > 8", [])
            .unwrap();
        assert_eq!(
            broken(&s),
            Some(ChainBreak {
                seq: 10,
                what: BreakKind::Deleted
            })
        );
    }

    #[test]
    fn pruning_keeps_the_chain_verifiable_and_deleting_more_does_not() {
        let (_d, mut s) = filled("prune", 10);
        // Records are an hour apart: keep those from the 7th on.
        let deleted = s.prune(1_700_000_000 + 7 * 3600).unwrap();
        assert_eq!(deleted, 6);
        let v = s.verify().unwrap();
        assert_eq!((v.first, v.last, v.broken), (Some(7), Some(10), None));
        // Removing the start by hand leaves a start no checkpoint vouches for.
        s.conn
            .execute("DELETE FROM audit_record WHERE seq = 7", [])
            .unwrap();
        assert_eq!(
            broken(&s),
            Some(ChainBreak {
                seq: 8,
                what: BreakKind::UnanchoredStart
            })
        );
    }

    #[test]
    fn a_forged_checkpoint_is_refused() {
        let (_d, s) = filled("forge", 10);
        s.conn
            .execute("UPDATE audit_checkpoint SET signature = zeroblob(64)", [])
            .unwrap();
        assert_eq!(broken(&s).map(|b| b.what), Some(BreakKind::BadCheckpoint));
    }

    #[test]
    fn a_store_from_a_newer_relay_is_not_touched() {
        let (d, s) = filled("newer", 1);
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        assert!(matches!(
            AuditStore::open(&d),
            Err(StoreError::NewerSchema { found: 99, .. })
        ));
    }
}
