//! `fernhilfe-relay audit …`: verify the chain, show a ticket's timeline, export, prune.

use anyhow::{bail, Context, Result};
use audit::clock::rfc3339;
use audit::db::Location;
use audit::record::Lang;
use audit::store::{AuditStore, StoredRecord};
use std::io::Write;
use std::path::Path;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Json,
    Csv,
}

/// Where the relay keeps its record, and the directory with its checkpoint key.
pub(crate) struct Place<'a> {
    pub state_dir: &'a Path,
    pub at: &'a Location,
}

fn open(place: &Place<'_>) -> Result<AuditStore> {
    if let Location::Sqlite(dir) = place.at {
        if !audit::db::sqlite_file(dir).exists() {
            bail!(
                "no audit store in {}: pass the relay's --state-dir",
                dir.display()
            );
        }
    }
    AuditStore::open_at(place.state_dir, place.at).context("cannot open the audit store")
}

/// Parses `2026-11-01`, `2026-11-01T08:00:00Z` or `@1764700000` (Unix seconds) to Unix
/// seconds.
pub(crate) fn parse_since(s: &str) -> Result<i64> {
    if let Some(secs) = s.strip_prefix('@') {
        return secs
            .parse()
            .with_context(|| format!("'{s}' is not @ and Unix seconds"));
    }
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    let t = OffsetDateTime::parse(&full, &Rfc3339).with_context(|| {
        format!("'{s}' is not a date (2026-11-01) or time (2026-11-01T08:00:00Z)")
    })?;
    Ok(t.unix_timestamp())
}

/// Walks the chain as of `now` (Unix seconds) for a relay keeping records `retention_days`;
/// exits non-zero with the place of the first break.
pub(crate) fn verify(place: &Place<'_>, now: i64, retention_days: u32) -> Result<bool> {
    let v = open(place)?.verify(now, retention_days)?;
    match &v.broken {
        None => {
            println!(
                "audit chain intact: {} records ({}), {} signed checkpoints",
                v.records,
                match (v.first, v.last) {
                    (Some(a), Some(b)) => format!("{a}..{b}"),
                    _ => "none".into(),
                },
                v.checkpoints
            );
            if let Some(cp) = &v.newest_checkpoint {
                // To compare with the `audit checkpoint signed` lines shipped off the host.
                println!(
                    "newest checkpoint: n={} kind={} signer={} at {} covers {}..{} digest={}",
                    cp.n,
                    cp.kind.map_or("?", audit::checkpoint::CheckpointKind::name),
                    cp.signer,
                    rfc3339(cp.time_unix),
                    cp.first_seq,
                    cp.last_seq,
                    protocol::hex::lower(&cp.digest())
                );
            }
            Ok(true)
        }
        Some(b) => {
            println!("audit chain BROKEN: {b}");
            Ok(false)
        }
    }
}

/// Prints every record of a ticket as a timeline a person reads.
pub(crate) fn show(
    place: &Place<'_>,
    ticket: protocol::ids::TicketNumber,
    lang: Lang,
) -> Result<()> {
    let mut store = open(place)?;
    let records = store.for_ticket(ticket.get())?;
    let reports = store.reports_for_ticket(ticket.get())?;
    if records.is_empty() {
        println!(
            "{}",
            match lang {
                Lang::De => format!("Keine Einträge zu Ticket {ticket}."),
                Lang::En => format!("No records for ticket {ticket}."),
            }
        );
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match lang {
        Lang::De => writeln!(out, "Ticket {ticket}: {} Einträge", records.len())?,
        Lang::En => writeln!(out, "Ticket {ticket}: {} records", records.len())?,
    }
    for r in &records {
        let text = r
            .record()
            .map(|rec| rec.describe(lang))
            .unwrap_or_else(|| format!("({})", r.kind));
        writeln!(out, "{}  [{}]  {text}", rfc3339(r.time_unix), r.seq)?;
    }
    for rep in &reports {
        let de = lang == Lang::De;
        let what = match (rep.kind.as_str(), de) {
            ("start", true) => "Start",
            ("start", false) => "start",
            (_, true) => "Ende",
            (_, false) => "end",
        };
        let state = match (rep.state.as_str(), de) {
            ("delivered", true) => "zugestellt".to_owned(),
            ("delivered", false) => "delivered".to_owned(),
            ("pending", true) => format!("ausstehend ({} Versuche)", rep.attempts),
            ("pending", false) => format!("pending ({} attempts)", rep.attempts),
            (_, true) => "fehlgeschlagen".to_owned(),
            (_, false) => "failed".to_owned(),
        };
        let error = rep
            .last_error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        if de {
            writeln!(
                out,
                "Bericht ans Ticketsystem zu [{}] ({what}): {state}{error}",
                rep.record_seq
            )?;
        } else {
            writeln!(
                out,
                "report to the ticket system for [{}] ({what}): {state}{error}",
                rep.record_seq
            )?;
        }
    }
    Ok(())
}

/// Writes the records since a time as JSON lines or CSV.
pub(crate) fn export(place: &Place<'_>, since: i64, format: Format) -> Result<()> {
    let records = open(place)?.since(since)?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            for r in &records {
                writeln!(out, "{}", json_line(r))?;
            }
        }
        Format::Csv => {
            writeln!(out, "seq,time,ticket,kind,record,hash")?;
            for r in &records {
                writeln!(
                    out,
                    "{},{},{},{},{},{}",
                    r.seq,
                    rfc3339(r.time_unix),
                    r.ticket.map(|t| t.to_string()).unwrap_or_default(),
                    r.kind,
                    csv_field(&r.body),
                    protocol::hex::lower(&r.hash)
                )?;
            }
        }
    }
    Ok(())
}

fn json_line(r: &StoredRecord) -> String {
    let record: serde_json::Value =
        serde_json::from_str(&r.body).unwrap_or(serde_json::Value::String(r.body.clone()));
    serde_json::json!({
        "seq": r.seq,
        "time": rfc3339(r.time_unix),
        "ticket": r.ticket,
        "record": record,
        "hash": protocol::hex::lower(&r.hash),
    })
    .to_string()
}

/// RFC 4180: quoted, inner quotes doubled; a leading formula character is defused for
/// spreadsheets.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Deletes records older than `days`, keeping the chain verifiable.
pub(crate) fn prune(place: &Place<'_>, days: u32) -> Result<()> {
    let (n, _) = open(place)?.prune(days, audit::clock::unix_now())?;
    println!("pruned {n} records older than {days} days");
    Ok(())
}

/// Writes `records` typical records into a fresh store in `dir`, one transaction each and
/// in batches as the writer thread takes them, and signs checkpoints; prints µs per record.
pub(crate) fn bench(dir: &Path, records: u32) -> Result<()> {
    use audit::record::{AuditRecord, EndKind};
    use std::time::Instant;
    if dir.join(audit::store::FILE).exists() {
        bail!(
            "{} already holds an audit store: give an empty directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)?;
    let mut store = AuditStore::open(dir)?;
    let record = |i: u32| {
        (
            1_764_630_000 + i64::from(i),
            Some(4711 + u64::from(i % 100)),
            AuditRecord::SessionEnded {
                host: format!("PC-{}", i % 30),
                staff: "Anna Schmidt".into(),
                reason: EndKind::EndedAtAgent,
                duration_s: u64::from(i % 3600),
                agent_bytes_sent: Some(12_345_678),
                agent_bytes_received: Some(123_456),
            },
        )
    };
    let n = records.max(256);
    let t = Instant::now();
    for i in 0..n {
        store.append(&[record(i)])?;
    }
    let single = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let t = Instant::now();
    let batch: Vec<_> = (0..n).map(record).collect();
    for chunk in batch.chunks(256) {
        store.append(chunk)?;
    }
    let batched = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let t = Instant::now();
    for i in 0..100 {
        store.append(&[record(i)])?;
        store.checkpoint(
            audit::checkpoint::CheckpointKind::Records,
            audit::clock::unix_now(),
        )?;
    }
    let checkpoint = t.elapsed().as_secs_f64() * 1e6 / 100.0 - single;
    let t = Instant::now();
    let v = store.verify(audit::clock::unix_now(), 365)?;
    let verify = t.elapsed().as_secs_f64() * 1e6 / v.records as f64;
    println!("audit-bench records={n} single_us={single:.1} batched_us={batched:.1} checkpoint_us={checkpoint:.0} verify_us={verify:.1} intact={}", v.broken.is_none());
    Ok(())
}
