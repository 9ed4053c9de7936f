//! Giving the log's expired head back to the file system.
//!
//! Expiry only marks records (`reads.rs`); their bytes stay in the log until every record of
//! the log's first segment has expired. A reclaim then writes each of its records' stubs
//! ([`TxRecord::encode_stub`]: id, digest, entry) into the index database under the record's
//! log offset, moves `log_reclaimed_to` past the segment in the same durable commit, and
//! deletes the segment's file. Below `log_reclaimed_to`, [`LogStore::read_at`] and
//! [`LogStore::scan_all`] read the stubs instead of the log, so a resubmitted id is still a
//! duplicate or a conflict, the header that sealed an expired record is still named, a
//! restore still checks what it restores, and the id index can still be rebuilt.
//!
//! A crash between that commit and the file's removal leaves the file to the next open, which
//! removes it ([`Log::open`](super::segments::Log::open)).

use std::time::{Duration, Instant};

use redb::{Durability, ReadableDatabase};

use super::{LogStore, reads::expired_to};
use crate::{
    StoreError, TxRecord,
    index_db::{META, lifecycle::STUBS, meta_u64},
};

/// Log offset below which the log's segments were given back (u64 BE).
pub(super) const RECLAIMED_TO_KEY: &str = "log_reclaimed_to";

/// Stubs written per index-database transaction: the committer waits for one at most.
const STUB_CHUNK: usize = 4096;

/// A stub as the index database holds it: the record's seq (u64 LE), then the stub.
fn split_stub(value: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let (seq, stub) = value
        .split_first_chunk::<8>()
        .ok_or(StoreError::Corrupt("a given-back record's stub"))?;
    Ok((u64::from_le_bytes(*seq), stub))
}

/// Where the given-back head of the log ends, as the index database says.
pub(super) fn reclaimed_to(
    meta: &impl redb::ReadableTable<&'static str, &'static [u8]>,
) -> Result<u64, StoreError> {
    meta_u64(meta, RECLAIMED_TO_KEY, "reclaimed log offset")
}

impl LogStore {
    /// The record at `loc`: its seq and bytes, read from the log, or its stub when its
    /// segment was given back.
    pub(super) fn read_at(&self, loc: u64) -> Result<(u64, Vec<u8>), StoreError> {
        let reclaimed = self.reclaimed.read().unwrap_or_else(|p| p.into_inner());
        if loc >= *reclaimed {
            return self.log.read(loc);
        }
        let txn = self.side.db()?.begin_read()?;
        let stubs = txn.open_table(STUBS)?;
        let value = stubs.get(loc)?.ok_or(StoreError::Corrupt(
            "an id index entry pointing at a given-back record without a stub",
        ))?;
        let (seq, stub) = split_stub(value.value())?;
        Ok((seq, stub.to_vec()))
    }

    /// Calls `each(loc, seq, bytes)` for the records from `from` (a record's offset) up to
    /// `end` (the committed end), stubs first where the log was given back, until it returns
    /// `false`.
    pub(super) fn scan_all(
        &self,
        from: u64,
        end: u64,
        mut each: impl FnMut(u64, u64, &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        // Held through the scan: the head it reads is not removed under it.
        let reclaimed = self.reclaimed.read().unwrap_or_else(|p| p.into_inner());
        if from < *reclaimed {
            let txn = self.side.db()?.begin_read()?;
            for item in txn.open_table(STUBS)?.range(from..*reclaimed)? {
                let (loc, value) = item?;
                let (seq, stub) = split_stub(value.value())?;
                if !each(loc.value(), seq, stub)? {
                    return Ok(());
                }
            }
        }
        self.log.scan(from.max(*reclaimed), end, each)
    }

    /// Gives back every head segment whose records have all expired; the bytes given back.
    /// Each segment's stubs are written in transactions of [`STUB_CHUNK`], each followed by a
    /// pause as long as it took, so commits are not kept out for long.
    pub(super) fn reclaim(&self) -> Result<u64, StoreError> {
        let mut given_back = 0;
        while let Some((start, next)) = self.log.head() {
            if !self.reclaim_segment(start, next)? {
                break;
            }
            given_back += next - start;
        }
        Ok(given_back)
    }

    /// Gives back the head segment `start..next` when every record in it has expired:
    /// whether it did.
    fn reclaim_segment(&self, start: u64, next: u64) -> Result<bool, StoreError> {
        {
            let txn = self.side.db()?.begin_read()?;
            if expired_to(&txn.open_table(META)?)? < next {
                return Ok(false);
            }
        }
        let mut from = start;
        let mut stubs = Vec::with_capacity(STUB_CHUNK);
        loop {
            let began = Instant::now();
            stubs.clear();
            let mut resume = next;
            self.log.scan(from, next, |loc, seq, bytes| {
                if stubs.len() == STUB_CHUNK {
                    resume = loc;
                    return Ok(false);
                }
                let (record, poh_hash) = TxRecord::decode_compact(seq, bytes)?;
                let mut value = seq.to_le_bytes().to_vec();
                value.extend_from_slice(&record.encode_stub(poh_hash.is_some()));
                stubs.push((loc, value));
                Ok(true)
            })?;
            let last = resume == next;
            let mut txn = self.side.db()?.begin_write()?;
            // Stubs past `log_reclaimed_to` are not read: only the last transaction, which
            // moves it, must be durable.
            txn.set_durability(if last {
                Durability::Immediate
            } else {
                Durability::None
            })?;
            let still_expired = {
                let mut meta = txn.open_table(META)?;
                // A restore since the check may have moved the expiry cursor back.
                let still = expired_to(&meta)? >= next;
                if still {
                    let mut table = txn.open_table(STUBS)?;
                    for (loc, value) in &stubs {
                        table.insert(*loc, value.as_slice())?;
                    }
                    if last {
                        meta.insert(RECLAIMED_TO_KEY, next.to_be_bytes().as_slice())?;
                    }
                }
                still
            };
            if !still_expired {
                txn.abort()?;
                return Ok(false);
            }
            txn.commit()?;
            if last {
                break;
            }
            from = resume;
            std::thread::sleep(began.elapsed().max(Duration::from_millis(1)));
        }
        *self.reclaimed.write().unwrap_or_else(|p| p.into_inner()) = next;
        self.log.remove_head(start)?;
        Ok(true)
    }
}
