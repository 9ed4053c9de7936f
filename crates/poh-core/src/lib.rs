//! poh-core: the pure heart of poh — types, rules and Proof of History, with no I/O, no async
//! runtime and no global state beyond CPU feature detection.
//!
//! - [`hash`]: the [`Hash`] type and one-shot SHA-256 helpers;
//! - [`chain`]: the PoH hash step `h = SHA-256(h)`, with SHA-NI and 16-lane AVX-512 backends
//!   chosen at run time and the `sha2` crate as the portable reference;
//! - [`tx`] and [`validate`]: the transaction, its canonical signing bytes and digest, and
//!   every rule of SPEC §2 as a typed [`ValidationError`];
//! - [`signing`]: ML-DSA-87 keys (stored as 32-byte seeds), signing and verification;
//! - [`merkle`]: the RFC 6962 Merkle tree hash and inclusion proofs;
//! - [`poh`]: genesis, entries and the [`Poh`] state machine;
//! - [`recorder`]: [`PohRecorder`], the generator thread (paced, unpaced or low-power);
//! - [`verify`]: serial, lane-interleaved and all-core verification of entries;
//! - [`header`]: the sealed [`Header`] of SPEC §6, its bytes, hash and signature;
//! - [`seal`]: sealing a [`Batch`] of entries into a header, and [`HeaderVerifier`], which
//!   checks a header and the entries it covers;
//! - [`poh_log`]: the PoH log file format that `poh verify` reads;
//! - [`proof`]: inclusion proofs, from an item's header up the federation levels, and the
//!   link a trusted key anchors;
//! - [`chain_file`]: the chain file `poh export` writes and `poh verify --chain` checks
//!   whole: entries, tick periods, headers, signatures and recorded child headers, and
//!   whether a trusted key anchors it.
//!
//! Data flow: a transport decodes a [`Tx`], [`Tx::validate`] and [`Tx::verify_signature`]
//! admit it, its [`Tx::digest`] is handed to [`PohRecorder::record`], and the resulting
//! [`Entry`] stream is what the store keeps and what [`verify`] re-checks.
#![deny(missing_docs)]
// Unsafe code is confined to the SIMD hash backends in `chain`.
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

#[allow(unsafe_code)]
pub mod chain;
pub mod chain_file;
mod error;
pub mod hash;
pub mod header;
pub mod merkle;
pub mod poh;
pub mod poh_log;
pub mod proof;
pub mod recorder;
pub mod seal;
pub mod signing;
pub mod tx;
pub mod validate;
pub mod verify;

pub use error::Error;
pub use hash::{Hash, hashv, sha256};
pub use header::{Header, Level};
pub use poh::{Entry, Poh, PohState, genesis};
pub use recorder::{PohConfig, PohMode, PohRecorder, RateProbe, Recorded, RecordedEntry};
pub use seal::{Batch, ChainHead, HeaderError, HeaderVerifier};
pub use signing::SigningKey;
pub use tx::Tx;
pub use validate::{Limits, ValidationError};
pub use verify::VerifyError;
