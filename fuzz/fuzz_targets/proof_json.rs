//! Fuzzes the JSON decoders of headers and inclusion proofs (`HeaderJson`, `ProofJson` and
//! its offline verification), which read what a node or a proof file hands to `poh prove`,
//! `poh verify --proof` and the Python package. Must never panic. `cargo test -p poh-node`
//! replays the corpus through the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("proof_json_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
