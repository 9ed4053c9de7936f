//! Replays the fuzz corpus (`fuzz/corpus/poh_log`) through the body of the `poh_log` fuzz
//! target, so plain `cargo test` keeps every input the fuzzer found interesting passing
//! without nightly or cargo-fuzz; the body is the target's own, included from one file.

use std::{fs, path::Path};

include!("../../../../fuzz/fuzz_targets/poh_log_body.rs");

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
