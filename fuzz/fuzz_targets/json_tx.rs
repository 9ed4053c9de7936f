//! Fuzzes the JSON transaction decoder of `POST /v1/tx` and UDP (`poh_node::tx_from_json`),
//! validates what it decodes and checks the `tx_to_json` round trip. Must never panic.
//! `cargo test -p poh-node` replays the corpus through the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("json_tx_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
