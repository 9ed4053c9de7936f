//! Commits and the reads that follow them.

use poh_core::genesis;

use crate::{EntryPage, Known};

use super::*;

#[test]
fn a_commit_reads_back_exactly_and_survives_reopening() {
    let (dir, store) = open();
    assert_eq!(store.chain().unwrap(), None);
    let meta = chain();
    let txs = [new("a", 0, &[]), new("b", 1, &[])];
    let entries = [(0, entry(0)), (1, entry(1))];
    let commit = Commit {
        chain: Some(&meta),
        txs: &txs,
        entries: &entries,
        tips_added: &[(1, "b".to_string())],
        ..Commit::default()
    };
    store.commit(&commit, true).unwrap();
    drop(store);

    let store = reopen(dir.path()).unwrap();
    assert_eq!(store.chain().unwrap(), Some(meta));
    assert_eq!(store.tx("a").unwrap().unwrap(), txs[0].record);
    assert_eq!(store.tx("zz").unwrap(), None);
    let found = store.lookup(&["b", "zz", "a"]).unwrap();
    assert_eq!(found[0].unwrap().seq, 1);
    assert_eq!(found[0].unwrap().digest, txs[1].record.digest);
    assert_eq!(found[1], None);
    assert_eq!(found[2].unwrap().poh_hash, txs[0].record.poh_hash);
    let all = store.txs_from_seq(0, 10, usize::MAX).unwrap();
    assert_eq!(all.iter().map(|r| r.poh_seq).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(
        store.txs_from_seq(1, 10, usize::MAX).unwrap()[0].tx.tx_id,
        "b"
    );
    assert_eq!(store.tips().unwrap(), vec![(1, "b".to_string())]);

    let page = store.entries(0, 10, usize::MAX).unwrap().unwrap();
    assert_eq!(page.start_hash, genesis("c"));
    assert_eq!(page.entries, vec![entry(0), entry(1)]);
    let page = store.entries(1, 10, usize::MAX).unwrap().unwrap();
    assert_eq!((page.start_hash, page.entries.len()), (entry(0).hash, 1));
    assert_eq!(
        store.entries(2, 10, usize::MAX).unwrap().unwrap().entries,
        vec![]
    );
    assert_eq!(store.entries(3, 10, usize::MAX).unwrap(), None);
}

#[test]
fn out_of_sequence_commits_are_refused_and_write_nothing() {
    let (_dir, store) = open();
    store
        .commit(
            &Commit {
                txs: &[new("a", 0, &[])],
                entries: &[(0, entry(0))],
                ..Commit::default()
            },
            true,
        )
        .unwrap();
    // A seq already used (gaps are allowed: child headers' items take seqs too).
    let repeat = [new("b", 0, &[])];
    let err = store
        .commit(
            &Commit {
                txs: &repeat,
                ..Commit::default()
            },
            true,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Sequence(_)));
    let skip = [(2, entry(2))];
    let ok_tx = [new("c", 1, &[])];
    let err = store
        .commit(
            &Commit {
                txs: &ok_tx,
                entries: &skip,
                ..Commit::default()
            },
            true,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Sequence(_)));
    assert_eq!(
        store.tx("c").unwrap(),
        None,
        "nothing of a refused commit is written"
    );
    assert_eq!(store.txs_from_seq(0, 10, usize::MAX).unwrap().len(), 1);
}

#[test]
fn children_are_pending_until_every_parent_arrives() {
    let (_dir, store) = open();
    let c = |txs: &[NewTx]| {
        store
            .commit(
                &Commit {
                    txs,
                    ..Commit::default()
                },
                true,
            )
            .unwrap()
    };
    c(&[new("kid", 0, &["mum", "dad"])]);
    assert_eq!(store.tx("kid").unwrap().unwrap().status, TxStatus::Pending);
    c(&[new("mum", 1, &[])]);
    assert_eq!(
        store.tx("kid").unwrap().unwrap().status,
        TxStatus::Pending,
        "one parent still missing"
    );
    c(&[new("dad", 2, &[])]);
    assert_eq!(store.tx("kid").unwrap().unwrap().status, TxStatus::Ordered);

    // Child before parent within one commit.
    c(&[
        new("late-kid", 3, &["late-parent"]),
        new("late-parent", 4, &[]),
    ]);
    assert_eq!(
        store.tx("late-kid").unwrap().unwrap().status,
        TxStatus::Ordered
    );
    assert_eq!(
        store.txs_from_seq(3, 1, usize::MAX).unwrap()[0].status,
        TxStatus::Ordered
    );
}

#[test]
fn tips_are_added_and_removed() {
    let (_dir, store) = open();
    let added = [(0, "a".to_string()), (1, "b".to_string())];
    store
        .commit(
            &Commit {
                tips_added: &added,
                ..Commit::default()
            },
            true,
        )
        .unwrap();
    let removed = ["a".to_string()];
    let more = [(2, "c".to_string())];
    store
        .commit(
            &Commit {
                tips_removed: &removed,
                tips_added: &more,
                ..Commit::default()
            },
            false,
        )
        .unwrap();
    assert_eq!(
        store.tips().unwrap(),
        vec![(1, "b".to_string()), (2, "c".to_string())]
    );
}

#[test]
fn a_non_durable_commit_becomes_durable_with_the_next_durable_one() {
    let (dir, store) = open();
    store
        .commit(
            &Commit {
                entries: &[(0, entry(0))],
                ..Commit::default()
            },
            false,
        )
        .unwrap();
    store
        .commit(
            &Commit {
                entries: &[(1, entry(1))],
                ..Commit::default()
            },
            true,
        )
        .unwrap();
    drop(store);
    let store = reopen(dir.path()).unwrap();
    let meta = chain();
    store
        .commit(
            &Commit {
                chain: Some(&meta),
                ..Commit::default()
            },
            true,
        )
        .unwrap();
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
fn a_second_open_of_the_same_file_is_refused() {
    let (dir, _store) = open();
    match reopen(dir.path()) {
        Err(StoreError::InUse(path)) => assert!(path.starts_with(dir.path()), "{path:?}"),
        other => panic!("expected InUse, got {other:?}"),
    }
}

#[test]
fn a_new_store_is_empty() {
    let (_dir, store) = open();
    assert_eq!(store.chain().unwrap(), None);
    assert_eq!(store.lookup(&["a"]).unwrap(), vec![None]);
    assert_eq!(store.txs_from_seq(0, 10, usize::MAX).unwrap(), vec![]);
    assert_eq!(store.tips().unwrap(), vec![]);
    assert_eq!(
        store.entries(0, 10, usize::MAX).unwrap(),
        None,
        "no chain, so no genesis to start from"
    );
    assert_eq!(store.entries(1, 10, usize::MAX).unwrap(), None);
}

#[test]
fn every_read_returns_the_committed_records_with_their_status() {
    let (_dir, store) = open();
    let meta = chain();
    let txs = [new("a", 0, &[]), new("b", 1, &["ghost"]), new("c", 2, &[])];
    let entries = [(0, entry(0)), (1, entry(1)), (2, entry(2))];
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

    let mut pending_b = txs[1].record.clone();
    pending_b.status = TxStatus::Pending;
    assert_eq!(store.tx("a").unwrap().unwrap(), txs[0].record);
    assert_eq!(store.tx("b").unwrap().unwrap(), pending_b);
    assert_eq!(
        store.txs_from_seq(0, 10, usize::MAX).unwrap(),
        vec![
            txs[0].record.clone(),
            pending_b.clone(),
            txs[2].record.clone()
        ]
    );
    assert_eq!(
        store.txs_from_seq(1, 1, usize::MAX).unwrap(),
        vec![pending_b]
    );
    assert_eq!(store.txs_from_seq(3, 10, usize::MAX).unwrap(), vec![]);
    assert_eq!(store.txs_from_seq(0, 0, usize::MAX).unwrap(), vec![]);
    assert_eq!(store.chain().unwrap(), Some(meta));

    let page = store.entries(1, 1, usize::MAX).unwrap().unwrap();
    assert_eq!(
        page,
        EntryPage {
            start_hash: entry(0).hash,
            entries: vec![entry(1)]
        }
    );
    let page = store.entries(3, 10, usize::MAX).unwrap().unwrap();
    assert_eq!(
        page,
        EntryPage {
            start_hash: entry(2).hash,
            entries: vec![]
        }
    );
    assert_eq!(store.entries(4, 10, usize::MAX).unwrap(), None);
}

#[test]
fn lookup_answers_in_the_order_asked() {
    let (_dir, store) = open();
    let txs = [new("a", 0, &[]), new("b", 1, &[])];
    store
        .commit(
            &Commit {
                txs: &txs,
                ..Commit::default()
            },
            true,
        )
        .unwrap();
    let known = |r: &TxRecord| Known {
        seq: r.poh_seq,
        digest: r.digest,
        poh_hash: r.poh_hash,
    };
    assert_eq!(
        store.lookup(&["x", "b", "a", "b", "y"]).unwrap(),
        vec![
            None,
            Some(known(&txs[1].record)),
            Some(known(&txs[0].record)),
            Some(known(&txs[1].record)),
            None
        ]
    );
    assert_eq!(store.lookup(&[]).unwrap(), vec![]);
}

#[test]
fn a_single_missing_parent_arriving_later_orders_its_child() {
    let (dir, store) = open();
    let child = [new("C", 0, &["P"])];
    store
        .commit(
            &Commit {
                txs: &child,
                ..Commit::default()
            },
            true,
        )
        .unwrap();
    assert_eq!(store.tx("C").unwrap().unwrap().status, TxStatus::Pending);
    // The waiting edge must survive a restart.
    drop(store);
    let store = reopen(dir.path()).unwrap();
    assert_eq!(store.tx("C").unwrap().unwrap().status, TxStatus::Pending);
    let parent = [new("P", 1, &[])];
    store
        .commit(
            &Commit {
                txs: &parent,
                ..Commit::default()
            },
            true,
        )
        .unwrap();
    assert_eq!(store.tx("C").unwrap().unwrap().status, TxStatus::Ordered);
    assert_eq!(store.tx("P").unwrap().unwrap().status, TxStatus::Ordered);
}

#[test]
fn parents_named_missing_but_already_stored_or_repeated_do_not_strand_a_child() {
    let (_dir, store) = open();
    let first = [new("P", 0, &[])];
    store
        .commit(
            &Commit {
                txs: &first,
                ..Commit::default()
            },
            true,
        )
        .unwrap();
    // "P" is stored already and "Q" is named twice: neither may keep "C" pending for ever.
    let second = [new("C", 1, &["P", "Q", "Q"])];
    store
        .commit(
            &Commit {
                txs: &second,
                ..Commit::default()
            },
            true,
        )
        .unwrap();
    assert_eq!(store.tx("C").unwrap().unwrap().status, TxStatus::Pending);
    let third = [new("Q", 2, &[])];
    store
        .commit(
            &Commit {
                txs: &third,
                ..Commit::default()
            },
            true,
        )
        .unwrap();
    assert_eq!(store.tx("C").unwrap().unwrap().status, TxStatus::Ordered);
}

#[test]
fn refused_commits_leave_every_table_untouched() {
    let (_dir, store) = open();
    let meta = chain();
    let base = [new("a", 0, &[])];
    store
        .commit(
            &Commit {
                chain: Some(&meta),
                txs: &base,
                entries: &[(0, entry(0))],
                ..Commit::default()
            },
            true,
        )
        .unwrap();

    let mut other = chain();
    other.chain_id = "other".into();
    let tips = [(1, "b".to_string())];
    let b = [new("b", 1, &["ghost"])];
    let refused: [Batch<'_>; 5] = [
        (&[new("b", 0, &[])], &[(1, entry(1))]), // poh_seq repeats
        (&[new("b", 2, &[]), new("c", 1, &[])], &[]), // poh_seq goes back in the batch
        (&b, &[(0, entry(9))]),                  // entry index repeats
        (&b, &[(1, entry(1)), (3, entry(3))]),   // entry index gap
        (&[new("a", 1, &[])], &[(1, entry(1))]), // id already stored
    ];
    for (txs, entries) in refused {
        let commit = Commit {
            chain: Some(&other),
            txs,
            entries,
            tips_added: &tips,
            ..Commit::default()
        };
        let err = store.commit(&commit, true).unwrap_err();
        assert!(matches!(err, StoreError::Sequence(_)), "{err:?}");
    }
    let same_id_twice = [new("d", 1, &[]), new("d", 2, &[])];
    let err = store
        .commit(
            &Commit {
                txs: &same_id_twice,
                ..Commit::default()
            },
            true,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Sequence(_)), "{err:?}");

    assert_eq!(store.chain().unwrap(), Some(meta));
    assert_eq!(
        store.txs_from_seq(0, 10, usize::MAX).unwrap(),
        vec![base[0].record.clone()]
    );
    assert_eq!(
        store.lookup(&["b", "c", "d"]).unwrap(),
        vec![None, None, None]
    );
    assert_eq!(
        store.entries(0, 10, usize::MAX).unwrap().unwrap().entries,
        vec![entry(0)]
    );
    assert_eq!(store.tips().unwrap(), vec![]);

    // And the store still takes the right continuation.
    store
        .commit(
            &Commit {
                txs: &b,
                entries: &[(1, entry(1))],
                ..Commit::default()
            },
            true,
        )
        .unwrap();
    assert_eq!(store.tx("b").unwrap().unwrap().status, TxStatus::Pending);
}

#[test]
fn tips_come_oldest_first_whatever_their_ids() {
    let (_dir, store) = open();
    let added = [
        (5, "a".to_string()),
        (2, "z".to_string()),
        (9, "m".to_string()),
    ];
    store
        .commit(
            &Commit {
                tips_added: &added,
                ..Commit::default()
            },
            true,
        )
        .unwrap();
    assert_eq!(
        store.tips().unwrap(),
        vec![
            (2, "z".to_string()),
            (5, "a".to_string()),
            (9, "m".to_string())
        ]
    );
    // Removing an id that is no tip is not an error: the committer may race its own view.
    let removed = ["z".to_string(), "nope".to_string()];
    store
        .commit(
            &Commit {
                tips_removed: &removed,
                ..Commit::default()
            },
            true,
        )
        .unwrap();
    assert_eq!(
        store.tips().unwrap(),
        vec![(5, "a".to_string()), (9, "m".to_string())]
    );
}

#[test]
fn non_durable_then_durable_commits_both_survive_a_reopen() {
    let (dir, store) = open();
    let meta = chain();
    let first = [new("a", 0, &[])];
    let second = [new("b", 1, &[])];
    store
        .commit(
            &Commit {
                chain: Some(&meta),
                txs: &first,
                entries: &[(0, entry(0))],
                ..Commit::default()
            },
            false,
        )
        .unwrap();
    store
        .commit(
            &Commit {
                txs: &second,
                entries: &[(1, entry(1))],
                ..Commit::default()
            },
            true,
        )
        .unwrap();
    drop(store);
    let store = reopen(dir.path()).unwrap();
    assert_eq!(store.chain().unwrap(), Some(meta));
    assert_eq!(
        store.txs_from_seq(0, 10, usize::MAX).unwrap(),
        vec![first[0].record.clone(), second[0].record.clone()]
    );
    assert_eq!(
        store.entries(0, 10, usize::MAX).unwrap().unwrap().entries,
        vec![entry(0), entry(1)]
    );
}
