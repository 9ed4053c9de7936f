//! What a replica's copy records (SPEC §10).

use metrics::{Counter, Gauge, Recorder as _};

use super::Registry;

/// `poh_replica_lag_entries`, `poh_replica_copied_entries_total`,
/// `poh_replica_copied_records_total` and `poh_replica_refused_total`.
#[derive(Clone)]
pub struct ReplicaMetrics {
    /// Entries the primary holds durably that this replica has not copied yet (0 on a
    /// primary).
    pub lag_entries: Gauge,
    /// PoH entries copied and stored.
    pub copied_entries: Counter,
    /// Transactions copied and stored.
    pub copied_records: Counter,
    /// Copies stopped because what the primary sent did not verify, or is another chain.
    pub refused: Counter,
}

impl ReplicaMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        let r = &registry.recorder;
        r.describe_gauge(
            "poh_replica_lag_entries".into(),
            None,
            "PoH entries the primary holds durably that this replica has not copied yet (0 \
             on a primary)."
                .into(),
        );
        r.describe_counter(
            "poh_replica_copied_entries_total".into(),
            None,
            "PoH entries this replica copied from its primary, verified and stored.".into(),
        );
        r.describe_counter(
            "poh_replica_copied_records_total".into(),
            None,
            "Transactions this replica copied from its primary, verified and stored.".into(),
        );
        r.describe_counter(
            "poh_replica_refused_total".into(),
            None,
            "Times this replica stopped copying because what its primary sent did not \
             verify or is another chain (the log names the entry or header)."
                .into(),
        );
        let lag_entries = registry.gauge("poh_replica_lag_entries", &[]);
        lag_entries.set(0.0);
        let counter = |name| {
            let c = registry.counter(name, &[]);
            c.increment(0);
            c
        };
        Self {
            lag_entries,
            copied_entries: counter("poh_replica_copied_entries_total"),
            copied_records: counter("poh_replica_copied_records_total"),
            refused: counter("poh_replica_refused_total"),
        }
    }
}
