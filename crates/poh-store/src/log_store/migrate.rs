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
    LogStore, SEGMENT_BYTES,
    segments::{Log, encode_record, sync_dir},
};
use crate::{
    Known, Store as _, StoreError, StoreOptions, TxRecord, TxStatus,
    redb_store::{
        FRAMES, IDS, LOG_END_KEY, LOG_NEXT_SEQ_KEY, META, RedbStore, TXS, lifecycle::EXPIRED,
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
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(fs) = rustix::fs::statvfs(parent) else {
        return Ok(());
    };
    let available = fs.f_bavail.saturating_mul(fs.f_frsize);
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
        let old = RedbStore::open_with(from, options)?;
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
        let log = Log::open(&work.join("log"), 0, SEGMENT_BYTES)?;
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
                put(stub.poh_seq, &stub.encode(), &mut chunk)?;
            }
            put(seq, bytes.value(), &mut chunk)?;
        }
        for stub in stubs {
            put(stub.poh_seq, &stub.encode(), &mut chunk)?;
        }
        flush(&mut chunk, &mut chunk_first)?;
        progress(done, total);
        log.sync_all()?;
        drop(txs);
        drop(read);
        drop(old);

        let side = RedbStore::open_with(&index, options)?;
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
        Commit, Store,
        engine_tests::{chain, entry, header, new},
    };

    /// Everything a reader can ask of the old store, to compare with the new one.
    fn everything(store: &dyn Store, ids: &[String]) -> String {
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let per_id: Vec<_> = refs
            .iter()
            .map(|id| (store.tx(id).unwrap(), store.expired(id).unwrap()))
            .collect();
        format!(
            "{:?}\n{per_id:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            store.chain().unwrap(),
            store.lookup(&refs).unwrap(),
            store.txs_from_seq(0, 1000, usize::MAX).unwrap(),
            store.entries(0, 1000, usize::MAX).unwrap(),
            store.headers(0, 10).unwrap(),
            store.tips().unwrap(),
            store.waiting_children(&["zz"]).unwrap(),
            store.missing_parents("", 10).unwrap(),
            store.progress("sync/x").unwrap(),
            store.expired_run(0..100, 32).unwrap(),
        )
    }

    #[test]
    fn every_read_answers_the_same_after_migrating_and_the_store_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("poh.redb");
        let old = RedbStore::open(&from).unwrap();
        let meta = chain();
        // Seqs with gaps (child headers' items), one waiting for a parent.
        let seqs: Vec<u64> = (0..60).filter(|s| s % 7 != 3).collect();
        let ids: Vec<String> = seqs.iter().map(|s| format!("tx{s}")).collect();
        let txs: Vec<_> = seqs
            .iter()
            .zip(&ids)
            .map(|(&s, id)| new(id, s, if s == 20 { &["zz"] } else { &[] }))
            .collect();
        let entries: Vec<_> = (0..60).map(|i| (i, entry(i))).collect();
        for (txs, entries) in txs.chunks(9).zip(entries.chunks(60_usize.div_ceil(7))) {
            let _ = entries;
            old.commit(
                &Commit {
                    chain: Some(&meta),
                    txs,
                    ..Commit::default()
                },
                true,
            )
            .unwrap();
        }
        old.commit(
            &Commit {
                entries: &entries,
                tips_added: &[(59, "tx59".to_string())],
                ..Commit::default()
            },
            true,
        )
        .unwrap();
        let sealed = header(0, 0, 30, poh_core::Hash::default());
        old.put_header(&sealed, &ChainHead::after(&sealed, 0, 30))
            .unwrap();
        old.set_progress("sync/x", 7).unwrap();
        let restored_later = old.tx("tx5").unwrap().unwrap();
        assert!(old.expire(50.0, 30, 1000).unwrap().removed > 10);
        let before = everything(&old, &ids);
        drop(old);

        let store_dir = dir.path().join("store");
        let mut told = Vec::new();
        let migrated = LogStore::migrate_from_redb(
            &from,
            &store_dir,
            StoreOptions::default(),
            &mut |done, total| told.push((done, total)),
        )
        .unwrap();
        assert_eq!(migrated.transactions + migrated.expired, ids.len() as u64);
        assert!(migrated.expired > 10, "{migrated:?}");
        let total = ids.len() as u64;
        assert_eq!(told.last(), Some(&(total, total)));
        assert!(from.exists(), "the old file is left as it was");
        assert!(!work_dir(&store_dir).exists());

        let store = LogStore::open(&store_dir).unwrap();
        assert_eq!(everything(&store, &ids), before);

        // It goes on: an expired id is still a duplicate, an expired record comes back,
        // and new transactions follow.
        let again = [new("tx1", 60, &[])];
        assert!(matches!(
            store.commit(
                &Commit {
                    txs: &again,
                    ..Commit::default()
                },
                true
            ),
            Err(StoreError::Sequence(_))
        ));
        assert_eq!(
            store
                .restore(std::slice::from_ref(&restored_later), 60.0)
                .unwrap(),
            1
        );
        assert_eq!(store.tx("tx5").unwrap(), Some(restored_later));
        let next = [new("zz", 60, &[])];
        store
            .commit(
                &Commit {
                    txs: &next,
                    ..Commit::default()
                },
                true,
            )
            .unwrap();
        assert_eq!(store.tx("tx20").unwrap().unwrap().status, TxStatus::Sealed);
    }

    #[test]
    fn a_disk_without_room_refuses_before_writing_anything() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("poh.redb");
        drop(RedbStore::open(&from).unwrap());
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
