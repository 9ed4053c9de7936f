//! Fuzzes the QUIC stream framing (`poh_node::wire::frame::FrameDecoder`) with chunk
//! boundaries taken from the input, checking they never change the frames, and decodes each
//! frame as a `poh.v1.Tx`. Must never panic. `cargo test -p poh-node` replays the corpus
//! through the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("quic_frame_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
