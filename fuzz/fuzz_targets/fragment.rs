//! Fuzzes the erasure-coded fragments of sealed batches: the fragment decoder, rebuilding a
//! batch from fragments, and the batch decoder (`poh_node::retention::fragments`). Must never
//! panic. `cargo test -p poh-node` replays the corpus through the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("fragment_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
