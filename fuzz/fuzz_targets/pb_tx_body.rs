// The body of the `pb_tx` fuzz target, `include!`d both by the target and by poh-node's
// corpus-replay test (`crates/poh-node/tests/it/fuzz_corpus.rs`), so the two cannot drift.

/// Decode a `poh.v1.Tx` as gRPC and QUIC do, convert, validate, and on a valid transaction
/// run the signing-bytes, digest and signature functions; never panic. Re-encoding must give
/// the same transaction, and so must its JSON form.
fn one_input(data: &[u8]) {
    use poh_core::{Tx, tx::SIGNING_DOMAIN};
    use poh_proto::v1 as pb;
    use prost::Message as _;

    /// Equal, with timestamps compared bit for bit (NaN included).
    fn assert_same(a: &Tx, b: &Tx, what: &str) {
        assert_eq!(
            a.timestamp.to_bits(),
            b.timestamp.to_bits(),
            "{what}: timestamp"
        );
        let zero = |t: &Tx| Tx {
            timestamp: 0.0,
            ..t.clone()
        };
        assert_eq!(zero(a), zero(b), "{what}");
    }

    let Ok(message) = pb::Tx::decode(data) else {
        return;
    };
    let reencoded = message.encode_to_vec();
    let tx = poh_node::tx_from_pb(message);
    let again = poh_node::tx_from_pb(
        pb::Tx::decode(reencoded.as_slice())
            .unwrap_or_else(|e| panic!("a re-encoded Tx does not decode: {e}")),
    );
    // A timestamp of -0.0 must come back as -0.0 too (corpus entry
    // `negative-zero-timestamp.bin`): prost's derive dropped it, so `pb::Tx` encodes by hand.
    assert_same(&tx, &again, "protobuf round trip");
    assert_eq!(
        poh_node::tx_to_pb(tx.clone()).encode_to_vec(),
        reencoded,
        "tx_to_pb(tx_from_pb(m)) encodes as m"
    );

    // Unvalidated transactions are hashed too (the saturating lengths must not panic).
    let bytes = tx.signing_bytes();
    assert!(bytes.starts_with(SIGNING_DOMAIN));
    assert_eq!(
        poh_core::sha256(&bytes),
        tx.digest(),
        "digest = sha256(signing_bytes)"
    );

    let limits = poh_node::NodeConfig::default().ingest.limits();
    if tx.validate(&limits).is_err() {
        return;
    }
    // Valid means a finite timestamp, which JSON carries bit-exactly.
    let json = poh_node::tx_to_json(&tx);
    let from_json = poh_node::tx_from_json(&json)
        .unwrap_or_else(|e| panic!("tx_to_json output does not decode: {e}"));
    assert_same(&tx, &from_json, "JSON round trip");
    // Only inputs with a key and a signature of the right lengths reach ML-DSA.
    let _ = tx.verify_signature();
}
