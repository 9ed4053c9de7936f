//! Queries: a holder's transactions and a transaction's children, from two indexes kept like
//! the id index (the same LSM of keyed fingerprints → log offsets): `holder_id → loc` and, for
//! each id a transaction names in `parent_ids`, `parent → loc`.
//!
//! Why not B-trees in the index database: each key is a random-order insert, ~5 µs of CPU
//! each at a million records; here it is a fingerprint and an append to a memtable, well
//! under a microsecond, taken with the id index's in the commit that stores the records.
//! Like the id index they are derived from the log: what a crash takes from their memtables
//! is learned again on open ([`LogStore::relearn`]).
//!
//! A query walks one key's offsets in log (hence seq) order from where it starts, and reads
//! each record: fingerprints can collide, so the record's own holder or parents decide, and
//! expired records are skipped. What it reads grows with what it returns, not with the store.

use std::time::{Duration, Instant};

use redb::{ReadableDatabase, ReadableTableMetadata};

use super::{
    LogStore, frame_at,
    reads::{expired_to, record_at, restored_records},
    with_poh_hash,
};
use crate::{
    StoreError, TxRecord,
    index_db::{
        ENTRIES, FRAMES, LOG_NEXT_SEQ_KEY, META, PENDING, fill_status_cached, headers::HEADER_ENDS,
        lifecycle::EXPIRED, meta_u64,
    },
};

/// Offsets asked of an index at a time.
const POSTINGS_PAGE: usize = 256;
/// How often a long rebuild says how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Log bytes to read again above which a rebuild reports its progress.
const PROGRESS_ABOVE: u64 = 64 << 20;

/// The query indexes' entries of one commit.
#[derive(Default)]
pub(super) struct Keys {
    pub holders: Vec<(u64, u64, u64)>,
    pub children: Vec<(u64, u64, u64)>,
}

impl LogStore {
    /// Adds the query keys of `record`, stored at `loc`.
    pub(super) fn keys_of(&self, record: &TxRecord, loc: u64, keys: &mut Keys) {
        let seq = record.poh_seq;
        if !record.tx.holder_id.is_empty() {
            let fp = self.holders.fingerprint(&record.tx.holder_id);
            keys.holders.push((fp, seq, loc));
        }
        let first = keys.children.len();
        for parent in &record.tx.parent_ids {
            let fp = self.children.fingerprint(parent);
            // A parent named twice is one child.
            if !keys.children[first..].iter().any(|&(f, _, _)| f == fp) {
                keys.children.push((fp, seq, loc));
            }
        }
    }

    /// Gives each index (ids, holders, children) what is stored from its `covered` seq on,
    /// which its durable runs do not hold: its memtable died with the process that wrote it,
    /// or the index is new to this store.
    pub(super) fn relearn(&self, covered: [u64; 3], end: u64) -> Result<(), StoreError> {
        let least = covered.iter().copied().min().unwrap_or(0);
        let (from, next_seq) = {
            let txn = self.side.db()?.begin_read()?;
            let next_seq = meta_u64(&txn.open_table(META)?, LOG_NEXT_SEQ_KEY, "log sequence")?;
            if least >= next_seq {
                return Ok(());
            }
            (frame_at(&txn.open_table(FRAMES)?, least)?, next_seq)
        };
        let loud = end.saturating_sub(from) > PROGRESS_ABOVE;
        if loud {
            tracing::info!(
                from_seq = least,
                log_bytes = end - from,
                "reading the log to rebuild the store's indexes"
            );
        }
        let (started, mut said) = (Instant::now(), Instant::now());
        let (mut ids, mut keys) = (Vec::with_capacity(4096), Keys::default());
        // One record's keys, its buffers kept from record to record.
        let mut record_keys = Keys::default();
        let flush = |ids: &mut Vec<_>, keys: &mut Keys| -> Result<(), StoreError> {
            self.ids.insert(ids)?;
            self.holders.insert(&keys.holders)?;
            self.children.insert(&keys.children)?;
            ids.clear();
            keys.holders.clear();
            keys.children.clear();
            Ok(())
        };
        self.scan_all(from, end, |loc, seq, bytes| {
            if seq < least {
                return Ok(true);
            }
            let (record, _) = TxRecord::decode_compact(seq, bytes)?;
            if seq >= covered[0] {
                ids.push((self.ids.fingerprint(&record.tx.tx_id), seq, loc));
            }
            self.keys_of(&record, loc, &mut record_keys);
            if seq >= covered[1] {
                keys.holders.append(&mut record_keys.holders);
            }
            if seq >= covered[2] {
                keys.children.append(&mut record_keys.children);
            }
            record_keys.holders.clear();
            record_keys.children.clear();
            if ids.len() >= 4096 {
                flush(&mut ids, &mut keys)?;
            }
            if loud && said.elapsed() >= PROGRESS_EVERY {
                said = Instant::now();
                tracing::info!(
                    seq,
                    percent = (loc - from) * 100 / (end - from).max(1),
                    "rebuilding the store's indexes"
                );
            }
            Ok(true)
        })?;
        flush(&mut ids, &mut keys)?;
        self.holders.cover(next_seq);
        self.children.cover(next_seq);
        if loud {
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "the store's indexes are rebuilt"
            );
        }
        Ok(())
    }

    /// See [`Store::holder_txs`](crate::Store::holder_txs).
    pub(super) fn holder_txs_impl(
        &self,
        holder_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<(Vec<TxRecord>, Option<u64>), StoreError> {
        let fp = self.holders.fingerprint(holder_id);
        let mut out = Vec::new();
        let mut next = None;
        self.walk(&self.holders, fp, from_seq, |record| {
            if record.tx.holder_id != holder_id {
                return Ok(true);
            }
            if out.len() == limit {
                next = Some(record.poh_seq);
                return Ok(false);
            }
            out.push(record);
            Ok(true)
        })?;
        Ok((out, next))
    }

    /// See [`Store::children_of`](crate::Store::children_of).
    pub(super) fn children_of_impl(
        &self,
        tx_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let fp = self.children.fingerprint(tx_id);
        let mut out = Vec::new();
        self.walk(&self.children, fp, 0, |record| {
            if out.len() >= limit {
                return Ok(false);
            }
            if record.tx.parent_ids.iter().any(|p| p == tx_id) {
                out.push(record.tx.tx_id);
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// Calls `each` with the stored (not expired) records under `fp` in `index`, whole and
    /// with their status, in seq order from `from_seq`, until it returns `false`.
    fn walk(
        &self,
        index: &crate::id_index::IdIndex,
        fp: u64,
        from_seq: u64,
        mut each: impl FnMut(TxRecord) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let txn = self.side.db()?.begin_read()?;
        let meta = txn.open_table(META)?;
        // Everything before `expired_to` expired: no need to read it.
        let mut min_loc = frame_at(&txn.open_table(FRAMES)?, from_seq)?.max(expired_to(&meta)?);
        let expired = txn.open_table(EXPIRED)?;
        let any_expired = expired.len()? > 0;
        let pending = txn.open_table(PENDING)?;
        let pending = (pending.len()? > 0).then_some(&pending);
        let ends = txn.open_table(HEADER_ENDS)?;
        let whole = restored_records(&txn)?;
        let entries = txn.open_table(ENTRIES)?;
        let (mut last_entry, mut last_header) = (None, None);
        let mut locs = Vec::with_capacity(POSTINGS_PAGE);
        loop {
            locs.clear();
            index.postings(fp, min_loc, POSTINGS_PAGE, &mut locs)?;
            let Some(&last) = locs.last() else {
                return Ok(());
            };
            min_loc = last + 1;
            for &loc in &locs {
                let (seq, bytes) = self.read_at(loc)?;
                if seq < from_seq || (any_expired && expired.get(seq)?.is_some()) {
                    continue;
                }
                let logged = record_at(whole.as_ref(), seq, &bytes)?;
                let mut record = with_poh_hash(logged, &entries, &mut last_entry)?;
                fill_status_cached(&mut record, pending, &ends, &mut last_header)?;
                if !each(record)? {
                    return Ok(());
                }
            }
        }
    }
}
