//! Transactions written `PENDING` (a parent not yet stored), by the parents they name, so the
//! commit that stores the last missing parent also ends their `PENDING`, as the node's own
//! answer does.
//!
//! The database cannot find them by itself at a bearable cost: SPEC §11 fixes the indexes, and
//! none is on `status`, while asking the GIN index for every id of a batch (`parent_ids &&
//! batch`) made the planner read the whole table per batch (1.6 s at 50,000 rows). They are
//! few, so they are kept here: learned once per process from the table (one pass over the
//! chain's rows), then from each batch written. An entry leaves only once the commit that
//! ended its `PENDING` is durable; a failed commit leaves it for the next session.

use std::collections::{HashMap, HashSet};

use super::row::{PENDING, Row};

#[derive(Debug, Default)]
pub(super) struct Waiting {
    /// Whether the table's `PENDING` rows were read in.
    pub loaded: bool,
    /// Parent id → the waiting rows that name it.
    by_parent: HashMap<String, HashSet<String>>,
    /// Waiting row → the parents it names.
    parents: HashMap<String, Vec<String>>,
}

impl Waiting {
    /// `tx_id`, which names `parents`, waits for one of them.
    pub(super) fn add(&mut self, tx_id: &str, parents: &[String]) {
        if self.parents.contains_key(tx_id) {
            return;
        }
        for p in parents {
            self.by_parent
                .entry(p.clone())
                .or_default()
                .insert(tx_id.to_string());
        }
        self.parents.insert(tx_id.to_string(), parents.to_vec());
    }

    /// A batch about to be written: its `PENDING` rows join, and the waiting rows that name
    /// one of its rows are returned, to be checked in the same commit.
    pub(super) fn batch(&mut self, rows: &[Row]) -> Vec<String> {
        for row in rows.iter().filter(|r| r.status == PENDING) {
            self.add(&row.tx_id, &row.parent_ids);
        }
        if self.by_parent.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<String> = rows
            .iter()
            .filter_map(|r| self.by_parent.get(&r.tx_id))
            .flatten()
            .cloned()
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Rows whose last missing parent a durable commit stored.
    pub(super) fn resolved(&mut self, tx_ids: &[String]) {
        for tx_id in tx_ids {
            for p in self.parents.remove(tx_id).unwrap_or_default() {
                if let Some(children) = self.by_parent.get_mut(&p) {
                    children.remove(tx_id);
                    if children.is_empty() {
                        self.by_parent.remove(&p);
                    }
                }
            }
        }
    }

    /// Rows waiting.
    pub(super) fn len(&self) -> usize {
        self.parents.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tx_id: &str, status: &'static str, parents: &[&str]) -> Row {
        Row {
            tx_id: tx_id.into(),
            holder_id: String::new(),
            timestamp: 0.0,
            payload: Vec::new(),
            parent_ids: parents.iter().map(|p| p.to_string()).collect(),
            public_key: Vec::new(),
            signature: Vec::new(),
            poh_seq: 0,
            poh_hash: Vec::new(),
            status,
            header_id: None,
            received_at: 0.0,
        }
    }

    #[test]
    fn a_parent_written_later_names_its_waiting_children() {
        let mut waiting = Waiting::default();
        let first = [
            row("c1", PENDING, &["p1", "p2"]),
            row("c2", "ORDERED", &["x"]),
        ];
        assert!(waiting.batch(&first).is_empty());
        assert_eq!(waiting.batch(&[row("p1", "ORDERED", &[])]), ["c1"]);
        // Not resolved (p2 is missing): still waiting.
        assert_eq!(waiting.batch(&[row("p2", "ORDERED", &[])]), ["c1"]);
        waiting.resolved(&["c1".to_string()]);
        assert_eq!(waiting.len(), 0);
        assert!(waiting.batch(&[row("p1", "ORDERED", &[])]).is_empty());
        // A child and its parent in one batch.
        let both = [row("c3", PENDING, &["p3"]), row("p3", "ORDERED", &[])];
        assert_eq!(waiting.batch(&both), ["c3"]);
    }
}
