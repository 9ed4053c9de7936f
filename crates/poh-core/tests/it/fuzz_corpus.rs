//! Replays the fuzz corpora of poh-core's decoders (`fuzz/corpus/<target>`) through the
//! bodies of their fuzz targets, so plain `cargo test` keeps every input the fuzzer found
//! interesting passing without nightly or cargo-fuzz. Each body is the target's own, included
//! from one file into a module of its own.

use std::{fs, path::Path};

/// Runs every file of `fuzz/corpus/<target>` through `one_input`; none may panic, and there
/// must be at least 10 of them.
fn replay(target: &str, one_input: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
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

mod poh_log {
    include!("../../../../fuzz/fuzz_targets/poh_log_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("poh_log", one_input);
    }
}

mod header {
    include!("../../../../fuzz/fuzz_targets/header_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("header", one_input);
    }
}

mod chain_file {
    include!("../../../../fuzz/fuzz_targets/chain_file_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("chain_file", one_input);
    }
}
