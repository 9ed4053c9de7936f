//! The [`Store`] contract, checked on the store the node runs.

use std::path::Path;

use poh_core::{Entry, PohState, Tx, sha256};

use crate::{ChainMeta, Commit, LogStore, NewTx, Store, StoreError, TxRecord, TxStatus};

/// A new store in a directory of its own.
pub(crate) fn open() -> (tempfile::TempDir, LogStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = reopen(dir.path()).unwrap();
    (dir, store)
}

/// Commits `txs` alone, durably.
pub(crate) fn commit_txs(store: &impl Store, txs: &[NewTx]) -> Result<(), StoreError> {
    store.commit(
        &Commit {
            txs,
            ..Commit::default()
        },
        true,
    )
}

/// The store made in `dir` by [`open`], opened again.
pub(crate) fn reopen(dir: &Path) -> Result<LogStore, StoreError> {
    LogStore::open(dir.join("store"))
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

mod commits;
mod lifecycle;
mod queries;
mod reads;
