//! The log-structured engine: transactions in an append-only record log, their ids in a
//! persisted LSM index, everything else in a small redb database.
//!
//! A store is a directory:
//! - `index.redb`: a [`IndexDb`] whose `txs` and `ids` tables stay empty. It keeps the
//!   entries, the DAG, tips, headers, markers, expiry, and for the log: where each commit's
//!   records begin (`frames`) and where the log ends (`log_end`).
//! - `log/`: the records ([`segments`]), one sequential append per commit.
//! - `ids/`: `tx_id → log offset` ([`IdIndex`](crate::id_index::IdIndex)): a
//!   memtable, flushed to sorted runs in the background.
//! - `holders/` and `children/`: the query indexes, the same structure keyed by `holder_id`
//!   and by each id a transaction names in `parent_ids` ([`queries`]).
//!
//! A commit appends its records at `log_end` and syncs them, then commits the index database
//! (with the new `log_end`): that commit is the commit point. Only then does the id index
//! learn the ids (and the query indexes their keys). On open, the log is cut back to
//! `log_end` (a torn tail is never served) and each index learns again what its durable runs
//! do not hold, by reading the log from there: so nothing stored is missing from them after a
//! crash, and a store from before the query indexes gets them on its first open. Why not redb alone: each id is a random-order insert into a copy-on-write B-tree,
//! about 17 µs of CPU per transaction at a million records; appending costs well under one.

mod migrate;
mod queries;
mod reads;
mod reclaim;
pub(crate) mod segments;
#[cfg(test)]
mod tests;

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, RwLock},
};

use redb::{ReadableDatabase, ReadableTable};

use poh_core::{ChainHead, Hash, Header};

use crate::{
    ChainMeta, ChildHeader, Commit, EntryPage, ExpiredRun, Expiry, Known, Store, StoreError,
    StoreOptions, TxRecord,
    id_index::{IdIndex, IdIndexOptions},
    index_db::{ENTRIES, IndexDb, LOG_END_KEY, META, Placement, meta_u64},
    record::decode_entry_hash,
};
pub use migrate::Migrated;
use queries::Keys;
use segments::{Log, append_record};

/// The largest commit buffer kept between commits.
const BUFFER_KEPT: usize = 16 << 20;

/// The log-structured engine of [`Store`]. The one committer and any number of readers share
/// it through `&self`.
pub struct LogStore {
    side: IndexDb,
    log: Log,
    ids: IdIndex,
    /// `holder_id` → the log offsets of its transactions.
    holders: IdIndex,
    /// An id named in `parent_ids` → the log offsets of the transactions naming it.
    children: IdIndex,
    /// The writer's state: where the next commit appends (the committed end of the log), and
    /// the buffer it encodes a commit's records into, kept between commits so a commit does
    /// not grow a new one.
    writer: Mutex<(u64, Vec<u8>)>,
    /// The log offset below which the log was given back ([`reclaim`]): records there are
    /// read as stubs.
    reclaimed: RwLock<u64>,
    dir: PathBuf,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Where the log's committed records end, as the index database says.
fn log_end(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<u64, StoreError> {
    meta_u64(meta, LOG_END_KEY, "log end")
}

/// A record as the log holds it, and its `poh_hash` when the log holds that too.
pub(crate) type Logged = (TxRecord, Option<Hash>);

/// The record whole: its `poh_hash`, when the log left it out, is its entry's hash. `last`
/// remembers the last entry looked up: records in seq order share their entries.
pub(crate) fn with_poh_hash(
    (mut record, poh_hash): Logged,
    entries: &impl ReadableTable<u64, &'static [u8]>,
    last: &mut Option<(u64, Hash)>,
) -> Result<TxRecord, StoreError> {
    record.poh_hash = match (poh_hash, *last) {
        (Some(hash), _) => hash,
        (None, Some((index, hash))) if index == record.entry_index => hash,
        (None, _) => {
            let bytes = entries
                .get(record.entry_index)?
                .ok_or(StoreError::Corrupt("a transaction's PoH entry"))?;
            let hash = decode_entry_hash(bytes.value())?;
            *last = Some((record.entry_index, hash));
            hash
        }
    };
    Ok(record)
}

/// The log offset to read from for transactions at `seq` and later: where the commit holding
/// `seq` begins.
fn frame_at(frames: &impl ReadableTable<u64, u64>, seq: u64) -> Result<u64, StoreError> {
    Ok(frames
        .range(..=seq)?
        .next_back()
        .transpose()?
        .map_or(0, |(_, loc)| loc.value()))
}

impl LogStore {
    /// Opens the store in directory `dir`, creating it when absent.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// [`LogStore::open`] with other [`StoreOptions`].
    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(StoreError::io(&dir))?;
        let side = IndexDb::open_with(dir.join("index.redb"), options)?;
        let (reclaimed, end) = {
            let txn = side.db()?.begin_read()?;
            let meta = txn.open_table(META)?;
            (reclaim::reclaimed_to(&meta)?, log_end(&meta)?)
        };
        let log = Log::open(&dir.join("log"), reclaimed, end, options.segment_bytes)?;
        let (ids, covered) = IdIndex::open(&dir.join("ids"), IdIndexOptions::default())?;
        let (holders, holders_covered) =
            IdIndex::open(&dir.join("holders"), IdIndexOptions::default())?;
        let (children, children_covered) =
            IdIndex::open(&dir.join("children"), IdIndexOptions::default())?;
        let store = Self {
            side,
            log,
            ids,
            holders,
            children,
            writer: Mutex::new((end, Vec::new())),
            reclaimed: RwLock::new(reclaimed),
            dir,
        };
        store.relearn([covered, holders_covered, children_covered], end)?;
        Ok(store)
    }

    /// The bytes the store in `dir` takes on disk: every file under it.
    pub fn disk_bytes(dir: impl AsRef<Path>) -> Result<u64, StoreError> {
        let dir = dir.as_ref();
        let mut total = 0;
        for item in std::fs::read_dir(dir).map_err(StoreError::io(dir))? {
            let item = item.map_err(StoreError::io(dir))?;
            let meta = item.metadata().map_err(StoreError::io(&item.path()))?;
            total += match meta.is_dir() {
                true => Self::disk_bytes(item.path())?,
                false => meta.len(),
            };
        }
        Ok(total)
    }

    /// The stored record of `id`, with its log offset (expired ones too: the log keeps
    /// their bytes, or their stubs once given back). Fingerprints can collide, so each candidate's own id is checked. Its
    /// `poh_hash` is left for [`with_poh_hash`] when the log does not hold it.
    fn find(&self, id: &str) -> Result<Option<(u64, Logged)>, StoreError> {
        let mut candidates = Vec::new();
        self.ids
            .candidates(self.ids.fingerprint(id), &mut candidates)?;
        for loc in candidates {
            let (seq, bytes) = self.read_at(loc)?;
            let record = TxRecord::decode_compact(seq, &bytes)?;
            if record.0.tx.tx_id == id {
                return Ok(Some((loc, record)));
            }
        }
        Ok(None)
    }

    fn commit_impl(&self, commit: &Commit<'_>, durable: bool) -> Result<(), StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let (end, bytes) = &mut *writer;
        let at = *end;
        bytes.clear();
        let mut learned = Vec::with_capacity(commit.txs.len());
        let mut keys = Keys::default();
        for new in commit.txs {
            let record = &new.record;
            let loc = at + bytes.len() as u64;
            learned.push((self.ids.fingerprint(&record.tx.tx_id), record.poh_seq, loc));
            // Its entry is normally in the same commit; only then is its hash left out.
            let entry_stored = commit
                .entries
                .binary_search_by_key(&record.entry_index, |(i, _)| *i)
                .is_ok_and(|at| commit.entries[at].1.hash == record.poh_hash);
            // An expired one is kept as the stub it came as, and no query finds it.
            let stub = commit.expired.binary_search(&record.poh_seq).is_ok();
            if !stub {
                self.keys_of(record, loc, &mut keys);
            }
            append_record(bytes, record.poh_seq, |out| match stub {
                true => out.extend_from_slice(&record.encode_stub(!entry_stored)),
                false => record.encode_compact_into(entry_stored, out),
            });
        }
        if !bytes.is_empty() {
            self.log.append(at, bytes, durable)?;
        }
        let log_end = at + bytes.len() as u64;
        let stored = |id: &str| Ok(self.find(id)?.is_some());
        let placement = Placement {
            stored: &stored,
            at,
            log_end,
        };
        self.side.commit_placed(commit, durable, &placement)?;
        *end = log_end;
        // A burst's buffer is not kept for ever.
        if bytes.capacity() > BUFFER_KEPT {
            *bytes = Vec::new();
        }
        // Committed: the index must learn these ids. A failure of its background writer is
        // reported once, by a call that adds nothing, so the second try takes them.
        for (index, learned) in [
            (&self.ids, &learned),
            (&self.holders, &keys.holders),
            (&self.children, &keys.children),
        ] {
            index.insert(learned).or_else(|_| index.insert(learned))?;
        }
        if let Some(last) = commit.txs.last() {
            // Whether or not they had keys, these seqs need not be read again on open.
            let end = last.record.poh_seq + 1;
            self.holders.cover(end);
            self.children.cover(end);
        }
        Ok(())
    }
}

impl Drop for LogStore {
    /// Writes the id index's memory to runs, so the next open has less log to read again.
    fn drop(&mut self) {
        for index in [&self.ids, &self.holders, &self.children] {
            let _ = index.persist();
        }
    }
}

impl Store for LogStore {
    fn chain(&self) -> Result<Option<ChainMeta>, StoreError> {
        self.side.chain()
    }

    fn lookup(&self, ids: &[&str]) -> Result<Vec<Option<Known>>, StoreError> {
        let mut entries = None;
        ids.iter()
            .map(|id| {
                let Some((_, logged)) = self.find(id)? else {
                    return Ok(None);
                };
                // Opened only for an id that is found: nearly every lookup is of a new one.
                let entries = match &mut entries {
                    Some(entries) => entries,
                    none => none.insert(self.side.db()?.begin_read()?.open_table(ENTRIES)?),
                };
                let r = with_poh_hash(logged, entries, &mut None)?;
                Ok(Some(Known {
                    seq: r.poh_seq,
                    digest: r.digest,
                    poh_hash: r.poh_hash,
                }))
            })
            .collect()
    }

    fn commit(&self, commit: &Commit<'_>, durable: bool) -> Result<(), StoreError> {
        // Transactions are always synced: the id index may write them to a durable run
        // before a later commit would have made them durable.
        let durable = durable || !commit.txs.is_empty();
        self.side.writing(|| self.commit_impl(commit, durable))
    }

    fn tx(&self, tx_id: &str) -> Result<Option<TxRecord>, StoreError> {
        self.tx_impl(tx_id)
    }

    fn txs_from_seq(
        &self,
        from_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<TxRecord>, StoreError> {
        let records = self.records_from_seq_impl(from_seq, limit, max_bytes, false)?;
        Ok(records.into_iter().map(|(record, _)| record).collect())
    }

    fn copy_from_seq(
        &self,
        from_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<(TxRecord, bool)>, StoreError> {
        self.records_from_seq_impl(from_seq, limit, max_bytes, true)
    }

    fn entries(
        &self,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Option<EntryPage>, StoreError> {
        self.side.entries(from, limit, max_bytes)
    }

    fn holder_txs(
        &self,
        holder_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<(Vec<TxRecord>, Option<u64>), StoreError> {
        self.holder_txs_impl(holder_id, from_seq, limit)
    }

    fn children_of(&self, tx_id: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        self.children_of_impl(tx_id, limit)
    }

    fn tips(&self) -> Result<Vec<(u64, String)>, StoreError> {
        self.side.tips()
    }

    fn waiting_children(&self, ids: &[&str]) -> Result<Vec<Vec<String>>, StoreError> {
        self.side.waiting_children(ids)
    }

    fn put_header(&self, header: &Header, after: &ChainHead) -> Result<(), StoreError> {
        self.side.put_header(header, after)
    }

    fn header_head(&self) -> Result<Option<ChainHead>, StoreError> {
        self.side.header_head()
    }

    fn header_at_entry(&self, entry_index: u64) -> Result<Option<(Header, u64)>, StoreError> {
        self.side.header_at_entry(entry_index)
    }

    fn head_after(&self, height: u64) -> Result<Option<ChainHead>, StoreError> {
        self.side.head_after(height)
    }

    fn headers(&self, from: u64, limit: usize) -> Result<Vec<Header>, StoreError> {
        self.side.headers(from, limit)
    }

    fn header_by_hash(&self, hash: &Hash) -> Result<Option<Header>, StoreError> {
        self.side.header_by_hash(hash)
    }

    fn child_head(&self, chain_id: &str) -> Result<Option<ChainHead>, StoreError> {
        self.side.child_head(chain_id)
    }

    fn child_header_by_hash(&self, hash: &Hash) -> Result<Option<ChildHeader>, StoreError> {
        self.side.child_header_by_hash(hash)
    }

    fn children_recorded(
        &self,
        seqs: std::ops::Range<u64>,
    ) -> Result<Vec<ChildHeader>, StoreError> {
        self.side.children_recorded(seqs)
    }

    fn progress(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.side.progress(key)
    }

    fn set_progress(&self, key: &str, value: u64) -> Result<(), StoreError> {
        self.side.set_progress(key, value)
    }

    fn missing_parents(&self, after: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        self.side.missing_parents(after, limit)
    }

    fn expire(
        &self,
        received_before: f64,
        below_seq: u64,
        limit: usize,
    ) -> Result<Expiry, StoreError> {
        self.side.freeing(|| {
            let done = self.expire_impl(received_before, below_seq, limit)?;
            self.reclaim()?;
            Ok(done)
        })
    }

    fn expired(&self, tx_id: &str) -> Result<Option<String>, StoreError> {
        self.expired_impl(tx_id)
    }

    fn expired_run(
        &self,
        seqs: std::ops::Range<u64>,
        max_headers: usize,
    ) -> Result<Option<ExpiredRun>, StoreError> {
        self.expired_run_impl(seqs, max_headers)
    }

    fn restore(&self, records: &[TxRecord], restored_at: f64) -> Result<u64, StoreError> {
        self.side
            .writing(|| self.restore_impl(records, restored_at))
    }

    /// Gives back the index database's free pages (expiry gives back the log's, a segment at
    /// a time).
    fn compact(&self) -> Result<bool, StoreError> {
        self.side.compact()
    }
}
