//! Fuzzes the chain-file reader (`poh_core::chain_file::ChainReader`) and its verifier
//! (`chain_file::verify::verify_chain`): both must answer Ok or Err, never panic. `cargo test
//! -p poh-core` replays the corpus through the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("chain_file_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
