//! Rebuilding a sealed batch from its fragments ([`rebuild`]) and putting its transaction
//! records back into the store ([`restore()`]).
//!
//! Every fragment is fetched; a missing one (or an unreachable location) and a corrupt one
//! (its checksum, or its parameters, do not hold) are skipped with a warning. Any `k` good
//! ones rebuild the batch, which is then checked against the header the store holds before
//! anything is written: the rebuilt bytes are trusted only as far as the header vouches.

use std::{collections::BTreeMap, sync::Arc};

use futures_util::future::join_all;
use object_store::ObjectStoreExt as _;
use poh_core::Hash;
use poh_store::Store;

use super::{
    FragmentError, SealedBatch,
    format::{self, Fragment},
    location::{self, Location},
};
use crate::{NodeError, config::check_coding};

/// A batch rebuilt from fragments and verified against its header.
#[derive(Clone, Debug)]
pub struct Rebuilt {
    /// The batch's bytes, exactly as the writer encoded them.
    pub bytes: Vec<u8>,
    /// The batch.
    pub batch: SealedBatch,
    /// Good fragments found (at least `k`).
    pub fragments: usize,
    /// Indexes not found or not readable.
    pub missing: Vec<usize>,
    /// Indexes found but failing their checks.
    pub corrupt: Vec<usize>,
}

/// What [`restore()`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreReport {
    /// The header.
    pub header_id: String,
    /// Its height.
    pub height: u64,
    /// Transaction records in the batch.
    pub transactions: usize,
    /// Records put back (those that had expired).
    pub restored: u64,
    /// Good fragments found.
    pub fragments: usize,
}

/// Rebuilds and verifies the batch of this node's header `header_id` from `data` + `parity`
/// fragments at `locations` (as the writer placed them).
pub async fn rebuild(
    locations: &[Location],
    data: usize,
    parity: usize,
    store: Arc<dyn Store>,
    header_id: &str,
) -> Result<Rebuilt, NodeError> {
    check_coding(data, parity).map_err(NodeError::Config)?;
    let hash: Hash = header_id
        .parse()
        .map_err(|_| FragmentError::BadHeaderId(header_id.to_owned()))?;
    let header_id = hash.to_hex();
    let lookup = store.clone();
    let header = blocking(move || Ok(lookup.header_by_hash(&hash)?))
        .await?
        .ok_or_else(|| FragmentError::UnknownHeader(header_id.clone()))?;

    let total = data + parity;
    let fetched = join_all((0..total).map(|i| fetch(locations, &header_id, i))).await;
    let mut missing = Vec::new();
    let mut corrupt = Vec::new();
    let mut good = Vec::new();
    for (index, bytes) in fetched.iter().enumerate() {
        let Some(bytes) = bytes else {
            missing.push(index);
            continue;
        };
        match check(bytes, &hash, index, data, parity) {
            Ok(f) => good.push(f),
            Err(reason) => {
                tracing::warn!(%header_id, index, %reason, "skipping a corrupt fragment");
                corrupt.push(index);
            }
        }
    }
    // Fragments that pass their checksum agree unless forged; should they not, the largest
    // group that agrees on the batch length is used.
    let mut by_len: BTreeMap<u64, Vec<Fragment<'_>>> = BTreeMap::new();
    for f in good {
        by_len.entry(f.batch_len).or_default().push(f);
    }
    let best = by_len
        .into_values()
        .max_by_key(Vec::len)
        .unwrap_or_default();
    if best.len() < data {
        return Err(FragmentError::NotEnough {
            header_id,
            readable: best.len(),
            needed: data,
            total,
            missing,
            corrupt,
        }
        .into());
    }
    let fragments = best.len();
    let bytes = format::rebuild(&best[..data])?;
    let batch = SealedBatch::decode(&bytes)?;
    let (checked, check_store) = (batch.clone(), store.clone());
    blocking(move || {
        checked.verify(check_store.as_ref(), &header)?;
        // Fragments written before batches were checked for completeness may lack records;
        // what they hold is still good, and the rest cannot come from them.
        if let Err(incomplete) = checked.check_complete(check_store.as_ref()) {
            tracing::warn!(error = %incomplete, "these fragments hold an incomplete batch");
        }
        Ok(())
    })
    .await?;
    Ok(Rebuilt {
        bytes,
        batch,
        fragments,
        missing,
        corrupt,
    })
}

/// [`rebuild`], then puts the batch's expired transaction records back into `store`
/// (records still stored are left as they are). The TTL keeps them for one TTL from now.
pub async fn restore(
    locations: &[Location],
    data: usize,
    parity: usize,
    store: Arc<dyn Store>,
    header_id: &str,
) -> Result<RestoreReport, NodeError> {
    let rebuilt = rebuild(locations, data, parity, store.clone(), header_id).await?;
    let header = &rebuilt.batch.header;
    let (header_id, height) = (header.id(), header.height);
    let transactions = rebuilt.batch.txs.len();
    let fragments = rebuilt.fragments;
    let records = rebuilt.batch.txs;
    // Kept for a TTL from now: their `received_at` is already older than that.
    let now = crate::shared::unix_now();
    let restored = blocking(move || Ok(store.restore(&records, now)?)).await?;
    Ok(RestoreReport {
        header_id,
        height,
        transactions,
        restored,
        fragments,
    })
}

/// Fragment `index`'s bytes, or `None` (logged) when it cannot be read.
async fn fetch(locations: &[Location], header_id: &str, index: usize) -> Option<Vec<u8>> {
    let location = location::for_index(locations, index)?;
    let path = location.object(header_id, index);
    let result = match location.store().get(&path).await {
        Ok(got) => got.bytes().await,
        Err(e) => Err(e),
    };
    match result {
        Ok(bytes) => Some(bytes.to_vec()),
        // Debug only: the outcome lists the missing indexes anyway.
        Err(object_store::Error::NotFound { .. }) => {
            tracing::debug!(%header_id, index, location = %location.name, "fragment not found");
            None
        }
        Err(error) => {
            tracing::warn!(%header_id, index, location = %location.name, %error, "cannot read a fragment");
            None
        }
    }
}

/// The fragment in `bytes` if it is fragment `index` of this header's `data` + `parity`.
fn check<'a>(
    bytes: &'a [u8],
    hash: &Hash,
    index: usize,
    data: usize,
    parity: usize,
) -> Result<Fragment<'a>, String> {
    let f = Fragment::decode(bytes).map_err(|e| e.to_string())?;
    if &f.header_hash != hash {
        return Err("it belongs to another header".into());
    }
    if f.index != index {
        return Err(format!("it is fragment {}, stored as {index}", f.index));
    }
    if (f.k, f.m) != (data, parity) {
        return Err(format!(
            "it was written with {} data + {} parity fragments, not {data} + {parity}; pass \
             -k {} -m {}",
            f.k, f.m, f.k, f.m
        ));
    }
    Ok(f)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| NodeError::TaskFailed("fragment restore"))?
}
