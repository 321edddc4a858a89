//! What a session report says: the session's own audit records, from its start on, and
//! their text.

use crate::clock::rfc3339;
use crate::record::{AuditRecord, Lang};
use serde::{Deserialize, Serialize};

/// Start or end of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    Start,
    End,
}

/// One audit record with its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedRecord {
    pub time_unix: i64,
    pub record: AuditRecord,
}

/// The report as queued, delivered, and sent to webhooks (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionReport {
    pub kind: ReportKind,
    pub ticket: u64,
    pub host: String,
    pub staff: String,
    /// The session's records, `session_started` first.
    pub records: Vec<TimedRecord>,
    /// The `fernhilfe://` link that opens a viewer on this relay and ticket (start reports,
    /// where the relay knows its public address); added when the report is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl SessionReport {
    /// The report of a session from its records, `session_started` first; `None` if the
    /// first record is not a session start.
    pub fn from_records(
        kind: ReportKind,
        ticket: u64,
        records: &[(i64, AuditRecord)],
    ) -> Option<Self> {
        let (_, AuditRecord::SessionStarted { host, staff }) = records.first()? else {
            return None;
        };
        Some(SessionReport {
            kind,
            ticket,
            host: host.clone(),
            staff: staff.clone(),
            records: records
                .iter()
                .map(|(t, r)| TimedRecord {
                    time_unix: *t,
                    record: r.clone(),
                })
                .collect(),
            link: None,
        })
    }

    /// When the session ended and how long it took, once it has.
    fn ended(&self) -> Option<(i64, u64)> {
        self.records.iter().find_map(|r| match r.record {
            AuditRecord::SessionEnded { duration_s, .. } => Some((r.time_unix, duration_s)),
            _ => None,
        })
    }

    /// Minutes worked, rounded up, for the ticket's time tracking (end reports only).
    pub fn minutes(&self) -> Option<u64> {
        self.ended().map(|(_, s)| s.div_ceil(60).max(1))
    }

    /// The comment's subject line.
    pub fn subject(&self, lang: Lang) -> String {
        match (self.kind, lang) {
            (ReportKind::Start, Lang::De) => {
                format!("Fernhilfe: Sitzung mit {} gestartet", self.host)
            }
            (ReportKind::Start, Lang::En) => {
                format!("Fernhilfe: session with {} started", self.host)
            }
            (ReportKind::End, Lang::De) => format!("Fernhilfe: Sitzung mit {} beendet", self.host),
            (ReportKind::End, Lang::En) => format!("Fernhilfe: session with {} ended", self.host),
        }
    }

    /// The subject with the report's idempotency key, which a retry looks for.
    pub fn keyed_subject(&self, lang: Lang, key: &str) -> String {
        format!("{} [{key}]", self.subject(lang))
    }

    /// The comment's text: who, where, when, then each record of the session as `audit show`
    /// says it (what was allowed, which path, how it ended).
    pub fn text(&self, lang: Lang) -> String {
        let de = lang == Lang::De;
        let pick = |d: String, e: String| if de { d } else { e };
        let mut lines = vec![
            format!("PC: {}", self.host),
            format!("Support: {}", self.staff),
        ];
        if let Some(first) = self.records.first() {
            let start = rfc3339(first.time_unix);
            lines.push(pick(format!("Beginn: {start}"), format!("Start: {start}")));
        }
        if let (ReportKind::Start, Some(link)) = (self.kind, &self.link) {
            lines.push(pick(
                format!("Verbinden (den Code liest die Schule am Telefon vor): {link}"),
                format!("Connect (the school reads the code out on the phone): {link}"),
            ));
        }
        if let Some((end, d)) = self.ended() {
            let end = rfc3339(end);
            lines.push(pick(format!("Ende: {end}"), format!("End: {end}")));
            let (m, s) = (d / 60, d % 60);
            lines.push(pick(
                format!("Dauer: {m} min {s} s"),
                format!("Duration: {m} min {s} s"),
            ));
        }
        for r in self.records.iter().skip(1) {
            lines.push(format!(
                "{}  {}",
                rfc3339(r.time_unix),
                r.record.describe(lang)
            ));
        }
        lines.join("\n") + "\n"
    }
}
