// The body of the `config` fuzz target, `include!`d both by the target and by poh-node's
// corpus-replay test (`crates/poh-node/tests/it/fuzz_corpus.rs`), so the two cannot drift.

/// Read a node configuration as `poh serve --config` does and validate it; never panic
/// (including while formatting the error's line and column).
fn one_input(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match poh_node::NodeConfig::from_toml(text) {
        Ok(config) => config,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = config.db_path();
    let _ = config.ingest.limits();
    match config.validate() {
        Ok(()) => {
            let _ = config.poh.target_hashes_per_second();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
