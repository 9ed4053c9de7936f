//! [`FragmentError`]: everything that can go wrong with fragments, each message saying what
//! to do. It becomes [`NodeError::Fragments`](super::NodeError::Fragments), which is why it is
//! here rather than with the fragments (`retention::fragments`, which re-exports it).

use poh_core::HeaderError;
use poh_store::StoreError;

/// Why fragments could not be written, read or restored.
#[derive(Debug, thiserror::Error)]
pub enum FragmentError {
    /// A configured location cannot be used.
    #[error(
        "fragments location {location:?}: {reason}; use a directory, file:///dir or \
         s3://bucket/prefix"
    )]
    Location {
        /// The location as configured.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// The object store refused or failed a request.
    #[error("fragments location {location}: {source}; check that it is reachable and writable")]
    Object {
        /// The location.
        location: String,
        /// What the object store said.
        #[source]
        source: object_store::Error,
    },
    /// Bytes that should be a batch are not one (a bug or a forged set of fragments).
    #[error("the rebuilt bytes are not a poh batch: {0}; the fragments are not this node's")]
    BatchFormat(&'static str),
    /// Bytes that should be a fragment are not one (corrupted in storage).
    #[error("not a poh fragment: {0}")]
    FragmentFormat(&'static str),
    /// A batch is larger than the format can carry.
    #[error("the batch of header {header_id} is too large to encode ({what})")]
    TooLarge {
        /// The header.
        header_id: String,
        /// Which length overflowed.
        what: &'static str,
    },
    /// Reed-Solomon coding failed.
    #[error("erasure coding failed: {0}")]
    Coding(#[from] reed_solomon_simd::Error),
    /// Too few readable fragments to rebuild a batch.
    #[error(
        "header {header_id}: only {readable} of the {needed} fragments needed are readable \
         (missing: {}; corrupt: {}); restore needs any {needed} of {total}",
        list(missing),
        list(corrupt)
    )]
    NotEnough {
        /// The header.
        header_id: String,
        /// Good fragments found.
        readable: usize,
        /// `k`.
        needed: usize,
        /// `k + m`.
        total: usize,
        /// Indexes not found (or not readable).
        missing: Vec<usize>,
        /// Indexes found but failing their checks.
        corrupt: Vec<usize>,
    },
    /// The header id is not hex of 32 bytes.
    #[error("{0:?} is not a header id (64 hex digits); see `poh headers`")]
    BadHeaderId(String),
    /// This store has no such header.
    #[error("header {0} is not one of this node's headers; check the id and --data-dir")]
    UnknownHeader(String),
    /// The rebuilt batch does not match its header.
    #[error("header {header_id}: the rebuilt batch does not match the stored header: {reason}")]
    Mismatch {
        /// The header.
        header_id: String,
        /// What differs.
        reason: String,
    },
    /// A batch lacks some of its header's items: neither a record nor a child header is
    /// stored at those `poh_seq`s (the records expired, or were lost, before it was written).
    #[error(
        "header {header_id} (height {height}): the batch lacks {missing} of its {items} items \
         (poh_seq {seqs}): their records are no longer in the store"
    )]
    Incomplete {
        /// The header.
        header_id: String,
        /// Its height.
        height: u64,
        /// The header's `item_count`.
        items: u64,
        /// Items neither a record nor a child header.
        missing: u64,
        /// Their `poh_seq`s, as ranges (the first few).
        seqs: String,
    },
    /// The rebuilt batch's entries do not verify against its header.
    #[error("header {header_id}: the rebuilt batch does not verify: {source}")]
    Verify {
        /// The header.
        header_id: String,
        /// The first failure.
        #[source]
        source: HeaderError,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file named by the configuration cannot be read.
    #[error("cannot read {path}: {source}; check the path and its permissions")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `1, 4, 5`, or `none`.
fn list(indexes: &[usize]) -> String {
    if indexes.is_empty() {
        return "none".into();
    }
    indexes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
