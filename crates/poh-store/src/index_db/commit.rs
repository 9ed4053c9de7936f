//! One [`Commit`] of the log engine, in the index database: where its records are in the
//! log, the entries that recorded them, the DAG's edges and tips, and the chain's state, in
//! one write transaction.

use redb::{Durability, ReadableTable};

use super::{
    CHAIN_KEY, ENTRIES, FRAMES, IndexDb, LOG_END_KEY, LOG_NEXT_SEQ_KEY, META, PENDING, TIPS,
    WAITING, headers, lifecycle::EXPIRED, meta_u64, next_key,
};
use crate::record::encode_entry;
use crate::{Commit, StoreError};

/// Where a commit's transactions are: already appended to the record log, at `at`.
pub(crate) struct Placement<'a> {
    /// Whether an id is stored by an earlier commit.
    pub stored: &'a dyn Fn(&str) -> Result<bool, StoreError>,
    /// The log offset of the commit's first record.
    pub at: u64,
    /// The log's end after the commit.
    pub log_end: u64,
}

impl IndexDb {
    /// Everything of a commit but its records, which the log holds: where they are, the
    /// entries, the DAG's edges and tips, the chain; this transaction is the commit point.
    pub(crate) fn commit_placed(
        &self,
        commit: &Commit<'_>,
        durable: bool,
        placement: &Placement<'_>,
    ) -> Result<(), StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        // Any early return below drops `txn` uncommitted, which aborts it: nothing is written.
        {
            let mut entries = txn.open_table(ENTRIES)?;
            let mut pending = txn.open_table(PENDING)?;
            let mut waiting = txn.open_multimap_table(WAITING)?;
            let mut tips = txn.open_table(TIPS)?;
            let mut meta = txn.open_table(META)?;

            let next_seq = meta_u64(&meta, LOG_NEXT_SEQ_KEY, "log sequence")?;
            check_sequence(commit, next_seq, &entries)?;
            // This commit's ids (the log's id index learns them once it is done).
            let mut this_commit = std::collections::HashSet::new();
            let stored = |id: &str, this: &std::collections::HashSet<&str>| {
                Ok::<_, StoreError>(this.contains(id) || (placement.stored)(id)?)
            };

            for new in commit.txs {
                let record = &new.record;
                let tx_id = record.tx.tx_id.as_str();
                // A second record of an id would break dedupe for good.
                if stored(tx_id, &this_commit)? || !this_commit.insert(tx_id) {
                    return Err(StoreError::Sequence("transaction id already stored"));
                }
                let mut missing = 0u32;
                for parent in &new.missing_parents {
                    // A parent already stored (before this commit or earlier in it) has
                    // arrived, so no edge may wait on it: nothing would ever resolve it.
                    if stored(parent, &this_commit)? {
                        continue;
                    }
                    // Counting only new edges keeps a repeated parent from leaving a count
                    // that can never reach zero.
                    if !waiting.insert(parent.as_str(), tx_id)? {
                        missing = missing.saturating_add(1);
                    }
                }
                if missing > 0 {
                    pending.insert(tx_id, missing)?;
                }
            }

            // After all inserts, so that a child stored before its parent in this very commit
            // is resolved too.
            for new in commit.txs {
                let tx_id = new.record.tx.tx_id.as_str();
                let children = waiting
                    .remove_all(tx_id)?
                    .map(|child| child.map(|c| c.value().to_owned()))
                    .collect::<Result<Vec<_>, _>>()?;
                for child in children {
                    let left = pending.get(child.as_str())?.map(|v| v.value()).ok_or(
                        StoreError::Corrupt("pending count of a waiting transaction"),
                    )?;
                    if left <= 1 {
                        pending.remove(child.as_str())?;
                    } else {
                        pending.insert(child.as_str(), left - 1)?;
                    }
                }
            }

            for (index, entry) in commit.entries {
                entries.insert(*index, encode_entry(entry).as_slice())?;
            }
            for tx_id in commit.tips_removed {
                tips.remove(tx_id.as_str())?;
            }
            for (seq, tx_id) in commit.tips_added {
                tips.insert(tx_id.as_str(), *seq)?;
            }
            if let Some(chain) = commit.chain {
                meta.insert(CHAIN_KEY, chain.encode().as_slice())?;
            }
            if let Some(last) = commit.txs.last() {
                let first = commit.txs[0].record.poh_seq;
                txn_frames_insert(&txn, first, placement.at)?;
                meta.insert(LOG_END_KEY, placement.log_end.to_be_bytes().as_slice())?;
                let next = last.record.poh_seq.saturating_add(1);
                meta.insert(LOG_NEXT_SEQ_KEY, next.to_be_bytes().as_slice())?;
            }
        }
        if !commit.expired.is_empty() {
            let mut expired = txn.open_table(EXPIRED)?;
            for &seq in commit.expired {
                let at = commit
                    .txs
                    .binary_search_by_key(&seq, |t| t.record.poh_seq)
                    .map_err(|_| {
                        StoreError::Sequence("an expired seq that is not one of the commit's")
                    })?;
                expired.insert(seq, commit.txs[at].record.entry_index)?;
            }
        }
        headers::put_children(&txn, commit.child_headers)?;
        txn.commit()?;
        Ok(())
    }
}

/// Refuses a commit that does not continue what is stored. Done before any write so a
/// refused commit leaves no trace even in the aborted transaction.
fn check_sequence(
    commit: &Commit<'_>,
    mut next: u64,
    entries: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<(), StoreError> {
    if !commit.txs.is_empty() {
        // Increasing, after the last stored one; not contiguous, since child headers take
        // places in the same stream of items.
        for t in commit.txs {
            if t.record.poh_seq < next {
                return Err(StoreError::Sequence(
                    "transactions' poh_seq do not follow the stored ones in increasing order",
                ));
            }
            next = t.record.poh_seq.saturating_add(1);
        }
    }
    if !commit.entries.is_empty() {
        let next = next_key(entries)?;
        let contiguous = commit
            .entries
            .iter()
            .enumerate()
            .all(|(i, (index, _))| index.checked_sub(next) == Some(i as u64));
        if !contiguous {
            return Err(StoreError::Sequence(
                "entry indices do not continue the stored ones contiguously",
            ));
        }
    }
    Ok(())
}

fn txn_frames_insert(
    txn: &redb::WriteTransaction,
    first_seq: u64,
    at: u64,
) -> Result<(), StoreError> {
    txn.open_table(FRAMES)?.insert(first_seq, at)?;
    Ok(())
}
