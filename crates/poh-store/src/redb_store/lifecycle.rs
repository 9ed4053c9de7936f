//! What happens to stored data after it is stored: progress markers of the node's background
//! work (per-peer sync points, fragments written), the parents the DAG waits for, expiry of
//! old sealed transactions and their restore, and compaction.
//!
//! An expired transaction keeps its id-index entry (so a resubmission is still a duplicate and
//! a different one still a conflict) and its PoH entry and header (so the chain still
//! verifies); only its record leaves, and `expired` remembers the entry it was recorded in, so
//! the node can name the header that sealed it. A restored record keeps its `received_at`
//! (when the node received it), so `restored` remembers when it came back: expiry counts the
//! TTL from then, or a restore would be undone by the next sweep.

use redb::{Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{IDS, PENDING, RedbStore, TXS, WAITING, headers, read_known};
use crate::{StoreError, TxRecord};

/// `key → value` progress markers.
pub(super) const PROGRESS: TableDefinition<'_, &str, u64> = TableDefinition::new("progress");
/// `poh_seq → entry index` of every expired transaction.
pub(super) const EXPIRED: TableDefinition<'_, u64, u64> = TableDefinition::new("expired");
/// `poh_seq → when it was restored` (Unix seconds) of every restored record still stored.
pub(super) const RESTORED: TableDefinition<'_, u64, f64> = TableDefinition::new("restored");

/// What one expiry pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expiry {
    /// Transactions whose records left the store.
    pub removed: u64,
    /// The bytes of those records.
    pub bytes: u64,
}

/// A run of expired transactions: see [`Store::expired_run`](crate::Store::expired_run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiredRun {
    /// The first expired `poh_seq` of the run.
    pub from_seq: u64,
    /// The last expired `poh_seq` of the run (inclusive).
    pub to_seq: u64,
    /// How many transactions expired in `from_seq..=to_seq` (fewer than the seqs when child
    /// headers' items lie between them).
    pub count: u64,
    /// The `header_id`s of the headers that sealed them, in seq order, each once.
    pub header_ids: Vec<String>,
}

impl RedbStore {
    pub(super) fn create_lifecycle(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
        txn.open_table(PROGRESS)?;
        txn.open_table(EXPIRED)?;
        txn.open_table(RESTORED)?;
        Ok(())
    }

    pub(super) fn progress_impl(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let txn = self.db()?.begin_read()?;
        Ok(txn.open_table(PROGRESS)?.get(key)?.map(|v| v.value()))
    }

    pub(super) fn set_progress_impl(&self, key: &str, value: u64) -> Result<(), StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.open_table(PROGRESS)?.insert(key, value)?;
        txn.commit()?;
        Ok(())
    }

    pub(super) fn missing_parents_impl(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let waiting = txn.open_multimap_table(WAITING)?;
        if waiting.len()? == 0 {
            return Ok(Vec::new());
        }
        let range = (std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded);
        waiting
            .range::<&str>(range)?
            .take(limit)
            .map(|item| Ok(item?.0.value().to_owned()))
            .collect()
    }

    pub(super) fn expire_impl(
        &self,
        received_before: f64,
        below_seq: u64,
        limit: usize,
    ) -> Result<Expiry, StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let mut done = Expiry::default();
        {
            let mut txs = txn.open_table(TXS)?;
            let mut expired = txn.open_table(EXPIRED)?;
            let mut restored = txn.open_table(RESTORED)?;
            let any_restored = restored.len()? > 0;
            let pending = txn.open_table(PENDING)?;
            let mut gone = Vec::new();
            for item in txs.range(..below_seq)? {
                if gone.len() >= limit {
                    break;
                }
                let (seq, bytes) = item?;
                let record = TxRecord::decode(seq.value(), bytes.value())?;
                // Storage order is (nearly) arrival order: the first young one ends the pass.
                if record.received_at >= received_before {
                    break;
                }
                // A transaction still waiting for a parent has no settled DAG place yet.
                if pending.get(record.tx.tx_id.as_str())?.is_some() {
                    continue;
                }
                // Restored since `received_before`: its TTL runs from the restore.
                if any_restored
                    && restored
                        .get(record.poh_seq)?
                        .is_some_and(|at| at.value() >= received_before)
                {
                    continue;
                }
                done.bytes += bytes.value().len() as u64;
                gone.push((record.poh_seq, record.entry_index));
            }
            for (seq, entry_index) in gone {
                txs.remove(seq)?;
                expired.insert(seq, entry_index)?;
                if any_restored {
                    restored.remove(seq)?;
                }
                done.removed += 1;
            }
        }
        txn.commit()?;
        Ok(done)
    }

    pub(super) fn expired_impl(&self, tx_id: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let Some(known) = read_known(&txn.open_table(IDS)?, tx_id)? else {
            return Ok(None);
        };
        let Some(entry_index) = txn.open_table(EXPIRED)?.get(known.seq)?.map(|v| v.value()) else {
            return Ok(None);
        };
        headers::covering(&txn.open_table(headers::HEADER_ENDS)?, entry_index)
    }

    pub(super) fn expired_run_impl(
        &self,
        seqs: std::ops::Range<u64>,
        max_headers: usize,
    ) -> Result<Option<ExpiredRun>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let expired = txn.open_table(EXPIRED)?;
        let Some(first) = expired.range(seqs.clone())?.next() else {
            return Ok(None);
        };
        let from_seq = first?.0.value();
        // The run ends before the next stored transaction: a reader is sent that one.
        let stop = match txn.open_table(TXS)?.range(from_seq..seqs.end)?.next() {
            Some(item) => item?.0.value(),
            None => seqs.end,
        };
        let ends = txn.open_table(headers::HEADER_ENDS)?;
        let mut run = ExpiredRun {
            from_seq,
            to_seq: from_seq,
            count: 0,
            header_ids: Vec::new(),
        };
        // Entries grow with seqs, so a header is looked up only when an entry passes the
        // end of the one before.
        let mut sealed_below = 0;
        for item in expired.range(from_seq..stop)? {
            let (seq, entry_index) = item?;
            let entry_index = entry_index.value();
            if run.header_ids.is_empty() || entry_index >= sealed_below {
                if run.header_ids.len() >= max_headers.max(1) {
                    break;
                }
                let (end, hash) = headers::covering_end(&ends, entry_index)?
                    .ok_or(StoreError::Corrupt("an expired transaction with no header"))?;
                sealed_below = end;
                run.header_ids.push(hash.to_hex());
            }
            run.to_seq = seq.value();
            run.count += 1;
        }
        Ok(Some(run))
    }

    pub(super) fn restore_impl(
        &self,
        records: &[TxRecord],
        restored_at: f64,
    ) -> Result<u64, StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let mut restored = 0;
        {
            let mut txs = txn.open_table(TXS)?;
            let mut expired = txn.open_table(EXPIRED)?;
            let mut restored_table = txn.open_table(RESTORED)?;
            let ids = txn.open_table(IDS)?;
            for record in records {
                let Some(entry_index) = expired.get(record.poh_seq)?.map(|v| v.value()) else {
                    continue;
                };
                let known = read_known(&ids, &record.tx.tx_id)?;
                let same = known
                    .is_some_and(|k| k.seq == record.poh_seq && k.digest == record.digest)
                    && entry_index == record.entry_index;
                if !same {
                    return Err(StoreError::Sequence(
                        "a restored record differs from the expired transaction at its poh_seq",
                    ));
                }
                txs.insert(record.poh_seq, record.encode().as_slice())?;
                expired.remove(record.poh_seq)?;
                restored_table.insert(record.poh_seq, restored_at)?;
                restored += 1;
            }
        }
        txn.commit()?;
        Ok(restored)
    }

    pub(super) fn compact_impl(&self) -> Result<bool, StoreError> {
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        // Another call still holding the handle is a transaction in progress.
        let Some(db) = slot.as_mut().and_then(std::sync::Arc::get_mut) else {
            return Ok(false);
        };
        match db.compact() {
            Ok(compacted) => Ok(compacted),
            // A reader or writer is mid-transaction: try again on the next sweep.
            Err(redb::CompactionError::TransactionInProgress) => Ok(false),
            Err(e) => Err(StoreError::Engine(Box::new(e.into()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use poh_core::ChainHead;

    use crate::{
        Commit, Store, StoreError, TxStatus,
        redb_store::tests::{chain, entry, header, new, open},
    };

    /// The sweep's clock is the `received_before` it is given: here, a "now" long after
    /// everything but `young` was received.
    #[test]
    fn only_old_sealed_settled_records_expire_and_they_come_back_exactly() {
        let (_dir, store) = open();
        let meta = chain();
        let mut young = new("young", 3, &[]);
        young.record.received_at = 100.0;
        let txs = [
            new("a", 0, &[]),
            new("b", 1, &[]),
            new("waits", 2, &["zz"]),
            young,
            new("unsealed", 4, &[]),
        ];
        let entries: Vec<_> = (0..5).map(|i| (i, entry(i))).collect();
        let commit = Commit {
            chain: Some(&meta),
            txs: &txs,
            entries: &entries,
            ..Commit::default()
        };
        store.commit(&commit, true).unwrap();
        let sealed = header(0, 0, 4, poh_core::Hash::default());
        store
            .put_header(&sealed, &ChainHead::after(&sealed, 0, 4))
            .unwrap();
        let a_before = store.tx("a").unwrap().unwrap();
        assert_eq!(a_before.status, TxStatus::Sealed);

        // Everything but `young` is old; only seqs below 4 are sealed.
        let swept = store.expire(50.0, 4, 100).unwrap();
        assert_eq!(swept.removed, 2, "{swept:?}");
        assert!(swept.bytes > 0);
        for gone in ["a", "b"] {
            assert_eq!(store.tx(gone).unwrap(), None);
            assert_eq!(store.expired(gone).unwrap(), Some(sealed.id()));
        }
        // Kept: one waiting for a parent, a young one, an unsealed one.
        for kept in ["waits", "young", "unsealed"] {
            assert!(store.tx(kept).unwrap().is_some(), "{kept}");
            assert_eq!(store.expired(kept).unwrap(), None);
        }
        // The id stays known (dedupe), the entries and the header stay.
        assert!(store.lookup(&["a"]).unwrap()[0].is_some());
        assert_eq!(
            store
                .entries(0, 10, usize::MAX)
                .unwrap()
                .unwrap()
                .entries
                .len(),
            5
        );
        assert_eq!(store.headers(0, 10).unwrap(), std::slice::from_ref(&sealed));
        // Sync pages skip what expired.
        let page = store.txs_from_seq(0, 10, usize::MAX).unwrap();
        assert_eq!(
            page.iter().map(|r| r.poh_seq).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        // A second pass finds nothing more.
        assert_eq!(store.expire(50.0, 4, 100).unwrap().removed, 0);

        // A record that is not what expired at its seq is refused, and nothing comes back.
        let mut forged = a_before.clone();
        forged.tx.payload = b"forged".to_vec();
        forged.digest = forged.tx.digest();
        assert!(matches!(
            store.restore(&[forged], 60.0),
            Err(StoreError::Sequence(_))
        ));
        assert_eq!(store.tx("a").unwrap(), None);
        assert_eq!(
            store
                .restore(std::slice::from_ref(&a_before), 60.0)
                .unwrap(),
            1
        );
        assert_eq!(store.tx("a").unwrap(), Some(a_before.clone()));
        assert_eq!(store.expired("a").unwrap(), None);
        // Restoring what is not expired does nothing.
        assert_eq!(
            store
                .restore(std::slice::from_ref(&a_before), 70.0)
                .unwrap(),
            0
        );
        store.compact().unwrap();
        assert!(store.tx("a").unwrap().is_some());

        // Its TTL runs from the restore (60), not from when it was received (0): a sweep
        // whose cutoff is before the restore keeps it, a later one removes it as before.
        assert_eq!(store.expire(50.0, 4, 100).unwrap().removed, 0);
        assert_eq!(store.expire(60.0, 4, 100).unwrap().removed, 0);
        assert_eq!(store.tx("a").unwrap(), Some(a_before.clone()));
        assert_eq!(store.expire(60.5, 4, 100).unwrap().removed, 1);
        assert_eq!(store.expired("a").unwrap(), Some(sealed.id()));
        // Restored again later, it is kept from that restore on.
        assert_eq!(
            store
                .restore(std::slice::from_ref(&a_before), 90.0)
                .unwrap(),
            1
        );
        assert_eq!(store.expire(80.0, 4, 100).unwrap().removed, 0);
        assert_eq!(store.tx("a").unwrap(), Some(a_before));
    }

    /// Seqs 0–8, each in the entry of its number: 3 is a child header's item (no
    /// transaction), 6 waits for a parent (so it never expires); three headers seal entries
    /// 0–2, 3–5 and 6–8.
    #[test]
    fn expired_runs_stop_at_stored_transactions_pass_child_items_and_name_their_headers() {
        let (_dir, store) = open();
        let meta = chain();
        let txs: Vec<_> = [0, 1, 2, 4, 5, 6, 7, 8]
            .into_iter()
            .map(|seq| match seq {
                6 => new("waits", 6, &["zz"]),
                _ => new(&format!("t{seq}"), seq, &[]),
            })
            .collect();
        let entries: Vec<_> = (0..9).map(|i| (i, entry(i))).collect();
        let commit = Commit {
            chain: Some(&meta),
            txs: &txs,
            entries: &entries,
            ..Commit::default()
        };
        store.commit(&commit, true).unwrap();
        let mut prev = poh_core::Hash::default();
        let mut ids = Vec::new();
        for (height, start) in [0u64, 3, 6].into_iter().enumerate() {
            let h = header(height as u64, start, start + 3, prev);
            store
                .put_header(&h, &ChainHead::after(&h, 0, start + 3))
                .unwrap();
            prev = h.hash();
            ids.push(h.id());
        }
        assert_eq!(store.expired_run(0..9, 32).unwrap(), None);
        let t4 = store.tx("t4").unwrap().unwrap();
        assert_eq!(store.expire(50.0, 9, 100).unwrap().removed, 7);

        let run = |from_seq, to_seq, count, header_ids: &[String]| {
            Some(crate::ExpiredRun {
                from_seq,
                to_seq,
                count,
                header_ids: header_ids.to_vec(),
            })
        };
        // Through the child item at 3, up to the transaction still stored at 6.
        assert_eq!(
            store.expired_run(0..9, 32).unwrap(),
            run(0, 5, 5, &ids[..2])
        );
        // At most so many headers: the rest is the next run.
        assert_eq!(store.expired_run(0..9, 1).unwrap(), run(0, 2, 3, &ids[..1]));
        assert_eq!(
            store.expired_run(3..9, 32).unwrap(),
            run(4, 5, 2, &ids[1..2])
        );
        assert_eq!(
            store.expired_run(6..9, 32).unwrap(),
            run(7, 8, 2, &ids[2..])
        );
        assert_eq!(
            store.expired_run(6..8, 32).unwrap(),
            run(7, 7, 1, &ids[2..])
        );
        assert_eq!(store.expired_run(6..7, 32).unwrap(), None);
        assert_eq!(store.expired_run(9..100, 32).unwrap(), None);
        // A restored transaction ends the run before it.
        assert_eq!(store.restore(&[t4], 60.0).unwrap(), 1);
        assert_eq!(
            store.expired_run(0..9, 32).unwrap(),
            run(0, 2, 3, &ids[..1])
        );
        assert_eq!(
            store.expired_run(4..9, 32).unwrap(),
            run(5, 5, 1, &ids[1..2])
        );
    }

    #[test]
    fn progress_markers_and_missing_parents() {
        let (dir, store) = open();
        assert_eq!(store.progress("sync/x").unwrap(), None);
        store.set_progress("sync/x", 7).unwrap();
        store.set_progress("fragments", 2).unwrap();
        let meta = chain();
        let txs = [new("c1", 0, &["p2", "p1"]), new("c2", 1, &["p1"])];
        let commit = Commit {
            chain: Some(&meta),
            txs: &txs,
            ..Commit::default()
        };
        store.commit(&commit, true).unwrap();
        assert_eq!(store.missing_parents("", 10).unwrap(), ["p1", "p2"]);
        assert_eq!(store.missing_parents("p1", 10).unwrap(), ["p2"]);
        assert_eq!(store.missing_parents("", 1).unwrap(), ["p1"]);
        drop(store);
        let store = crate::RedbStore::open(dir.path().join("db")).unwrap();
        assert_eq!(store.progress("sync/x").unwrap(), Some(7));
        assert_eq!(store.progress("fragments").unwrap(), Some(2));
    }
}
