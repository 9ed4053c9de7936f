//! Fuzzes the UDP listener's datagram decoding (`poh_node::ingress::udp::decode`) and the validation
//! that follows it. Must never panic. `cargo test -p poh-node` replays the corpus through the
//! same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("udp_datagram_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
