//! The audit record of a Fernhilfe relay: who paired with which ticket, what the person at the PC allowed,
//! which path the session took and how it ended, in a hash-chained SQLite store
//! ([`store::AuditStore`]) of typed records ([`record::AuditRecord`]). Never codes, tokens or
//! screen content.
//!
//! Records go to a writer thread of their own, so a slow disk never stalls the runtime that
//! pairs sessions; sending a record costs a channel push. The queue is bounded: when a flood
//! (or a stalled database) fills it, further records are counted by kind instead of queued, and
//! the writer stores those counts as a `records_dropped` record once it has room, so the gap is
//! itself on the record.

pub mod checkpoint;
pub mod clock;
pub mod db;
pub mod metrics;
#[cfg(test)]
mod pg_test;
pub mod record;
pub mod report;
pub mod store;

use record::AuditRecord;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use store::AuditStore;

/// Records written in one transaction at most.
const BATCH: usize = 256;
/// How long the writer collects records for one transaction.
const BATCH_WINDOW: Duration = Duration::from_millis(10);
/// A checkpoint is signed after this many records, and at the latest
/// [`checkpoint::RECORDS_WITHIN_SECS`] after the first record it covers.
const CHECKPOINT_EVERY: u32 = 1000;
/// Records waiting for the writer at most. The writer stores thousands a second
/// (`audit bench`): this holds many seconds of a flood while the disk is slow, in a few MB.
const QUEUE_DEPTH: usize = 16_384;

enum Job {
    Record(i64, Option<u64>, AuditRecord),
    /// Answered once everything before it is stored.
    Flush(mpsc::SyncSender<()>),
    /// The relay stops cleanly: store everything, sign a shutdown checkpoint, answer, end.
    Close(mpsc::SyncSender<()>),
}

/// The handle the relay records through; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    /// `None` only in benchmark builds told to run without auditing.
    jobs: Option<mpsc::SyncSender<Job>>,
    health: Arc<WriterHealth>,
    /// Records the full queue could not take, by kind, until the writer stores the counts.
    dropped: Arc<std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>>,
}

/// What the writer thread says of itself, for the relay's readiness.
#[derive(Default)]
struct WriterHealth {
    stopped: AtomicBool,
    last_write_failed: AtomicBool,
}

/// Marks the writer stopped when its thread ends, also by a panic.
struct StoppedOnDrop(Arc<WriterHealth>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::Relaxed);
    }
}

impl AuditLog {
    /// Opens the store in the state directory (retiring an old `audit.jsonl` into it) and
    /// starts its writer thread; `retention_days` old records are pruned daily. With
    /// `reports`, session starts and ends also queue a [`report::SessionReport`] in the report
    /// outbox, in the record's transaction, and each queued one is signalled there (the
    /// ticket connectors' delivery thread waits on it).
    pub fn open(
        dir: &std::path::Path,
        at: &db::Location,
        retention_days: u32,
        reports: Option<mpsc::Sender<()>>,
    ) -> Result<Self, store::StoreError> {
        Self::open_with_queue(dir, at, retention_days, reports, QUEUE_DEPTH)
    }

    /// As [`AuditLog::open`], with a writer queue of `depth` records.
    fn open_with_queue(
        dir: &std::path::Path,
        at: &db::Location,
        retention_days: u32,
        reports: Option<mpsc::Sender<()>>,
        depth: usize,
    ) -> Result<Self, store::StoreError> {
        #[cfg(feature = "bench-aids")]
        if std::env::var_os("FERNHILFE_BENCH_AUDIT_OFF").is_some() {
            tracing::warn!("benchmark build: auditing is off");
            return Ok(Self {
                jobs: None,
                health: Arc::default(),
                dropped: Arc::default(),
            });
        }
        // The PostgreSQL client blocks on a runtime of its own, which tokio forbids on a thread
        // of the relay's runtime (it panicked there): the store opens on a thread of its own.
        let mut store = std::thread::scope(|s| {
            s.spawn(|| AuditStore::open_at(dir, at))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })?;
        if let Some(wake) = reports {
            store.queue_reports(wake);
        }
        let (jobs, rx) = mpsc::sync_channel::<Job>(depth);
        let health = Arc::new(WriterHealth::default());
        let dropped: Arc<std::sync::Mutex<_>> = Arc::default();
        let log = Self {
            jobs: Some(jobs),
            health: health.clone(),
            dropped: dropped.clone(),
        };
        if let Some(retired) = retire_legacy_log(dir)? {
            log.record(None, retired);
        }
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || {
                let _stopped = StoppedOnDrop(health.clone());
                writer(&mut store, rx, retention_days, &health, &dropped)
            })?;
        Ok(log)
    }

    /// Why records are not being stored, if they are not: the writer stopped, or its last
    /// transaction failed.
    pub fn trouble(&self) -> Option<&'static str> {
        if self.health.stopped.load(Ordering::Relaxed) {
            Some("the audit writer stopped")
        } else if self.health.last_write_failed.load(Ordering::Relaxed) {
            Some("the audit store failed to write")
        } else {
            None
        }
    }

    /// Queues one record for `ticket`; never blocks. A failing disk is logged, not fatal.
    pub fn record(&self, ticket: Option<protocol::ids::TicketNumber>, record: AuditRecord) {
        let Some(jobs) = &self.jobs else { return };
        let time = crate::clock::unix_now();
        let kind = record.kind();
        match jobs.try_send(Job::Record(time, ticket.map(|t| t.get()), record)) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => {
                metrics::metrics().audit_records_dropped.inc();
                *lock(&self.dropped).entry(kind).or_default() += 1;
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                tracing::error!("the audit writer stopped; record lost");
            }
        }
    }

    /// Waits until everything queued so far is stored (and checkpointed).
    pub fn flush(&self) {
        self.wait_for(Job::Flush);
    }

    /// Stores everything queued so far and signs the shutdown checkpoint that says the relay
    /// stopped cleanly; records after it are not stored.
    pub fn close(&self) {
        self.wait_for(Job::Close);
    }

    fn wait_for(&self, job: fn(mpsc::SyncSender<()>) -> Job) {
        let Some(jobs) = &self.jobs else { return };
        let (tx, rx) = mpsc::sync_channel(1);
        if jobs.send(job(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The record of what the full queue dropped since the last one, if anything.
fn dropped_record(
    dropped: &std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
) -> Option<AuditRecord> {
    let counts = std::mem::take(&mut *lock(dropped));
    (!counts.is_empty()).then(|| AuditRecord::RecordsDropped {
        counts: counts.into_iter().map(|(k, n)| (k.to_owned(), n)).collect(),
    })
}

fn writer(
    store: &mut AuditStore,
    rx: mpsc::Receiver<Job>,
    retention_days: u32,
    health: &WriterHealth,
    dropped: &std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
) {
    use checkpoint::CheckpointKind;
    let records_within = Duration::from_secs(checkpoint::RECORDS_WITHIN_SECS as u64);
    let heartbeat = Duration::from_secs(checkpoint::HEARTBEAT_SECS as u64);
    // On the record first: this relay starts, and whether it stopped cleanly before.
    let after_unclean_stop = match store.unclean_stop() {
        Ok(c) => c.is_some(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the audit checkpoints");
            false
        }
    };
    if after_unclean_stop {
        tracing::warn!("the last audit checkpoint of this relay is not a shutdown one: it stopped uncleanly (crash, or killed); recorded");
    }
    let started = AuditRecord::RelayStarted {
        signer: store.signer().to_owned(),
        after_unclean_stop,
    };
    if let Err(e) = store.append(&[(crate::clock::unix_now(), None, started)]) {
        tracing::error!(error = %e, "cannot write to the audit store");
    }
    sign(store, CheckpointKind::Records);
    let mut last_signed = std::time::Instant::now();
    // When the oldest record no checkpoint covers yet was stored.
    let mut unsigned_since: Option<std::time::Instant> = None;
    let mut next_prune = std::time::Instant::now();
    loop {
        if next_prune <= std::time::Instant::now() {
            match store.prune(retention_days, crate::clock::unix_now()) {
                Ok((0, _)) => {}
                Ok((n, cp)) => {
                    tracing::info!(
                        deleted = n,
                        retention_days,
                        "audit records past retention pruned"
                    );
                    if let Some(cp) = cp {
                        log_checkpoint(&cp);
                        last_signed = std::time::Instant::now();
                    }
                }
                Err(e) => tracing::error!(error = %e, "audit retention failed"),
            }
            next_prune += Duration::from_secs(86_400);
        }
        let due = match unsigned_since {
            Some(t) => t + records_within,
            None => last_signed + heartbeat,
        };
        let first = match rx.recv_timeout(due.saturating_duration_since(std::time::Instant::now()))
        {
            Ok(j) => j,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Records waited long enough, or an idle relay says it still runs.
                let kind = match unsigned_since.take() {
                    Some(_) => CheckpointKind::Records,
                    None => CheckpointKind::Heartbeat,
                };
                sign(store, kind);
                last_signed = std::time::Instant::now();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        // Records that come within a few milliseconds share one transaction: a commit costs
        // about four times what a record does, and nobody waits for a record to be on disk.
        let mut batch = Vec::new();
        let mut flushes: Vec<mpsc::SyncSender<()>> = Vec::new();
        let mut closing = None;
        let window = std::time::Instant::now() + BATCH_WINDOW;
        let mut job = Some(first);
        while let Some(j) = job.take() {
            match j {
                Job::Record(t, ticket, r) => batch.push((t, ticket, r)),
                Job::Flush(done) => flushes.push(done),
                Job::Close(done) => closing = Some(done),
            }
            if batch.len() < BATCH && flushes.is_empty() && closing.is_none() {
                job = rx
                    .recv_timeout(window.saturating_duration_since(std::time::Instant::now()))
                    .ok();
            }
        }
        // Taken after the batch, so the counts cover everything dropped before it was stored.
        if let Some(r) = dropped_record(dropped) {
            batch.push((crate::clock::unix_now(), None, r));
        }
        if !batch.is_empty() {
            let started = std::time::Instant::now();
            let result = store.append(&batch);
            let m = metrics::metrics();
            m.audit_write_seconds
                .observe(started.elapsed().as_secs_f64());
            health
                .last_write_failed
                .store(result.is_err(), Ordering::Relaxed);
            if let Err(e) = result {
                m.audit_write_failures.inc();
                tracing::error!(error = %e, records = batch.len(), "cannot write to the audit store; records lost");
            }
            unsigned_since.get_or_insert(started);
        }
        if let Some(done) = closing {
            sign(store, CheckpointKind::Shutdown);
            for f in flushes {
                let _ = f.send(());
            }
            let _ = done.send(());
            return;
        }
        if store.since_checkpoint() >= CHECKPOINT_EVERY
            || !flushes.is_empty()
            || unsigned_since.is_some_and(|t| t.elapsed() >= records_within)
        {
            sign(store, CheckpointKind::Records);
            unsigned_since = None;
            last_signed = std::time::Instant::now();
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
    // Every handle is gone: the relay ends without a close; still an orderly end.
    sign(store, CheckpointKind::Shutdown);
}

/// Signs a checkpoint now and logs it.
fn sign(store: &mut AuditStore, kind: checkpoint::CheckpointKind) {
    match store.checkpoint(kind, crate::clock::unix_now()) {
        Ok(cp) => log_checkpoint(&cp),
        Err(e) => tracing::error!(error = %e, "cannot sign an audit checkpoint"),
    }
}

/// One log line per checkpoint, with its digest: shipped off the host (journald, syslog),
/// these lines are evidence of what the record held that even the key's thief cannot
/// rewrite. `audit verify` prints the newest checkpoint's digest to compare.
fn log_checkpoint(cp: &checkpoint::Checkpoint) {
    tracing::info!(
        target: "fernhilfe_audit_checkpoint",
        n = cp.n,
        kind = cp.kind.map_or("?", checkpoint::CheckpointKind::name),
        signer = %cp.signer,
        time_unix = cp.time_unix,
        first = cp.first_seq,
        last = cp.last_seq,
        digest = %protocol::hex::lower(&cp.digest()),
        "audit checkpoint signed"
    );
}

/// Closes the JSON-lines log of earlier versions: renamed to `audit.jsonl.retired` and bound
/// into the chain by its digest, so it stays evidence without being written again.
fn retire_legacy_log(dir: &std::path::Path) -> Result<Option<AuditRecord>, store::StoreError> {
    use sha2::Digest;
    let old = dir.join("audit.jsonl");
    let data = match std::fs::read(&old) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let retired = dir.join("audit.jsonl.retired");
    std::fs::rename(&old, &retired)?;
    let sha256 = protocol::hex::lower(&sha2::Sha256::digest(&data));
    let lines = data.iter().filter(|&&b| b == b'\n').count() as u64;
    tracing::info!(file = %retired.display(), lines, "the old JSON-lines audit log is retired into the audit store");
    Ok(Some(AuditRecord::LegacyLogRetired {
        file: "audit.jsonl.retired".into(),
        sha256,
        lines,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst far beyond the queue's depth: what the queue could not take is not lost
    /// silently but counted, by kind, in a `records_dropped` record, and the stored records
    /// plus the counted ones are exactly what was sent.
    #[test]
    fn a_full_queue_puts_what_it_dropped_on_the_record() {
        let dir = std::env::temp_dir().join(format!("fh-audit-queue-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let at = db::Location::Sqlite(dir.clone());
        let log = AuditLog::open_with_queue(&dir, &at, 365, None, 4).unwrap();
        let sent = 5_000u64;
        for i in 0..sent {
            log.record(
                None,
                AuditRecord::AgentLeft {
                    host: format!("PC-{i}"),
                },
            );
        }
        log.flush();
        // The counts of the last drops go out with the next batch.
        log.record(
            None,
            AuditRecord::AgentLeft {
                host: "last".into(),
            },
        );
        log.flush();
        let mut store = AuditStore::open(&dir).unwrap();
        let records: Vec<AuditRecord> = store
            .since(0)
            .unwrap()
            .iter()
            .filter_map(|r| r.record())
            .collect();
        let stored = records
            .iter()
            .filter(|r| matches!(r, AuditRecord::AgentLeft { host } if host != "last"))
            .count() as u64;
        let dropped: u64 = records
            .iter()
            .filter_map(|r| match r {
                AuditRecord::RecordsDropped { counts } => Some(counts["agent_left"]),
                _ => None,
            })
            .sum();
        assert!(
            dropped > 0,
            "a burst of {sent} into a queue of 4 dropped nothing"
        );
        assert_eq!(
            stored + dropped,
            sent,
            "stored {stored}, counted as dropped {dropped}"
        );
        assert!(store
            .verify(crate::clock::unix_now(), 365)
            .unwrap()
            .broken
            .is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
