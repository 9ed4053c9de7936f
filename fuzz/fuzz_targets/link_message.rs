//! Fuzzes the federation link's messages as the parent reads them: the first one's size
//! limit, the link codec's walk over each encoded message before it is decoded (entry and
//! item caps, 32-byte hashes), prost's decode, and the conversion of a header. Must never
//! panic. `cargo test -p poh-node` replays the corpus through the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("link_message_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
