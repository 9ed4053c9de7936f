// The body of the `sealed_header` fuzz target, `include!`d both by the target and by
// poh-node's corpus-replay test (`crates/poh-node/tests/it/fuzz_corpus.rs`), so the two
// cannot drift.

/// Decode a `ChildMessage` as the parent's link handler does and convert a sealed header to
/// the core header and entries; either may fail, neither may panic. What converts keeps the
/// header bytes, the signature and every entry as sent.
fn one_input(data: &[u8]) {
    use poh_proto::federation::{ChildMessage, child_message::Kind};
    use prost::Message as _;

    let Ok(message) = ChildMessage::decode(data) else {
        return;
    };
    let Some(Kind::Header(sealed)) = message.kind else {
        return;
    };
    let sent = sealed.clone();
    let Ok((header, entries)) = poh_node::wire::protobuf::sealed_from_pb(sealed) else {
        return;
    };
    assert_eq!(header.bytes(), sent.header);
    assert_eq!(header.signature, sent.signature);
    assert_eq!(entries.len(), sent.entries.len());
    let _ = header.hash();
    let _ = header.verify_signature();
}
