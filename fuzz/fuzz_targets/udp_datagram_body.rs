// The body of the `udp_datagram` fuzz target, `include!`d both by the target and by
// poh-node's corpus-replay test (`crates/poh-node/tests/it/fuzz_corpus.rs`).

/// One datagram through the UDP listener's decode step, then the pipeline's validation, as
/// the node runs them; never panic. `decode` must accept exactly what `tx_from_json` does.
fn one_input(data: &[u8]) {
    let decoded = poh_node::ingress::udp::decode(data);
    assert_eq!(decoded.is_some(), poh_node::tx_from_json(data).is_ok());
    let Some(tx) = decoded else {
        return;
    };
    let limits = poh_node::NodeConfig::default().ingest.limits();
    if tx.validate(&limits).is_ok() {
        let _ = tx.digest();
    }
}
