//! The rows gathering for the next commit, in seq order, with the cursor they move.

use std::collections::HashSet;

use tokio::time::Instant;

use super::{
    row::Row,
    seal::{Sealer, Span},
};

/// Bytes of rows in one batch at most (a row can carry a 1 MiB payload).
const BATCH_BYTES: usize = 16 << 20;

/// The rows gathering for the next commit.
pub(super) struct Batch {
    rows: Vec<Row>,
    ids: HashSet<String>,
    bytes: usize,
    /// The seq the cursor moves to with this batch.
    next_seq: u64,
    /// Whether the cursor moved past expired seqs since the last batch.
    passed: bool,
    /// When its first row (or pass) came.
    pub since: Option<Instant>,
}

impl Batch {
    pub(super) fn new(next_seq: u64) -> Self {
        Self {
            rows: Vec::new(),
            ids: HashSet::new(),
            bytes: 0,
            next_seq,
            passed: false,
            since: None,
        }
    }

    pub(super) fn pending(&self) -> bool {
        !self.rows.is_empty() || self.passed
    }

    pub(super) fn full(&self, max_rows: usize) -> bool {
        self.rows.len() >= max_rows || self.bytes >= BATCH_BYTES
    }

    pub(super) fn push(&mut self, record: poh_proto::v1::TxRecord, sealer: &mut Sealer) {
        let seq = record.poh_seq;
        // A stream that resumed may start again at a record already taken.
        if seq < self.next_seq {
            return;
        }
        self.next_seq = seq.saturating_add(1);
        self.since.get_or_insert_with(Instant::now);
        let mut row = match Row::from_record(record) {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(error = %e, "the node sent a record that is no row; passed over");
                return;
            }
        };
        // One tx_id twice in a batch would fail its upsert for good.
        if !self.ids.insert(row.tx_id.clone()) {
            tracing::warn!(
                tx_id = row.tx_id,
                seq,
                "the node sent a tx_id twice; kept the first"
            );
            return;
        }
        sealer.mark(&mut row);
        self.bytes += row.size();
        self.rows.push(row);
    }

    pub(super) fn pass(&mut self, next_seq: u64) {
        if next_seq > self.next_seq {
            self.next_seq = next_seq;
            self.passed = true;
            self.since.get_or_insert_with(Instant::now);
        }
    }

    /// Rows not yet handed on that `span` seals.
    pub(super) fn seal(&mut self, span: &Span) {
        for row in &mut self.rows {
            if (span.lo..span.hi).contains(&row.poh_seq) {
                row.seal(&span.header_id);
            }
        }
    }

    /// The batch, handed on: its rows and the cursor after them.
    pub(super) fn take(&mut self, sealer: &mut Sealer) -> (Vec<Row>, u64) {
        let rows = std::mem::take(&mut self.rows);
        sealer.written(&rows);
        self.ids.clear();
        self.bytes = 0;
        self.passed = false;
        self.since = None;
        (rows, self.next_seq)
    }
}
