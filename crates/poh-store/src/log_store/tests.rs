//! What only the log engine has: a log tail no commit finished, damaged bytes, and an id
//! index that learns again what a crash took from its memory.

use crate::{
    Commit, LogStore, Store, StoreError,
    engine_tests::{chain, commit_txs, entry, new},
};

fn commit(store: &LogStore, ids: std::ops::Range<u64>) {
    let meta = chain();
    let txs: Vec<_> = ids
        .clone()
        .map(|i| new(&format!("tx{i}"), i, &[]))
        .collect();
    let entries: Vec<_> = ids.map(|i| (i, entry(i))).collect();
    store
        .commit(
            &Commit {
                chain: Some(&meta),
                txs: &txs,
                entries: &entries,
                ..Commit::default()
            },
            true,
        )
        .unwrap();
}

fn segment(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("store/log").join(format!("{:020}.log", 0))
}

/// A crash after a commit's records reached the log but before the index database said so:
/// those bytes are not a commit. They are cut on open, never read, and written over.
#[test]
fn a_tail_no_commit_finished_is_cut_and_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path().join("store")).unwrap();
    commit(&store, 0..3);
    let committed = std::fs::metadata(segment(dir.path())).unwrap().len();
    drop(store);
    // What the unfinished commit left: whole records of a later seq, then half of one.
    let mut tail = Vec::new();
    super::segments::encode_record(&mut tail, 3, &new("ghost", 3, &[]).record.encode());
    tail.extend_from_slice(&tail.clone()[..20]);
    let mut bytes = std::fs::read(segment(dir.path())).unwrap();
    bytes.extend_from_slice(&tail);
    std::fs::write(segment(dir.path()), bytes).unwrap();

    let store = LogStore::open(dir.path().join("store")).unwrap();
    assert_eq!(
        std::fs::metadata(segment(dir.path())).unwrap().len(),
        committed
    );
    assert_eq!(store.tx("ghost").unwrap(), None);
    assert_eq!(store.lookup(&["ghost"]).unwrap(), [None]);
    assert_eq!(store.txs_from_seq(0, 10, usize::MAX).unwrap().len(), 3);
    commit(&store, 3..5);
    let all = store.txs_from_seq(0, 10, usize::MAX).unwrap();
    assert_eq!(
        all.iter().map(|r| r.tx.tx_id.as_str()).collect::<Vec<_>>(),
        ["tx0", "tx1", "tx2", "tx3", "tx4"]
    );
}

/// A flipped bit in a record is reported with the file and the record's offset, by every
/// read that meets it; it is never returned as data.
#[test]
fn a_damaged_record_is_reported_where_it_lies() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path().join("store")).unwrap();
    commit(&store, 0..3);
    drop(store);
    let path = segment(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let second = {
        let first_len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        first_len + super::segments::RECORD_HEADER
    };
    bytes[second + super::segments::RECORD_HEADER + 5] ^= 0x04;
    std::fs::write(&path, bytes).unwrap();

    let store = LogStore::open(dir.path().join("store")).unwrap();
    let damaged = |r: Result<(), StoreError>| match r {
        Err(StoreError::Damaged {
            path: p, offset, ..
        }) => {
            assert_eq!((p, offset), (path.clone(), second as u64));
        }
        other => panic!("expected Damaged, got {other:?}"),
    };
    damaged(store.tx("tx1").map(drop));
    damaged(store.txs_from_seq(0, 10, usize::MAX).map(drop));
    assert_eq!(store.tx("tx0").unwrap().unwrap().tx.tx_id, "tx0");
    assert_eq!(store.tx("tx2").unwrap().unwrap().tx.tx_id, "tx2");
}

/// The id index keeps its newest ids in memory; a store dropped without a clean shutdown
/// finds every one of them again from the log.
#[test]
fn ids_the_index_held_in_memory_are_found_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path().join("store")).unwrap();
    for start in (0..2_000).step_by(100) {
        commit(&store, start..start + 100);
    }
    drop(store);
    let store = LogStore::open(dir.path().join("store")).unwrap();
    let ids: Vec<String> = (0..2_000).map(|i| format!("tx{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let found = store.lookup(&refs).unwrap();
    for (i, known) in found.iter().enumerate() {
        assert_eq!(known.map(|k| k.seq), Some(i as u64), "tx{i}");
    }
    // Dedupe holds: the same id again is refused, unwritten.
    let again = [new("tx7", 2_000, &[])];
    assert!(matches!(
        commit_txs(&store, &again),
        Err(StoreError::Sequence(_))
    ));
    assert_eq!(store.txs_from_seq(1_999, 10, usize::MAX).unwrap().len(), 1);
}
