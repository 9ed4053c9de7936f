//! Fuzzes the protobuf `poh.v1.Tx` decoding of gRPC and QUIC, `poh_node::tx_from_pb`,
//! validation, and the signing bytes, digest and signature check of valid transactions.
//! Must never panic. `cargo test -p poh-node` replays the corpus through the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("pb_tx_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
