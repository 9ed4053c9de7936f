//! Queries (SPEC §4): a holder's transactions by `poh_seq`, a transaction's children. gRPC
//! `List` and HTTP `GET /v1/tx?holder_id=`, `GET /v1/tx/{id}/children` ask the same of the
//! store's query indexes, so they answer alike; on a replica too, whose store learns the
//! indexes from the records it copies.

use poh_core::validate::MAX_ID_BYTES;
use poh_store::TxRecord;

use super::Services;
use crate::NodeError;

/// A page of a holder's transactions when the caller names no size…
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// …and the most it may ask for.
pub(crate) const MAX_LIMIT: usize = 1000;
/// The most children one answer names (the oldest): a transaction that thousands of others
/// name is a hub, and the node never builds an answer it cannot bound.
pub(crate) const MAX_CHILDREN: usize = 10_000;

/// A page of a holder's transactions.
pub(crate) struct Page {
    pub records: Vec<TxRecord>,
    /// The seq to ask from next; `None` when there is no more.
    pub next_seq: Option<u64>,
}

/// Why a query's arguments are refused.
pub(crate) fn check_holder(holder_id: &str) -> Result<(), String> {
    match holder_id.len() {
        0 => Err("holder_id is required".into()),
        n if n > MAX_ID_BYTES => Err(format!("holder_id is longer than {MAX_ID_BYTES} bytes")),
        _ => Ok(()),
    }
}

/// The page size asked for: 0 (or absent) is the default, above the most is refused.
pub(crate) fn check_limit(limit: usize) -> Result<usize, String> {
    match limit {
        0 => Ok(DEFAULT_LIMIT),
        n if n > MAX_LIMIT => Err(format!("limit must be 1–{MAX_LIMIT}")),
        n => Ok(n),
    }
}

impl Services {
    /// `holder_id`'s transactions from `from_seq`, `limit` at most (checked by the caller).
    pub(crate) async fn list(
        &self,
        holder_id: String,
        from_seq: u64,
        limit: usize,
    ) -> Result<Page, NodeError> {
        let (records, next_seq) = self
            .read(move |store| store.holder_txs(&holder_id, from_seq, limit))
            .await?;
        Ok(Page { records, next_seq })
    }

    /// The ids of the stored transactions naming `tx_id` as a parent, oldest first; `None`
    /// when no transaction `tx_id` was ever stored (an expired one is known).
    pub(crate) async fn children(&self, tx_id: String) -> Result<Option<Vec<String>>, NodeError> {
        self.read(move |store| {
            if store.lookup(&[tx_id.as_str()])?[0].is_none() {
                return Ok(None);
            }
            store.children_of(&tx_id, MAX_CHILDREN).map(Some)
        })
        .await
    }
}
