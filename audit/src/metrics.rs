//! What the audit writer tells ops, served by the relay beside its own metrics under the same
//! `fernhilfe_relay_` prefix. Counts and times only, never what a record says.

use iroh_metrics::{Counter, Histogram, MetricsGroup};
use std::sync::{Arc, LazyLock};

/// The audit writer's metrics; one set per process ([`metrics`]).
#[derive(Debug, MetricsGroup)]
#[metrics(default, name = "relay")]
pub struct AuditMetrics {
    /// Seconds one audit transaction took to commit
    #[default(Histogram::new(vec![0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]))]
    pub audit_write_seconds: Histogram,
    /// Audit transactions that failed (their records are lost; the relay is not ready)
    pub audit_write_failures: Counter,
    /// Audit records the full writer queue could not take (counted in a records_dropped record)
    pub audit_records_dropped: Counter,
}

static METRICS: LazyLock<Arc<AuditMetrics>> = LazyLock::new(|| Arc::new(AuditMetrics::default()));

/// The process's audit metrics.
pub fn metrics() -> &'static AuditMetrics {
    &METRICS
}

/// The same set, for registering with a metrics registry.
pub fn group() -> Arc<AuditMetrics> {
    METRICS.clone()
}
