// The body of the `header` fuzz target, `include!`d both by the target and by poh-core's
// corpus-replay test (`crates/poh-core/tests/it/fuzz_corpus.rs`), so the two cannot drift.

/// Decode the input as a stored header (header bytes, then signature) and as bare header
/// bytes; never panic. Whatever decodes must give back exactly the input, and hashing and
/// checking the signature must not panic (their results do not matter).
fn one_input(data: &[u8]) {
    use poh_core::Header;
    if let Ok(h) = Header::from_signed_bytes(data) {
        assert_eq!(
            h.to_signed_bytes(),
            data,
            "signed header does not round-trip"
        );
        let _ = h.hash();
        let _ = h.verify_signature();
    }
    if let Ok(h) = Header::from_bytes(data) {
        assert!(h.signature.is_empty());
        assert_eq!(h.bytes(), data, "header bytes do not round-trip");
        let _ = h.hash();
        let _ = h.verify_signature();
    }
}
