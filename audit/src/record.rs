//! The typed records of the audit store. Each says what happened with named fields, never a
//! free-text detail: a record can be read, filtered and reported without parsing prose. Names
//! of people and PCs are the only strings; codes, tokens and screen content never appear.

use protocol::consent::Grant;
use protocol::peer::PathKind;
use protocol::session::EndReason;
use protocol::signaling::Refusal;
use serde::{Deserialize, Serialize};

/// One event of the record; `kind` names it in the stored JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuditRecord {
    /// An agent waits under the ticket.
    AgentRegistered {
        host: String,
        agent_version: String,
        source: String,
    },
    /// The agent left (its session, if any, is over).
    AgentLeft { host: String },
    /// A viewer was turned away before any pairing.
    ViewerRefused {
        staff: Option<String>,
        reason: RefusalKind,
    },
    /// A staff member (authenticated) joined the ticket to pair with this PC.
    ViewerJoined { host: String, staff: String },
    /// A staff member's code did not match the agent's.
    WrongCode { host: String, staff: String },
    /// The agent claimed a match the viewer did not confirm with the same pairing key: no
    /// session, and the agent was disconnected.
    PairingUnconfirmed { host: String, staff: String },
    /// Agent and viewer paired: the end-to-end session runs.
    SessionStarted { host: String, staff: String },
    /// What the person at the PC decided, as the agent reports it.
    Consent {
        host: String,
        staff: String,
        change: ConsentChange,
        grant: GrantKind,
    },
    /// The path one side's connection takes now.
    PathChanged {
        host: String,
        staff: String,
        side: Side,
        path: PathName,
        rtt_ms: u32,
    },
    /// The session is over.
    SessionEnded {
        host: String,
        staff: String,
        reason: EndKind,
        duration_s: u64,
        /// End-to-end bytes, as the agent counted them (`None` if it could not say).
        agent_bytes_sent: Option<u64>,
        agent_bytes_received: Option<u64>,
    },
    /// A relay started writing to this record; `after_unclean_stop` when its last checkpoint
    /// before was not a shutdown one (it crashed, or was killed).
    RelayStarted {
        signer: String,
        after_unclean_stop: bool,
    },
    /// Records before `keep_from` (whose hash was `first_hash`) were deleted as past the
    /// retention: everything older than `cutoff_unix`.
    #[serde(rename = "audit_pruned")]
    Pruned {
        keep_from: i64,
        first_hash: String,
        deleted: u64,
        cutoff_unix: i64,
        retention_days: u32,
    },
    /// One address caused more records in a window than it may: these were counted, by kind,
    /// instead of written one by one (`source` `None`: addresses beyond the tracked ones).
    RecordsAggregated {
        source: Option<String>,
        counts: std::collections::BTreeMap<String, u64>,
        window_secs: u64,
    },
    /// The writer's queue was full: records of these kinds were not stored (how many of each).
    RecordsDropped {
        counts: std::collections::BTreeMap<String, u64>,
    },
    /// The JSON-lines log of earlier versions was closed; its digest binds it to this chain.
    LegacyLogRetired {
        file: String,
        sha256: String,
        lines: u64,
    },
}

/// Why a viewer was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    BadStaffToken,
    UnknownTicket,
    AgentBusy,
    AmbiguousAgent,
    TooManyAttempts,
    Overloaded,
    Other,
}

impl From<&Refusal> for RefusalKind {
    fn from(r: &Refusal) -> Self {
        match r {
            Refusal::BadStaffToken => Self::BadStaffToken,
            Refusal::UnknownTicket => Self::UnknownTicket,
            Refusal::AgentBusy => Self::AgentBusy,
            Refusal::AmbiguousAgent { .. } => Self::AmbiguousAgent,
            Refusal::TooManyAttempts { .. } => Self::TooManyAttempts,
            Refusal::Overloaded => Self::Overloaded,
            _ => Self::Other,
        }
    }
}

/// First answer, a later change, or the end of consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentChange {
    Given,
    Refused,
    Changed,
    Revoked,
}

/// What the person allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    Nothing,
    View,
    Control,
}

impl From<Grant> for GrantKind {
    fn from(g: Grant) -> Self {
        match g {
            Grant::Denied => Self::Nothing,
            Grant::View => Self::View,
            Grant::Control => Self::Control,
        }
    }
}

/// Which side reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Agent,
    Viewer,
}

/// The path's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathName {
    Relayed,
    Direct,
    DirectLan,
}

impl From<PathKind> for PathName {
    fn from(p: PathKind) -> Self {
        match p {
            PathKind::Relayed => Self::Relayed,
            PathKind::Direct => Self::Direct,
            PathKind::DirectLan => Self::DirectLan,
        }
    }
}

/// Who or what ended the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndKind {
    EndedAtAgent,
    EndedByViewer,
    ConsentDenied,
    ProtocolViolation,
    Failure,
    /// Nobody used the session for the agent's idle limit.
    IdleTimeout,
    /// The session reached the agent's longest duration.
    MaxDuration,
    /// The agent's connection to the relay ended without its report.
    ConnectionLost,
}

impl From<EndReason> for EndKind {
    fn from(r: EndReason) -> Self {
        match r {
            EndReason::EndedAtAgent => Self::EndedAtAgent,
            EndReason::EndedByViewer => Self::EndedByViewer,
            EndReason::ConsentDenied => Self::ConsentDenied,
            EndReason::ProtocolViolation => Self::ProtocolViolation,
            EndReason::Failure => Self::Failure,
            EndReason::IdleTimeout => Self::IdleTimeout,
            EndReason::MaxDuration => Self::MaxDuration,
        }
    }
}

/// The language of `audit show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    De,
    En,
}

impl AuditRecord {
    /// The `kind` column: the record's name in the stored JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AgentRegistered { .. } => "agent_registered",
            Self::AgentLeft { .. } => "agent_left",
            Self::ViewerRefused { .. } => "viewer_refused",
            Self::ViewerJoined { .. } => "viewer_joined",
            Self::WrongCode { .. } => "wrong_code",
            Self::PairingUnconfirmed { .. } => "pairing_unconfirmed",
            Self::SessionStarted { .. } => "session_started",
            Self::Consent { .. } => "consent",
            Self::PathChanged { .. } => "path_changed",
            Self::SessionEnded { .. } => "session_ended",
            Self::RecordsDropped { .. } => "records_dropped",
            Self::RecordsAggregated { .. } => "records_aggregated",
            Self::RelayStarted { .. } => "relay_started",
            Self::Pruned { .. } => "audit_pruned",
            Self::LegacyLogRetired { .. } => "legacy_log_retired",
        }
    }

    /// One line a person reads in the timeline of `audit show`.
    pub fn describe(&self, lang: Lang) -> String {
        let de = lang == Lang::De;
        let grant = |g: GrantKind| match (g, de) {
            (GrantKind::Nothing, true) => "nichts",
            (GrantKind::Nothing, false) => "nothing",
            (GrantKind::View, true) => "nur ansehen",
            (GrantKind::View, false) => "view only",
            (GrantKind::Control, true) => "ansehen und steuern",
            (GrantKind::Control, false) => "view and control",
        };
        let path = |p: PathName| match (p, de) {
            (PathName::Relayed, true) => "über das Relay",
            (PathName::Relayed, false) => "relayed",
            (PathName::Direct, true) => "direkt",
            (PathName::Direct, false) => "direct",
            (PathName::DirectLan, true) => "direkt im LAN",
            (PathName::DirectLan, false) => "direct LAN",
        };
        match self {
            Self::AgentRegistered {
                host,
                agent_version,
                source,
            } => {
                if de {
                    format!("Agent auf {host} wartet (Version {agent_version}, von {source})")
                } else {
                    format!("agent on {host} waits (version {agent_version}, from {source})")
                }
            }
            Self::AgentLeft { host } => {
                if de {
                    format!("Agent auf {host} beendet")
                } else {
                    format!("agent on {host} left")
                }
            }
            Self::ViewerRefused { staff, reason } => {
                let who = staff
                    .as_deref()
                    .unwrap_or(if de { "unbekannt" } else { "unknown" });
                if de {
                    format!(
                        "Zugang abgelehnt für {who}: {}",
                        refusal_text(*reason, true)
                    )
                } else {
                    format!("access refused for {who}: {}", refusal_text(*reason, false))
                }
            }
            Self::ViewerJoined { host, staff } => {
                if de {
                    format!("{staff} (Support) möchte sich mit {host} verbinden")
                } else {
                    format!("{staff} (support) asks to connect to {host}")
                }
            }
            Self::WrongCode { host, staff } => {
                if de {
                    format!("falscher Sitzungscode von {staff} für {host}")
                } else {
                    format!("wrong session code from {staff} for {host}")
                }
            }
            Self::PairingUnconfirmed { host, staff } => {
                if de {
                    format!("Verbindung abgelehnt: {host} hat den Sitzungscode von {staff} nicht nachgewiesen")
                } else {
                    format!("pairing refused: {host} did not prove the session code of {staff}")
                }
            }
            Self::SessionStarted { host, staff } => {
                if de {
                    format!("Sitzung {staff} → {host} verbunden")
                } else {
                    format!("session {staff} → {host} connected")
                }
            }
            Self::Consent {
                change, grant: g, ..
            } => match (change, de) {
                (ConsentChange::Given, true) => format!("Zustimmung erteilt: {}", grant(*g)),
                (ConsentChange::Given, false) => format!("consent given: {}", grant(*g)),
                (ConsentChange::Refused, true) => "Zustimmung verweigert".into(),
                (ConsentChange::Refused, false) => "consent refused".into(),
                (ConsentChange::Changed, true) => format!("Zustimmung geändert: {}", grant(*g)),
                (ConsentChange::Changed, false) => format!("consent changed: {}", grant(*g)),
                (ConsentChange::Revoked, true) => "Zustimmung zurückgezogen".into(),
                (ConsentChange::Revoked, false) => "consent revoked".into(),
            },
            Self::PathChanged {
                side,
                path: p,
                rtt_ms,
                ..
            } => {
                let side = match (side, de) {
                    (Side::Agent, true) => "Agent",
                    (Side::Agent, false) => "agent",
                    (Side::Viewer, true) => "Betrachter",
                    (Side::Viewer, false) => "viewer",
                };
                if de {
                    format!("Weg ({side}): {}, {rtt_ms} ms", path(*p))
                } else {
                    format!("path ({side}): {}, {rtt_ms} ms", path(*p))
                }
            }
            Self::SessionEnded {
                reason,
                duration_s,
                agent_bytes_sent,
                agent_bytes_received,
                ..
            } => {
                let (m, s) = (duration_s / 60, duration_s % 60);
                let bytes = match (agent_bytes_sent, agent_bytes_received) {
                    (Some(tx), Some(rx)) => format!(", {} / {} kB", tx / 1000, rx / 1000),
                    _ => String::new(),
                };
                if de {
                    format!(
                        "Sitzung beendet ({}), Dauer {m} min {s} s{bytes}",
                        end_text(*reason, true)
                    )
                } else {
                    format!(
                        "session ended ({}), duration {m} min {s} s{bytes}",
                        end_text(*reason, false)
                    )
                }
            }
            Self::RelayStarted {
                signer,
                after_unclean_stop,
            } => match (after_unclean_stop, de) {
                (false, true) => format!("Relay {signer} gestartet"),
                (false, false) => format!("relay {signer} started"),
                (true, true) => format!("Relay {signer} gestartet, nach einem unsauberen Ende (Absturz oder hart beendet)"),
                (true, false) => format!("relay {signer} started after an unclean stop (crash, or killed)"),
            },
            Self::Pruned {
                keep_from,
                deleted,
                retention_days,
                ..
            } => {
                if de {
                    format!("{deleted} Einträge vor [{keep_from}] nach {retention_days} Tagen gelöscht")
                } else {
                    format!("{deleted} records before [{keep_from}] deleted after {retention_days} days")
                }
            }
            Self::RecordsAggregated {
                source,
                counts,
                window_secs,
            } => {
                let list: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
                let from = source.as_deref().unwrap_or("?");
                if de {
                    format!("von {from} in {window_secs} s weitere {}, nur gezählt", list.join(", "))
                } else {
                    format!("from {from} in {window_secs} s: {} more, counted only", list.join(", "))
                }
            }
            Self::RecordsDropped { counts } => {
                let list: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
                if de {
                    format!("Warteschlange voll, nicht gespeichert: {}", list.join(", "))
                } else {
                    format!("queue full, not stored: {}", list.join(", "))
                }
            }
            Self::LegacyLogRetired {
                file,
                sha256,
                lines,
            } => {
                if de {
                    format!(
                        "altes Protokoll {file} abgeschlossen ({lines} Zeilen, SHA-256 {sha256})"
                    )
                } else {
                    format!("old log {file} retired ({lines} lines, SHA-256 {sha256})")
                }
            }
        }
    }
}

fn refusal_text(r: RefusalKind, de: bool) -> &'static str {
    match (r, de) {
        (RefusalKind::BadStaffToken, true) => "ungültiges Zugangstoken",
        (RefusalKind::BadStaffToken, false) => "invalid staff token",
        (RefusalKind::UnknownTicket, true) => "kein Agent wartet unter dem Ticket",
        (RefusalKind::UnknownTicket, false) => "no agent waits under the ticket",
        (RefusalKind::AgentBusy, true) => "Agent schon in einer Sitzung",
        (RefusalKind::AgentBusy, false) => "agent already in a session",
        (RefusalKind::AmbiguousAgent, true) => "mehrere PCs, keiner gewählt",
        (RefusalKind::AmbiguousAgent, false) => "several PCs, none chosen",
        (RefusalKind::TooManyAttempts, true) => "zu viele falsche Codes",
        (RefusalKind::TooManyAttempts, false) => "too many wrong codes",
        (RefusalKind::Overloaded, true) => "Relay überlastet",
        (RefusalKind::Overloaded, false) => "relay overloaded",
        (RefusalKind::Other, true) => "anderer Grund",
        (RefusalKind::Other, false) => "other reason",
    }
}

fn end_text(r: EndKind, de: bool) -> &'static str {
    match (r, de) {
        (EndKind::EndedAtAgent, true) => "am PC beendet",
        (EndKind::EndedAtAgent, false) => "ended at the PC",
        (EndKind::EndedByViewer, true) => "vom Support beendet",
        (EndKind::EndedByViewer, false) => "ended by support",
        (EndKind::ConsentDenied, true) => "Zustimmung verweigert",
        (EndKind::ConsentDenied, false) => "consent refused",
        (EndKind::ProtocolViolation, true) => "Protokollverletzung",
        (EndKind::ProtocolViolation, false) => "protocol violation",
        (EndKind::Failure, true) => "Fehler",
        (EndKind::Failure, false) => "failure",
        (EndKind::IdleTimeout, true) => "ohne Nutzung abgelaufen",
        (EndKind::IdleTimeout, false) => "ended unused (idle limit)",
        (EndKind::MaxDuration, true) => "Höchstdauer erreicht",
        (EndKind::MaxDuration, false) => "longest duration reached",
        (EndKind::ConnectionLost, true) => "Verbindung zum Agent verloren",
        (EndKind::ConnectionLost, false) => "connection to the agent lost",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_their_json_and_name_their_kind() {
        let r = AuditRecord::SessionEnded {
            host: "PC-12".into(),
            staff: "Anna Schmidt".into(),
            reason: EndKind::EndedAtAgent,
            duration_s: 75,
            agent_bytes_sent: Some(12_000),
            agent_bytes_received: None,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"kind\":\"session_ended\""), "{json}");
        assert_eq!(serde_json::from_str::<AuditRecord>(&json).unwrap(), r);
        assert_eq!(r.kind(), "session_ended");
        assert_eq!(
            r.describe(Lang::De),
            "Sitzung beendet (am PC beendet), Dauer 1 min 15 s"
        );
    }

    #[test]
    fn a_record_with_an_unknown_field_is_refused() {
        let bad = r#"{"kind":"agent_left","host":"PC","detail":"free text"}"#;
        assert!(serde_json::from_str::<AuditRecord>(bad).is_err());
    }
}
