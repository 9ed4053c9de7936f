//! Fuzzes the node configuration reader (`poh_node::NodeConfig::from_toml`) on UTF-8 inputs
//! and `validate`. Must never panic. `cargo test -p poh-node` replays the corpus through the
//! same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("config_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
