//! Signed checkpoints: the relay's signature over the state of the whole record, chained.
//!
//! A hash chain alone can be recomputed by whoever can write the database. A checkpoint signs,
//! with the relay's key, what the record holds at one moment: its first and its last record
//! (number and hash), the time, why it was signed, which relay signed it, and the digest of
//! the checkpoint before it. Checkpoints are numbered from 1 and never deleted (they hold no
//! personal data), so a missing one is a gap. Together with the relay signing on a heartbeat
//! when idle and once more at a clean shutdown, this makes every quiet edit visible:
//!
//! - rewriting a record and its successors fails at the first checkpoint that covers it;
//! - deleting checkpoints leaves a gap in their numbers, or a last one that is neither recent
//!   nor a shutdown one;
//! - cutting off the newest records leaves a checkpoint that covers more than is there, or
//!   records that no checkpoint covers although one was due;
//! - cutting off the oldest records changes the first record every later checkpoint names,
//!   unless a pruning record in the chain (signed over by the checkpoints after it) says so.
//!
//! Each checkpoint is also logged with its digest (`audit checkpoint signed`), so an operator
//! who ships the log off the host keeps evidence that outlives even a stolen key.

use super::db::{Db, Value};
use super::store::{StoreError, GENESIS, KEY_FILE};
use ring::rand::SystemRandom;
use ring::signature::EcdsaKeyPair;
use sha2::{Digest, Sha256};

/// Records are covered by a checkpoint at most this long after they were written: the writer
/// signs this long after the last record at the latest.
pub const RECORDS_WITHIN_SECS: i64 = 30;
/// An idle relay signs a checkpoint this often, so "no checkpoint for a long time" is itself
/// evidence of a crash or of checkpoints removed.
pub const HEARTBEAT_SECS: i64 = 300;
/// Slack on both periods for a slow disk or a busy machine before `verify` calls a gap.
pub const MARGIN_SECS: i64 = 300;

/// Why a checkpoint was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// New records came.
    Records,
    /// Nothing came: the relay still runs.
    Heartbeat,
    /// The relay stops cleanly; nothing follows from this relay until it starts again.
    Shutdown,
}

impl CheckpointKind {
    /// The name stored and signed.
    pub fn name(self) -> &'static str {
        match self {
            Self::Records => "records",
            Self::Heartbeat => "heartbeat",
            Self::Shutdown => "shutdown",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Records, Self::Heartbeat, Self::Shutdown]
            .into_iter()
            .find(|k| k.name() == s)
    }
}

/// One signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Its number: 1, 2, 3, … without gaps.
    pub n: i64,
    /// The digest of checkpoint `n - 1` (zeros for the first).
    pub prev: Vec<u8>,
    /// Why it was signed; `None` if the stored name is unknown (a forgery).
    pub kind: Option<CheckpointKind>,
    pub time_unix: i64,
    /// The relay that signed it (relays sharing one database share the key, not the name).
    pub signer: String,
    /// The first record at that moment (0 and zeros when there was none).
    pub first_seq: i64,
    pub first_hash: Vec<u8>,
    /// The last record at that moment.
    pub last_seq: i64,
    pub last_hash: Vec<u8>,
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// What the signature covers.
    pub fn message(&self) -> Vec<u8> {
        let mut m = b"fernhilfe-audit-checkpoint-2".to_vec();
        m.extend_from_slice(&self.n.to_be_bytes());
        m.extend_from_slice(&self.prev);
        let kind = self.kind.map_or("?", CheckpointKind::name);
        for text in [kind, self.signer.as_str()] {
            m.extend_from_slice(&(text.len() as u32).to_be_bytes());
            m.extend_from_slice(text.as_bytes());
        }
        m.extend_from_slice(&self.time_unix.to_be_bytes());
        m.extend_from_slice(&self.first_seq.to_be_bytes());
        m.extend_from_slice(&self.first_hash);
        m.extend_from_slice(&self.last_seq.to_be_bytes());
        m.extend_from_slice(&self.last_hash);
        m
    }

    /// The digest the next checkpoint chains to, and the one the log line carries.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.message()).into()
    }

    fn from_row(r: &[Value]) -> Self {
        Checkpoint {
            n: r[0].int().unwrap_or(0),
            prev: r[1].bytes(),
            kind: CheckpointKind::parse(&r[2].text()),
            time_unix: r[3].int().unwrap_or(0),
            signer: r[4].text(),
            first_seq: r[5].int().unwrap_or(0),
            first_hash: r[6].bytes(),
            last_seq: r[7].int().unwrap_or(0),
            last_hash: r[8].bytes(),
            signature: r[9].bytes(),
        }
    }
}

const COLUMNS: &str =
    "n, prev, kind, time_unix, signer, first_seq, first_hash, last_seq, last_hash, signature";

/// Every checkpoint, in order.
pub(super) fn all(db: &mut Db) -> Result<Vec<Checkpoint>, StoreError> {
    Ok(db
        .query(
            &format!("SELECT {COLUMNS} FROM audit_signed_checkpoint ORDER BY n"),
            &[],
        )?
        .iter()
        .map(|r| Checkpoint::from_row(r))
        .collect())
}

/// The newest checkpoint `signer` signed, if any.
pub(super) fn latest_by(db: &mut Db, signer: &str) -> Result<Option<Checkpoint>, StoreError> {
    Ok(db
        .query(
            &format!(
                "SELECT {COLUMNS} FROM audit_signed_checkpoint WHERE signer = ?1 ORDER BY n DESC LIMIT 1"
            ),
            &[signer.into()],
        )?
        .first()
        .map(|r| Checkpoint::from_row(r)))
}

/// Signs and stores the next checkpoint over the record as it is now; runs inside a write
/// transaction, so relays sharing one database take turns and number without gaps.
pub(super) fn sign_next(
    db: &mut Db,
    key: &EcdsaKeyPair,
    signer: &str,
    kind: CheckpointKind,
    now: i64,
) -> Result<Checkpoint, StoreError> {
    let prev = db
        .query(
            &format!("SELECT {COLUMNS} FROM audit_signed_checkpoint ORDER BY n DESC LIMIT 1"),
            &[],
        )?
        .first()
        .map(|r| Checkpoint::from_row(r));
    let end = |db: &mut Db, order: &str| -> Result<(i64, Vec<u8>), StoreError> {
        Ok(db
            .query(
                &format!("SELECT seq, hash FROM audit_record ORDER BY seq {order} LIMIT 1"),
                &[],
            )?
            .first()
            .map(|r| (r[0].int().unwrap_or(0), r[1].bytes()))
            .unwrap_or((0, GENESIS.to_vec())))
    };
    let (first_seq, first_hash) = end(db, "ASC")?;
    let (last_seq, last_hash) = end(db, "DESC")?;
    let mut cp = Checkpoint {
        n: prev.as_ref().map_or(1, |p| p.n + 1),
        prev: prev.map_or(GENESIS.to_vec(), |p| p.digest().to_vec()),
        kind: Some(kind),
        time_unix: now,
        signer: signer.to_owned(),
        first_seq,
        first_hash,
        last_seq,
        last_hash,
        signature: Vec::new(),
    };
    cp.signature = key
        .sign(&SystemRandom::new(), &cp.message())
        .map_err(|_| StoreError::Key {
            path: KEY_FILE.into(),
            reason: "signing failed".into(),
        })?
        .as_ref()
        .to_vec();
    db.execute(
        &format!("INSERT INTO audit_signed_checkpoint ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        &[
            cp.n.into(),
            cp.prev[..].into(),
            kind.name().into(),
            cp.time_unix.into(),
            cp.signer.as_str().into(),
            cp.first_seq.into(),
            cp.first_hash[..].into(),
            cp.last_seq.into(),
            cp.last_hash[..].into(),
            cp.signature[..].into(),
        ],
    )?;
    Ok(cp)
}
