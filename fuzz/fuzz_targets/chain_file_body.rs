// The body of the `chain_file` fuzz target, `include!`d both by the target and by poh-core's
// corpus-replay test (`crates/poh-core/tests/it/fuzz_corpus.rs`), so the two cannot drift.

/// Files whose chain has a larger `hashes_per_tick` are only opened, not verified: each entry
/// may claim up to that many hashes, which would make one input slow.
const MAX_HASHES_PER_TICK: u64 = 4096;

/// Open the input as a chain file and verify it with the portable hasher; either may fail,
/// neither may panic.
fn one_input(data: &[u8]) {
    use poh_core::{
        chain::Backend,
        chain_file::{ChainReader, verify::verify_chain},
    };
    let Ok((start, reader)) = ChainReader::open(data) else {
        return;
    };
    if start.hashes_per_tick > MAX_HASHES_PER_TICK {
        return;
    }
    let _ = verify_chain(&start, reader, Backend::portable(), &[], &|_| {});
}
