//! What the network records: broadcast sends, catch-up and repair.

use metrics::{Counter, Recorder as _};

use super::Registry;
use crate::shared::Transport;

/// `poh_broadcast_total{protocol,result}`, registered with every label set up front.
#[derive(Clone)]
pub struct BroadcastMetrics {
    /// By protocol (in `Transport::ALL` order), then ok / failed.
    sends: [[Counter; 2]; 4],
}

impl BroadcastMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        let sends = Transport::ALL.map(|protocol| {
            ["ok", "failed"].map(|result| {
                let counter = registry.counter(
                    "poh_broadcast_total",
                    &[("protocol", protocol.as_str()), ("result", result)],
                );
                counter.increment(0);
                counter
            })
        });
        Self { sends }
    }

    /// Counts one send to one peer.
    pub fn record(&self, protocol: Transport, ok: bool) {
        self.sends[protocol as usize][usize::from(!ok)].increment(1);
    }
}

/// Which way a record came from a peer: the `source` label of the repair metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairSource {
    /// Catch-up: a peer's `Sync` stream.
    Sync,
    /// Repair: a peer's `Repair` answer for ids this node asked for.
    Repair,
}

/// What became of one record a peer sent: the `result` label of `poh_repair_records_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordResult {
    /// Stored for the first time.
    Stored,
    /// Already stored, with the same digest.
    Duplicate,
    /// Refused: not asked for, invalid, a bad signature, or a conflict with what is stored.
    Refused,
}

/// `poh_repair_records_total{source, result}`, `poh_repair_requests_total{source, result}` and
/// `poh_sync_expired_total`.
#[derive(Clone)]
pub struct RepairMetrics {
    records: [[Counter; 3]; 2],
    requests: [[Counter; 2]; 2],
    expired: Counter,
}

impl RepairMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        let r = &registry.recorder;
        r.describe_counter(
            "poh_repair_records_total".into(),
            None,
            "Records received from peers by catch-up (sync) and repair, by what became of them."
                .into(),
        );
        r.describe_counter(
            "poh_repair_requests_total".into(),
            None,
            "Sync and Repair calls to peers, by result (ok, failed).".into(),
        );
        r.describe_counter(
            "poh_sync_expired_total".into(),
            None,
            "Transactions a peer's Sync named as expired by its TTL: catch-up moved past them \
             without taking them."
                .into(),
        );
        let expired = registry.counter("poh_sync_expired_total", &[]);
        expired.increment(0);
        let sources = ["sync", "repair"];
        let records = sources.map(|source| {
            ["stored", "duplicate", "refused"].map(|result| {
                let c = registry.counter(
                    "poh_repair_records_total",
                    &[("source", source), ("result", result)],
                );
                c.increment(0);
                c
            })
        });
        let requests = sources.map(|source| {
            ["ok", "failed"].map(|result| {
                let c = registry.counter(
                    "poh_repair_requests_total",
                    &[("source", source), ("result", result)],
                );
                c.increment(0);
                c
            })
        });
        Self {
            records,
            requests,
            expired,
        }
    }

    /// Counts records from a peer.
    pub fn records(&self, source: RepairSource, result: RecordResult, n: u64) {
        self.records[source as usize][result as usize].increment(n);
    }

    /// Counts transactions a peer no longer has (catch-up moved past them).
    pub fn sync_expired(&self, n: u64) {
        self.expired.increment(n);
    }

    /// Counts one call to a peer.
    pub fn request(&self, source: RepairSource, ok: bool) {
        self.requests[source as usize][usize::from(!ok)].increment(1);
    }
}
