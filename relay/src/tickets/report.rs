//! What a session report says, built from the session's audit records, and its text.

use crate::audit::record::{AuditRecord, ConsentChange, EndKind, GrantKind, Lang, PathName, Side};
use serde::{Deserialize, Serialize};

/// Start or end of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    Start,
    End,
}

/// One decision of the person at the PC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentStep {
    pub time_unix: i64,
    pub change: ConsentChange,
    pub grant: GrantKind,
}

/// One path a side reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStep {
    pub time_unix: i64,
    pub side: Side,
    pub path: PathName,
    pub rtt_ms: u32,
}

/// The report as queued, delivered, and sent to webhooks (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionReport {
    pub kind: ReportKind,
    pub ticket: u64,
    pub host: String,
    pub staff: String,
    pub started_unix: i64,
    pub ended_unix: Option<i64>,
    pub duration_s: Option<u64>,
    pub consent: Vec<ConsentStep>,
    pub paths: Vec<PathStep>,
    pub end_reason: Option<EndKind>,
    pub agent_bytes_sent: Option<u64>,
    pub agent_bytes_received: Option<u64>,
}

impl SessionReport {
    /// The report of a session from its records, `session_started` first; `None` if the
    /// first record is not a session start.
    pub fn from_records(
        kind: ReportKind,
        ticket: u64,
        records: &[(i64, AuditRecord)],
    ) -> Option<Self> {
        let (started_unix, AuditRecord::SessionStarted { host, staff }) = records.first()? else {
            return None;
        };
        let mut r = SessionReport {
            kind,
            ticket,
            host: host.clone(),
            staff: staff.clone(),
            started_unix: *started_unix,
            ended_unix: None,
            duration_s: None,
            consent: Vec::new(),
            paths: Vec::new(),
            end_reason: None,
            agent_bytes_sent: None,
            agent_bytes_received: None,
        };
        for (t, rec) in &records[1..] {
            match rec {
                AuditRecord::Consent { change, grant, .. } => r.consent.push(ConsentStep {
                    time_unix: *t,
                    change: *change,
                    grant: *grant,
                }),
                AuditRecord::PathChanged {
                    side, path, rtt_ms, ..
                } => r.paths.push(PathStep {
                    time_unix: *t,
                    side: *side,
                    path: *path,
                    rtt_ms: *rtt_ms,
                }),
                AuditRecord::SessionEnded {
                    reason,
                    duration_s,
                    agent_bytes_sent,
                    agent_bytes_received,
                    ..
                } => {
                    r.ended_unix = Some(*t);
                    r.duration_s = Some(*duration_s);
                    r.end_reason = Some(*reason);
                    r.agent_bytes_sent = *agent_bytes_sent;
                    r.agent_bytes_received = *agent_bytes_received;
                }
                _ => {}
            }
        }
        Some(r)
    }

    /// Minutes worked, rounded up, for the ticket's time tracking (end reports only).
    pub fn minutes(&self) -> Option<u64> {
        self.duration_s.map(|s| s.div_ceil(60).max(1))
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

    /// The comment's text: who, where, when, what was allowed, which path, how it ended.
    pub fn text(&self, lang: Lang) -> String {
        let de = lang == Lang::De;
        let mut t = String::new();
        let line = |t: &mut String, de_s: String, en_s: String| {
            t.push_str(if de { &de_s } else { &en_s });
            t.push('\n');
        };
        line(
            &mut t,
            format!("PC: {}", self.host),
            format!("PC: {}", self.host),
        );
        line(
            &mut t,
            format!("Support: {}", self.staff),
            format!("Support: {}", self.staff),
        );
        line(
            &mut t,
            format!("Beginn: {}", crate::clock::rfc3339(self.started_unix)),
            format!("Start: {}", crate::clock::rfc3339(self.started_unix)),
        );
        if let (Some(end), Some(d)) = (self.ended_unix, self.duration_s) {
            line(
                &mut t,
                format!("Ende: {}", crate::clock::rfc3339(end)),
                format!("End: {}", crate::clock::rfc3339(end)),
            );
            line(
                &mut t,
                format!("Dauer: {} min {} s", d / 60, d % 60),
                format!("Duration: {} min {} s", d / 60, d % 60),
            );
        }
        // What happened during the session, in time order, as `audit show` says it.
        let consent = self.consent.iter().map(|c| {
            let rec = AuditRecord::Consent {
                host: String::new(),
                staff: String::new(),
                change: c.change,
                grant: c.grant,
            };
            (c.time_unix, rec)
        });
        let paths = self.paths.iter().map(|p| {
            let rec = AuditRecord::PathChanged {
                host: String::new(),
                staff: String::new(),
                side: p.side,
                path: p.path,
                rtt_ms: p.rtt_ms,
            };
            (p.time_unix, rec)
        });
        let mut events: Vec<_> = consent.chain(paths).collect();
        events.sort_by_key(|(t, _)| *t);
        for (time_unix, rec) in events {
            t.push_str(&format!(
                "{}  {}\n",
                crate::clock::rfc3339(time_unix),
                rec.describe(lang)
            ));
        }
        if let Some(reason) = self.end_reason {
            let rec = AuditRecord::SessionEnded {
                host: String::new(),
                staff: String::new(),
                reason,
                duration_s: self.duration_s.unwrap_or(0),
                agent_bytes_sent: self.agent_bytes_sent,
                agent_bytes_received: self.agent_bytes_received,
            };
            line(&mut t, rec.describe(Lang::De), rec.describe(Lang::En));
        }
        t
    }
}
