//! What a replica checks of each copied batch before it stores any of it: the entries re-hash
//! from the last stored one, every item of them is exactly one copied transaction (whose
//! digest it is) or one child header (whose hash it is), in seq order; and each copied header
//! is signed with the chain's key, links to the last stored header and sums its entries.
//! Everything here is pure: the caller runs it off the async threads.

use poh_core::{
    Entry, PohState,
    chain::Backend,
    seal::{ChainHead, HeaderVerifier, check_summary},
    verify::verify_parallel,
};
use poh_store::{ChildHeader, TxRecord, TxStatus};
use rayon::prelude::*;

use crate::wire::replica::{CopiedChild, CopiedRecord};

/// A batch that verified, ready for the pipeline.
pub(crate) struct Verified {
    /// The entries, with their indexes.
    pub entries: Vec<(u64, Entry)>,
    /// The transactions, as the primary stored them.
    pub records: Vec<TxRecord>,
    /// The seqs of those whose records the primary's TTL expired, in order: each came as its
    /// id and digest, and is stored so.
    pub expired: Vec<u64>,
    /// The child headers recorded.
    pub children: Vec<ChildHeader>,
    /// The chain after the entries.
    pub state: PohState,
}

/// Checks a batch against `state`, the replica's stored chain. The error names the entry,
/// seq or record that does not hold.
pub(crate) fn verify_batch(
    state: &PohState,
    hashes_per_tick: u64,
    first_entry: u64,
    entries: Vec<Entry>,
    records: Vec<CopiedRecord>,
    children: Vec<CopiedChild>,
) -> Result<Verified, String> {
    if first_entry != state.entries {
        return Err(format!(
            "the batch starts at entry {first_entry}, but the replica holds {} entries",
            state.entries
        ));
    }
    verify_parallel(
        Backend::fastest(),
        &state.hash,
        &entries,
        hashes_per_tick,
        &|_| {},
    )
    .map_err(|e| format!("entry {}: {}", first_entry + e.index as u64, e.failure))?;
    // An expired record's digest cannot be hashed again: it holds when it is the item at
    // its seq, like any other (its id is the primary's word).
    let digests: Vec<_> = (records.par_iter())
        .map(|r| r.expired.unwrap_or_else(|| r.tx.digest()))
        .collect();

    let mut out = Verified {
        entries: Vec::with_capacity(entries.len()),
        records: Vec::with_capacity(records.len()),
        expired: Vec::new(),
        children: Vec::with_capacity(children.len()),
        state: *state,
    };
    let mut records = records.into_iter().zip(digests).peekable();
    let mut children = children.into_iter().peekable();
    let mut seq = state.mixins;
    for (i, entry) in entries.into_iter().enumerate() {
        let index = first_entry + i as u64;
        for mixin in &entry.mixins {
            if let Some((mut record, digest)) = records.next_if(|(r, _)| r.poh_seq == seq) {
                if digest != *mixin {
                    return Err(format!(
                        "seq {seq} (entry {index}): the digest of transaction {:?} is not \
                         the item recorded there",
                        record.tx.tx_id
                    ));
                }
                if record.expired.is_some() {
                    out.expired.push(seq);
                    // What it named, so the DAG waits and links as it did on the primary.
                    record.tx.parent_ids = record.dag_parents.clone();
                }
                out.records.push(TxRecord {
                    tx: record.tx,
                    digest,
                    poh_seq: seq,
                    poh_hash: entry.hash,
                    entry_index: index,
                    received_at: record.received_at,
                    dag_parents: record.dag_parents,
                    status: TxStatus::Ordered,
                    header_id: None,
                });
            } else if let Some(child) = children.next_if(|c| c.recorded_at_seq == seq) {
                if child.header.hash() != *mixin {
                    return Err(format!(
                        "seq {seq} (entry {index}): the hash of child header {} of {:?} is \
                         not the item recorded there",
                        child.header.height, child.header.chain_id
                    ));
                }
                out.children.push(ChildHeader {
                    header: child.header,
                    hashes_in_tick: child.hashes_in_tick,
                    recorded_at_seq: seq,
                    entry_index: index,
                    poh_hash: entry.hash,
                });
            } else {
                return Err(format!(
                    "seq {seq} (entry {index}): no transaction or child header came for the \
                     item recorded there"
                ));
            }
            seq += 1;
        }
        out.state.advance(&entry, hashes_per_tick);
        out.entries.push((index, entry));
    }
    if let Some((record, _)) = records.next() {
        return Err(format!(
            "transaction {:?} came for seq {}, which no copied entry records",
            record.tx.tx_id, record.poh_seq
        ));
    }
    if let Some(child) = children.next() {
        return Err(format!(
            "a child header came for seq {}, which no copied entry records",
            child.recorded_at_seq
        ));
    }
    Ok(out)
}

/// Checks one of the primary's headers against the stored chain of headers (`head`) and the
/// stored entries it covers; returns the head after it.
pub(crate) fn verify_header(
    verifier: &HeaderVerifier,
    head: &ChainHead,
    header: &poh_core::Header,
    entries: &[Entry],
) -> Result<ChainHead, String> {
    let failed = |e: poh_core::seal::HeaderError| format!("header {}: {e}", header.height);
    verifier.check_header(head, header).map_err(failed)?;
    check_summary(head, header, entries, verifier.hashes_per_tick).map_err(failed)
}

#[cfg(test)]
mod tests {
    use poh_core::{Hash, Tx};

    use super::*;

    fn tx(id: &str) -> Tx {
        Tx {
            tx_id: id.into(),
            holder_id: "h".into(),
            timestamp: 1.0,
            payload: b"x".to_vec(),
            parent_ids: Vec::new(),
            public_key: Vec::new(),
            signature: Vec::new(),
        }
    }

    fn copied(tx: Tx, seq: u64) -> CopiedRecord {
        CopiedRecord {
            tx,
            poh_seq: seq,
            received_at: 1.0,
            dag_parents: Vec::new(),
            expired: None,
        }
    }

    /// A tick, then an entry recording two transactions, from `state`.
    fn chain(state: &PohState, txs: &[Tx]) -> Vec<Entry> {
        let tick = Entry::compute(&state.hash, 3, Vec::new());
        let record = Entry::compute(&tick.hash, 2, txs.iter().map(Tx::digest).collect());
        vec![tick, record]
    }

    #[test]
    fn a_true_batch_verifies_and_every_lie_is_named() {
        let state = PohState::genesis("c");
        let txs = [tx("a"), tx("b")];
        let entries = chain(&state, &txs);
        let records = vec![copied(txs[0].clone(), 0), copied(txs[1].clone(), 1)];
        let ok = verify_batch(&state, 1000, 0, entries.clone(), records.clone(), vec![]).unwrap();
        assert_eq!(ok.records.len(), 2);
        assert_eq!(ok.records[1].entry_index, 1);
        assert_eq!(ok.records[1].poh_hash, entries[1].hash);
        assert_eq!((ok.state.entries, ok.state.mixins), (2, 2));

        // A tampered entry hash.
        let mut bad = entries.clone();
        bad[0].hash = Hash::default();
        let e = verify_batch(&state, 1000, 0, bad, records.clone(), vec![]).err();
        assert!(e.unwrap().starts_with("entry 0:"));
        // A tampered record.
        let mut lied = records.clone();
        lied[1].tx.payload = b"y".to_vec();
        let e = verify_batch(&state, 1000, 0, entries.clone(), lied, vec![]).err();
        assert!(e.unwrap().starts_with("seq 1 (entry 1)"));
        // A record left out, one too many, a batch from elsewhere.
        let e = verify_batch(
            &state,
            1000,
            0,
            entries.clone(),
            records[..1].to_vec(),
            vec![],
        );
        assert!(e.err().unwrap().contains("no transaction or child header"));
        let mut extra = records.clone();
        extra.push(copied(tx("c"), 2));
        let e = verify_batch(&state, 1000, 0, entries.clone(), extra, vec![]).err();
        assert!(e.unwrap().contains("which no copied entry records"));
        let e = verify_batch(&state, 1000, 5, entries, records, vec![]).err();
        assert!(e.unwrap().contains("starts at entry 5"));
    }

    #[test]
    fn an_expired_record_holds_by_its_digest_alone() {
        let state = PohState::genesis("c");
        let txs = [tx("a"), tx("b")];
        let entries = chain(&state, &txs);
        let stub = |digest| CopiedRecord {
            tx: Tx {
                tx_id: "a".into(),
                ..Tx::default()
            },
            dag_parents: vec!["p".into()],
            expired: Some(digest),
            ..copied(Tx::default(), 0)
        };
        let records = vec![stub(txs[0].digest()), copied(txs[1].clone(), 1)];
        let ok = verify_batch(&state, 1000, 0, entries.clone(), records, vec![]).unwrap();
        assert_eq!(ok.expired, [0]);
        assert_eq!(ok.records[0].digest, txs[0].digest());
        assert_eq!(
            ok.records[0].tx.parent_ids,
            ["p"],
            "the DAG waits as it did"
        );
        // A stub whose digest is not the item there is refused like a tampered record.
        let records = vec![stub(txs[1].digest()), copied(txs[1].clone(), 1)];
        let e = verify_batch(&state, 1000, 0, entries, records, vec![]).err();
        assert!(e.unwrap().starts_with("seq 0 (entry 1)"));
    }
}
