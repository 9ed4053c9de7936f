// The body of the `link_message` fuzz target, `include!`d both by the target and by
// poh-node's corpus-replay test (`crates/poh-node/tests/it/fuzz_corpus.rs`), so the two
// cannot drift.

/// A link's messages as the parent reads them: the first (its `Hello`) held to
/// `MAX_HELLO_BYTES`, every one checked by the link codec's walk before prost decodes it.
/// The input is split into messages where its bytes say (a 2-byte length before each). None
/// may panic; a message the walk lets through holds no more entries or items than the caps,
/// every hash in it is 32 bytes, and it decodes into a bounded multiple of its wire size.
fn one_input(data: &[u8]) {
    use poh_proto::{
        bounded::{Bounded as _, MAX_HEADER_ENTRIES, MAX_HEADER_ITEMS, MAX_HELLO_BYTES},
        federation::{ChildMessage, child_message::Kind},
    };
    use prost::Message as _;

    let mut rest = data;
    let mut first = true;
    while let [a, b, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
        let (message, after) = tail.split_at(len);
        rest = after;
        if first && message.len() > MAX_HELLO_BYTES {
            return;
        }
        first = false;
        if ChildMessage::check_encoded(message).is_err() {
            continue;
        }
        let Ok(decoded) = ChildMessage::decode(message) else {
            continue;
        };
        match decoded.kind {
            Some(Kind::Header(sealed)) => {
                assert!(sealed.entries.len() <= MAX_HEADER_ENTRIES);
                let items: usize = sealed.entries.iter().map(|e| e.mixins.len()).sum();
                assert!(items <= MAX_HEADER_ITEMS);
                for e in &sealed.entries {
                    assert!(e.hash.is_empty() || e.hash.len() == 32, "entry hash {}", e.hash.len());
                    assert!(e.mixins.iter().all(|m| m.len() == 32));
                }
                // Empty entries are the worst case: two bytes on the wire, one struct each.
                let entry = std::mem::size_of::<poh_proto::federation::Entry>();
                let held = sealed.header.len()
                    + sealed.signature.len()
                    + sealed.entries.iter().map(|e| entry + e.hash.len()).sum::<usize>()
                    + items * (std::mem::size_of::<Vec<u8>>() + 32);
                assert!(
                    held <= 4 * message.len() + 64 * sealed.entries.len(),
                    "{} wire bytes decode into {held}",
                    message.len()
                );
                let _ = poh_node::wire::protobuf::sealed_from_pb(sealed);
            }
            Some(Kind::Hello(_)) | None => {}
        }
    }
}
