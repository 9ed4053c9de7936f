//! Erasure-coded fragments of sealed batches, and restoring a batch from them.
//!
//! Every header this node seals covers a *batch*: its PoH entries and the transactions they
//! recorded. Once sealed, the batch is encoded ([`batch`]), split into `k` data shards and
//! extended with `m` Reed-Solomon parity shards, each wrapped in a self-checking fragment
//! ([`format`](mod@format)) and written to object storage ([`location`]): local directories or
//! S3-compatible buckets, fragment `i` to location `i mod len`, named
//! `<prefix>/<header_id>/<i>`. Any `k` of the `k + m` fragments rebuild the batch.
//!
//! - [`batch`]: [`SealedBatch`], its versioned byte format, its decoder of untrusted bytes,
//!   reading it from the store, and checking it against its header;
//! - [`format`](mod@format): the fragment format (a small versioned header with the SHA-256 that makes a
//!   corrupted fragment detectable), Reed-Solomon encoding and rebuilding;
//! - [`location`]: where fragments go: a location string → an `ObjectStore` and a prefix;
//! - [`writer`]: [`FragmentWriter`], the node's task that writes every sealed height's
//!   fragments in order and then moves the durable marker [`PROGRESS_KEY`];
//! - [`restore`](mod@restore): [`rebuild`] and [`restore()`](fn@restore): fetch, skip missing or corrupt fragments,
//!   rebuild from any `k`, verify against the stored header, put the records back.
//!
//! Why the marker matters: the TTL sweep only expires transactions of heights below it when
//! fragments are configured, so a transaction leaves the hot store only once its batch can be
//! rebuilt from the fragments.

pub mod batch;
pub mod format;
pub mod location;
pub mod restore;
pub mod writer;

pub use crate::error::FragmentError;
pub use batch::SealedBatch;
pub use location::Location;
pub use restore::{Rebuilt, RestoreReport, rebuild, restore};
pub use writer::FragmentWriter;

/// The [`Store::progress`](poh_store::Store::progress) key of the next height whose fragments
/// are to be written: every height below it has all `k + m` fragments written.
pub const PROGRESS_KEY: &str = "fragments";
