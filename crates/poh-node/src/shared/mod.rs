//! The bottom layer above `error` and `config`: small pieces that layers knowing nothing of
//! each other speak alike, kept here so that none of them reaches up for them.
//!
//! - [`Transport`]: the four protocols, the metrics' `transport` label and the peers file's
//!   keys;
//! - what becomes of a transaction ([`Accepted`], [`Rejected`], [`SubmitError`]), the
//!   `reason` label it is counted under ([`RejectReason`]), and the one table from a refusal
//!   to its code on every wire ([`Refusal`]);
//! - [`ByteBudget`]: the bytes held while untrusted input is read, across clients and per
//!   [`ClientKey`];
//! - `Live`: a value a reload replaces while its readers run;
//! - `accept_and_drain`: the loop every listener, and the relay, runs its work in;
//! - `unix_now`, and `read_store` for the servers and the federation link alike.

mod answer;
mod budget;
mod drain;
mod live;
mod transport;

use std::{sync::Arc, time::SystemTime};

use poh_store::{Store, StoreError};

use crate::NodeError;

pub use answer::{Accepted, Refusal, RejectReason, Rejected, SubmitError, TxResult};
pub use budget::{ByteBudget, ClientKey, Exhausted, Reservation};
pub(crate) use drain::{Source, accept_and_drain};
pub(crate) use live::Live;
pub use transport::{Transport, UnknownTransport};

/// Seconds since the Unix epoch (0 on a clock before it).
pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Runs a store read on the blocking pool: redb reads do file I/O, which must not stall the
/// async threads.
pub(crate) async fn read_store<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, NodeError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|_| NodeError::TaskFailed("store read"))?
        .map_err(NodeError::from)
}
