//! Queries: a holder's transactions by seq, a transaction's children.

use poh_core::{ChainHead, Tx};

use super::*;

/// Transaction `i` of holder `h{i % 3}`; from 1 on it names `t{i - 1}`, and every tenth
/// names `t0` too.
fn tx_at(i: u64) -> NewTx {
    let mut parents = Vec::new();
    if i > 0 {
        parents.push(format!("t{}", i - 1));
    }
    if i.is_multiple_of(10) && i > 0 {
        parents.push("t0".to_string());
    }
    let tx = Tx {
        tx_id: format!("t{i}"),
        holder_id: format!("h{}", i % 3),
        timestamp: 1.0,
        payload: vec![1; 10],
        parent_ids: parents,
        ..Tx::default()
    };
    let mut record = record("x", i, &[]);
    record.digest = tx.digest();
    record.dag_parents = tx.parent_ids.clone();
    record.tx = tx;
    NewTx {
        record,
        missing_parents: Vec::new(),
    }
}

fn fill(store: &impl Store, range: std::ops::Range<u64>) {
    let meta = chain();
    let txs: Vec<_> = range.clone().map(tx_at).collect();
    let entries: Vec<_> = range.map(|i| (i, entry(i))).collect();
    let commit = Commit {
        chain: Some(&meta),
        txs: &txs,
        entries: &entries,
        ..Commit::default()
    };
    store.commit(&commit, true).unwrap();
}

/// Every page of a holder's transactions from `from`, `limit` at a time: the seqs, and the
/// `next_seq` of each page.
fn pages(store: &impl Store, holder: &str, mut from: u64, limit: usize) -> (Vec<u64>, usize) {
    let (mut seqs, mut pages) = (Vec::new(), 0);
    loop {
        let (page, next) = store.holder_txs(holder, from, limit).unwrap();
        assert!(page.len() <= limit);
        assert!(page.iter().all(|r| r.tx.holder_id == holder));
        seqs.extend(page.iter().map(|r| r.poh_seq));
        pages += 1;
        match next {
            Some(next) => from = next,
            None => return (seqs, pages),
        }
    }
}

#[test]
fn a_holders_transactions_page_by_seq_and_children_name_their_parent() {
    let (dir, store) = open();
    for start in (0..3000).step_by(100) {
        fill(&store, start..start + 100);
    }
    let h1: Vec<u64> = (0..3000).filter(|i| i % 3 == 1).collect();
    assert_eq!(pages(&store, "h1", 0, 1000), (h1.clone(), 1));
    assert_eq!(pages(&store, "h1", 0, 7).0, h1);
    let (page, next) = store.holder_txs("h1", 1500, 2).unwrap();
    assert_eq!(
        page.iter().map(|r| r.poh_seq).collect::<Vec<_>>(),
        [1501, 1504]
    );
    assert_eq!(next, Some(1507));
    // Whole records, as `tx` answers them.
    assert_eq!(page[0], store.tx("t1501").unwrap().unwrap());
    assert_eq!(
        store.holder_txs("nobody", 0, 10).unwrap(),
        (Vec::new(), None)
    );
    assert_eq!(
        store.holder_txs("h1", 3000, 10).unwrap(),
        (Vec::new(), None)
    );

    let tens: Vec<String> = (1..300).map(|i| format!("t{}", i * 10)).collect();
    let mut of_t0 = vec!["t1".to_string()];
    of_t0.extend(tens.iter().cloned());
    assert_eq!(store.children_of("t0", usize::MAX).unwrap(), of_t0);
    assert_eq!(store.children_of("t0", 3).unwrap(), of_t0[..3]);
    assert_eq!(store.children_of("t41", 10).unwrap(), ["t42"]);
    assert!(store.children_of("t2999", 10).unwrap().is_empty());

    // Learned again from the log: as after a crash, or a store from before these indexes.
    drop(store);
    for index in ["holders", "children"] {
        std::fs::remove_dir_all(dir.path().join("store").join(index)).unwrap();
    }
    let store = reopen(dir.path()).unwrap();
    assert_eq!(pages(&store, "h1", 0, 100).0, h1);
    assert_eq!(store.children_of("t0", usize::MAX).unwrap(), of_t0);
}

#[test]
fn expired_transactions_leave_the_answers() {
    let (_dir, store) = open();
    fill(&store, 0..30);
    let sealed = header(0, 0, 20, poh_core::Hash::default());
    store
        .put_header(&sealed, &ChainHead::after(&sealed, 0, 20))
        .unwrap();
    assert_eq!(store.expire(50.0, 20, 100).unwrap().removed, 20);
    let h0: Vec<u64> = (21..30).filter(|i| i % 3 == 0).collect();
    assert_eq!(pages(&store, "h0", 0, 2).0, h0);
    // t10 and t20 named t0: only t20 is still stored.
    assert_eq!(store.children_of("t0", 10).unwrap(), ["t20"]);
    assert_eq!(store.children_of("t19", 10).unwrap(), ["t20"]);
    // A restored record answers again: its index entries stayed.
    let mut t9 = tx_at(9).record;
    t9.received_at = 2.5;
    assert_eq!(store.restore(&[t9], 60.0).unwrap(), 1);
    let mut h0_again = vec![9];
    h0_again.extend(&h0);
    assert_eq!(pages(&store, "h0", 0, 2).0, h0_again);
    assert_eq!(store.children_of("t8", 10).unwrap(), ["t9"]);
}
