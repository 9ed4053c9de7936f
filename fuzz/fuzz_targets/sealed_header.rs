//! Fuzzes the federation link's sealed headers: a `poh.federation.v1.ChildMessage` decoded
//! with prost, then `poh_node::wire::protobuf::sealed_from_pb` on a `SealedHeader`. Must
//! never panic. `cargo test -p poh-node` replays the corpus through the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("sealed_header_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
