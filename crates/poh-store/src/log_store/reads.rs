//! Reading transactions from the log, and their expiry and restore.
//!
//! Expiry marks a record expired in the index database (`expired`); its bytes stay in the
//! log until the segment holding them is given back (`reclaim.rs`), so until then a restore
//! of the same record only removes the mark (after, it keeps the record whole beside the
//! log). `log_expired_to` is the log offset before which every record is expired:
//! sweeps and reads from old seqs start there instead of reading expired bytes again.

use redb::{Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::{LogStore, Logged, frame_at, log_end, segments::RECORD_HEADER, with_poh_hash};
use crate::{
    ExpiredRun, Expiry, StoreError, TxRecord,
    index_db::{
        ENTRIES, FRAMES, META, PENDING, fill_status, fill_status_cached,
        headers::{self, HEADER_ENDS},
        lifecycle::{EXPIRED, RESTORED, RESTORED_RECORDS},
        meta_u64,
    },
};

/// Log offset before which every record is expired (u64 BE).
const EXPIRED_TO_KEY: &str = "log_expired_to";

pub(super) fn expired_to(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<u64, StoreError> {
    meta_u64(meta, EXPIRED_TO_KEY, "expiry cursor")
}

/// The record at `seq` whose log bytes are `bytes`: a restored one held whole beside the log
/// when its log copy is a stub.
pub(super) fn record_at(
    restored: Option<&impl ReadableTable<u64, &'static [u8]>>,
    seq: u64,
    bytes: &[u8],
) -> Result<Logged, StoreError> {
    if let Some(table) = restored
        && let Some(whole) = table.get(seq)?
    {
        return TxRecord::decode_compact(seq, whole.value());
    }
    TxRecord::decode_compact(seq, bytes)
}

/// The restored-records table, when it holds any.
pub(super) fn restored_records(
    txn: &redb::ReadTransaction,
) -> Result<Option<redb::ReadOnlyTable<u64, &'static [u8]>>, StoreError> {
    let table = txn.open_table(RESTORED_RECORDS)?;
    Ok((table.len()? > 0).then_some(table))
}

impl LogStore {
    pub(super) fn tx_impl(&self, tx_id: &str) -> Result<Option<TxRecord>, StoreError> {
        let Some((_, mut logged)) = self.find(tx_id)? else {
            return Ok(None);
        };
        let seq = logged.0.poh_seq;
        let txn = self.side.db()?.begin_read()?;
        // Its record expired (the id stays for dedupe).
        if txn.open_table(EXPIRED)?.get(seq)?.is_some() {
            return Ok(None);
        }
        if let Some(table) = restored_records(&txn)?
            && let Some(whole) = table.get(seq)?
        {
            logged = TxRecord::decode_compact(seq, whole.value())?;
        }
        let mut record = with_poh_hash(logged, &txn.open_table(ENTRIES)?, &mut None)?;
        let ends = txn.open_table(HEADER_ENDS)?;
        fill_status(&mut record, &txn.open_table(PENDING)?, &ends)?;
        Ok(Some(record))
    }

    /// Records by seq from `from_seq`, each with whether it expired; expired ones only
    /// `with_expired` (then as what is left of them: the record while its bytes are in the
    /// log, its stub after).
    pub(super) fn records_from_seq_impl(
        &self,
        from_seq: u64,
        limit: usize,
        max_bytes: usize,
        with_expired: bool,
    ) -> Result<Vec<(TxRecord, bool)>, StoreError> {
        let txn = self.side.db()?.begin_read()?;
        let meta = txn.open_table(META)?;
        let end = log_end(&meta)?;
        let mut from = frame_at(&txn.open_table(FRAMES)?, from_seq)?;
        if !with_expired {
            from = from.max(expired_to(&meta)?);
        }
        let expired = txn.open_table(EXPIRED)?;
        let any_expired = expired.len()? > 0;
        let pending = txn.open_table(PENDING)?;
        let pending = (pending.len()? > 0).then_some(&pending);
        let ends = txn.open_table(HEADER_ENDS)?;
        let whole = restored_records(&txn)?;
        let entries = txn.open_table(ENTRIES)?;
        let (mut last_entry, mut last_header) = (None, None);
        let mut out = Vec::new();
        let mut read = 0;
        self.scan_all(from, end, |_, seq, bytes| {
            if seq < from_seq {
                return Ok(true);
            }
            if out.len() >= limit || read >= max_bytes {
                return Ok(false);
            }
            let gone = any_expired && expired.get(seq)?.is_some();
            if gone && !with_expired {
                return Ok(true);
            }
            read += bytes.len();
            let logged = match gone {
                true => TxRecord::decode_compact(seq, bytes)?,
                false => record_at(whole.as_ref(), seq, bytes)?,
            };
            let mut record = with_poh_hash(logged, &entries, &mut last_entry)?;
            fill_status_cached(&mut record, pending, &ends, &mut last_header)?;
            out.push((record, gone));
            Ok(true)
        })?;
        Ok(out)
    }

    pub(super) fn expire_impl(
        &self,
        received_before: f64,
        below_seq: u64,
        limit: usize,
    ) -> Result<Expiry, StoreError> {
        let mut txn = self.side.db()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let mut done = Expiry::default();
        {
            let mut meta = txn.open_table(META)?;
            let end = log_end(&meta)?;
            let from = expired_to(&meta)?;
            let mut expired = txn.open_table(EXPIRED)?;
            let mut restored = txn.open_table(RESTORED)?;
            let any_restored = restored.len()? > 0;
            let mut whole = txn.open_table(RESTORED_RECORDS)?;
            let any_whole = whole.len()? > 0;
            let pending = txn.open_table(PENDING)?;
            let mut gone = Vec::new();
            // Every record before `cursor` is expired, and it moves while that stays true.
            let mut cursor = from;
            let mut all_expired = true;
            self.scan_all(from, end, |loc, seq, bytes| {
                let next = loc + (RECORD_HEADER + bytes.len()) as u64;
                if seq >= below_seq || gone.len() >= limit {
                    return Ok(false);
                }
                let expire = if expired.get(seq)?.is_some() {
                    true
                } else {
                    let (record, _) = record_at(any_whole.then_some(&whole), seq, bytes)?;
                    // Storage order is (nearly) arrival order: the first young one ends the
                    // pass.
                    if record.received_at >= received_before {
                        return Ok(false);
                    }
                    // A transaction still waiting for a parent has no settled DAG place yet;
                    // one restored since `received_before` has its TTL run from the restore.
                    let keep = pending.get(record.tx.tx_id.as_str())?.is_some()
                        || (any_restored
                            && restored
                                .get(seq)?
                                .is_some_and(|at| at.value() >= received_before));
                    if !keep {
                        done.bytes += bytes.len() as u64;
                        gone.push((seq, record.entry_index));
                    }
                    !keep
                };
                all_expired &= expire;
                if all_expired {
                    cursor = next;
                }
                Ok(true)
            })?;
            for (seq, entry_index) in gone {
                expired.insert(seq, entry_index)?;
                if any_restored {
                    restored.remove(seq)?;
                }
                if any_whole {
                    whole.remove(seq)?;
                }
                done.removed += 1;
            }
            meta.insert(EXPIRED_TO_KEY, cursor.to_be_bytes().as_slice())?;
        }
        txn.commit()?;
        Ok(done)
    }

    pub(super) fn expired_impl(&self, tx_id: &str) -> Result<Option<String>, StoreError> {
        let Some((_, (record, _))) = self.find(tx_id)? else {
            return Ok(None);
        };
        let txn = self.side.db()?.begin_read()?;
        let expired = txn.open_table(EXPIRED)?;
        let Some(entry_index) = expired.get(record.poh_seq)?.map(|v| v.value()) else {
            return Ok(None);
        };
        headers::covering(&txn.open_table(HEADER_ENDS)?, entry_index)
    }

    pub(super) fn expired_run_impl(
        &self,
        seqs: std::ops::Range<u64>,
        max_headers: usize,
    ) -> Result<Option<ExpiredRun>, StoreError> {
        let txn = self.side.db()?.begin_read()?;
        let expired = txn.open_table(EXPIRED)?;
        let Some(first) = expired.range(seqs.clone())?.next() else {
            return Ok(None);
        };
        let from_seq = first?.0.value();
        let meta = txn.open_table(META)?;
        let end = log_end(&meta)?;
        let from = frame_at(&txn.open_table(FRAMES)?, from_seq)?;
        let ends = txn.open_table(HEADER_ENDS)?;
        let mut run = ExpiredRun {
            from_seq,
            to_seq: from_seq,
            count: 0,
            header_ids: Vec::new(),
        };
        // Entries grow with seqs, so a header is looked up only when an entry passes the
        // end of the one before. The run ends before the next stored transaction: a reader
        // is sent that one.
        let mut sealed_below = 0;
        self.scan_all(from, end, |_, seq, _| {
            if seq < from_seq {
                return Ok(true);
            }
            if seq >= seqs.end {
                return Ok(false);
            }
            let Some(entry_index) = expired.get(seq)?.map(|v| v.value()) else {
                return Ok(false);
            };
            if run.header_ids.is_empty() || entry_index >= sealed_below {
                if run.header_ids.len() >= max_headers.max(1) {
                    return Ok(false);
                }
                let (end, hash) = headers::covering_end(&ends, entry_index)?
                    .ok_or(StoreError::Corrupt("an expired transaction with no header"))?;
                sealed_below = end;
                run.header_ids.push(hash.to_hex());
            }
            run.to_seq = seq;
            run.count += 1;
            Ok(true)
        })?;
        Ok(Some(run))
    }

    pub(super) fn restore_impl(
        &self,
        records: &[TxRecord],
        restored_at: f64,
    ) -> Result<u64, StoreError> {
        let mut found = Vec::with_capacity(records.len());
        for record in records {
            found.push(self.find(&record.tx.tx_id)?);
        }
        let mut txn = self.side.db()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let mut restored = 0;
        {
            let mut meta = txn.open_table(META)?;
            let mut cursor = expired_to(&meta)?;
            let mut expired = txn.open_table(EXPIRED)?;
            let mut restored_table = txn.open_table(RESTORED)?;
            let mut whole = txn.open_table(RESTORED_RECORDS)?;
            for (record, found) in records.iter().zip(found) {
                let Some(entry_index) = expired.get(record.poh_seq)?.map(|v| v.value()) else {
                    continue;
                };
                // A restore only lifts the mark once the record given is the one expired,
                // and keeps it whole when the log does not (its bytes were given back).
                let same = found.as_ref().is_some_and(|(_, (stored, _))| {
                    stored.poh_seq == record.poh_seq && stored.digest == record.digest
                }) && entry_index == record.entry_index;
                let Some((loc, (stored, _))) = found.filter(|_| same) else {
                    return Err(StoreError::Sequence(
                        "a restored record differs from the expired transaction at its poh_seq",
                    ));
                };
                // The same entry: the same poh_hash, whether or not the log holds it.
                let stored = TxRecord {
                    poh_hash: record.poh_hash,
                    ..stored
                };
                let bytes = record.encode_compact(false);
                if stored.encode_compact(false) != bytes {
                    whole.insert(record.poh_seq, bytes.as_slice())?;
                }
                expired.remove(record.poh_seq)?;
                restored_table.insert(record.poh_seq, restored_at)?;
                cursor = cursor.min(loc);
                restored += 1;
            }
            meta.insert(EXPIRED_TO_KEY, cursor.to_be_bytes().as_slice())?;
        }
        txn.commit()?;
        Ok(restored)
    }
}
