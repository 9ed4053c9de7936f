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
pub(crate) const PROGRESS: TableDefinition<'_, &str, u64> = TableDefinition::new("progress");
/// `poh_seq → entry index` of every expired transaction.
pub(crate) const EXPIRED: TableDefinition<'_, u64, u64> = TableDefinition::new("expired");
/// `poh_seq → when it was restored` (Unix seconds) of every restored record still stored.
pub(crate) const RESTORED: TableDefinition<'_, u64, f64> = TableDefinition::new("restored");
/// `poh_seq → record` of restored records the log engine does not hold whole (their log
/// copy is a stub left by a migration).
pub(crate) const RESTORED_RECORDS: TableDefinition<'_, u64, &[u8]> =
    TableDefinition::new("restored_records");

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
        txn.open_table(RESTORED_RECORDS)?;
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
