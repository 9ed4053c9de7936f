// The body of the `proof_json` fuzz target, `include!`d both by the target and by poh-node's
// corpus-replay test (`crates/poh-node/tests/it/fuzz_corpus.rs`), so the two cannot drift.

/// Decode as `poh prove`, `poh verify --proof` and the Python package do: an inclusion proof
/// in JSON, verified, and a header in JSON; never panic. A header that decodes must come back
/// unchanged through its JSON.
fn one_input(data: &[u8]) {
    use poh_node::wire::headers::{HeaderJson, ProofJson};
    if let Ok(proof) = serde_json::from_slice::<ProofJson>(data)
        && let Ok((links, _)) = proof.verify(&[])
    {
        assert!(!links.is_empty(), "a proof verified with no link");
    }
    if let Ok(json) = serde_json::from_slice::<HeaderJson>(data)
        && let Ok(header) = json.to_header()
    {
        let again = serde_json::to_vec(&HeaderJson::new(&header, json.recorded_at_seq))
            .unwrap_or_else(|e| panic!("a decoded header does not encode: {e}"));
        let back: HeaderJson = serde_json::from_slice(&again)
            .unwrap_or_else(|e| panic!("a header's JSON does not decode: {e}"));
        assert_eq!(back.to_header().as_ref(), Ok(&header), "header JSON round trip");
        assert_eq!(back.recorded_at_seq, json.recorded_at_seq);
    }
}
