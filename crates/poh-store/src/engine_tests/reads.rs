//! Paged reads, waiting children and sealed headers.

use poh_core::sha256;

use super::*;

#[test]
fn pages_stop_at_their_byte_bound_but_hold_at_least_one() {
    let (_dir, store) = open();
    let meta = chain();
    let txs = [new("a", 0, &[]), new("b", 1, &[])];
    let entries = [(0, entry(0)), (1, entry(1))];
    let commit = Commit {
        chain: Some(&meta),
        txs: &txs,
        entries: &entries,
        ..Commit::default()
    };
    store.commit(&commit, true).unwrap();
    assert_eq!(store.txs_from_seq(0, 10, 1).unwrap().len(), 1);
    assert_eq!(store.txs_from_seq(0, 10, usize::MAX).unwrap().len(), 2);
    assert_eq!(store.entries(0, 10, 1).unwrap().unwrap().entries.len(), 1);
    assert_eq!(
        store
            .entries(0, 10, usize::MAX)
            .unwrap()
            .unwrap()
            .entries
            .len(),
        2
    );
}

#[test]
fn waiting_children_name_who_waits_for_a_missing_parent() {
    let (_dir, store) = open();
    let meta = chain();
    assert_eq!(
        store.waiting_children(&["p"]).unwrap(),
        vec![Vec::<String>::new()]
    );
    let txs = [new("c1", 0, &["p"]), new("c2", 1, &["p", "q"])];
    let commit = Commit {
        chain: Some(&meta),
        txs: &txs,
        entries: &[(0, entry(0)), (1, entry(1))],
        ..Commit::default()
    };
    store.commit(&commit, true).unwrap();
    let found = store.waiting_children(&["q", "p", "zz"]).unwrap();
    assert_eq!(found[0], ["c2".to_string()]);
    let mut p = found[1].clone();
    p.sort();
    assert_eq!(p, ["c1".to_string(), "c2".to_string()]);
    assert!(found[2].is_empty());
}

#[test]
fn headers_seal_the_transactions_they_cover_and_continue_after_reopening() {
    let (dir, store) = open();
    let meta = chain();
    let txs = [new("a", 0, &[]), new("b", 1, &[]), new("c", 2, &["zz"])];
    let entries = [(0, entry(0)), (1, entry(1)), (2, entry(2))];
    let commit = Commit {
        chain: Some(&meta),
        txs: &txs,
        entries: &entries,
        ..Commit::default()
    };
    store.commit(&commit, true).unwrap();
    assert_eq!(store.header_head().unwrap(), None);
    assert_eq!(store.tx("a").unwrap().unwrap().status, TxStatus::Ordered);

    let first = header(0, 0, 2, poh_core::Hash::default());
    let after_first = poh_core::ChainHead::after(&first, 7, 2);
    store.put_header(&first, &after_first).unwrap();
    let a = store.tx("a").unwrap().unwrap();
    assert_eq!(a.status, TxStatus::Sealed);
    assert_eq!(a.header_id, Some(first.id()));
    assert_eq!(store.tx("b").unwrap().unwrap().header_id, Some(first.id()));
    // Entry 2 is not covered yet.
    assert_eq!(store.tx("c").unwrap().unwrap().header_id, None);

    // Out-of-order or overlapping headers are refused and change nothing.
    for bad in [
        header(0, 2, 3, first.hash()),
        header(2, 2, 3, first.hash()),
        header(1, 1, 3, first.hash()),
        header(1, 2, 2, first.hash()),
    ] {
        assert!(matches!(
            store.put_header(&bad, &after_first),
            Err(StoreError::Sequence(_))
        ));
    }
    let second = header(1, 2, 3, first.hash());
    store
        .put_header(&second, &after_first.next(&second, 0))
        .unwrap();
    drop(store);

    let store = reopen(dir.path()).unwrap();
    let c = store.tx("c").unwrap().unwrap();
    // A transaction waiting for a parent stays PENDING, with its header known.
    assert_eq!(c.status, TxStatus::Pending);
    assert_eq!(c.header_id, Some(second.id()));
    let page = store.txs_from_seq(0, 10, usize::MAX).unwrap();
    assert_eq!(
        page.iter().map(|r| r.status).collect::<Vec<_>>(),
        [TxStatus::Sealed, TxStatus::Sealed, TxStatus::Pending]
    );
    let head = store.header_head().unwrap().unwrap();
    assert_eq!(head, poh_core::ChainHead::after(&second, 0, 3));
    assert_eq!(
        store.headers(0, 10).unwrap(),
        [first.clone(), second.clone()]
    );
    assert_eq!(store.headers(1, 10).unwrap(), std::slice::from_ref(&second));
    assert_eq!(store.header_by_hash(&first.hash()).unwrap(), Some(first));
    assert_eq!(store.header_by_hash(&sha256(b"no")).unwrap(), None);
}
