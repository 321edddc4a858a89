//! The audit store: one row per record, hash-chained, in SQLite in the state directory (one
//! relay) or in PostgreSQL (several relays sharing one record).
//!
//! Each record's hash covers the previous record's hash and everything stored in the row, so
//! an edited, deleted or reordered row breaks the chain at that place. A plain hash chain can
//! be recomputed by whoever can write the database, so the relay also signs checkpoints over
//! the whole record with a key of its own (`audit-key.pk8`, 0600; relays sharing one database
//! share it), numbered and chained to each other, on new records, on a heartbeat and at a
//! clean shutdown ([`super::checkpoint`]): rewriting, cutting or truncating the record then
//! needs that key. Retention deletes old rows and says so in a record of the chain, which the
//! checkpoints after it sign over.

use super::checkpoint::{self, Checkpoint, CheckpointKind};
use super::db::{Db, DbError, Location, Migrations, Value};
use super::record::AuditRecord;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The store's file in the state directory (SQLite).
pub const FILE: &str = "audit.sqlite";
/// The checkpoint signing key in the state directory.
pub const KEY_FILE: &str = "audit-key.pk8";
/// The hash before the first record.
pub const GENESIS: [u8; 32] = [0; 32];
/// Records read per query while verifying: the chain is never all in memory.
const VERIFY_PAGE: i64 = 10_000;

/// The schema, version by version.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &[
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
        // Checkpoints numbered and chained, over the first and the last record (the table of
        // version 1 stays, unused: it signed single records and allowed unnoticed cuts).
        "CREATE TABLE audit_signed_checkpoint (
            n INTEGER PRIMARY KEY,
            prev BLOB NOT NULL,
            kind TEXT NOT NULL,
            time_unix INTEGER NOT NULL,
            signer TEXT NOT NULL,
            first_seq INTEGER NOT NULL,
            first_hash BLOB NOT NULL,
            last_seq INTEGER NOT NULL,
            last_hash BLOB NOT NULL,
            signature BLOB NOT NULL
        );
        CREATE INDEX audit_signed_checkpoint_signer ON audit_signed_checkpoint (signer, n);",
    ],
    postgres: &[
        "CREATE TABLE audit_record (
            seq BIGINT PRIMARY KEY,
            time_unix BIGINT NOT NULL,
            ticket BIGINT,
            kind TEXT NOT NULL,
            body TEXT NOT NULL,
            prev_hash BYTEA NOT NULL,
            hash BYTEA NOT NULL
        );
        CREATE INDEX audit_record_ticket ON audit_record (ticket, seq);
        CREATE INDEX audit_record_time ON audit_record (time_unix);
        CREATE TABLE audit_checkpoint (
            seq BIGINT PRIMARY KEY,
            hash BYTEA NOT NULL,
            time_unix BIGINT NOT NULL,
            signature BYTEA NOT NULL
        );",
        "CREATE TABLE report_outbox (
            id BIGSERIAL PRIMARY KEY,
            record_seq BIGINT NOT NULL UNIQUE,
            ticket BIGINT NOT NULL,
            idempotency_key TEXT NOT NULL UNIQUE,
            payload TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
            attempts BIGINT NOT NULL DEFAULT 0,
            next_attempt_unix BIGINT NOT NULL,
            last_error TEXT,
            delivered_unix BIGINT
        );
        CREATE INDEX report_outbox_due ON report_outbox (state, next_attempt_unix);
        CREATE INDEX report_outbox_ticket ON report_outbox (ticket);",
        "CREATE TABLE audit_signed_checkpoint (
            n BIGINT PRIMARY KEY,
            prev BYTEA NOT NULL,
            kind TEXT NOT NULL,
            time_unix BIGINT NOT NULL,
            signer TEXT NOT NULL,
            first_seq BIGINT NOT NULL,
            first_hash BYTEA NOT NULL,
            last_seq BIGINT NOT NULL,
            last_hash BYTEA NOT NULL,
            signature BYTEA NOT NULL
        );
        CREATE INDEX audit_signed_checkpoint_signer ON audit_signed_checkpoint (signer, n);",
    ],
};

/// Errors of the audit store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("audit database: {0}")]
    Db(#[from] DbError),
    #[error("audit key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("the audit database is from a newer relay (schema {found}, this relay knows {known}): upgrade the relay")]
    NewerSchema { found: u32, known: usize },
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

    fn from_row(r: &[Value]) -> Self {
        StoredRecord {
            seq: r[0].int().unwrap_or(0),
            time_unix: r[1].int().unwrap_or(0),
            ticket: r[2].int().map(|t| t as u64),
            kind: r[3].text(),
            body: r[4].text(),
            prev_hash: r[5].bytes(),
            hash: r[6].bytes(),
        }
    }
}

const RECORD_COLUMNS: &str = "seq, time_unix, ticket, kind, body, prev_hash, hash";

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
    /// The chain starts after record 1 and no pruning record in it says why.
    UnanchoredStart,
    /// The pruning record at this number deleted records younger than the retention allows.
    PrunedTooEarly { retention_days: u32 },
    /// The first record is not the one the newest checkpoint names: records were removed from
    /// the start without a pruning record.
    StartChanged,
    /// Records up to this number were removed from the end: a checkpoint covers them.
    TailRemoved,
    /// A checkpoint's signature, or the record hash it names, does not match.
    BadCheckpoint,
    /// The checkpoints' numbers or chain have a gap before checkpoint `seq`.
    CheckpointGap,
    /// There are records but no signed checkpoint at all.
    NoCheckpoint,
    /// Records from this number on are covered by no checkpoint, although one was due.
    Uncovered { age_secs: i64 },
    /// The newest checkpoint (number `seq`) is old and not a shutdown one.
    StaleCheckpoint { age_secs: i64 },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.seq;
        match self.what {
            BreakKind::Edited => write!(f, "record {s} was edited: its contents do not give its hash"),
            BreakKind::Deleted => write!(f, "records before {s} were deleted: the numbering has a gap"),
            BreakKind::Reordered => write!(f, "record {s} does not follow the record stored before it (reordered, or one replaced)"),
            BreakKind::UnanchoredStart => write!(f, "the record starts at {s} and no pruning record says why: the records before it were removed outside retention"),
            BreakKind::PrunedTooEarly { retention_days } => write!(f, "the pruning record {s} deleted records younger than the retention of {retention_days} days"),
            BreakKind::StartChanged => write!(f, "the record starts at {s}, not where the newest signed checkpoint says: records were removed from the start without a pruning record"),
            BreakKind::TailRemoved => write!(f, "records up to {s} were removed from the end: a signed checkpoint covers them"),
            BreakKind::BadCheckpoint => write!(f, "the signed checkpoint at {s} does not match (forged, or the record was rewritten)"),
            BreakKind::CheckpointGap => write!(f, "signed checkpoints are missing before checkpoint {s}: the checkpoint chain has a gap"),
            BreakKind::NoCheckpoint => write!(f, "no signed checkpoint covers any record (from {s} on): the checkpoints were deleted"),
            BreakKind::Uncovered { age_secs } => write!(f, "records from {s} on are covered by no signed checkpoint, although the oldest of them is {age_secs} s old: newer checkpoints were deleted, or the records were added without the key"),
            BreakKind::StaleCheckpoint { age_secs } => write!(f, "the newest signed checkpoint ({s}) is {age_secs} s old and not a shutdown one: the newest records and checkpoints were removed, or the relay crashed or was stopped without a clean shutdown (after a crash, its next start records the unclean stop)"),
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
    /// The newest checkpoint, for comparison with the digests shipped off the host.
    pub newest_checkpoint: Option<Checkpoint>,
    pub broken: Option<ChainBreak>,
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

/// An open store with its signing key.
pub struct AuditStore {
    db: Db,
    key: EcdsaKeyPair,
    /// This relay's name in the checkpoints it signs.
    signer: String,
    /// Records this store wrote since it last signed a checkpoint.
    since_checkpoint: u32,
    /// Set when a ticket system takes reports: woken after each queued report.
    reports: Option<std::sync::mpsc::Sender<()>>,
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
            // Two writers starting at once end up with one key: the one that loses reads it.
            if transport::identity::create_private(&path, doc.as_ref())? {
                doc.as_ref().to_vec()
            } else {
                std::fs::read(&path).map_err(|e| err(e.to_string()))?
            }
        }
        Err(e) => return Err(err(e.to_string())),
    };
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
        .map_err(|e| err(format!("not a P-256 key: {e}")))
}

/// The file naming this relay in the checkpoints it signs.
pub const SIGNER_FILE: &str = "audit-signer";

/// Loads this relay's signer name from the state directory, creating a random one on first
/// use: relays sharing one database share the key, so the name tells their checkpoints apart.
fn load_or_create_signer(dir: &Path) -> Result<String, StoreError> {
    let path = dir.join(SIGNER_FILE);
    let valid = |s: &str| {
        s.len() == 22 && s.starts_with("relay-") && s[6..].bytes().all(|b| b.is_ascii_hexdigit())
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if valid(s.trim()) => return Ok(s.trim().to_owned()),
        Ok(_) => {
            return Err(StoreError::Key {
                path: path.display().to_string(),
                reason: "not a signer name (relay- and 16 hex digits)".into(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let mut id = [0u8; 8];
    getrandom::getrandom(&mut id).map_err(|e| std::io::Error::other(e.to_string()))?;
    let name = format!("relay-{}", protocol::hex::lower(&id));
    // Two first starts at once end up with one name: the one that loses reads it.
    if transport::identity::create_private(&path, name.as_bytes())? {
        Ok(name)
    } else {
        Ok(std::fs::read_to_string(&path)?.trim().to_owned())
    }
}

impl AuditStore {
    /// Opens (or creates, 0600) the SQLite store in `dir`, applying pending migrations.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_at(dir, &Location::Sqlite(dir.to_owned()))
    }

    /// Opens the store at `at` with the checkpoint key from the state directory `dir`,
    /// applying pending migrations.
    pub fn open_at(dir: &Path, at: &Location) -> Result<Self, StoreError> {
        let mut db = Db::open(at)?;
        if let Err((found, known)) = db.migrate(&MIGRATIONS)? {
            return Err(StoreError::NewerSchema { found, known });
        }
        let key = load_or_create_key(dir)?;
        let signer = load_or_create_signer(dir)?;
        Ok(Self {
            db,
            key,
            signer,
            since_checkpoint: 0,
            reports: None,
        })
    }

    /// This relay's name in the checkpoints it signs.
    pub fn signer(&self) -> &str {
        &self.signer
    }

    /// From now on, session starts and ends also queue a report for the ticket system;
    /// `wake` hears of each.
    pub fn queue_reports(&mut self, wake: std::sync::mpsc::Sender<()>) {
        self.reports = Some(wake);
    }

    /// Appends records in one transaction; returns how many. The chain goes on from the
    /// last record in the database, whoever wrote it (relays sharing PostgreSQL take turns).
    pub fn append(
        &mut self,
        batch: &[(i64, Option<u64>, AuditRecord)],
    ) -> Result<usize, StoreError> {
        let reports = self.reports.is_some();
        let (_, queued) = self
            .db
            .transaction(true, |db| append_rows(db, batch, reports))?;
        if queued > 0 {
            if let Some(wake) = &self.reports {
                let _ = wake.send(());
            }
        }
        self.since_checkpoint += batch.len() as u32;
        Ok(batch.len())
    }

    /// Signs the next checkpoint over the record as it is now (`now` in Unix seconds).
    pub fn checkpoint(&mut self, kind: CheckpointKind, now: i64) -> Result<Checkpoint, StoreError> {
        let (key, signer) = (&self.key, self.signer.as_str());
        let cp = self
            .db
            .transaction(true, |db| checkpoint::sign_next(db, key, signer, kind, now))?;
        self.since_checkpoint = 0;
        Ok(cp)
    }

    /// When this relay's newest checkpoint says it did not stop cleanly: that checkpoint.
    pub fn unclean_stop(&mut self) -> Result<Option<Checkpoint>, StoreError> {
        let signer = self.signer.clone();
        Ok(checkpoint::latest_by(&mut self.db, &signer)?
            .filter(|c| c.kind != Some(CheckpointKind::Shutdown)))
    }

    /// Records since the last checkpoint.
    pub fn since_checkpoint(&self) -> u32 {
        self.since_checkpoint
    }

    /// Deletes records older than `retention_days` before `now`, keeping the chain
    /// verifiable: a pruning record in the chain names the first record kept and the cutoff,
    /// and a checkpoint signs over it, in the same transaction. The last record is always
    /// kept. Returns how many were deleted, and the checkpoint signed (if any were).
    pub fn prune(
        &mut self,
        retention_days: u32,
        now: i64,
    ) -> Result<(usize, Option<Checkpoint>), StoreError> {
        let (key, signer) = (&self.key, self.signer.as_str());
        let cutoff_unix = now - i64::from(retention_days) * 86_400;
        self.db.transaction(true, |db| {
            let Some((deleted, keep_from, first_hash)) = prune_rows(db, cutoff_unix)? else {
                return Ok((0, None));
            };
            let record = AuditRecord::Pruned {
                keep_from,
                first_hash: protocol::hex::lower(&first_hash),
                deleted: deleted as u64,
                cutoff_unix,
                retention_days,
            };
            append_rows(db, &[(now, None, record)], false)?;
            let cp = checkpoint::sign_next(db, key, signer, CheckpointKind::Records, now)?;
            Ok((deleted, Some(cp)))
        })
    }

    /// Walks the whole chain, a page at a time, and every checkpoint; reports the first break
    /// as of `now` (Unix seconds), for a relay that keeps records `retention_days`.
    pub fn verify(&mut self, now: i64, retention_days: u32) -> Result<Verified, StoreError> {
        let public = UnparsedPublicKey::new(
            &ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref().to_vec(),
        );
        let checkpoints = checkpoint::all(&mut self.db)?;
        let mut out = Verified {
            records: 0,
            first: None,
            last: None,
            checkpoints: checkpoints.len() as u64,
            newest_checkpoint: checkpoints.last().cloned(),
            broken: None,
        };
        let brk = |seq, what| Some(ChainBreak { seq, what });
        // The checkpoints: numbered from 1 without gaps, each chained to the one before, each
        // signed. What they say of the records is checked on the walk below.
        let mut prev = GENESIS.to_vec();
        let mut named = std::collections::BTreeMap::<i64, Vec<u8>>::new();
        for (i, cp) in checkpoints.iter().enumerate() {
            if cp.n != i as i64 + 1 || cp.prev != prev {
                out.broken = brk(cp.n.min(i as i64 + 1), BreakKind::CheckpointGap);
                return Ok(out);
            }
            if cp.kind.is_none() || public.verify(&cp.message(), &cp.signature).is_err() {
                out.broken = brk(cp.n, BreakKind::BadCheckpoint);
                return Ok(out);
            }
            for (seq, hash) in [(cp.first_seq, &cp.first_hash), (cp.last_seq, &cp.last_hash)] {
                if seq > 0 && named.insert(seq, hash.clone()).is_some_and(|h| h != *hash) {
                    out.broken = brk(seq, BreakKind::BadCheckpoint);
                    return Ok(out);
                }
            }
            prev = cp.digest().to_vec();
        }
        let newest = checkpoints.last();
        let covered_to = newest.map_or(0, |c| c.last_seq);
        // The oldest record no checkpoint covers, and the pruning records by first record kept.
        let mut uncovered: Option<(i64, i64)> = None;
        let mut prunes = std::collections::BTreeMap::new();
        let mut first_hash = Vec::new();
        let mut prev: Option<(i64, Vec<u8>)> = None;
        let mut after = i64::MIN;
        loop {
            let page = self.db.query(
                &format!("SELECT {RECORD_COLUMNS} FROM audit_record WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
                &[after.into(), VERIFY_PAGE.into()],
            )?;
            if page.is_empty() {
                break;
            }
            for row in &page {
                let rec = StoredRecord::from_row(row);
                after = rec.seq;
                out.records += 1;
                if out.first.is_none() {
                    out.first = Some(rec.seq);
                    first_hash = rec.hash.clone();
                }
                out.last = Some(rec.seq);
                if let Some(what) = row_break(prev.as_ref(), &rec) {
                    out.broken = brk(rec.seq, what);
                    return Ok(out);
                }
                if named.get(&rec.seq).is_some_and(|h| *h != rec.hash) {
                    out.broken = brk(rec.seq, BreakKind::BadCheckpoint);
                    return Ok(out);
                }
                if rec.seq > covered_to {
                    let oldest = uncovered.get_or_insert((rec.seq, rec.time_unix));
                    oldest.1 = oldest.1.min(rec.time_unix);
                }
                if let Some(AuditRecord::Pruned {
                    keep_from,
                    first_hash,
                    cutoff_unix,
                    retention_days,
                    ..
                }) = (rec.kind == "audit_pruned").then(|| rec.record()).flatten()
                {
                    prunes.insert(
                        keep_from,
                        (
                            rec.seq,
                            rec.time_unix,
                            first_hash,
                            cutoff_unix,
                            retention_days,
                        ),
                    );
                }
                prev = Some((rec.seq, rec.hash));
            }
        }
        let (Some(first), Some(last)) = (out.first, out.last) else {
            if let Some(n) = newest.filter(|c| c.last_seq > 0) {
                out.broken = brk(n.last_seq, BreakKind::TailRemoved);
            }
            return Ok(out);
        };
        let Some(newest) = newest else {
            out.broken = brk(first, BreakKind::NoCheckpoint);
            return Ok(out);
        };
        if newest.last_seq > last {
            out.broken = brk(newest.last_seq, BreakKind::TailRemoved);
            return Ok(out);
        }
        if newest.first_seq > 0 && newest.first_seq != first {
            out.broken = brk(first, BreakKind::StartChanged);
            return Ok(out);
        }
        if first > 1 {
            // A start after record 1: a pruning record names it (and kept the retention), or
            // the record already started there when the first checkpoint was signed (a store
            // pruned by a relay of before these checkpoints).
            let hex = protocol::hex::lower(&first_hash);
            match prunes.get(&first) {
                Some((seq, time, h, cutoff, days)) if *h == hex => {
                    if *days < retention_days || *cutoff > time - i64::from(*days) * 86_400 {
                        out.broken = brk(
                            *seq,
                            BreakKind::PrunedTooEarly {
                                retention_days: retention_days.max(*days),
                            },
                        );
                        return Ok(out);
                    }
                }
                _ if checkpoints[0].first_seq == first => {}
                _ => {
                    out.broken = brk(first, BreakKind::UnanchoredStart);
                    return Ok(out);
                }
            }
        }
        if let Some((seq, time)) = uncovered {
            let age_secs = now - time;
            if age_secs > checkpoint::RECORDS_WITHIN_SECS + checkpoint::MARGIN_SECS {
                out.broken = brk(seq, BreakKind::Uncovered { age_secs });
                return Ok(out);
            }
        }
        let age_secs = now - newest.time_unix;
        if newest.kind != Some(CheckpointKind::Shutdown)
            && age_secs > checkpoint::HEARTBEAT_SECS + checkpoint::MARGIN_SECS
        {
            out.broken = brk(newest.n, BreakKind::StaleCheckpoint { age_secs });
        }
        Ok(out)
    }

    /// The records of one ticket, oldest first.
    pub fn for_ticket(&mut self, ticket: u64) -> Result<Vec<StoredRecord>, StoreError> {
        self.records("ticket = ?1", ticket as i64)
    }

    /// The records from `since_unix` on, oldest first.
    pub fn since(&mut self, since_unix: i64) -> Result<Vec<StoredRecord>, StoreError> {
        self.records("time_unix >= ?1", since_unix)
    }

    fn records(&mut self, condition: &str, p: i64) -> Result<Vec<StoredRecord>, StoreError> {
        let rows = self.db.query(
            &format!("SELECT {RECORD_COLUMNS} FROM audit_record WHERE {condition} ORDER BY seq"),
            &[p.into()],
        )?;
        Ok(rows.iter().map(|r| StoredRecord::from_row(r)).collect())
    }

    /// The reports queued for a ticket and their delivery.
    pub fn reports_for_ticket(&mut self, ticket: u64) -> Result<Vec<OutboxEntry>, StoreError> {
        let kind = self.db.json_field("payload", "kind");
        let rows = self.db.query(
            &format!("SELECT record_seq, state, attempts, last_error, {kind} FROM report_outbox WHERE ticket = ?1 ORDER BY record_seq"),
            &[(ticket as i64).into()],
        )?;
        Ok(rows
            .iter()
            .map(|r| OutboxEntry {
                record_seq: r[0].int().unwrap_or(0),
                state: r[1].text(),
                attempts: r[2].int().unwrap_or(0) as u32,
                last_error: r[3].opt_text(),
                kind: r[4].text(),
            })
            .collect())
    }

    /// The database, for tests that play the attacker.
    #[cfg(test)]
    pub fn db(&mut self) -> &mut Db {
        &mut self.db
    }
}

/// What is wrong with `rec`, stored after `prev` (number and hash; `None` for the first row);
/// `None` if it holds. A first row after record 1 is judged later, against pruning records.
fn row_break(prev: Option<&(i64, Vec<u8>)>, rec: &StoredRecord) -> Option<BreakKind> {
    match prev {
        None if rec.seq == 1 && rec.prev_hash[..] != GENESIS[..] => {
            return Some(BreakKind::Reordered)
        }
        None => {}
        Some((pseq, phash)) if rec.prev_hash[..] != phash[..] => {
            return Some(if rec.seq != pseq + 1 {
                BreakKind::Deleted
            } else {
                BreakKind::Reordered
            })
        }
        Some((pseq, _)) if rec.seq != pseq + 1 => return Some(BreakKind::Reordered),
        Some(_) => {}
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
    (computed[..] != rec.hash[..]).then_some(BreakKind::Edited)
}

/// Appends `batch` after the last record in the database (inside a write transaction),
/// queueing reports if `reports`; the new last record and how many reports were queued.
fn append_rows(
    db: &mut Db,
    batch: &[(i64, Option<u64>, AuditRecord)],
    reports: bool,
) -> Result<((i64, [u8; 32]), usize), StoreError> {
    let mut last = last_record(db)?;
    let mut queued = 0;
    for (time_unix, ticket, record) in batch {
        let body = serde_json::to_string(record)?;
        let seq = last.0 + 1;
        let hash = record_hash(&last.1, seq, *time_unix, *ticket, record.kind(), &body);
        db.execute(
            "INSERT INTO audit_record (seq, time_unix, ticket, kind, body, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            &[
                seq.into(),
                (*time_unix).into(),
                ticket.map(|t| t as i64).into(),
                record.kind().into(),
                body.into(),
                last.1[..].into(),
                hash[..].into(),
            ],
        )?;
        last = (seq, hash);
        if let (true, Some(ticket)) = (reports, ticket) {
            queued += queue_report(db, *ticket, seq, &hash, *time_unix, record)?;
        }
    }
    Ok((last, queued))
}

/// Deletes the records before the first one at or after `cutoff_unix` (never the last; inside
/// a write transaction); how many, the first record kept and its hash, if any were.
fn prune_rows(db: &mut Db, cutoff_unix: i64) -> Result<Option<(usize, i64, Vec<u8>)>, StoreError> {
    let first_int = |db: &mut Db, sql: &str, p: &[Value]| -> Result<Option<i64>, StoreError> {
        Ok(db.query(sql, p)?.first().and_then(|r| r[0].int()))
    };
    let Some(first) = first_int(db, "SELECT MIN(seq) FROM audit_record", &[])? else {
        return Ok(None);
    };
    let last = last_record(db)?.0;
    let keep_from = first_int(
        db,
        "SELECT MIN(seq) FROM audit_record WHERE time_unix >= ?1",
        &[cutoff_unix.into()],
    )?
    .unwrap_or(last);
    if keep_from <= first {
        return Ok(None);
    }
    let hash = db
        .query(
            "SELECT hash FROM audit_record WHERE seq = ?1",
            &[keep_from.into()],
        )?
        .first()
        .map(|r| r[0].bytes())
        .unwrap_or_default();
    let n = db.execute(
        "DELETE FROM audit_record WHERE seq < ?1",
        &[keep_from.into()],
    )?;
    Ok(Some((n as usize, keep_from, hash)))
}

/// The last record in the database: (number, hash), or (0, genesis).
fn last_record(db: &mut Db) -> Result<(i64, [u8; 32]), StoreError> {
    Ok(db
        .query(
            "SELECT seq, hash FROM audit_record ORDER BY seq DESC LIMIT 1",
            &[],
        )?
        .first()
        .map(|r| {
            (
                r[0].int().unwrap_or(0),
                r[1].bytes().try_into().unwrap_or(GENESIS),
            )
        })
        .unwrap_or((0, GENESIS)))
}

/// Queues the report a session start or end calls for, in the transaction that stores the
/// record; returns how many (0 or 1).
fn queue_report(
    db: &mut Db,
    ticket: u64,
    seq: i64,
    hash: &[u8; 32],
    time_unix: i64,
    record: &AuditRecord,
) -> Result<usize, StoreError> {
    use crate::report::{ReportKind, SessionReport};
    let (kind, host) = match record {
        AuditRecord::SessionStarted { host, .. } => (ReportKind::Start, host),
        AuditRecord::SessionEnded { host, .. } => (ReportKind::End, host),
        _ => return Ok(0),
    };
    let records: Vec<(i64, AuditRecord)> = match kind {
        // A start report is the start record alone: nothing to read back.
        ReportKind::Start => vec![(time_unix, record.clone())],
        ReportKind::End => {
            // The session's records: from its start (the last one of this PC under this
            // ticket) on.
            let host_field = db.json_field("body", "host");
            db.query(
                &format!(
                    "SELECT time_unix, body FROM audit_record WHERE ticket = ?1 AND {host_field} = ?2 AND seq <= ?3
                     AND seq >= (SELECT COALESCE(MAX(seq), ?3) FROM audit_record WHERE ticket = ?1 AND kind = 'session_started' AND {host_field} = ?2 AND seq <= ?3)
                     ORDER BY seq"
                ),
                &[(ticket as i64).into(), host.as_str().into(), seq.into()],
            )?
            .iter()
            .filter_map(|r| Some((r[0].int()?, serde_json::from_str(&r[1].text()).ok()?)))
            .collect()
        }
    };
    let Some(report) = SessionReport::from_records(kind, ticket, &records) else {
        return Ok(0);
    };
    let key = format!("fernhilfe-{}-{seq}", protocol::hex::lower(&hash[..6]));
    db.execute(
        "INSERT INTO report_outbox (record_seq, ticket, idempotency_key, payload, state, next_attempt_unix) VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
        &[seq.into(), (ticket as i64).into(), key.into(), serde_json::to_string(&report)?.into(), time_unix.into()],
    )?;
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{AuditRecord, EndKind};

    /// A fresh state directory (it holds the checkpoint key in both cases).
    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("fh-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The same store on SQLite and, where a server runs, on PostgreSQL, each with `n`
    /// records an hour apart and a checkpoint after them.
    fn filled(name: &str, n: i64) -> Vec<(&'static str, std::path::PathBuf, Location, AuditStore)> {
        let mut out = Vec::new();
        let d = dir(name);
        out.push((
            "sqlite",
            d.clone(),
            Location::Sqlite(d.clone()),
            AuditStore::open(&d).unwrap(),
        ));
        if let Some(url) = crate::pg_test::fresh_database(&format!("fh_{name}")) {
            let d = dir(&format!("{name}-pg"));
            let at = Location::Postgres(url);
            let s = AuditStore::open_at(&d, &at).unwrap();
            out.push(("postgres", d, at, s));
        }
        for (_, _, _, s) in &mut out {
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
            s.checkpoint(CheckpointKind::Records, end_of(n)).unwrap();
        }
        out
    }

    /// The time of the last of `n` records [`filled`] writes.
    fn end_of(n: i64) -> i64 {
        1_700_000_000 + n * 3600
    }

    /// A minute after the last of 10 records: when the tests look.
    const NOW: i64 = 1_700_000_000 + 10 * 3600 + 60;

    fn broken(s: &mut AuditStore) -> Option<ChainBreak> {
        s.verify(NOW, 365).unwrap().broken
    }

    /// What an attacker without the key can do: replace `from` by `to` in record `seq` and
    /// recompute the hash chain from there on.
    fn edit_and_recompute(s: &mut AuditStore, seq: i64, from: &str, to: &str) {
        let rows = s.since(0).unwrap();
        let mut prev = rows
            .iter()
            .find(|r| r.seq == seq - 1)
            .map_or(GENESIS.to_vec(), |r| r.hash.clone());
        for r in rows.iter().filter(|r| r.seq >= seq) {
            let body = if r.seq == seq {
                r.body.replace(from, to)
            } else {
                r.body.clone()
            };
            let h = record_hash(&prev, r.seq, r.time_unix, r.ticket, &r.kind, &body);
            s.db()
                .execute(
                    "UPDATE audit_record SET body = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
                    &[body.into(), prev[..].into(), h[..].into(), r.seq.into()],
                )
                .unwrap();
            prev = h.to_vec();
        }
    }

    /// Five more records after the 10 of [`filled`], an hour apart, and a checkpoint.
    fn five_more(s: &mut AuditStore) -> i64 {
        let batch: Vec<_> = (11..=15)
            .map(|i| {
                (
                    end_of(i),
                    Some(4711),
                    AuditRecord::AgentLeft {
                        host: format!("PC-{i}"),
                    },
                )
            })
            .collect();
        s.append(&batch).unwrap();
        s.checkpoint(CheckpointKind::Records, end_of(15)).unwrap();
        end_of(15)
    }

    fn sql(s: &mut AuditStore, statements: &str) {
        for st in statements
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            s.db().execute(st, &[]).unwrap();
        }
    }

    #[test]
    fn an_untouched_chain_verifies_and_survives_reopening() {
        for (db, d, _, mut s) in filled("intact", 10) {
            let v = s.verify(NOW, 365).unwrap();
            assert_eq!(
                (v.records, v.first, v.last, v.broken),
                (10, Some(1), Some(10), None),
                "{db}"
            );
            if db == "sqlite" {
                drop(s);
                s = AuditStore::open(&d).unwrap();
            }
            s.append(&[(NOW, None, AuditRecord::AgentLeft { host: "PC".into() })])
                .unwrap();
            assert_eq!(broken(&mut s), None, "{db}");
            assert_eq!(s.verify(NOW, 365).unwrap().last, Some(11), "{db}");
        }
    }

    #[test]
    fn an_edited_record_is_named() {
        for (db, _, _, mut s) in filled("edit", 10) {
            sql(
                &mut s,
                "UPDATE audit_record SET body = replace(body, 'Anna', 'Bert') WHERE seq = 4",
            );
            assert_eq!(
                broken(&mut s),
                Some(ChainBreak {
                    seq: 4,
                    what: BreakKind::Edited
                }),
                "{db}"
            );
        }
    }

    #[test]
    fn a_deleted_record_is_named() {
        for (db, _, _, mut s) in filled("delete", 10) {
            sql(&mut s, "DELETE FROM audit_record WHERE seq = 6");
            assert_eq!(
                broken(&mut s),
                Some(ChainBreak {
                    seq: 7,
                    what: BreakKind::Deleted
                }),
                "{db}"
            );
        }
    }

    #[test]
    fn swapped_records_are_named() {
        for (db, _, _, mut s) in filled("reorder", 10) {
            // Swap the numbers of records 3 and 5, contents and hashes kept.
            sql(
                &mut s,
                "UPDATE audit_record SET seq = -3 WHERE seq = 3;
                 UPDATE audit_record SET seq = 3 WHERE seq = 5;
                 UPDATE audit_record SET seq = 5 WHERE seq = -3",
            );
            assert_eq!(
                broken(&mut s),
                Some(ChainBreak {
                    seq: 3,
                    what: BreakKind::Reordered
                }),
                "{db}"
            );
        }
    }

    #[test]
    fn a_chain_recomputed_after_an_edit_fails_at_the_signed_checkpoint() {
        for (db, _, _, mut s) in filled("rewrite", 10) {
            // The attacker edits record 2 and recomputes every hash after it, without the key.
            edit_and_recompute(&mut s, 2, "Anna", "Bert");
            assert_eq!(
                broken(&mut s),
                Some(ChainBreak {
                    seq: 10,
                    what: BreakKind::BadCheckpoint
                }),
                "{db}"
            );
        }
    }

    #[test]
    fn cutting_records_off_the_end_is_seen_at_the_checkpoint() {
        for (db, _, _, mut s) in filled("tail", 10) {
            sql(&mut s, "DELETE FROM audit_record WHERE seq > 8");
            assert_eq!(
                broken(&mut s),
                Some(ChainBreak {
                    seq: 10,
                    what: BreakKind::TailRemoved
                }),
                "{db}"
            );
        }
    }

    /// Whoever deletes every checkpoint leaves records no signature covers.
    #[test]
    fn deleting_all_checkpoints_is_seen() {
        for (db, _, _, mut s) in filled("nocheckpoint", 10) {
            sql(&mut s, "DELETE FROM audit_signed_checkpoint");
            assert_eq!(
                broken(&mut s),
                Some(ChainBreak {
                    seq: 1,
                    what: BreakKind::NoCheckpoint
                }),
                "{db}"
            );
        }
    }

    /// The newest records cut off together with the checkpoints over them: the newest
    /// checkpoint left is an hour old and no shutdown one.
    #[test]
    fn cutting_the_newest_records_and_their_checkpoints_is_seen() {
        for (db, _, _, mut s) in filled("cutnewest", 10) {
            let later = five_more(&mut s);
            sql(
                &mut s,
                "DELETE FROM audit_record WHERE seq > 10; DELETE FROM audit_signed_checkpoint WHERE n > 1",
            );
            let b = s.verify(later + 60, 365).unwrap().broken;
            assert!(
                matches!(
                    b,
                    Some(ChainBreak {
                        seq: 1,
                        what: BreakKind::StaleCheckpoint { .. }
                    })
                ),
                "{db}: {b:?}"
            );
        }
    }

    /// The oldest records deleted up to a checkpoint, without a pruning record.
    #[test]
    fn cutting_the_oldest_records_without_a_pruning_record_is_seen() {
        for (db, _, _, mut s) in filled("cutoldest", 10) {
            sql(&mut s, "DELETE FROM audit_record WHERE seq < 5");
            assert_eq!(
                broken(&mut s),
                Some(ChainBreak {
                    seq: 5,
                    what: BreakKind::StartChanged
                }),
                "{db}"
            );
        }
    }

    /// An edit, the chain recomputed after it, and the checkpoints over it dropped: the
    /// records after the last checkpoint left are covered by none.
    #[test]
    fn a_recomputed_chain_without_its_checkpoints_is_seen() {
        for (db, _, _, mut s) in filled("recompute", 10) {
            let later = five_more(&mut s);
            edit_and_recompute(&mut s, 12, "PC-12", "PC-99");
            assert_eq!(
                s.verify(later + 60, 365).unwrap().broken.map(|b| b.what),
                Some(BreakKind::BadCheckpoint),
                "{db}: the checkpoint over the edit is still there"
            );
            sql(&mut s, "DELETE FROM audit_signed_checkpoint WHERE n > 1");
            let b = s.verify(later + 3600, 365).unwrap().broken;
            assert!(
                matches!(
                    b,
                    Some(ChainBreak {
                        seq: 11,
                        what: BreakKind::Uncovered { .. }
                    })
                ),
                "{db}: {b:?}"
            );
        }
    }

    /// A checkpoint taken out of the middle leaves a gap in the numbers, and renumbering the
    /// rest breaks their chain.
    #[test]
    fn a_missing_checkpoint_is_a_gap() {
        for (db, _, _, mut s) in filled("gap", 10) {
            let later = five_more(&mut s);
            s.checkpoint(CheckpointKind::Heartbeat, later + 300)
                .unwrap();
            sql(&mut s, "DELETE FROM audit_signed_checkpoint WHERE n = 2");
            let b = s.verify(later + 360, 365).unwrap().broken;
            assert_eq!(
                b,
                Some(ChainBreak {
                    seq: 2,
                    what: BreakKind::CheckpointGap
                }),
                "{db}"
            );
            sql(
                &mut s,
                "UPDATE audit_signed_checkpoint SET n = 2 WHERE n = 3",
            );
            let b = s.verify(later + 360, 365).unwrap().broken;
            assert_eq!(b.map(|b| b.what), Some(BreakKind::CheckpointGap), "{db}");
        }
    }

    /// A relay idle for hours signs heartbeats and verifies at any moment; one that stopped
    /// signing without a shutdown checkpoint (a crash) does not, until it starts again; one
    /// that shut down cleanly verifies a day later.
    #[test]
    fn honest_idle_crashed_and_stopped_relays() {
        for (db, _, _, mut s) in filled("idle", 10) {
            let mut t = end_of(10);
            for _ in 0..36 {
                t += checkpoint::HEARTBEAT_SECS;
                s.checkpoint(CheckpointKind::Heartbeat, t).unwrap();
                assert_eq!(s.verify(t + 60, 365).unwrap().broken, None, "{db}");
            }
            let b = s.verify(t + 7200, 365).unwrap().broken;
            assert!(
                matches!(
                    b,
                    Some(ChainBreak {
                        what: BreakKind::StaleCheckpoint { .. },
                        ..
                    })
                ),
                "{db}: a crash looks like this: {b:?}"
            );
            assert!(s.unclean_stop().unwrap().is_some(), "{db}");
            s.checkpoint(CheckpointKind::Shutdown, t + 7200).unwrap();
            assert!(s.unclean_stop().unwrap().is_none(), "{db}");
            assert_eq!(s.verify(t + 86_400, 365).unwrap().broken, None, "{db}");
        }
    }

    #[test]
    fn pruning_keeps_the_chain_verifiable_and_deleting_more_does_not() {
        for (db, _, _, mut s) in filled("prune", 10) {
            // Records are an hour apart: a day's retention, a day after the 7th, keeps those
            // from the 7th on, and says so in record 11.
            let now = end_of(7) + 86_400;
            let (deleted, cp) = s.prune(1, now).unwrap();
            assert_eq!((deleted, cp.map(|c| c.first_seq)), (6, Some(7)), "{db}");
            let v = s.verify(now + 60, 1).unwrap();
            assert_eq!(
                (v.first, v.last, v.broken),
                (Some(7), Some(11), None),
                "{db}"
            );
            // A relay that must keep records two days did not keep them.
            assert_eq!(
                s.verify(now + 60, 2).unwrap().broken,
                Some(ChainBreak {
                    seq: 11,
                    what: BreakKind::PrunedTooEarly { retention_days: 2 }
                }),
                "{db}"
            );
            // Removing the start by hand leaves a start no checkpoint names.
            sql(&mut s, "DELETE FROM audit_record WHERE seq = 7");
            assert_eq!(
                s.verify(now + 60, 1).unwrap().broken,
                Some(ChainBreak {
                    seq: 8,
                    what: BreakKind::StartChanged
                }),
                "{db}"
            );
        }
    }

    #[test]
    fn a_forged_checkpoint_is_refused() {
        for (db, _, _, mut s) in filled("forge", 10) {
            s.db()
                .execute(
                    "UPDATE audit_signed_checkpoint SET signature = ?1",
                    &[vec![0u8; 64][..].into()],
                )
                .unwrap();
            assert_eq!(
                broken(&mut s).map(|b| b.what),
                Some(BreakKind::BadCheckpoint),
                "{db}"
            );
        }
    }

    #[test]
    fn a_store_from_a_newer_relay_is_not_touched() {
        for (db, d, at, mut s) in filled("newer", 1) {
            if db == "sqlite" {
                sql(&mut s, "PRAGMA user_version = 99");
            } else {
                sql(&mut s, "UPDATE fernhilfe_schema SET version = 99");
            }
            drop(s);
            assert!(
                matches!(
                    AuditStore::open_at(&d, &at),
                    Err(StoreError::NewerSchema { found: 99, .. })
                ),
                "{db}"
            );
        }
    }

    #[test]
    fn two_writers_on_one_postgres_continue_one_chain() {
        let Some(url) = crate::pg_test::fresh_database("fh_two_writers") else {
            return;
        };
        let d = dir("two-writers");
        let at = Location::Postgres(url);
        let mut threads = Vec::new();
        for w in 0..2 {
            let (d, at) = (d.clone(), at.clone());
            threads.push(std::thread::spawn(move || {
                let mut s = AuditStore::open_at(&d, &at).unwrap();
                for i in 0..50 {
                    s.append(&[(
                        i,
                        Some(4711),
                        AuditRecord::AgentLeft {
                            host: format!("relay-{w}"),
                        },
                    )])
                    .unwrap();
                    s.checkpoint(CheckpointKind::Records, 60).unwrap();
                }
                s.checkpoint(CheckpointKind::Shutdown, 60).unwrap();
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        let mut s = AuditStore::open_at(&d, &at).unwrap();
        let v = s.verify(120, 365).unwrap();
        assert_eq!(
            (v.records, v.last, v.checkpoints, v.broken),
            (100, Some(100), 102, None)
        );
    }
}
