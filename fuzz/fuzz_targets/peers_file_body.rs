// The body of the `peers_file` fuzz target, `include!`d both by the target and by poh-node's
// corpus-replay test (`crates/poh-node/tests/it/fuzz_corpus.rs`), so the two cannot drift.

/// Parse a peers file as `PeerBook::load` does (`poh_node::network::peers::parse`); never panic. An
/// accepted file must stay accepted and equal when written back, compact or pretty (as
/// `PeerBook` writes it).
fn one_input(data: &[u8]) {
    let Ok(peers) = poh_node::network::peers::parse(data) else {
        return;
    };
    assert!(peers.validate().is_ok());
    assert_eq!(
        peers.iter().count(),
        peers.grpc.len() + peers.http.len() + peers.udp.len() + peers.quic.len()
    );
    for written in [
        serde_json::to_vec(&peers),
        serde_json::to_vec_pretty(&peers),
    ] {
        let written = written.unwrap_or_else(|e| panic!("Peers does not serialize: {e}"));
        let again = poh_node::network::peers::parse(&written)
            .unwrap_or_else(|e| panic!("written peers do not parse again: {e}"));
        assert_eq!(again, peers);
    }
}
