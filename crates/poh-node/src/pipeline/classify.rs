//! Dedupe of a batch: for each transaction, whether it is a duplicate (stored, handed to the
//! writer, or earlier in the batch), a conflict, or new — and, for the new ones, which parents
//! are not stored yet.

use poh_store::{Known, Store};

use super::{IdMap, IdSet, Prepared, writer::InFlight};
use crate::{
    NodeError,
    shared::{Accepted, Rejected, TxResult},
};

/// What the committer decided for one transaction of a batch.
pub(super) enum Slot {
    Done(TxResult),
    /// The `n`th new transaction of the batch.
    New(usize),
    /// A repeat, within the batch, of the `n`th new transaction.
    SameAs(usize),
}

/// What [`classify`] decided for a batch.
pub(super) struct Classified {
    /// One per transaction, in order.
    pub slots: Vec<Slot>,
    /// The new transactions, by index into the batch.
    pub new: Vec<usize>,
    /// For each new one, its parents not stored yet.
    pub missing: Vec<Vec<String>>,
}

/// Decides, for every transaction of the batch, duplicate / conflict / new; for the new
/// ones (by index into `txs`), which parents are not stored yet.
pub(super) fn classify(
    store: &dyn Store,
    in_flight: &InFlight,
    txs: &[Prepared],
) -> Result<Classified, NodeError> {
    let mut seen = IdSet::with_capacity_and_hasher(txs.len(), Default::default());
    let mut ids: Vec<&str> = Vec::with_capacity(txs.len());
    for p in txs {
        for id in std::iter::once(&p.tx.tx_id).chain(&p.tx.parent_ids) {
            if seen.insert(id.as_str()) {
                ids.push(id);
            }
        }
    }
    // In flight first, store second: the writer forgets an id only once it is stored,
    // so an id missed in one is found in the other.
    let mut stored: IdMap<&str, Known> = IdMap::default();
    {
        let in_flight = in_flight.lock();
        for id in &ids {
            if let Some(k) = in_flight.get(*id) {
                stored.insert(id, *k);
            }
        }
    }
    ids.retain(|id| !stored.contains_key(id));
    let found = store.lookup(&ids)?;
    stored.extend(
        ids.iter()
            .zip(found)
            .filter_map(|(id, known)| known.map(|k| (*id, k))),
    );

    let mut slots = Vec::with_capacity(txs.len());
    let mut new: Vec<usize> = Vec::with_capacity(txs.len());
    let mut missing = Vec::with_capacity(txs.len());
    let mut in_batch: IdMap<&str, usize> =
        IdMap::with_capacity_and_hasher(txs.len(), Default::default());
    for (i, p) in txs.iter().enumerate() {
        let id = p.tx.tx_id.as_str();
        let slot = if let Some(k) = stored.get(id) {
            Slot::Done(if k.digest == p.digest {
                Ok(Accepted::Duplicate {
                    poh_seq: k.seq,
                    poh_hash: k.poh_hash,
                })
            } else {
                Err(Rejected::Conflict)
            })
        } else if let Some(&n) = in_batch.get(id) {
            if txs[new[n]].digest == p.digest {
                Slot::SameAs(n)
            } else {
                Slot::Done(Err(Rejected::Conflict))
            }
        } else {
            // Parents stored before, or earlier in this batch, are known.
            missing.push(
                p.tx.parent_ids
                    .iter()
                    .filter(|parent| {
                        !stored.contains_key(parent.as_str())
                            && !in_batch.contains_key(parent.as_str())
                    })
                    .cloned()
                    .collect(),
            );
            in_batch.insert(id, new.len());
            new.push(i);
            Slot::New(new.len() - 1)
        };
        slots.push(slot);
    }
    Ok(Classified {
        slots,
        new,
        missing,
    })
}
