//! Fuzzes the PoH log parser, then checks `verify_lanes` against `verify_serial` on what it
//! parsed. Must never panic. The same body runs on the corpus in
//! `crates/poh-core/tests/fuzz_corpus.rs`; keep the two in step.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poh_core::{chain::Backend, poh_log::LogReader, verify};

/// Entries read per `read_chunk` call.
const CHUNK: usize = 64;
/// The differential check runs only on logs this small, to keep each input cheap.
const MAX_HASHES_PER_TICK: u64 = 64;
const MAX_ENTRIES: usize = 256;

fuzz_target!(|data: &[u8]| {
    let Ok((header, mut reader)) = LogReader::open(data) else {
        return;
    };
    let mut entries = Vec::new();
    // Read to the end or the first bad line, keeping the entries before it.
    while let Ok(1..) = reader.read_chunk(CHUNK, &mut entries) {}
    if header.hashes_per_tick <= MAX_HASHES_PER_TICK && entries.len() <= MAX_ENTRIES {
        let hpt = header.hashes_per_tick;
        let serial = verify::verify_serial(&header.start_hash, &entries, hpt);
        let lanes = verify::verify_lanes(Backend::fastest(), &header.start_hash, &entries, hpt);
        assert_eq!(serial, lanes);
    }
});
