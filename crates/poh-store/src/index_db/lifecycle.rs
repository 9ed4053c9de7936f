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

use redb::{Durability, ReadableDatabase, ReadableTableMetadata, TableDefinition};

use super::{IndexDb, WAITING};
use crate::StoreError;

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
/// `log offset → seq (u64 LE) ‖ stub` of each expired record whose log segment was given
/// back ([`TxRecord::encode_stub`](crate::TxRecord)).
pub(crate) const STUBS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log_stubs");

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

impl IndexDb {
    pub(super) fn create_lifecycle(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
        txn.open_table(PROGRESS)?;
        txn.open_table(EXPIRED)?;
        txn.open_table(RESTORED)?;
        txn.open_table(RESTORED_RECORDS)?;
        txn.open_table(STUBS)?;
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
