//! Markers, the parents the DAG waits for, expiry and restore.

use poh_core::ChainHead;

use super::*;

#[test]
fn only_old_sealed_settled_records_expire_and_they_come_back_exactly() {
    let (_dir, store) = open();
    let meta = chain();
    let mut young = new("young", 3, &[]);
    young.record.received_at = 100.0;
    let txs = [
        new("a", 0, &[]),
        new("b", 1, &[]),
        new("waits", 2, &["zz"]),
        young,
        new("unsealed", 4, &[]),
    ];
    let entries: Vec<_> = (0..5).map(|i| (i, entry(i))).collect();
    let commit = Commit {
        chain: Some(&meta),
        txs: &txs,
        entries: &entries,
        ..Commit::default()
    };
    store.commit(&commit, true).unwrap();
    let sealed = header(0, 0, 4, poh_core::Hash::default());
    store
        .put_header(&sealed, &ChainHead::after(&sealed, 0, 4))
        .unwrap();
    let a_before = store.tx("a").unwrap().unwrap();
    assert_eq!(a_before.status, TxStatus::Sealed);

    // Everything but `young` is old; only seqs below 4 are sealed.
    let swept = store.expire(50.0, 4, 100).unwrap();
    assert_eq!(swept.removed, 2, "{swept:?}");
    assert!(swept.bytes > 0);
    for gone in ["a", "b"] {
        assert_eq!(store.tx(gone).unwrap(), None);
        assert_eq!(store.expired(gone).unwrap(), Some(sealed.id()));
    }
    // Kept: one waiting for a parent, a young one, an unsealed one.
    for kept in ["waits", "young", "unsealed"] {
        assert!(store.tx(kept).unwrap().is_some(), "{kept}");
        assert_eq!(store.expired(kept).unwrap(), None);
    }
    // The id stays known (dedupe), the entries and the header stay.
    assert!(store.lookup(&["a"]).unwrap()[0].is_some());
    assert_eq!(
        store
            .entries(0, 10, usize::MAX)
            .unwrap()
            .unwrap()
            .entries
            .len(),
        5
    );
    assert_eq!(store.headers(0, 10).unwrap(), std::slice::from_ref(&sealed));
    // Sync pages skip what expired.
    let page = store.txs_from_seq(0, 10, usize::MAX).unwrap();
    assert_eq!(
        page.iter().map(|r| r.poh_seq).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    // A second pass finds nothing more.
    assert_eq!(store.expire(50.0, 4, 100).unwrap().removed, 0);

    // A record that is not what expired at its seq is refused, and nothing comes back.
    let mut forged = a_before.clone();
    forged.tx.payload = b"forged".to_vec();
    forged.digest = forged.tx.digest();
    assert!(matches!(
        store.restore(&[forged], 60.0),
        Err(StoreError::Sequence(_))
    ));
    assert_eq!(store.tx("a").unwrap(), None);
    assert_eq!(
        store
            .restore(std::slice::from_ref(&a_before), 60.0)
            .unwrap(),
        1
    );
    assert_eq!(store.tx("a").unwrap(), Some(a_before.clone()));
    assert_eq!(store.expired("a").unwrap(), None);
    // Restoring what is not expired does nothing.
    assert_eq!(
        store
            .restore(std::slice::from_ref(&a_before), 70.0)
            .unwrap(),
        0
    );
    store.compact().unwrap();
    assert!(store.tx("a").unwrap().is_some());

    // Its TTL runs from the restore (60), not from when it was received (0): a sweep
    // whose cutoff is before the restore keeps it, a later one removes it as before.
    assert_eq!(store.expire(50.0, 4, 100).unwrap().removed, 0);
    assert_eq!(store.expire(60.0, 4, 100).unwrap().removed, 0);
    assert_eq!(store.tx("a").unwrap(), Some(a_before.clone()));
    assert_eq!(store.expire(60.5, 4, 100).unwrap().removed, 1);
    assert_eq!(store.expired("a").unwrap(), Some(sealed.id()));
    // Restored again later, it is kept from that restore on.
    assert_eq!(
        store
            .restore(std::slice::from_ref(&a_before), 90.0)
            .unwrap(),
        1
    );
    assert_eq!(store.expire(80.0, 4, 100).unwrap().removed, 0);
    assert_eq!(store.tx("a").unwrap(), Some(a_before));
}

/// Seqs 0–8, each in the entry of its number: 3 is a child header's item (no
/// transaction), 6 waits for a parent (so it never expires); three headers seal entries
/// 0–2, 3–5 and 6–8.
#[test]
fn expired_runs_stop_at_stored_transactions_pass_child_items_and_name_their_headers() {
    let (_dir, store) = open();
    let meta = chain();
    let txs: Vec<_> = [0, 1, 2, 4, 5, 6, 7, 8]
        .into_iter()
        .map(|seq| match seq {
            6 => new("waits", 6, &["zz"]),
            _ => new(&format!("t{seq}"), seq, &[]),
        })
        .collect();
    let entries: Vec<_> = (0..9).map(|i| (i, entry(i))).collect();
    let commit = Commit {
        chain: Some(&meta),
        txs: &txs,
        entries: &entries,
        ..Commit::default()
    };
    store.commit(&commit, true).unwrap();
    let mut prev = poh_core::Hash::default();
    let mut ids = Vec::new();
    for (height, start) in [0u64, 3, 6].into_iter().enumerate() {
        let h = header(height as u64, start, start + 3, prev);
        store
            .put_header(&h, &ChainHead::after(&h, 0, start + 3))
            .unwrap();
        prev = h.hash();
        ids.push(h.id());
    }
    assert_eq!(store.expired_run(0..9, 32).unwrap(), None);
    let t4 = store.tx("t4").unwrap().unwrap();
    assert_eq!(store.expire(50.0, 9, 100).unwrap().removed, 7);

    let run = |from_seq, to_seq, count, header_ids: &[String]| {
        Some(crate::ExpiredRun {
            from_seq,
            to_seq,
            count,
            header_ids: header_ids.to_vec(),
        })
    };
    // Through the child item at 3, up to the transaction still stored at 6.
    assert_eq!(
        store.expired_run(0..9, 32).unwrap(),
        run(0, 5, 5, &ids[..2])
    );
    // At most so many headers: the rest is the next run.
    assert_eq!(store.expired_run(0..9, 1).unwrap(), run(0, 2, 3, &ids[..1]));
    assert_eq!(
        store.expired_run(3..9, 32).unwrap(),
        run(4, 5, 2, &ids[1..2])
    );
    assert_eq!(
        store.expired_run(6..9, 32).unwrap(),
        run(7, 8, 2, &ids[2..])
    );
    assert_eq!(
        store.expired_run(6..8, 32).unwrap(),
        run(7, 7, 1, &ids[2..])
    );
    assert_eq!(store.expired_run(6..7, 32).unwrap(), None);
    assert_eq!(store.expired_run(9..100, 32).unwrap(), None);
    // A restored transaction ends the run before it.
    assert_eq!(store.restore(&[t4], 60.0).unwrap(), 1);
    assert_eq!(
        store.expired_run(0..9, 32).unwrap(),
        run(0, 2, 3, &ids[..1])
    );
    assert_eq!(
        store.expired_run(4..9, 32).unwrap(),
        run(5, 5, 1, &ids[1..2])
    );
}

#[test]
fn progress_markers_and_missing_parents() {
    let (dir, store) = open();
    assert_eq!(store.progress("sync/x").unwrap(), None);
    store.set_progress("sync/x", 7).unwrap();
    store.set_progress("fragments", 2).unwrap();
    let meta = chain();
    let txs = [new("c1", 0, &["p2", "p1"]), new("c2", 1, &["p1"])];
    let commit = Commit {
        chain: Some(&meta),
        txs: &txs,
        ..Commit::default()
    };
    store.commit(&commit, true).unwrap();
    assert_eq!(store.missing_parents("", 10).unwrap(), ["p1", "p2"]);
    assert_eq!(store.missing_parents("p1", 10).unwrap(), ["p2"]);
    assert_eq!(store.missing_parents("", 1).unwrap(), ["p1"]);
    drop(store);
    let store = reopen(dir.path()).unwrap();
    assert_eq!(store.progress("sync/x").unwrap(), Some(7));
    assert_eq!(store.progress("fragments").unwrap(), Some(2));
}
