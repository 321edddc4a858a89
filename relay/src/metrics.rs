//! What ops watch: the relay's counters and gauges, in the Prometheus (OpenMetrics) text format
//! that [`crate::ops_listener`] serves. Label values are fixed words — a refusal's kind, a
//! path's kind, how a session ended — never a ticket number, a name or an address: the metrics
//! are no second audit log, and whoever may scrape them learns nothing about a school.
//!
//! The embedded iroh relay's own counters (bytes and packets it forwarded for sessions on the
//! relay path) are served beside these, prefixed `iroh_relayserver_`.

use audit::record::EndKind;
use iroh_metrics::{Counter, EncodeLabelSet, Family, Gauge, MetricsGroup, MetricsSource, Registry};
use protocol::peer::PathKind;
use protocol::signaling::Refusal;
use std::sync::{Arc, LazyLock, Mutex};

/// The relay's metrics; one set per process ([`metrics`]).
#[derive(Debug, MetricsGroup)]
#[metrics(default, name = "relay")]
pub(crate) struct RelayMetrics {
    /// Agents registered and waiting for a viewer (read when scraped)
    pub agents_waiting: Gauge,
    /// Sessions running, by the path the agent last reported (pending: none reported yet)
    pub sessions_running: Family<PathLabel, Gauge>,
    /// Pairings that became a session (the code matched)
    pub sessions_started: Counter,
    /// Sessions that ended, by how
    pub sessions_ended: Family<EndLabel, Counter>,
    /// Wrong session codes
    pub wrong_codes: Counter,
    /// Refusals sent to agents and viewers, by reason (throttles among them)
    pub refusals: Family<ReasonLabel, Counter>,
    /// Tries turned away by a throttle: connections per address, registrations per address,
    /// code tries per ticket
    pub throttled: Family<StageLabel, Counter>,
}

/// The path of a running session.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub(crate) struct PathLabel {
    path: &'static str,
}

/// How a session ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub(crate) struct EndLabel {
    reason: &'static str,
}

/// Why the relay refused.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    reason: &'static str,
}

/// Where a throttle acted.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub(crate) struct StageLabel {
    stage: &'static str,
}

/// Where a throttle acted: the label value of [`RelayMetrics::throttled`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Throttle {
    /// Too many open connections from one address (before the handshake).
    Connection,
    /// Too many waiting agents from one address.
    Registration,
    /// Code tries for a ticket paused.
    Code,
}

static METRICS: LazyLock<Arc<RelayMetrics>> = LazyLock::new(|| Arc::new(RelayMetrics::default()));
/// The embedded iroh relay's metrics, once its service started.
static IROH_RELAY: Mutex<Option<Arc<iroh_relay::server::Metrics>>> = Mutex::new(None);

/// The process's metrics.
pub(crate) fn metrics() -> &'static RelayMetrics {
    &METRICS
}

/// Serves the embedded iroh relay's counters beside the relay's own.
pub(crate) fn add_iroh_relay(m: Arc<iroh_relay::server::Metrics>) {
    *IROH_RELAY.lock().unwrap_or_else(|e| e.into_inner()) = Some(m);
}

/// Everything, in the OpenMetrics text format.
pub(crate) fn encode() -> String {
    let mut registry = Registry::default();
    let ours = registry.sub_registry_with_prefix("fernhilfe");
    ours.register(METRICS.clone());
    // The audit writer's and the ticket reports' own groups, under the same prefix.
    ours.register(audit::metrics::group());
    ours.register(tickets::metrics::group());
    if let Some(iroh) = IROH_RELAY.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        registry
            .sub_registry_with_prefix("iroh")
            .register(iroh as Arc<dyn iroh_metrics::MetricsGroup>);
    }
    registry
        .encode_openmetrics_to_string()
        .unwrap_or_else(|e| format!("# metrics could not be encoded: {e}\n# EOF\n"))
}

impl RelayMetrics {
    /// Creates every labelled series at zero, so dashboards and `rate()` see them from the
    /// start, not only after their first event.
    pub(crate) fn prime(&self) {
        for path in ["pending", "direct", "direct_lan", "relayed"] {
            self.sessions_running.get_or_create(&PathLabel { path });
        }
        for stage in ["connection", "registration", "code"] {
            self.throttled.get_or_create(&StageLabel { stage });
        }
        for e in [
            EndKind::EndedAtAgent,
            EndKind::EndedByViewer,
            EndKind::ConsentDenied,
            EndKind::ProtocolViolation,
            EndKind::Failure,
            EndKind::IdleTimeout,
            EndKind::MaxDuration,
            EndKind::ConnectionLost,
        ] {
            self.sessions_ended.get_or_create(&EndLabel {
                reason: end_name(e),
            });
        }
        for r in [
            Refusal::UnknownTicket,
            Refusal::BadStaffToken,
            Refusal::WrongCode,
            Refusal::TooManyAttempts {
                retry_after_secs: 0,
            },
            Refusal::AgentBusy,
            Refusal::Overloaded,
            Refusal::TooManyFromAddress,
            Refusal::TicketNotInSystem,
            Refusal::TicketClosed,
            Refusal::TicketCheckUnavailable,
        ] {
            self.refusals.get_or_create(&ReasonLabel {
                reason: refusal_name(&r),
            });
        }
    }

    /// A refusal went out.
    pub(crate) fn refused(&self, r: &Refusal) {
        let reason = refusal_name(r);
        self.refusals.get_or_create(&ReasonLabel { reason }).inc();
        let stage = match r {
            Refusal::TooManyFromAddress => Some(Throttle::Registration),
            Refusal::TooManyAttempts { .. } => Some(Throttle::Code),
            _ => None,
        };
        if let Some(s) = stage {
            self.throttle(s);
        }
    }

    /// A throttle turned a try away.
    pub(crate) fn throttle(&self, at: Throttle) {
        let stage = match at {
            Throttle::Connection => "connection",
            Throttle::Registration => "registration",
            Throttle::Code => "code",
        };
        self.throttled.get_or_create(&StageLabel { stage }).inc();
    }

    /// A session ended, `reason` as the audit record names it.
    pub(crate) fn session_ended(&self, reason: &'static str) {
        self.sessions_ended
            .get_or_create(&EndLabel { reason })
            .inc();
    }
}

/// How a session ended, as the audit record names it.
pub(crate) fn end_name(e: EndKind) -> &'static str {
    match e {
        EndKind::EndedAtAgent => "ended_at_agent",
        EndKind::EndedByViewer => "ended_by_viewer",
        EndKind::ConsentDenied => "consent_denied",
        EndKind::ProtocolViolation => "protocol_violation",
        EndKind::Failure => "failure",
        EndKind::IdleTimeout => "idle_timeout",
        EndKind::MaxDuration => "max_duration",
        EndKind::ConnectionLost => "connection_lost",
    }
}

/// A refusal's kind as a label value (its data, such as host names, never).
fn refusal_name(r: &Refusal) -> &'static str {
    match r {
        Refusal::UnknownTicket => "unknown_ticket",
        Refusal::BadStaffToken => "bad_staff_token",
        Refusal::WrongCode => "wrong_code",
        Refusal::TooManyAttempts { .. } => "too_many_attempts",
        Refusal::AgentBusy => "agent_busy",
        Refusal::AmbiguousAgent { .. } => "ambiguous_agent",
        Refusal::VersionMismatch { .. } => "version_mismatch",
        Refusal::ProtocolViolation => "protocol_violation",
        Refusal::PeerLeft => "peer_left",
        Refusal::Overloaded => "overloaded",
        Refusal::HostNameTaken => "host_name_taken",
        Refusal::TooManyFromAddress => "too_many_from_address",
        Refusal::RegistrationExpired => "registration_expired",
        Refusal::TicketNotInSystem => "ticket_not_in_system",
        Refusal::TicketClosed => "ticket_closed",
        Refusal::TicketCheckUnavailable => "ticket_check_unavailable",
        Refusal::PairingUnconfirmed => "pairing_unconfirmed",
    }
}

/// Counts one running session under its current path while it lives.
pub(crate) struct RunningSession {
    path: &'static str,
}

impl RunningSession {
    /// A session started; no path reported yet.
    pub(crate) fn start() -> Self {
        metrics().sessions_started.inc();
        Self::gauge("pending").inc();
        Self { path: "pending" }
    }

    fn gauge(path: &'static str) -> Arc<Gauge> {
        metrics()
            .sessions_running
            .get_or_create(&PathLabel { path })
    }

    /// The agent reported the session's path.
    pub(crate) fn on_path(&mut self, kind: PathKind) {
        let path = match kind {
            PathKind::Relayed => "relayed",
            PathKind::Direct => "direct",
            PathKind::DirectLan => "direct_lan",
        };
        if path != self.path {
            Self::gauge(self.path).dec();
            Self::gauge(path).inc();
            self.path = path;
        }
    }
}

impl Drop for RunningSession {
    fn drop(&mut self) {
        Self::gauge(self.path).dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_kinds_never_data() {
        let m = RelayMetrics::default();
        m.refused(&Refusal::AmbiguousAgent {
            hosts: vec!["PC-Lehrerzimmer".into()],
        });
        m.refused(&Refusal::TooManyAttempts {
            retry_after_secs: 30,
        });
        m.session_ended("ended_by_viewer");
        let mut registry = Registry::default();
        registry
            .sub_registry_with_prefix("fernhilfe")
            .register(Arc::new(m));
        let text = registry.encode_openmetrics_to_string().unwrap();
        assert!(
            text.contains(r#"fernhilfe_relay_refusals_total{reason="ambiguous_agent"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"fernhilfe_relay_throttled_total{stage="code"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"fernhilfe_relay_sessions_ended_total{reason="ended_by_viewer"} 1"#),
            "{text}"
        );
        assert!(
            !text.contains("Lehrerzimmer") && !text.contains("30"),
            "{text}"
        );
    }

    #[test]
    fn a_session_counts_under_its_latest_path_until_it_ends() {
        let running = |p| RunningSession::gauge(p).get();
        let before = (running("pending"), running("direct"), running("relayed"));
        let mut s = RunningSession::start();
        assert_eq!(running("pending"), before.0 + 1);
        s.on_path(PathKind::Relayed);
        s.on_path(PathKind::Direct);
        assert_eq!(
            (running("pending"), running("direct"), running("relayed")),
            (before.0, before.1 + 1, before.2)
        );
        drop(s);
        assert_eq!(
            (running("pending"), running("direct"), running("relayed")),
            before
        );
    }
}
