//! Fuzzes the peers file parser (`poh_node::network::peers::parse`, what `PeerBook::load` runs):
//! JSON shape and every address rule, then the write-and-read-back round trip. Must never
//! panic. `cargo test -p poh-node` replays the corpus through the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("peers_file_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
