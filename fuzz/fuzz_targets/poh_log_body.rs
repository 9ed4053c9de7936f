// The body of the `poh_log` fuzz target, `include!`d both by the target and by poh-core's
// corpus-replay test (`crates/poh-core/tests/it/fuzz_corpus.rs`), so the two cannot drift.

/// Entries read per `read_chunk` call.
const CHUNK: usize = 64;
/// The differential check runs only on logs this small, to keep each input cheap.
const MAX_HASHES_PER_TICK: u64 = 64;
const MAX_ENTRIES: usize = 256;

/// Parse, never panic; on small logs `verify_lanes` must agree exactly with `verify_serial`.
fn one_input(data: &[u8]) {
    use poh_core::{chain::Backend, poh_log::LogReader, verify};
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
}
