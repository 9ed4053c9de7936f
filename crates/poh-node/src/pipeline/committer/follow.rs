//! A replica's committer: it stores what the replica copied from its primary, and becomes a
//! primary's committer when the replica is promoted.
//!
//! A copied batch arrives verified (its entries re-hash from the stored chain, every record's
//! digest is the item at its seq); what is left to decide is what the primary decided when it
//! stored the same transactions: which parents each still waits for, and the DAG's tips. Both
//! follow from the records in seq order alone (a parent is missing when no earlier seq holds
//! it; a record's DAG parents stop being tips; a record becomes a tip unless an earlier one
//! names it), so the replica's store ends where the primary's did, batch boundaries aside.

use poh_core::RateProbe;
use poh_store::{Known, NewTx};

use std::time::Instant;

use super::{Committer, start_generator};
use crate::{
    NodeError,
    pipeline::{Copied, IdSet, writer::Write},
    shared::SubmitError,
};

impl Committer {
    /// Stores one copied batch; its answer goes out once it is durable.
    pub(super) fn copy(&mut self, copy: Copied) -> Result<(), NodeError> {
        let Copied {
            entries,
            records,
            expired,
            children,
            answer,
        } = copy;
        if !self.following {
            // Promoted meanwhile: what the primary sends now is not stored.
            answer.send(Err(SubmitError::ShuttingDown));
            return Ok(());
        }
        if self.full.is_some() {
            answer.send(Err(SubmitError::StorageFull));
            return Ok(());
        }
        if entries
            .first()
            .is_some_and(|(i, _)| *i != self.chain.state.entries)
        {
            // Verified against another point of the chain than the one it would continue:
            // refused, and the copy starts again from what is stored.
            answer.send(Err(SubmitError::ShuttingDown));
            return Ok(());
        }
        let mut names: Vec<&str> = Vec::new();
        for record in &records {
            names.extend(record.tx.parent_ids.iter().map(String::as_str));
        }
        let known = self.store.lookup(&names)?;
        let stored: IdSet<String> = names
            .iter()
            .zip(&known)
            .filter_map(|(name, k)| k.map(|_| name.to_string()))
            .collect();
        let ids: Vec<&str> = records.iter().map(|r| r.tx.tx_id.as_str()).collect();
        let mut kids = self.store.waiting_children(&ids)?;
        drop((names, ids));
        let mut earlier: IdSet<String> = IdSet::default();
        let mut txs = Vec::with_capacity(records.len());
        // Known as stored until they are: a write taken right after a promotion dedupes
        // against them.
        let mut in_flight = self.in_flight.lock();
        for (record, kids) in records.into_iter().zip(&mut kids) {
            let id = record.tx.tx_id.clone();
            let missing_parents: Vec<String> = (record.tx.parent_ids.iter())
                .filter(|p| !stored.contains(p.as_str()) && !earlier.contains(p.as_str()))
                .cloned()
                .collect();
            kids.extend(self.unstored.children(&id).iter().cloned());
            for parent in &record.dag_parents {
                self.tips.remove(parent);
            }
            if kids.is_empty() {
                self.tips.add(record.poh_seq, id.clone());
            }
            for parent in &missing_parents {
                self.unstored.add(parent, &id);
            }
            in_flight.insert(
                id.clone(),
                Known {
                    seq: record.poh_seq,
                    digest: record.digest,
                    poh_hash: record.poh_hash,
                },
            );
            earlier.insert(id);
            txs.push(NewTx {
                record,
                missing_parents,
            });
        }
        drop(in_flight);
        for (_, entry) in &entries {
            self.chain.state.advance(entry, self.chain.hashes_per_tick);
        }
        self.view
            .set_rate(RateProbe::stopped(self.chain.state.total_hashes));
        let (tips_removed, tips_added) = self.tips.take_changes();
        self.writer_busy = true;
        self.unstored.sent();
        self.writer.send(Write {
            chain: self.chain.clone(),
            txs,
            entries,
            tips_removed,
            tips_added,
            child_headers: children,
            expired,
            durable: self.settings.durable,
            answers: vec![answer],
        })
    }

    /// A write that raced the front door's check: refused as it would have been.
    pub(super) fn refuse_read_only(&self, job: crate::pipeline::Job) {
        let refusal = self.view.read_only().unwrap_or(SubmitError::ShuttingDown);
        let _ = job.reply.send(Err(refusal));
    }

    /// Makes this replica a primary: its chain continues from the last stored entry, with a
    /// generator of its own, and it takes writes.
    pub(super) fn promote(&mut self) -> Result<(), NodeError> {
        if !self.following {
            return Ok(());
        }
        if self.full.is_some() {
            return Err(NodeError::Promote(
                "the replica's disk is full; free space, then promote again".into(),
            ));
        }
        // The chain as handed to the writer, which stores it before anything that follows:
        // a copy still being written is part of it.
        let (recorder, entries) = start_generator(self.poh, self.chain.state)?;
        self.view.set_rate(recorder.probe());
        self.recorder = Some(recorder);
        self.entries = entries;
        self.following = false;
        self.last_durable = Instant::now();
        self.view.set_following(false);
        Ok(())
    }
}
