//! poh-core: the pure heart of poh. No I/O, no async, no global state beyond CPU detection.
//!
//! - [`hash`]: the [`Hash`] type and one-shot SHA-256 helpers;
//! - [`chain`]: the PoH hash step `h = SHA-256(h)`, with a SHA-NI backend chosen at run time;
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod chain;
pub mod hash;

pub use hash::{Hash, hashv, sha256};
