//! The log engine's index database: one redb file holding everything of a store but the
//! transactions' records (in the log) and their ids (in the id index).
//!
//! Layout (every value that can grow is a protobuf message from [`crate::record`]):
//!
//! | table     | key              | value                                                 |
//! |-----------|------------------|-------------------------------------------------------|
//! | `frames`  | first `poh_seq`  | log offset of each commit's first record              |
//! | `entries` | entry index      | [`Entry`](poh_core::Entry)                            |
//! | `pending` | `tx_id`          | parents still missing (`u32`)                         |
//! | `waiting` | missing parent   | multimap: the children waiting on it                  |
//! | `tips`    | `tx_id`          | `poh_seq`                                             |
//! | `meta`    | key              | `schema`, `chain` ([`ChainMeta`]), `log_end`, `log_next_seq` |
//! | `txs`, `ids` | `poh_seq`, `tx_id` | empty: where an earlier release kept the records and ids, read once by the migration |
//!
//! Sealed headers have their own tables ([`headers`]).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use redb::{
    Database, DatabaseError, MultimapTableDefinition, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition,
};

use poh_core::{ChainHead, Hash, Header};

use crate::record::decode_entry;
use crate::{ChainMeta, ChildHeader, EntryPage, StoreError, TxRecord, TxStatus};

mod commit;
pub(crate) mod headers;
pub(crate) mod lifecycle;

pub(crate) use commit::Placement;
pub use lifecycle::{ExpiredRun, Expiry};
#[cfg(test)]
mod tests;

pub(crate) const TXS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("txs");
pub(crate) const IDS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("ids");
pub(crate) const ENTRIES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("entries");
pub(crate) const PENDING: TableDefinition<'_, &str, u32> = TableDefinition::new("pending");
pub(crate) const WAITING: MultimapTableDefinition<'_, &str, &str> =
    MultimapTableDefinition::new("waiting");
const TIPS: TableDefinition<'_, &str, u64> = TableDefinition::new("tips");
pub(crate) const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
/// First `poh_seq` of a log engine commit → the log offset of its first record.
pub(crate) const FRAMES: TableDefinition<'_, u64, u64> = TableDefinition::new("frames");

/// How many tables [`IndexDb::init`] makes (checked by a test).
const TABLES: usize = 19;

const SCHEMA_KEY: &str = "schema";
const CHAIN_KEY: &str = "chain";
/// Where the log engine's committed records end (u64 BE).
pub(crate) const LOG_END_KEY: &str = "log_end";
/// The seq the log engine's next transaction must be at least (u64 BE).
pub(crate) const LOG_NEXT_SEQ_KEY: &str = "log_next_seq";
/// Bumped whenever the layout above changes incompatibly; older files are then refused
/// rather than misread.
const SCHEMA_VERSION: u64 = 1;

/// The page cache the index database gets: 32 MiB (it holds entries and headers; the records
/// are read from the log through the page cache of the operating system).
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;
/// The free space [`IndexDb::open`] keeps on the database's file system: 64 MiB.
pub const DEFAULT_RESERVE_BYTES: u64 = 64 << 20;
/// The log's segment size: large enough that a store of millions has few files, small enough
/// that expired data's space comes back soon.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

fn open_database(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    match Database::builder().set_cache_size(cache_bytes).create(path) {
        Ok(db) => Ok(db),
        // A lock-protocol mismatch is also another process holding the file (one running
        // another redb generation): the remedy is the same.
        Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch) => {
            Err(StoreError::InUse(path.to_path_buf()))
        }
        Err(e) => Err(StoreError::Open {
            path: path.to_path_buf(),
            source: Box::new(e.into()),
        }),
    }
}

/// The redb engine of [`Store`]. Readers and the one committer share it through `&self`: redb
/// gives each read transaction a snapshot, so reads never see half a commit.
pub(crate) struct IndexDb {
    /// `None` between an I/O failure and the reopen that follows it: redb refuses every
    /// operation of a handle whose write failed, so the handle is replaced. Each call holds its
    /// own reference only while it begins a transaction.
    db: RwLock<Option<Arc<Database>>>,
    path: PathBuf,
    options: StoreOptions,
}

/// How [`IndexDb::open_with`] opens a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// The page cache: most of a node's memory. redb's own default (1 GiB) let a node's RSS
    /// pass 1.5 GB.
    pub cache_bytes: usize,
    /// Free space kept on the database's file system: below it, writes fail with
    /// [`StoreError::Full`] before they begin, so the engine itself rarely meets a full disk.
    /// At most a tenth of the file system is kept, so a small volume still takes writes.
    pub reserve_bytes: u64,
    /// The size of the log's segment files: expired records' disk space is given back a
    /// whole segment at a time.
    pub segment_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_BYTES,
            reserve_bytes: DEFAULT_RESERVE_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

impl std::fmt::Debug for IndexDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexDb")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl IndexDb {
    /// Opens the database file at `path`, creating it (and its tables) when absent.
    ///
    /// Fails with [`StoreError::InUse`] when another handle (in this process or another) has it
    /// open, and with [`StoreError::Corrupt`] when it was written with another schema version.
    pub(crate) fn open_with(
        path: impl AsRef<Path>,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = open_database(&path, options.cache_bytes)?;
        let store = Self {
            db: RwLock::new(Some(Arc::new(db))),
            path,
            options,
        };
        // A store already made needs no write to open, so a node starts on a full disk too.
        if !store.initialized()? {
            store.writing(|| store.init())?;
        }
        Ok(store)
    }

    /// The open database, reopened first when an I/O failure discarded it. A reopen can
    /// fail while a reader of the discarded handle is still finishing; the next call retries.
    pub(crate) fn db(&self) -> Result<Arc<Database>, StoreError> {
        if let Some(db) = &*self.db.read().unwrap_or_else(|p| p.into_inner()) {
            return Ok(db.clone());
        }
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = &*slot {
            return Ok(db.clone());
        }
        let db = Arc::new(open_database(&self.path, self.options.cache_bytes)?);
        *slot = Some(db.clone());
        Ok(db)
    }

    /// Runs one write: refused as [`StoreError::Full`] before it begins when the file system
    /// is below the reserve, and, when the engine meets an I/O error, the handle is discarded
    /// (to be reopened from the last commit on disk) and a full disk is told as such.
    pub(crate) fn writing<T>(
        &self,
        write: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.check_space()?;
        self.freeing(write)
    }

    /// [`IndexDb::writing`] for a write that gives space back (expiry): it may use the
    /// reserve, which is what the reserve is for.
    pub(crate) fn freeing<T>(
        &self,
        write: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = write();
        match result {
            Err(e) if e.is_io() => {
                *self.db.write().unwrap_or_else(|p| p.into_inner()) = None;
                if e.is_disk_full() {
                    Err(StoreError::Full {
                        path: self.path.clone(),
                        why: e.to_string(),
                    })
                } else {
                    self.check_space().and(Err(e))
                }
            }
            other => other,
        }
    }

    /// [`StoreError::Full`] when the database's file system has less free space than the
    /// reserve (capped at a tenth of its size). A file system that cannot be asked is let be:
    /// the engine's own error then tells.
    fn check_space(&self) -> Result<(), StoreError> {
        let Some((available, size)) = free_space(&self.path) else {
            return Ok(());
        };
        let reserve = self.options.reserve_bytes.min(size / 10);
        if available <= reserve {
            return Err(StoreError::Full {
                path: self.path.clone(),
                why: format!("{available} bytes free, {reserve} kept in reserve"),
            });
        }
        Ok(())
    }

    /// The database file.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether every table exists and the schema version is this one's.
    fn initialized(&self) -> Result<bool, StoreError> {
        let txn = self.db()?.begin_read()?;
        let tables = txn.list_tables()?.count() + txn.list_multimap_tables()?.count();
        if tables != TABLES {
            return Ok(false);
        }
        let meta = txn.open_table(META)?;
        let schema = meta.get(SCHEMA_KEY)?.map(|v| decode_u64(v.value()));
        Ok(schema == Some(Some(SCHEMA_VERSION)))
    }

    /// Creates every table up front, so that read transactions never meet a missing table,
    /// and stamps (or checks) the schema version.
    fn init(&self) -> Result<(), StoreError> {
        let txn = self.db()?.begin_write()?;
        {
            txn.open_table(TXS)?;
            txn.open_table(IDS)?;
            txn.open_table(ENTRIES)?;
            txn.open_table(PENDING)?;
            txn.open_multimap_table(WAITING)?;
            txn.open_table(TIPS)?;
            txn.open_table(FRAMES)?;
            headers::create(&txn)?;
            Self::create_lifecycle(&txn)?;
            let mut meta = txn.open_table(META)?;
            let stored = meta.get(SCHEMA_KEY)?.map(|v| decode_u64(v.value()));
            match stored {
                None => {
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_be_bytes().as_slice())?;
                }
                Some(Some(SCHEMA_VERSION)) => {}
                Some(_) => return Err(StoreError::Corrupt("schema version")),
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// A counter the log engine keeps in `meta` under `key` (0 before it is first set); `what`
/// names it when its bytes are damaged.
pub(crate) fn meta_u64(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
    what: &'static str,
) -> Result<u64, StoreError> {
    match meta.get(key)? {
        None => Ok(0),
        Some(v) => decode_u64(v.value()).ok_or(StoreError::Corrupt(what)),
    }
}

/// The free and the total bytes of the file system holding `path` (`None` when it cannot be
/// asked: the engine's own errors then tell).
pub(crate) fn free_space(path: &Path) -> Option<(u64, u64)> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fs = rustix::fs::statvfs(dir).ok()?;
    Some((
        fs.f_bavail.saturating_mul(fs.f_frsize),
        fs.f_blocks.saturating_mul(fs.f_frsize),
    ))
}

pub(crate) fn decode_u64(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

/// The key after the last one of a `u64`-keyed table: what the next commit must start at.
fn next_key<V: redb::Value + 'static>(
    table: &impl ReadableTable<u64, V>,
) -> Result<u64, StoreError> {
    match table.last()? {
        None => Ok(0),
        Some((k, _)) => k
            .value()
            .checked_add(1)
            .ok_or(StoreError::Sequence("key space exhausted")),
    }
}

pub(crate) fn read_chain(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<ChainMeta>, StoreError> {
    meta.get(CHAIN_KEY)?
        .map(|v| ChainMeta::decode(v.value()))
        .transpose()
}

/// Fills in what a stored record does not hold: its header, and its status. A record is
/// `Pending` while it has a pending count (even once a header covers it: its DAG place is
/// not settled), else `Sealed` when a header covers its entry, else `Ordered`.
pub(crate) fn fill_status(
    record: &mut TxRecord,
    pending: &impl ReadableTable<&'static str, u32>,
    ends: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<(), StoreError> {
    fill_status_cached(record, Some(pending), ends, &mut None)
}

/// [`fill_status`] for records read in seq order: `pending` is `None` when nothing is
/// pending, and `last` remembers the header of the last entry (records share entries).
pub(crate) fn fill_status_cached(
    record: &mut TxRecord,
    pending: Option<&impl ReadableTable<&'static str, u32>>,
    ends: &impl ReadableTable<u64, &'static [u8]>,
    last: &mut Option<(u64, Option<String>)>,
) -> Result<(), StoreError> {
    record.header_id = match last {
        Some((index, header_id)) if *index == record.entry_index => header_id.clone(),
        _ => {
            let header_id = headers::covering(ends, record.entry_index)?;
            *last = Some((record.entry_index, header_id.clone()));
            header_id
        }
    };
    let waits = match pending {
        Some(pending) => pending.get(record.tx.tx_id.as_str())?.is_some(),
        None => false,
    };
    record.status = if waits {
        TxStatus::Pending
    } else if record.header_id.is_some() {
        TxStatus::Sealed
    } else {
        TxStatus::Ordered
    };
    Ok(())
}

/// What the log engine reads and writes here, beside its log.
impl IndexDb {
    pub(crate) fn chain(&self) -> Result<Option<ChainMeta>, StoreError> {
        let txn = self.db()?.begin_read()?;
        read_chain(&txn.open_table(META)?)
    }

    pub(crate) fn entries(
        &self,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Option<EntryPage>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let entries = txn.open_table(ENTRIES)?;
        let count = next_key(&entries)?;
        if from > count {
            return Ok(None);
        }
        let start_hash = match from.checked_sub(1) {
            None => match read_chain(&txn.open_table(META)?)? {
                Some(chain) => poh_core::genesis(&chain.chain_id),
                None => return Ok(None),
            },
            Some(prev) => {
                let bytes = entries
                    .get(prev)?
                    .ok_or(StoreError::Corrupt("PoH entry sequence with a gap"))?;
                decode_entry(bytes.value())?.hash
            }
        };
        let mut page = Vec::new();
        let mut read = 0;
        for item in entries.range(from..)?.take(limit) {
            if read >= max_bytes {
                break;
            }
            let (_, bytes) = item?;
            read += bytes.value().len();
            page.push(decode_entry(bytes.value())?);
        }
        Ok(Some(EntryPage {
            start_hash,
            entries: page,
        }))
    }

    pub(crate) fn waiting_children(&self, ids: &[&str]) -> Result<Vec<Vec<String>>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let waiting = txn.open_multimap_table(WAITING)?;
        // Nearly always empty (parents arrive first): one look instead of one per id.
        if waiting.len()? == 0 {
            return Ok(vec![Vec::new(); ids.len()]);
        }
        ids.iter()
            .map(|id| {
                waiting
                    .get(*id)?
                    .map(|child| child.map(|c| c.value().to_owned()).map_err(Into::into))
                    .collect()
            })
            .collect()
    }

    pub(crate) fn tips(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let mut tips = txn
            .open_table(TIPS)?
            .iter()?
            .map(|item| {
                let (tx_id, seq) = item?;
                Ok((seq.value(), tx_id.value().to_owned()))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        tips.sort_unstable();
        Ok(tips)
    }

    pub(crate) fn put_header(&self, header: &Header, after: &ChainHead) -> Result<(), StoreError> {
        self.writing(|| self.put_header_impl(header, after))
    }

    pub(crate) fn header_head(&self) -> Result<Option<ChainHead>, StoreError> {
        self.header_head_impl()
    }

    pub(crate) fn header_at_entry(
        &self,
        entry_index: u64,
    ) -> Result<Option<(Header, u64)>, StoreError> {
        self.header_at_entry_impl(entry_index)
    }

    pub(crate) fn head_after(&self, height: u64) -> Result<Option<ChainHead>, StoreError> {
        self.head_after_impl(height)
    }

    pub(crate) fn headers(&self, from: u64, limit: usize) -> Result<Vec<Header>, StoreError> {
        self.headers_impl(from, limit)
    }

    pub(crate) fn header_by_hash(&self, hash: &Hash) -> Result<Option<Header>, StoreError> {
        self.header_by_hash_impl(hash)
    }

    pub(crate) fn child_head(&self, chain_id: &str) -> Result<Option<ChainHead>, StoreError> {
        self.child_head_impl(chain_id)
    }

    pub(crate) fn child_header_by_hash(
        &self,
        hash: &Hash,
    ) -> Result<Option<ChildHeader>, StoreError> {
        self.child_header_by_hash_impl(hash)
    }

    pub(crate) fn children_recorded(
        &self,
        seqs: std::ops::Range<u64>,
    ) -> Result<Vec<ChildHeader>, StoreError> {
        self.children_recorded_impl(seqs)
    }

    pub(crate) fn progress(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.progress_impl(key)
    }

    pub(crate) fn set_progress(&self, key: &str, value: u64) -> Result<(), StoreError> {
        self.writing(|| self.set_progress_impl(key, value))
    }

    pub(crate) fn missing_parents(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.missing_parents_impl(after, limit)
    }

    pub(crate) fn compact(&self) -> Result<bool, StoreError> {
        self.compact_impl()
    }
}
