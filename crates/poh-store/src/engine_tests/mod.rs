//! The [`Store`] contract, checked on every engine: each test here runs once per engine.

use std::path::Path;

use poh_core::{Entry, PohState, Tx, sha256};

use crate::{ChainMeta, Commit, LogStore, NewTx, RedbStore, Store, StoreError, TxRecord, TxStatus};

/// An engine under test, opened in a directory of its own.
pub(crate) trait Engine: Store + Sized + std::fmt::Debug {
    /// Opens (or makes) the engine's store in `dir`.
    fn open_at(dir: &Path) -> Result<Self, StoreError>;
}

impl Engine for RedbStore {
    fn open_at(dir: &Path) -> Result<Self, StoreError> {
        RedbStore::open(dir.join("db"))
    }
}

impl Engine for LogStore {
    fn open_at(dir: &Path) -> Result<Self, StoreError> {
        LogStore::open(dir.join("store"))
    }
}

pub(crate) fn open<E: Engine>() -> (tempfile::TempDir, E) {
    let dir = tempfile::tempdir().unwrap();
    let store = E::open_at(dir.path()).unwrap();
    (dir, store)
}

pub(crate) fn record(id: &str, seq: u64, parents: &[&str]) -> TxRecord {
    let tx = Tx {
        tx_id: id.into(),
        holder_id: "h".into(),
        timestamp: 1.25,
        payload: id.as_bytes().to_vec(),
        parent_ids: parents.iter().map(|p| p.to_string()).collect(),
        ..Tx::default()
    };
    TxRecord {
        digest: tx.digest(),
        dag_parents: tx.parent_ids.clone(),
        tx,
        poh_seq: seq,
        poh_hash: sha256(&seq.to_be_bytes()),
        entry_index: seq,
        received_at: 2.5,
        status: TxStatus::Ordered,
        header_id: None,
    }
}

pub(crate) fn new(id: &str, seq: u64, missing: &[&str]) -> NewTx {
    NewTx {
        record: record(id, seq, missing),
        missing_parents: missing.iter().map(|p| p.to_string()).collect(),
    }
}

/// Transactions and entries of one commit.
type Batch<'a> = (&'a [NewTx], &'a [(u64, Entry)]);

pub(crate) fn entry(i: u64) -> Entry {
    Entry {
        num_hashes: 3,
        hash: sha256(&i.to_le_bytes()),
        mixins: vec![sha256(b"m")],
    }
}

pub(crate) fn chain() -> ChainMeta {
    ChainMeta {
        chain_id: "c".into(),
        hashes_per_tick: 10,
        state: PohState::genesis("c"),
    }
}

pub(crate) fn header(height: u64, start: u64, end: u64, prev: poh_core::Hash) -> poh_core::Header {
    poh_core::Header {
        chain_id: "c".into(),
        level: poh_core::Level::Municipality,
        height,
        prev_header_hash: prev,
        poh_start: start,
        poh_end: end,
        poh_end_hash: sha256(&end.to_be_bytes()),
        poh_hashes: 3 * (end - start),
        items_root: sha256(b"items"),
        item_count: end - start,
        timestamp: 1.0,
        public_key: vec![1, 2, 3],
        signature: vec![4, 5],
    }
}

/// Runs each generic test on each engine.
macro_rules! on_every_engine {
    ($($name:ident),* $(,)?) => {
        mod redb {
            $(#[test]
            fn $name() {
                super::$name::<crate::RedbStore>()
            })*
        }
        mod log {
            $(#[test]
            fn $name() {
                super::$name::<crate::LogStore>()
            })*
        }
    };
}

mod commits;
mod lifecycle;
