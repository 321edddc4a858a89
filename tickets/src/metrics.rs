//! What the report delivery tells ops, served by the relay beside its own metrics under the
//! same `fernhilfe_relay_` prefix.

use iroh_metrics::{Gauge, MetricsGroup};
use std::sync::{Arc, LazyLock};

/// The ticket reports' metrics; one set per process ([`metrics`]).
#[derive(Debug, MetricsGroup)]
#[metrics(default, name = "relay")]
pub struct TicketMetrics {
    /// Ticket-system reports waiting to be delivered (whole audit database; read after each
    /// delivery round)
    pub ticket_reports_pending: Gauge,
    /// Ticket-system reports given up for good (whole audit database)
    pub ticket_reports_failed: Gauge,
}

static METRICS: LazyLock<Arc<TicketMetrics>> = LazyLock::new(|| Arc::new(TicketMetrics::default()));

/// The process's ticket-report metrics.
pub fn metrics() -> &'static TicketMetrics {
    &METRICS
}

/// The same set, for registering with a metrics registry.
pub fn group() -> Arc<TicketMetrics> {
    METRICS.clone()
}
