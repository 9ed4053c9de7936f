// The body of the `replica_batch` fuzz target, `include!`d both by the target and by
// poh-node's corpus-replay test (`crates/poh-node/tests/it/fuzz_corpus.rs`), so the two
// cannot drift.

/// One message as the replica's side of `Follow` reads it: the copy codec's walk first (what
/// it refuses is never decoded), then prost, then `entries_from_pb`, `record_from_pb`,
/// `child_from_pb` and `signed_from_pb` on every part. Any of them may refuse, none may panic;
/// what the walk lets through holds no more than the caps, and what converts keeps what was
/// sent.
fn one_input(data: &[u8]) {
    use poh_node::wire::{
        protobuf::entries_from_pb,
        replica::{child_from_pb, record_from_pb, signed_from_pb},
    };
    use poh_proto::{
        bounded::{
            Bounded as _, MAX_BATCH_HEADERS, MAX_BATCH_NAMES, MAX_BATCH_RECORDS,
            MAX_HEADER_ENTRIES, MAX_HEADER_ITEMS,
        },
        replica::Batch,
    };
    use prost::Message as _;

    if Batch::check_encoded(data).is_err() {
        return;
    }
    let Ok(batch) = Batch::decode(data) else {
        return;
    };
    assert!(batch.entries.len() <= MAX_HEADER_ENTRIES);
    let items: usize = batch.entries.iter().map(|e| e.mixins.len()).sum();
    assert!(items <= MAX_HEADER_ITEMS);
    for e in &batch.entries {
        assert!(
            e.hash.is_empty() || e.hash.len() == 32,
            "entry hash {}",
            e.hash.len()
        );
        assert!(e.mixins.iter().all(|m| m.len() == 32));
    }
    assert!(batch.records.len() <= MAX_BATCH_RECORDS);
    assert!(batch.children.len() <= MAX_BATCH_RECORDS);
    assert!(batch.headers.len() <= MAX_BATCH_HEADERS);
    let names: usize = batch
        .records
        .iter()
        .map(|r| r.dag_parents.len() + r.tx.as_ref().map_or(0, |tx| tx.parent_ids.len()))
        .sum();
    assert!(names <= MAX_BATCH_NAMES, "{names} names");

    let sent = batch.entries.clone();
    if let Ok(entries) = entries_from_pb(batch.entries) {
        assert_eq!(entries.len(), sent.len());
        for (entry, pb) in entries.iter().zip(&sent) {
            assert_eq!(entry.num_hashes, pb.num_hashes);
            assert_eq!(entry.hash.0.as_slice(), pb.hash.as_slice());
            assert_eq!(entry.mixins.len(), pb.mixins.len());
        }
    }
    for record in batch.records {
        let sent = record.clone();
        if let Ok(copied) = record_from_pb(record) {
            let tx = sent.tx.expect("a record without a transaction converted");
            assert_eq!(copied.poh_seq, sent.poh_seq);
            assert_eq!(copied.tx.tx_id, tx.tx_id);
            assert_eq!(copied.tx.payload, tx.payload);
            assert_eq!(copied.tx.parent_ids, tx.parent_ids);
            assert_eq!(copied.dag_parents, sent.dag_parents);
            // What the replica computes of each record before it checks it.
            let _ = copied.tx.digest();
        }
    }
    for child in batch.children {
        let sent = child.clone();
        if let Ok(copied) = child_from_pb(child) {
            let signed = sent.header.expect("a child without a header converted");
            assert_eq!(copied.header.bytes(), signed.header);
            assert_eq!(copied.header.signature, signed.signature);
            assert_eq!(copied.recorded_at_seq, sent.recorded_at_seq);
            let _ = copied.header.hash();
        }
    }
    for signed in batch.headers {
        let sent = signed.clone();
        if let Ok(header) = signed_from_pb(signed) {
            assert_eq!(header.bytes(), sent.header);
            assert_eq!(header.signature, sent.signature);
            let _ = header.hash();
            let _ = header.verify_signature();
        }
    }
}
