//! Moving a store written by the redb engine (one file) into the log engine (a directory).
//!
//! Everything but the transactions and their id index is copied as it is: the new store's
//! index database starts as a copy of the old file. The transactions are then appended to the
//! log in seq order, their bytes unchanged. A transaction whose record expired keeps, in the
//! old file, only its id-index entry; in the log it becomes a stub record (its id, digest,
//! entry and `poh_hash`, no payload) still marked expired, so dedupe and restore treat it as
//! before. The work happens in a directory beside the target, renamed into place at the end:
//! a migration that stops half-way leaves no store, and the next one starts over.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use poh_core::Tx;

use super::{
    LogStore,
    segments::{Log, encode_record, sync_dir},
};
use crate::{
    Known, StoreError, StoreOptions, TxRecord, TxStatus,
    index_db::{
        FRAMES, IDS, IndexDb, LOG_END_KEY, LOG_NEXT_SEQ_KEY, META, TXS, free_space,
        lifecycle::EXPIRED,
    },
};

/// What a migration moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migrated {
    /// Transactions whose records moved.
    pub transactions: u64,
    /// Expired transactions, kept as stubs.
    pub expired: u64,
}

/// Records appended to the log at a time.
const CHUNK_BYTES: usize = 4 << 20;

/// The directory a migration into `dir` works in.
fn work_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".migrating");
    dir.with_file_name(name)
}

/// Refuses, before anything is written, a migration the disk has no room for: the copy of
/// the old file and the log together take about as much as the old file.
fn check_room(from: &Path, dir: &Path, reserve: u64) -> Result<(), StoreError> {
    let size = std::fs::metadata(from).map_err(StoreError::io(from))?.len();
    let Some((available, _)) = free_space(dir) else {
        return Ok(());
    };
    let need = size.saturating_add(reserve);
    if available < need {
        return Err(StoreError::Full {
            path: dir.to_path_buf(),
            why: format!(
                "moving {} into the log engine needs {need} bytes free, {available} are; \
                 nothing was changed",
                from.display()
            ),
        });
    }
    Ok(())
}

/// The expired transactions of the old file as stub records, in seq order.
fn expired_stubs(old: &redb::ReadTransaction) -> Result<Vec<TxRecord>, StoreError> {
    let expired = old.open_table(EXPIRED)?;
    if expired.len()? == 0 {
        return Ok(Vec::new());
    }
    let mut entries = std::collections::HashMap::new();
    for item in expired.iter()? {
        let (seq, entry_index) = item?;
        entries.insert(seq.value(), entry_index.value());
    }
    // The id index is keyed by id: one pass over it finds the ids of the expired seqs.
    let mut stubs = Vec::with_capacity(entries.len());
    for item in old.open_table(IDS)?.iter()? {
        let (id, known) = item?;
        let known = Known::decode(known.value())?;
        if let Some(&entry_index) = entries.get(&known.seq) {
            stubs.push(TxRecord {
                tx: Tx {
                    tx_id: id.value().to_owned(),
                    ..Tx::default()
                },
                digest: known.digest,
                poh_seq: known.seq,
                poh_hash: known.poh_hash,
                entry_index,
                received_at: 0.0,
                dag_parents: Vec::new(),
                status: TxStatus::Sealed,
                header_id: None,
            });
        }
    }
    if stubs.len() != entries.len() {
        return Err(StoreError::Corrupt("an expired transaction without its id"));
    }
    stubs.sort_unstable_by_key(|r| r.poh_seq);
    Ok(stubs)
}

impl LogStore {
    /// Makes the log engine's store in `dir` (which must not exist) from the redb engine's
    /// file `from`, which is left as it was. `progress(done, total)` is told how many
    /// transactions moved as it goes. Refused with [`StoreError::Full`], before anything is
    /// written, when the disk has no room for it.
    pub fn migrate_from_redb(
        from: &Path,
        dir: &Path,
        options: StoreOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Migrated, StoreError> {
        if dir.exists() {
            return Err(StoreError::Sequence(
                "a migration's target directory exists already",
            ));
        }
        // Held open for the whole migration: no node can write it meanwhile.
        let old = IndexDb::open_with(from, options)?;
        check_room(from, dir, options.reserve_bytes)?;
        let work = work_dir(dir);
        if work.exists() {
            std::fs::remove_dir_all(&work).map_err(StoreError::io(&work))?;
        }
        std::fs::create_dir_all(&work).map_err(StoreError::io(&work))?;
        let index = work.join("index.redb");
        std::fs::copy(from, &index).map_err(StoreError::io(&index))?;

        let read = old.db()?.begin_read()?;
        let stubs = expired_stubs(&read)?;
        let txs = read.open_table(TXS)?;
        let total = txs.len()? + stubs.len() as u64;
        let log = Log::open(&work.join("log"), 0, 0, options.segment_bytes)?;
        let mut frames = Vec::new();
        let mut chunk = Vec::with_capacity(CHUNK_BYTES + (64 << 10));
        let mut chunk_first = None;
        let mut at = 0u64;
        let mut done = 0u64;
        let mut next_seq = 0u64;
        let mut flush = |chunk: &mut Vec<u8>, first: &mut Option<u64>| {
            if let Some(first) = first.take() {
                log.append(at, chunk, false)?;
                frames.push((first, at));
                at += chunk.len() as u64;
                chunk.clear();
            }
            Ok::<_, StoreError>(())
        };
        let expired = stubs.len() as u64;
        let mut stubs = stubs.into_iter().peekable();
        let mut put = |seq: u64, bytes: &[u8], chunk: &mut Vec<u8>| {
            chunk_first.get_or_insert(seq);
            encode_record(chunk, seq, bytes);
            next_seq = seq + 1;
            done += 1;
            if chunk.len() >= CHUNK_BYTES {
                flush(chunk, &mut chunk_first)?;
                progress(done, total);
            }
            Ok::<_, StoreError>(())
        };
        // The stored records and the stubs, merged in seq order.
        for item in txs.iter()? {
            let (seq, bytes) = item?;
            let seq = seq.value();
            while let Some(stub) = stubs.next_if(|s| s.poh_seq < seq) {
                put(stub.poh_seq, &stub.encode_stub(true), &mut chunk)?;
            }
            put(seq, bytes.value(), &mut chunk)?;
        }
        for stub in stubs {
            put(stub.poh_seq, &stub.encode_stub(true), &mut chunk)?;
        }
        flush(&mut chunk, &mut chunk_first)?;
        progress(done, total);
        log.sync_all()?;
        drop(txs);
        drop(read);
        drop(old);

        let side = IndexDb::open_with(&index, options)?;
        let mut txn = side.db()?.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        {
            let mut table = txn.open_table(FRAMES)?;
            for (first, loc) in frames {
                table.insert(first, loc)?;
            }
            let mut meta = txn.open_table(META)?;
            meta.insert(LOG_END_KEY, at.to_be_bytes().as_slice())?;
            meta.insert(LOG_NEXT_SEQ_KEY, next_seq.to_be_bytes().as_slice())?;
        }
        // Kept empty: the log and its index hold them now.
        txn.delete_table(TXS)?;
        txn.delete_table(IDS)?;
        txn.open_table(TXS)?;
        txn.open_table(IDS)?;
        txn.commit()?;
        while side.compact()? {}
        drop(side);

        // Opening builds the id index from the log; dropping writes it to runs.
        drop(LogStore::open_with(&work, options)?);
        std::fs::rename(&work, dir).map_err(StoreError::io(dir))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(Migrated {
            transactions: done - expired,
            expired,
        })
    }
}

#[cfg(test)]
mod tests {
    use poh_core::ChainHead;

    use super::*;
    use crate::{
        Store,
        engine_tests::{chain, commit_txs, entry, header, new},
        index_db::{ENTRIES, PENDING, WAITING},
        record::encode_entry,
    };

    /// A file as an earlier release wrote it: records in `txs`, ids in `ids`, the records of
    /// seqs below 10 expired (only their ids left), one transaction waiting for `zz`, and a
    /// header over entries 0–29. Returns the records, expired ones included.
    fn old_file(path: &Path) -> (Vec<TxRecord>, poh_core::Header) {
        let db = IndexDb::open_with(path, StoreOptions::default()).unwrap();
        let seqs: Vec<u64> = (0..40).filter(|s| s % 7 != 3).collect();
        let records: Vec<TxRecord> = seqs
            .iter()
            .map(|&s| {
                let parents: &[&str] = if s == 20 { &["zz"] } else { &[] };
                new(&format!("tx{s}"), s, parents).record
            })
            .collect();
        let txn = db.db().unwrap().begin_write().unwrap();
        {
            let mut txs = txn.open_table(TXS).unwrap();
            let mut ids = txn.open_table(IDS).unwrap();
            let mut expired = txn.open_table(EXPIRED).unwrap();
            for r in &records {
                let known = Known {
                    seq: r.poh_seq,
                    digest: r.digest,
                    poh_hash: r.poh_hash,
                };
                ids.insert(r.tx.tx_id.as_str(), known.encode().as_slice())
                    .unwrap();
                if r.poh_seq < 10 {
                    expired.insert(r.poh_seq, r.entry_index).unwrap();
                } else {
                    txs.insert(r.poh_seq, r.encode().as_slice()).unwrap();
                }
            }
            let mut entries = txn.open_table(ENTRIES).unwrap();
            for i in 0..40 {
                entries
                    .insert(i, encode_entry(&entry(i)).as_slice())
                    .unwrap();
            }
            txn.open_table(PENDING).unwrap().insert("tx20", 1).unwrap();
            txn.open_multimap_table(WAITING)
                .unwrap()
                .insert("zz", "tx20")
                .unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("chain", chain().encode().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
        let sealed = header(0, 0, 30, poh_core::Hash::default());
        db.put_header(&sealed, &ChainHead::after(&sealed, 0, 30))
            .unwrap();
        db.set_progress("sync/x", 7).unwrap();
        (records, sealed)
    }

    #[test]
    fn every_transaction_reads_back_after_migrating_and_the_store_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("poh.redb");
        let (records, sealed) = old_file(&from);
        let store_dir = dir.path().join("store");
        let mut told = Vec::new();
        let migrated = LogStore::migrate_from_redb(
            &from,
            &store_dir,
            StoreOptions::default(),
            &mut |done, total| told.push((done, total)),
        )
        .unwrap();
        let expired = records.iter().filter(|r| r.poh_seq < 10).count() as u64;
        let total = records.len() as u64;
        assert_eq!(
            migrated,
            Migrated {
                transactions: total - expired,
                expired
            }
        );
        assert_eq!(told.last(), Some(&(total, total)));
        assert!(from.exists(), "the old file is left as it was");
        assert!(!work_dir(&store_dir).exists());

        let store = LogStore::open(&store_dir).unwrap();
        let as_stored = |r: &TxRecord| {
            let mut r = r.clone();
            r.header_id = (r.entry_index < 30).then(|| sealed.id());
            r.status = match (r.poh_seq, r.header_id.is_some()) {
                (20, _) => TxStatus::Pending,
                (_, true) => TxStatus::Sealed,
                _ => TxStatus::Ordered,
            };
            r
        };
        for r in &records {
            let id = r.tx.tx_id.as_str();
            let known = store.lookup(&[id]).unwrap()[0].unwrap();
            assert_eq!(
                (known.seq, known.digest, known.poh_hash),
                (r.poh_seq, r.digest, r.poh_hash)
            );
            if r.poh_seq < 10 {
                assert_eq!(store.tx(id).unwrap(), None, "{id}");
                assert_eq!(store.expired(id).unwrap(), Some(sealed.id()), "{id}");
            } else {
                assert_eq!(store.tx(id).unwrap(), Some(as_stored(r)), "{id}");
                assert_eq!(store.expired(id).unwrap(), None, "{id}");
            }
        }
        let kept: Vec<_> = records
            .iter()
            .filter(|r| r.poh_seq >= 10)
            .map(as_stored)
            .collect();
        assert_eq!(store.txs_from_seq(0, 1000, usize::MAX).unwrap(), kept);
        assert_eq!(store.headers(0, 10).unwrap(), std::slice::from_ref(&sealed));
        assert_eq!(store.progress("sync/x").unwrap(), Some(7));
        assert_eq!(store.waiting_children(&["zz"]).unwrap(), [["tx20"]]);
        assert_eq!(
            store
                .entries(0, 100, usize::MAX)
                .unwrap()
                .unwrap()
                .entries
                .len(),
            40
        );
        let run = store.expired_run(0..40, 32).unwrap().unwrap();
        assert_eq!((run.from_seq, run.to_seq, run.count), (0, 9, expired));

        // It goes on: an expired id is still a duplicate, an expired record comes back whole,
        // and new transactions follow.
        let again = [new("tx1", 40, &[])];
        assert!(matches!(
            commit_txs(&store, &again),
            Err(StoreError::Sequence(_))
        ));
        assert_eq!(
            store
                .restore(std::slice::from_ref(&records[1]), 60.0)
                .unwrap(),
            1
        );
        assert_eq!(store.tx("tx1").unwrap(), Some(as_stored(&records[1])));
        let next = [new("zz", 40, &[])];
        commit_txs(&store, &next).unwrap();
        assert_eq!(store.tx("tx20").unwrap().unwrap().status, TxStatus::Sealed);
    }

    #[test]
    fn a_disk_without_room_refuses_before_writing_anything() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("poh.redb");
        drop(IndexDb::open_with(&from, StoreOptions::default()).unwrap());
        let options = StoreOptions {
            reserve_bytes: u64::MAX / 2,
            ..StoreOptions::default()
        };
        let store_dir = dir.path().join("store");
        let refused = LogStore::migrate_from_redb(&from, &store_dir, options, &mut |_, _| {});
        assert!(
            matches!(refused, Err(StoreError::Full { .. })),
            "{refused:?}"
        );
        assert!(!store_dir.exists() && !work_dir(&store_dir).exists());
    }
}
