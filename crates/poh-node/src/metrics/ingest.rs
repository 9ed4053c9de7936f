//! What the ingest pipeline records: transactions received, refused and finished, latencies
//! and commits.

use metrics::{Counter, Gauge, Histogram};

use super::Registry;
use crate::wire::Transport;

/// Why a transaction was not stored, as the `reason` label of `poh_tx_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The bytes are not a transaction (bad JSON, bad protobuf, bad base64, bad frame).
    Malformed,
    /// A SPEC §2 rule is broken.
    Invalid,
    /// The payload is above the node's limit.
    TooLarge,
    /// A present signature does not verify.
    BadSignature,
    /// The id is stored with a different digest.
    Conflict,
    /// Refused because the node is at capacity.
    Overloaded,
    /// Refused because the node's disk is full.
    StorageFull,
    /// An internal error stopped it.
    Internal,
}

impl RejectReason {
    const ALL: [Self; 8] = [
        Self::Malformed,
        Self::Invalid,
        Self::TooLarge,
        Self::BadSignature,
        Self::Conflict,
        Self::Overloaded,
        Self::StorageFull,
        Self::Internal,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Invalid => "invalid",
            Self::TooLarge => "too_large",
            Self::BadSignature => "bad_signature",
            Self::Conflict => "conflict",
            Self::Overloaded => "overloaded",
            Self::StorageFull => "storage_full",
            Self::Internal => "internal",
        }
    }
}

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
