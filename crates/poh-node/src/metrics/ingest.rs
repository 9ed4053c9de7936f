//! What the ingest pipeline records: transactions received, refused and finished, latencies
//! and commits.

use metrics::{Counter, Gauge, Histogram};

use super::Registry;
use crate::shared::{RejectReason, Transport};

/// Handles the ingest pipeline records into.
#[derive(Clone)]
pub struct IngestMetrics {
    received: [Counter; 4],
    rejected: [[Counter; RejectReason::ALL.len()]; 4],
    /// `poh_issued_total{result="success"}`.
    pub issued_success: Counter,
    /// `poh_issued_total{result="failure"}`.
    pub issued_failure: Counter,
    /// `poh_issue_latency_seconds`.
    pub latency: Histogram,
    /// `poh_issue_latency_summary_seconds`.
    pub latency_summary: Histogram,
    /// `poh_verify_latency_seconds`.
    pub verify_latency: Histogram,
    /// Transactions per commit.
    pub batch_size: Histogram,
    /// Seconds per commit.
    pub commit_seconds: Histogram,
    /// `poh_storage_full`: 1 while the store cannot write and writes are refused.
    pub storage_full: Gauge,
}

impl IngestMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        let received = Transport::ALL
            .map(|t| r.counter("poh_tx_received_total", &[("transport", t.as_str())]));
        let rejected = Transport::ALL.map(|t| {
            RejectReason::ALL.map(|reason| {
                r.counter(
                    "poh_tx_rejected_total",
                    &[("transport", t.as_str()), ("reason", reason.as_str())],
                )
            })
        });
        Self {
            received,
            rejected,
            issued_success: r.counter("poh_issued_total", &[("result", "success")]),
            issued_failure: r.counter("poh_issued_total", &[("result", "failure")]),
            latency: r.histogram("poh_issue_latency_seconds", &[]),
            latency_summary: r.histogram("poh_issue_latency_summary_seconds", &[]),
            verify_latency: r.histogram("poh_verify_latency_seconds", &[]),
            batch_size: r.histogram("poh_commit_batch_size", &[]),
            commit_seconds: r.histogram("poh_commit_seconds", &[]),
            storage_full: r.gauge("poh_storage_full", &[]),
        }
    }

    /// Counts `n` transactions decoded from `transport`.
    pub fn received(&self, transport: Transport, n: u64) {
        self.received[transport as usize].increment(n);
    }

    /// Counts one refused transaction.
    pub fn rejected(&self, transport: Transport, reason: RejectReason) {
        let i = RejectReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(RejectReason::ALL.len() - 1);
        self.rejected[transport as usize][i].increment(1);
    }
}
