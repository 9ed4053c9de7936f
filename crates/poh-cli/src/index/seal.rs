//! Which header seals which row, whichever of the two the indexer learns first.
//!
//! A header names PoH entries (`poh_start..poh_end`), a record only its `poh_seq`. The node
//! counts every item it mixes in (transactions and child headers alike) in one sequence, and
//! its headers cover consecutive entries from entry 0, so header `h` seals exactly the seqs
//! from the sum of the `item_count`s before it, `item_count` of them: what the node's own
//! lookup of a transaction's header computes.
//!
//! SPEC §11 fixes `poh_transactions`' indexes, and none is on `poh_seq` alone, so an UPDATE
//! by a seq range would read the whole table for every header. Instead the indexer remembers
//! the rows it wrote unsealed (the tail: seq → tx_id, the few seconds since the last header)
//! and seals those by primary key, and it marks rows not yet written with the headers it
//! already knows (ahead). Only when the tail outgrew [`MAX_TAIL`] (the node's headers were
//! out of reach for long) does a header fall back to the range UPDATE, for the seqs whose
//! rows it forgot.

use std::collections::{BTreeMap, VecDeque};

use super::row::Row;

/// Unsealed rows remembered at most (a few tens of MiB of ids).
const MAX_TAIL: usize = 500_000;

/// The seqs a header seals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Span {
    /// First seq.
    pub lo: u64,
    /// One past the last.
    pub hi: u64,
    pub header_id: String,
}

/// Where the database left off: read back from it when a session starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Resume {
    /// `poh_index_cursor.next_seq`.
    pub next_seq: u64,
    /// Headers in `poh_headers` (heights `0..next_height`).
    pub next_height: u64,
    /// The seq after the last one they seal.
    pub sealed_to: u64,
    /// The first row below both that has no header, if any.
    pub unsealed_from: Option<u64>,
    /// Those of them that seal seqs at or after [`Self::start_seq`], in order.
    pub ahead: Vec<Span>,
}

impl Resume {
    /// Where to subscribe from: the cursor, or the first seq no stored header sealed when
    /// that is earlier, or the first row written without its header when that is earlier
    /// still. Rows from there to the cursor are written again (the same rows: an upsert), so
    /// the tail knows their ids again after a restart, and rows a stored header covers take
    /// its id as they come.
    pub(super) fn start_seq(&self) -> u64 {
        self.next_seq
            .min(self.sealed_to)
            .min(self.unsealed_from.unwrap_or(u64::MAX))
    }
}

/// What a new header does to rows already written.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Seal {
    pub span: Span,
    /// Rows written unsealed that it seals, by id.
    pub tx_ids: Vec<String>,
    /// Seqs of rows written unsealed whose ids were forgotten: sealed by range.
    pub sweep: Option<(u64, u64)>,
}

/// The sealing state of one session.
#[derive(Debug)]
pub(super) struct Sealer {
    next_height: u64,
    sealed_to: u64,
    ahead: VecDeque<Span>,
    tail: BTreeMap<u64, String>,
    /// The tail holds every unsealed row written from this seq on.
    floor: u64,
    /// One past the seq of the last row marked.
    seen_to: u64,
    /// One past the seq of the last row written.
    written_to: u64,
}

impl Sealer {
    pub(super) fn new(resume: &Resume) -> Self {
        let from = resume.start_seq();
        Self {
            next_height: resume.next_height,
            sealed_to: resume.sealed_to,
            ahead: resume.ahead.iter().cloned().collect(),
            tail: BTreeMap::new(),
            floor: from,
            seen_to: from,
            written_to: from,
        }
    }

    /// The height of the next header.
    pub(super) fn next_height(&self) -> u64 {
        self.next_height
    }

    /// A row, in seq order, before it is batched: sealed when a known header covers it.
    pub(super) fn mark(&mut self, row: &mut Row) {
        let seq = row.poh_seq;
        while self.ahead.front().is_some_and(|s| s.hi <= seq) {
            self.ahead.pop_front();
        }
        if let Some(span) = self.ahead.front().filter(|s| s.lo <= seq) {
            row.seal(&span.header_id);
        }
        self.seen_to = self.seen_to.max(seq + 1);
    }

    /// Seqs the node no longer holds (expired: sealed long ago) were passed over.
    pub(super) fn passed(&mut self, next_seq: u64) {
        self.seen_to = self.seen_to.max(next_seq);
    }

    /// A batch handed to the writer: its unsealed rows join the tail.
    pub(super) fn written(&mut self, rows: &[Row]) {
        for row in rows.iter().filter(|r| !r.is_sealed()) {
            self.tail.insert(row.poh_seq, row.tx_id.clone());
        }
        if let Some(last) = rows.last() {
            self.written_to = self.written_to.max(last.poh_seq + 1);
        }
        if self.tail.len() > MAX_TAIL {
            tracing::warn!(
                rows = self.tail.len(),
                "so many rows wait for a header that their ids are dropped; the next \
                 headers seal them by seq range, which reads the whole table"
            );
            self.tail.clear();
            self.floor = self.written_to;
        }
    }

    /// The next header, sealing `item_count` items: the rows written that it seals. Rows
    /// not yet written are sealed as they come ([`Self::mark`]).
    pub(super) fn header(&mut self, header_id: &str, item_count: u64) -> Seal {
        let lo = self.sealed_to;
        let hi = lo.saturating_add(item_count);
        self.sealed_to = hi;
        self.next_height += 1;
        let span = Span {
            lo,
            hi,
            header_id: header_id.to_string(),
        };
        let mut rest = self.tail.split_off(&hi);
        std::mem::swap(&mut rest, &mut self.tail);
        let covered = rest.split_off(&lo);
        self.tail.extend(rest);
        let sweep = (lo < self.floor).then(|| (lo, hi.min(self.floor)));
        if hi > self.seen_to {
            self.ahead.push_back(span.clone());
        }
        Seal {
            span,
            tx_ids: covered.into_values().collect(),
            sweep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: u64) -> Row {
        Row {
            tx_id: format!("t{seq}"),
            holder_id: String::new(),
            timestamp: 0.0,
            payload: Vec::new(),
            parent_ids: Vec::new(),
            public_key: Vec::new(),
            signature: Vec::new(),
            poh_seq: seq,
            poh_hash: Vec::new(),
            status: "ORDERED",
            header_id: None,
            received_at: 0.0,
        }
    }

    /// Rows 0..10 and headers of 4, 3 and 3 items, the header `after` rows have been
    /// written: which header each row ends with.
    fn run(after: u64) -> Vec<Option<String>> {
        let mut sealer = Sealer::new(&Resume::default());
        let mut rows: Vec<Row> = Vec::new();
        let mut sealed = BTreeMap::new();
        let headers = [("a", 4), ("b", 3), ("c", 3)];
        for seq in 0..10 {
            if seq == after {
                for (id, n) in headers {
                    let seal = sealer.header(id, n);
                    assert_eq!(seal.sweep, None);
                    for tx in seal.tx_ids {
                        sealed.insert(tx, id.to_string());
                    }
                }
            }
            let mut r = row(seq);
            sealer.mark(&mut r);
            sealer.written(std::slice::from_ref(&r));
            rows.push(r);
        }
        if after >= 10 {
            for (id, n) in headers {
                for tx in sealer.header(id, n).tx_ids {
                    sealed.insert(tx, id.to_string());
                }
            }
        }
        rows.iter()
            .map(|r| {
                r.header_id
                    .clone()
                    .or_else(|| sealed.get(&r.tx_id).cloned())
            })
            .collect()
    }

    #[test]
    fn a_header_seals_the_same_rows_before_or_after_them() {
        let expect: Vec<Option<String>> =
            "aaaabbbccc".chars().map(|c| Some(c.to_string())).collect();
        for after in 0..=10 {
            assert_eq!(run(after), expect, "headers after {after} rows");
        }
    }

    #[test]
    fn a_restart_subscribes_from_the_first_unsealed_seq() {
        let resume = Resume {
            next_seq: 10,
            next_height: 2,
            sealed_to: 6,
            unsealed_from: None,
            ahead: Vec::new(),
        };
        assert_eq!(resume.start_seq(), 6);
        let hole = Resume {
            unsealed_from: Some(2),
            ..resume.clone()
        };
        assert_eq!(hole.start_seq(), 2);
        let ahead = Resume {
            next_seq: 3,
            sealed_to: 6,
            ahead: vec![Span {
                lo: 2,
                hi: 6,
                header_id: "b".into(),
            }],
            ..resume
        };
        assert_eq!(ahead.start_seq(), 3);
        let mut sealer = Sealer::new(&ahead);
        let mut r = row(4);
        sealer.mark(&mut r);
        assert_eq!(r.header_id.as_deref(), Some("b"));
        let mut r = row(6);
        sealer.mark(&mut r);
        assert_eq!(r.header_id, None);
    }

    #[test]
    fn a_forgotten_tail_is_swept_by_range() {
        let mut sealer = Sealer::new(&Resume::default());
        let rows: Vec<Row> = (0..=MAX_TAIL as u64).map(row).collect();
        sealer.written(&rows);
        let seal = sealer.header("a", 10);
        assert!(seal.tx_ids.is_empty());
        assert_eq!(seal.sweep, Some((0, 10)));
    }
}
