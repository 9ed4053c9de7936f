//! Replays the fuzz corpus (`fuzz/corpus/poh_log`) through the body of the `poh_log` fuzz
//! target, so plain `cargo test` keeps every input the fuzzer found interesting passing
//! without nightly or cargo-fuzz. Keep `one_input` in step with `fuzz/fuzz_targets/poh_log.rs`.

use std::{fs, path::Path};

use poh_core::{chain::Backend, poh_log::LogReader, verify};

/// Entries read per `read_chunk` call.
const CHUNK: usize = 64;
/// The differential check runs only on logs this small, to keep each input cheap.
const MAX_HASHES_PER_TICK: u64 = 64;
const MAX_ENTRIES: usize = 256;

/// The fuzz target's body: parse, never panic; on small logs `verify_lanes` must agree
/// exactly with `verify_serial`.
fn one_input(data: &[u8]) {
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

#[test]
fn fuzz_corpus_replays_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/poh_log");
    let mut files = 0;
    for item in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = item.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The panic hook has already printed the message; add which input it was.
        if std::panic::catch_unwind(|| one_input(&data)).is_err() {
            panic!("corpus input {} panics", path.display());
        }
        files += 1;
    }
    assert!(
        files >= 10,
        "only {files} corpus files in {}; expected at least 10",
        dir.display()
    );
}
