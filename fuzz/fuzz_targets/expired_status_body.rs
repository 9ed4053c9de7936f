// The body of the `expired_status` fuzz target, `include!`d both by the target and by
// poh-node's corpus-replay test (`crates/poh-node/tests/it/fuzz_corpus.rs`), so the two
// cannot drift.

/// The input is the status's message and the values of its trailers `poh-expired-from`,
/// `-to`, `-headers` and `-count`, separated by NUL bytes (a missing part is absent). What
/// reads as a run must be a range in order; one the node wrote must read back the same.
fn one_input(data: &[u8]) {
    use poh_node::wire::expired::{Expired, expired_status};
    use tonic::metadata::{MetadataMap, MetadataValue};

    let mut parts = data.split(|b| *b == 0);
    let message = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let mut meta = MetadataMap::new();
    for key in [
        "poh-expired-from",
        "poh-expired-to",
        "poh-expired-headers",
        "poh-expired-count",
    ] {
        let Some(value) = parts.next() else { break };
        if let Ok(value) = MetadataValue::try_from(value) {
            meta.insert(key, value);
        }
    }
    let status = tonic::Status::with_metadata(tonic::Code::OutOfRange, message, meta);
    let Some(run) = Expired::from_status(&status) else {
        return;
    };
    assert!(run.from_seq <= run.to_seq, "a run out of order: {run:?}");
    assert!(
        run.count <= (run.to_seq - run.from_seq).saturating_add(1),
        "more transactions than seqs: {run:?}"
    );
    let written = expired_status(&poh_store::ExpiredRun {
        from_seq: run.from_seq,
        to_seq: run.to_seq,
        count: run.count,
        header_ids: run.header_ids.clone(),
    });
    let back = Expired::from_status(&written).unwrap_or_else(|| panic!("{written:?} unread"));
    assert_eq!(back.from_seq, run.from_seq);
    assert_eq!(back.to_seq, run.to_seq);
    assert_eq!(back.count, run.count);
}
