//! The one error type of poh-node. Each message says what the operator can do about it.
//!
//! It is the bottom layer because every layer reports through it, the configuration's checks
//! included; so the errors it carries are defined here too, [`FragmentError`] with them.

mod fragments;

use std::{net::SocketAddr, path::PathBuf};

pub use fragments::FragmentError;

/// Everything that can stop a node from starting or keep it from running.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A listener's address cannot be bound.
    #[error(
        "cannot listen for {what} on {addr}: {source}; stop whatever uses it or choose another port"
    )]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The data directory cannot be created or used.
    #[error(
        "cannot use the data directory {path}: {source}; check that it is a writable directory"
    )]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A setting that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data directory holds another chain.
    #[error(
        "the data directory holds a chain with {setting} = {stored}, but this node is configured \
         with {configured}; use the stored value or another --data-dir"
    )]
    ChainMismatch {
        /// Which setting differs.
        setting: &'static str,
        /// What the store holds.
        stored: String,
        /// What the node was given.
        configured: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] poh_store::StoreError),
    /// Erasure-coded fragments could not be written, read or restored.
    #[error(transparent)]
    Fragments(#[from] FragmentError),
    /// PoH failed (a bad setting, or the generator stopped).
    #[error(transparent)]
    Poh(#[from] poh_core::Error),
    /// The PoH generator stopped or went out of step with the store.
    #[error("the PoH generator stopped unexpectedly; restart the node (it resumes from the store)")]
    PohStopped,
    /// A replica cannot be promoted now.
    #[error("cannot promote this replica: {0}")]
    Promote(String),
    /// A replica's copy stopped: what its primary sent does not verify, or is another chain.
    #[error("the replica stopped copying: {0}")]
    Replica(String),
    /// A part of the node ended unexpectedly, so the node stopped.
    #[error("the node's {0} stopped unexpectedly; see the log above, then restart the node")]
    TaskFailed(&'static str),
}
