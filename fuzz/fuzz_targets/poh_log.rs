//! Fuzzes the PoH log parser, then checks `verify_lanes` against `verify_serial` on what it
//! parsed. Must never panic. `cargo test` replays the corpus through the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("poh_log_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
