// The body of the `json_tx` fuzz target, `include!`d both by the target and by poh-node's
// corpus-replay test (`crates/poh-node/tests/it/fuzz_corpus.rs`), so the two cannot drift.

/// Decode as `POST /v1/tx` does, validate, never panic; a decoded transaction must survive
/// `tx_to_json` → `tx_from_json` unchanged (timestamp bit-exact).
fn one_input(data: &[u8]) {
    use poh_core::{Limits, Tx};
    let Ok(tx) = poh_node::tx_from_json(data) else {
        return;
    };
    let limits = poh_node::NodeConfig::default().ingest.limits();
    let valid = tx.validate(&limits).is_ok();
    let strict = Limits {
        max_payload_bytes: 16,
        require_signatures: true,
    };
    let _ = tx.validate(&strict);
    if valid {
        let _ = tx.digest();
    }
    // JSON has no NaN or infinity (`tx_to_json` writes null), and serde_json refuses numbers
    // out of f64's range, so a decoded timestamp is always finite; the guard is a safety net.
    if tx.timestamp.is_finite() {
        let json = poh_node::tx_to_json(&tx);
        let again = poh_node::tx_from_json(&json)
            .unwrap_or_else(|e| panic!("tx_to_json output does not decode: {e}"));
        assert_eq!(
            again.timestamp.to_bits(),
            tx.timestamp.to_bits(),
            "timestamp"
        );
        assert_eq!(
            Tx {
                timestamp: 0.0,
                ..again
            },
            Tx {
                timestamp: 0.0,
                ..tx
            }
        );
    }
}
