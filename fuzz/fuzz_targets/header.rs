//! Fuzzes the sealed-header decoders (`poh_core::Header::from_signed_bytes` and
//! `Header::from_bytes`), checking that whatever decodes encodes back to exactly the same
//! bytes. Must never panic. `cargo test -p poh-core` replays the corpus through the same
//! body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("header_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
