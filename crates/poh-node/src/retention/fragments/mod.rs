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
mod error;
pub mod format;
pub mod location;
pub mod restore;
pub mod writer;

pub use batch::SealedBatch;
pub use error::FragmentError;
pub use location::Location;
pub use restore::{Rebuilt, RestoreReport, rebuild, restore};
pub use writer::FragmentWriter;

/// The [`Store::progress`](poh_store::Store::progress) key of the next height whose fragments
/// are to be written: every height below it has all `k + m` fragments written.
pub const PROGRESS_KEY: &str = "fragments";

/// The largest `k + m`: fragment `i` goes to location `i mod len`, and more than 256
/// fragments per batch only multiplies small objects (reed-solomon-simd itself allows up to
/// 65,536 shards).
pub const MAX_FRAGMENTS: usize = 256;

/// Whether `data` + `parity` is a coding this module can use; the reason when not.
pub fn check_coding(data: usize, parity: usize) -> Result<(), String> {
    if data == 0 || parity == 0 {
        return Err(format!(
            "fragments.data and fragments.parity must be at least 1 (got {data} and {parity})"
        ));
    }
    if data + parity > MAX_FRAGMENTS
        || !reed_solomon_simd::ReedSolomonEncoder::supports(data, parity)
    {
        return Err(format!(
            "fragments.data + fragments.parity must be at most {MAX_FRAGMENTS} (got {data} + \
             {parity})"
        ));
    }
    Ok(())
}
