//! What the committer hands the writer: the entries the generator emitted, and what was
//! prepared while the writer was busy, as one commit.

use std::{mem, sync::mpsc::TryRecvError, time::Instant};

use poh_core::Entry;
use poh_store::{ChildHeader, NewTx};

use super::Committer;
use crate::{
    NodeError,
    pipeline::writer::{Answer, Write},
};

/// Batches prepared while the writer was busy, to be stored together.
#[derive(Default)]
pub(super) struct PendingWrite {
    pub(super) txs: Vec<NewTx>,
    pub(super) children: Vec<ChildHeader>,
    pub(super) entries: Vec<(u64, Entry)>,
    pub(super) answers: Vec<Answer>,
    pub(super) durable: bool,
}

impl Committer {
    /// Every entry the generator has emitted, waiting for entry `until` if given.
    pub(super) fn take_entries(
        &mut self,
        until: Option<u64>,
    ) -> Result<Vec<(u64, Entry)>, NodeError> {
        let mut out = Vec::new();
        let mut next = self.chain.state.entries;
        loop {
            let needed = until.is_some_and(|u| next <= u);
            let recorded = if needed {
                self.entries.recv().map_err(|_| NodeError::PohStopped)?
            } else {
                match self.entries.try_recv() {
                    Ok(e) => e,
                    // A stopped generator is noticed by the run loop; what it sent is stored,
                    // and last the entries it had no room to send.
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                        match self.leftover.pop_front() {
                            Some(e) => e,
                            None => return Ok(out),
                        }
                    }
                }
            };
            if recorded.index != next {
                return Err(NodeError::PohStopped);
            }
            next += 1;
            out.push((recorded.index, recorded.entry));
        }
    }

    pub(super) fn flush_entries(&mut self, durable: bool) -> Result<(), NodeError> {
        let entries = self.take_entries(None)?;
        if entries.is_empty() && !durable {
            return Ok(());
        }
        self.add_pending(
            Vec::new(),
            entries,
            durable && self.settings.durable,
            Vec::new(),
        );
        Ok(())
    }

    /// Adds a decided batch to what the writer gets next; the chain continues after it.
    pub(super) fn add_pending(
        &mut self,
        txs: Vec<NewTx>,
        entries: Vec<(u64, Entry)>,
        durable: bool,
        answers: Vec<Answer>,
    ) {
        for (_, entry) in &entries {
            self.chain.state.advance(entry, self.chain.hashes_per_tick);
        }
        let pending = &mut self.pending;
        pending.txs.extend(txs);
        pending.entries.extend(entries);
        pending.answers.extend(answers);
        pending.durable |= durable;
    }

    /// The writer stored the oldest write it was handed.
    pub(super) fn written(&mut self) {
        self.writer_busy = false;
        self.unstored.written();
    }

    /// Hands everything prepared to the writer, as one commit.
    pub(super) fn send_pending(&mut self) -> Result<(), NodeError> {
        let pending = mem::take(&mut self.pending);
        if pending.txs.is_empty()
            && pending.entries.is_empty()
            && pending.children.is_empty()
            && !pending.durable
        {
            return Ok(());
        }
        if !pending.answers.is_empty() {
            self.metrics.batch_size.record(pending.txs.len() as f64);
        }
        // Tip changes are netted over everything prepared since the last hand-over.
        let (tips_removed, tips_added) = self.tips.take_changes();
        if pending.durable {
            self.last_durable = Instant::now();
        }
        self.writer_busy = true;
        self.unstored.sent();
        self.writer.send(Write {
            chain: self.chain.clone(),
            txs: pending.txs,
            entries: pending.entries,
            tips_removed,
            tips_added,
            child_headers: pending.children,
            expired: Vec::new(),
            durable: pending.durable,
            answers: pending.answers,
        })
    }
}
