//! Fuzzes the reading of an `OUT_OF_RANGE` status that names expired transactions
//! (`Expired::from_status`), which catch-up, `poh subscribe` and other clients apply to what a
//! peer sends. Must never panic. `cargo test -p poh-node` replays the corpus through the same
//! body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("expired_status_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
