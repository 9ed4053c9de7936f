//! What only the log engine has: a log tail no commit finished, damaged bytes, and an id
//! index that learns again what a crash took from its memory, and expired segments given back.

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

fn log_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir.join("store/log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Expired records' disk space comes back a segment at a time, and what a node must still
/// know of them (their ids and digests, the header that sealed them, a restore's check, the
/// id index rebuilt from scratch) is read from their stubs.
#[test]
fn expired_segments_are_given_back_and_their_records_answered_from_stubs() {
    use poh_core::ChainHead;

    let dir = tempfile::tempdir().unwrap();
    let options = crate::StoreOptions {
        segment_bytes: 1024,
        ..crate::StoreOptions::default()
    };
    let open = || LogStore::open_with(dir.path().join("store"), options).unwrap();
    let store = open();
    for first in (0..200).step_by(10) {
        commit(&store, first..first + 10);
    }
    let sealed = crate::engine_tests::header(0, 0, 180, poh_core::Hash::default());
    store
        .put_header(&sealed, &ChainHead::after(&sealed, 0, 180))
        .unwrap();
    let before = log_files(dir.path());
    assert!(before.len() > 10, "{before:?}");
    let tx3 = store.tx("tx3").unwrap().unwrap();
    let known = store.lookup(&["tx3"]).unwrap()[0].unwrap();
    let head = segment(dir.path());
    let kept_head = std::fs::read(&head).unwrap();

    assert_eq!(store.expire(50.0, 180, 1000).unwrap().removed, 180);
    let after = log_files(dir.path());
    assert!(!head.exists());
    assert!(after.len() < before.len() / 3, "{after:?}");

    let check = |store: &LogStore| {
        assert_eq!(store.tx("tx3").unwrap(), None);
        assert_eq!(store.lookup(&["tx3"]).unwrap()[0], Some(known));
        assert_eq!(store.expired("tx3").unwrap(), Some(sealed.id()));
        let run = store.expired_run(0..200, 8).unwrap().unwrap();
        assert_eq!((run.from_seq, run.to_seq, run.count), (0, 179, 180));
        let page = store.txs_from_seq(0, 1000, usize::MAX).unwrap();
        assert_eq!(page.first().map(|r| r.poh_seq), Some(180));
        assert_eq!(page.len(), 20);
    };
    check(&store);
    // A reclaim that did not get to remove its file: the next open does.
    drop(store);
    std::fs::write(&head, &kept_head).unwrap();
    let store = open();
    assert!(!head.exists());
    check(&store);

    // An id index rebuilt from nothing learns the given-back ids from their stubs.
    drop(store);
    std::fs::remove_dir_all(dir.path().join("store/ids")).unwrap();
    let store = open();
    check(&store);

    // A restore brings a given-back record back whole, and it reads as before.
    let mut forged = tx3.clone();
    forged.tx.payload = b"forged".to_vec();
    forged.digest = forged.tx.digest();
    assert!(store.restore(&[forged], 60.0).is_err());
    assert_eq!(store.restore(std::slice::from_ref(&tx3), 60.0).unwrap(), 1);
    assert_eq!(store.tx("tx3").unwrap(), Some(tx3.clone()));
    let page = store.txs_from_seq(0, 1, usize::MAX).unwrap();
    assert_eq!(page, std::slice::from_ref(&tx3));
    drop(store);
    let store = open();
    assert_eq!(store.tx("tx3").unwrap(), Some(tx3));
    // And it expires again.
    assert_eq!(store.expire(70.0, 180, 1000).unwrap().removed, 1);
    assert_eq!(store.tx("tx3").unwrap(), None);
    assert_eq!(store.expired("tx3").unwrap(), Some(sealed.id()));
}

/// A replica copies a chain whose head expired and was given back: the primary reads the
/// stubs (with the DAG parents they keep), the replica stores them expired in the commit
/// that stores them, and both stores then answer alike.
#[test]
fn an_expired_head_is_copied_as_its_stubs_and_reads_as_the_primarys() {
    use poh_core::ChainHead;

    use crate::{NewTx, engine_tests::record};

    let dir = tempfile::tempdir().unwrap();
    let options = crate::StoreOptions {
        segment_bytes: 1024,
        ..crate::StoreOptions::default()
    };
    let primary = LogStore::open_with(dir.path().join("primary"), options).unwrap();
    let meta = chain();
    // Each names the one before it.
    let chained = |i: u64| NewTx {
        record: match i {
            0 => record("tx0", 0, &[]),
            i => record(&format!("tx{i}"), i, &[&format!("tx{}", i - 1)]),
        },
        missing_parents: Vec::new(),
    };
    for first in (0..200).step_by(10) {
        let txs: Vec<_> = (first..first + 10).map(chained).collect();
        let entries: Vec<_> = (first..first + 10).map(|i| (i, entry(i))).collect();
        let commit = Commit {
            chain: Some(&meta),
            txs: &txs,
            entries: &entries,
            ..Commit::default()
        };
        primary.commit(&commit, true).unwrap();
    }
    let sealed = crate::engine_tests::header(0, 0, 180, poh_core::Hash::default());
    let head = ChainHead::after(&sealed, 0, 180);
    primary.put_header(&sealed, &head).unwrap();
    assert_eq!(primary.expire(50.0, 180, 1000).unwrap().removed, 180);
    let given_back = dir
        .path()
        .join("primary/log")
        .join(format!("{:020}.log", 0));
    assert!(!given_back.exists(), "the head segment was given back");

    let copy = primary.copy_from_seq(0, 1000, usize::MAX).unwrap();
    assert_eq!(copy.len(), 200);
    assert!(copy.iter().all(|(r, gone)| *gone == (r.poh_seq < 180)));
    let (stub, _) = &copy[3];
    assert_eq!(stub.tx.tx_id, "tx3");
    assert_eq!(stub.dag_parents, ["tx2"], "the stub keeps its DAG parents");
    assert_eq!(stub.tx.payload, b"", "a given-back record's bytes are gone");
    assert_eq!(
        primary.lookup(&["tx3"]).unwrap()[0].map(|k| k.digest),
        Some(stub.digest)
    );
    // Reads skip past them, as before.
    assert_eq!(
        primary.txs_from_seq(0, 1, usize::MAX).unwrap()[0].poh_seq,
        180
    );

    let replica = LogStore::open(dir.path().join("replica")).unwrap();
    let txs: Vec<_> = (copy.iter())
        .map(|(record, _)| NewTx {
            record: record.clone(),
            missing_parents: Vec::new(),
        })
        .collect();
    let expired: Vec<u64> = (copy.iter().filter(|(_, gone)| *gone))
        .map(|(r, _)| r.poh_seq)
        .collect();
    let entries: Vec<_> = (0..200).map(|i| (i, entry(i))).collect();
    // A seq marked expired must be one of the commit's.
    let stray = Commit {
        chain: Some(&meta),
        txs: &txs[..10],
        entries: &entries[..10],
        expired: &[10],
        ..Commit::default()
    };
    assert!(replica.commit(&stray, true).is_err());
    assert!(replica.lookup(&["tx0"]).unwrap()[0].is_none());
    let commit = Commit {
        chain: Some(&meta),
        txs: &txs,
        entries: &entries,
        expired: &expired,
        ..Commit::default()
    };
    replica.commit(&commit, true).unwrap();
    replica.put_header(&sealed, &head).unwrap();

    for id in ["tx0", "tx3", "tx179", "tx180", "tx199"] {
        assert_eq!(replica.tx(id).unwrap(), primary.tx(id).unwrap(), "{id}");
        assert_eq!(replica.expired(id).unwrap(), primary.expired(id).unwrap());
        assert_eq!(
            replica.lookup(&[id]).unwrap(),
            primary.lookup(&[id]).unwrap()
        );
    }
    assert_eq!(replica.expired("tx3").unwrap(), Some(sealed.id()));
    assert_eq!(
        replica.expired_run(0..200, 8).unwrap(),
        primary.expired_run(0..200, 8).unwrap()
    );
    assert_eq!(
        replica.txs_from_seq(0, 1000, usize::MAX).unwrap(),
        primary.txs_from_seq(0, 1000, usize::MAX).unwrap()
    );
    // A replica of the replica copies the same.
    let again = replica.copy_from_seq(0, 1000, usize::MAX).unwrap();
    assert_eq!(again.len(), 200);
    for ((a, gone_a), (b, gone_b)) in again.iter().zip(&copy) {
        assert_eq!(
            (a.poh_seq, &a.tx.tx_id, a.digest, &a.dag_parents, gone_a),
            (b.poh_seq, &b.tx.tx_id, b.digest, &b.dag_parents, gone_b)
        );
    }
}
