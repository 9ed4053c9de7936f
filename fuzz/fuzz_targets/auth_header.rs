//! Fuzzes the check of an `Authorization` header (`Bearer`, and `Basic` as a browser sends it
//! for the explorer): never a panic, and only the token gets in. `cargo test -p poh-node`
//! replays the corpus through the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("auth_header_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
