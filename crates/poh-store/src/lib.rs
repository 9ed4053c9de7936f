//! poh-store: where a node keeps what it acknowledged.
//!
//! - [`Store`]: the storage trait the node's ingest pipeline and its readers use. One writer
//!   (the pipeline's committer) calls [`Store::commit`]; any number of readers call the rest.
//! - [`LogStore`]: the embedded engine: records in an append-only log, their ids in an LSM
//!   index, everything else in a small redb database (`index_db`).
//! - [`record`]: the types that cross the trait ([`TxRecord`], [`NewTx`], [`Commit`],
//!   [`ChainMeta`]) and their stable on-disk encodings.
//!
//! What is kept: transactions by `poh_seq` (immutable once written), an index
//! `tx_id → (poh_seq, digest)` that answers dedupe without reading the record, PoH entries by
//! index, the DAG's waiting edges and pending counts, the current tips, and the chain's identity
//! with the state to resume its PoH from, and the headers it sealed, indexed by the entries
//! they cover (so a transaction's `header_id` is one lookup from its entry), the progress of
//! the node's background work (sync points, fragments), and which sealed transactions
//! expired (their records gone, their ids, entries and headers kept) or were restored since. A [`Commit`]
//! writes a batch's transactions together with the entries that recorded them, so an
//! acknowledged transaction and its proof are on disk together or not at all.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

#[cfg(test)]
mod engine_tests;
mod error;
mod id_index;
mod index_db;
mod log_store;
pub mod record;

use poh_core::{ChainHead, Hash, Header};

pub use error::StoreError;
pub use index_db::{
    DEFAULT_CACHE_BYTES, DEFAULT_RESERVE_BYTES, DEFAULT_SEGMENT_BYTES, ExpiredRun, Expiry,
    StoreOptions,
};
pub use log_store::{LogStore, Migrated};
pub use record::{ChainMeta, ChildHeader, Commit, EntryPage, Known, NewTx, TxRecord, TxStatus};

/// Storage of one node. Implementations are internally synchronised: `commit` is called by one
/// writer at a time, reads may run concurrently with it and see only committed data.
pub trait Store: Send + Sync + 'static {
    /// The chain this store holds, or `None` for a new, empty store.
    fn chain(&self) -> Result<Option<ChainMeta>, StoreError>;

    /// What is stored under each id, in the order asked (`None`: never stored).
    fn lookup(&self, ids: &[&str]) -> Result<Vec<Option<Known>>, StoreError>;

    /// Writes a batch in one transaction: its new transactions, the PoH entries emitted since
    /// the last commit, the chain's state after them, DAG edges and tips. With `durable`, the
    /// data is on disk (fsync) when this returns; without, it becomes durable with the next
    /// durable commit, and a crash may lose it (used for idle ticks only).
    fn commit(&self, commit: &Commit<'_>, durable: bool) -> Result<(), StoreError>;

    /// The stored transaction with this id (`None` also once its record expired: see
    /// [`Store::expired`]).
    fn tx(&self, tx_id: &str) -> Result<Option<TxRecord>, StoreError>;

    /// Stored transactions by `poh_seq`, from `from_seq` inclusive, in order: at most `limit`,
    /// and no more once `max_bytes` of stored records are read (at least one, though).
    fn txs_from_seq(
        &self,
        from_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<TxRecord>, StoreError>;

    /// [`Store::txs_from_seq`] with the transactions whose records expired in their places,
    /// each marked `true`: what a replica copies. An expired one is what is left of it (the
    /// record while its bytes are still in the log; after, its stub: id, digest, entry and
    /// DAG parents). Reads are proportional to what is read, expired or not.
    fn copy_from_seq(
        &self,
        from_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<(TxRecord, bool)>, StoreError>;

    /// PoH entries from index `from`, with the hash before the first one: at most `limit`, and
    /// no more once `max_bytes` of stored entries are read (at least one, though). `None` when
    /// `from` is past the last stored entry (`from == count` gives an empty page).
    fn entries(
        &self,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Option<EntryPage>, StoreError>;

    /// A holder's stored transactions in `poh_seq` order from `from_seq`: at most `limit`, and
    /// the seq to ask from next when there are more (`None`: no more). Expired ones are left
    /// out. Found through an index kept with the records, so what it reads grows with what it
    /// returns, not with the store.
    fn holder_txs(
        &self,
        holder_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<(Vec<TxRecord>, Option<u64>), StoreError>;

    /// The ids of the stored transactions that name `tx_id` in their `parent_ids`, in
    /// `poh_seq` order: at most `limit`. Expired ones are left out. From an index, like
    /// [`Store::holder_txs`].
    fn children_of(&self, tx_id: &str, limit: usize) -> Result<Vec<String>, StoreError>;

    /// The current DAG tips (transactions no stored transaction names as a parent), oldest
    /// first, as `(poh_seq, tx_id)`.
    fn tips(&self) -> Result<Vec<(u64, String)>, StoreError>;

    /// For each id, the stored transactions that name it as a parent while it is missing
    /// (they wait for it), in the order asked.
    fn waiting_children(&self, ids: &[&str]) -> Result<Vec<Vec<String>>, StoreError>;

    /// Stores a header this node sealed, durably, with the head after it (so the next
    /// header continues it exactly). It must continue the last stored header: the next
    /// height, starting where it ended.
    fn put_header(&self, header: &Header, after: &ChainHead) -> Result<(), StoreError>;

    /// What the next header continues, or `None` before the first header.
    fn header_head(&self) -> Result<Option<ChainHead>, StoreError>;

    /// The header covering entry `entry_index`, and the `poh_seq` of its first item.
    fn header_at_entry(&self, entry_index: u64) -> Result<Option<(Header, u64)>, StoreError>;

    /// What the header after height `height` continues (`None`: no such header).
    fn head_after(&self, height: u64) -> Result<Option<ChainHead>, StoreError>;

    /// This node's headers from height `from`, in order, at most `limit`.
    fn headers(&self, from: u64, limit: usize) -> Result<Vec<Header>, StoreError>;

    /// One of this node's headers by its `header_hash`.
    fn header_by_hash(&self, hash: &Hash) -> Result<Option<Header>, StoreError>;

    /// What `chain_id`'s next accepted header must continue, or `None` before its first.
    fn child_head(&self, chain_id: &str) -> Result<Option<ChainHead>, StoreError>;

    /// An accepted child header by its `header_hash`.
    fn child_header_by_hash(&self, hash: &Hash) -> Result<Option<ChildHeader>, StoreError>;

    /// The child headers whose items have a `poh_seq` in `seqs`, in seq order.
    fn children_recorded(&self, seqs: std::ops::Range<u64>)
    -> Result<Vec<ChildHeader>, StoreError>;

    /// A progress marker of the node's background work (a peer's sync point, the last
    /// height whose fragments are written), or `None` when never set.
    fn progress(&self, key: &str) -> Result<Option<u64>, StoreError>;

    /// Sets a progress marker, durably.
    fn set_progress(&self, key: &str, value: u64) -> Result<(), StoreError>;

    /// Ids that stored transactions name as parents but that are not stored: what the DAG
    /// waits for. At most `limit`, in id order, after `after` (`""`: from the first), so a
    /// caller can go round all of them however many there are.
    fn missing_parents(&self, after: &str, limit: usize) -> Result<Vec<String>, StoreError>;

    /// Removes, durably, the records of transactions received before `received_before`
    /// (Unix seconds) with a `poh_seq` below `below_seq`, in storage order, at most `limit`;
    /// the pass ends at the first younger one. Transactions still waiting for a parent stay,
    /// and so do records [restored](Store::restore) at or after `received_before`: their
    /// TTL runs from the restore. Ids, PoH entries and headers stay, so dedupe holds and the
    /// chain still verifies. Their disk space comes back once a whole log segment has
    /// expired. Expiry is let into the free space kept in reserve: it is how a full disk
    /// gets space back.
    fn expire(
        &self,
        received_before: f64,
        below_seq: u64,
        limit: usize,
    ) -> Result<Expiry, StoreError>;

    /// The `header_id` that sealed `tx_id` when its record expired (`None`: not expired).
    fn expired(&self, tx_id: &str) -> Result<Option<String>, StoreError>;

    /// The first run of expired transactions with a `poh_seq` in `seqs`: from the first
    /// expired seq there through the last one before the next stored transaction (or the end
    /// of `seqs`), with the headers that sealed them. A seq inside a run that is not an
    /// expired transaction is a child header's item, never a transaction. A run names at most
    /// `max_headers` headers (at least one); what expired past them is the next run. `None`
    /// when nothing in `seqs` expired. Reads are proportional to the run, not to the store.
    fn expired_run(
        &self,
        seqs: std::ops::Range<u64>,
        max_headers: usize,
    ) -> Result<Option<ExpiredRun>, StoreError>;

    /// Puts expired records back, durably, as they were (`received_at` included), noting that
    /// they came back at `restored_at` (Unix seconds) so [`Store::expire`] keeps them until
    /// that time is as old as the TTL. Records not expired are skipped; one that differs from
    /// what was expired at its `poh_seq` (id, digest, entry) refuses the whole call. Returns
    /// how many came back.
    fn restore(&self, records: &[TxRecord], restored_at: f64) -> Result<u64, StoreError>;

    /// Gives the space freed by removals back to the file system. `false` when there was
    /// nothing to do or a transaction was in progress (try again later).
    fn compact(&self) -> Result<bool, StoreError>;
}
