//! The committer: the pipeline's single writer, on its own thread.
//!
//! It takes every job queued while the previous commit ran (group commit: the batch grows with
//! the load, up to `max_batch` transactions), dedupes against the store and within the batch,
//! records the new digests in PoH as one entry, writes the transactions together with every
//! entry emitted since the last commit in one durable transaction, and answers the waiters.
//! When idle it still commits the ticks the generator keeps producing. A storage or PoH
//! failure ends the thread with an error, which stops the node: a chain whose entries were
//! generated but not stored cannot be continued safely, and a restart resumes from the store.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    mem,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{self, RecvTimeoutError, TryRecvError},
    },
    time::{Duration, Instant},
};

use poh_core::{Entry, PohConfig, PohRecorder, PohState, RecordedEntry};
use poh_store::{ChainMeta, Commit, Known, NewTx, Store, TxRecord, TxStatus};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::{Accepted, Job, Msg, PohStatus, Prepared, Rejected, TxResult};
use crate::{NodeError, metrics::IngestMetrics};

/// Most DAG tips a parentless transaction is linked to (SPEC §2).
const MAX_LINKED_TIPS: usize = 8;
/// Tips kept as candidates; the oldest beyond this stop being linked to, bounding memory.
const MAX_TIPS: usize = 4096;
/// How long idle ticks may stay uncommitted.
const TICK_FLUSH: Duration = Duration::from_millis(100);
/// Idle ticks are committed without fsync, but made durable at least this often.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// Tuning of the committer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CommitSettings {
    /// Most transactions in one commit.
    pub max_batch: usize,
    /// Whether a commit waits for fsync (off only for benchmarks).
    pub durable: bool,
}

/// The PoH chain as the readers see it: what is stored, and the generator's rate.
pub(crate) struct PohView {
    chain_id: String,
    state: Mutex<PohState>,
    hashes_per_second: AtomicU64,
    running: AtomicBool,
}

impl PohView {
    pub(crate) fn status(&self) -> PohStatus {
        PohStatus {
            chain_id: self.chain_id.clone(),
            state: *self.state.lock().unwrap_or_else(|p| p.into_inner()),
            hashes_per_second: f64::from_bits(self.hashes_per_second.load(Ordering::Relaxed)),
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }
}

pub(crate) struct Committer {
    store: Arc<dyn Store>,
    recorder: PohRecorder,
    entries: mpsc::Receiver<RecordedEntry>,
    jobs: mpsc::Receiver<Msg>,
    chain: ChainMeta,
    tips: Tips,
    view: Arc<PohView>,
    metrics: IngestMetrics,
    settings: CommitSettings,
    last_durable: Instant,
}

/// What the committer decided for one transaction of a batch.
enum Slot {
    Done(TxResult),
    /// The `n`th new transaction of the batch.
    New(usize),
    /// A repeat, within the batch, of the `n`th new transaction.
    SameAs(usize),
}

/// One job's waiter, once its transactions are taken for the batch.
struct Waiter {
    reply: oneshot::Sender<Vec<TxResult>>,
    slots: std::ops::Range<usize>,
    _permit: OwnedSemaphorePermit,
}

impl Committer {
    /// Opens the chain in `store` (or starts it at genesis), checks it is the configured one,
    /// and starts the PoH generator from the last stored entry.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        chain_id: &str,
        poh: PohConfig,
        settings: CommitSettings,
        metrics: IngestMetrics,
        jobs: mpsc::Receiver<Msg>,
    ) -> Result<(Self, Arc<PohView>), NodeError> {
        let chain = match store.chain()? {
            Some(stored) => {
                if stored.chain_id != chain_id {
                    return Err(NodeError::ChainMismatch {
                        setting: "chain_id",
                        stored: stored.chain_id,
                        configured: chain_id.to_string(),
                    });
                }
                if stored.hashes_per_tick != poh.hashes_per_tick {
                    return Err(NodeError::ChainMismatch {
                        setting: "hashes_per_tick",
                        stored: stored.hashes_per_tick.to_string(),
                        configured: poh.hashes_per_tick.to_string(),
                    });
                }
                stored
            }
            None => {
                let chain = ChainMeta {
                    chain_id: chain_id.to_string(),
                    hashes_per_tick: poh.hashes_per_tick,
                    state: PohState::genesis(chain_id),
                };
                let commit = Commit {
                    chain: Some(&chain),
                    ..Commit::default()
                };
                store.commit(&commit, true)?;
                chain
            }
        };
        let mut tips = Tips::default();
        for (seq, id) in store.tips()? {
            tips.add(seq, id);
        }
        tips.take_changes();
        let (sink, entries) = mpsc::channel();
        let recorder = PohRecorder::spawn(poh, chain.state, sink)?;
        let view = Arc::new(PohView {
            chain_id: chain_id.to_string(),
            state: Mutex::new(chain.state),
            hashes_per_second: AtomicU64::new(0f64.to_bits()),
            running: AtomicBool::new(true),
        });
        let committer = Self {
            store,
            recorder,
            entries,
            jobs,
            chain,
            tips,
            view: view.clone(),
            metrics,
            settings,
            last_durable: Instant::now(),
        };
        Ok((committer, view))
    }

    /// Runs until the pipeline closes (then drains and flushes) or something fails.
    pub(crate) fn run(mut self) -> Result<(), NodeError> {
        let result = self.run_loop();
        let stopped = self.recorder.shutdown();
        // Whatever the generator emitted before it stopped is stored, so the chain on disk
        // ends where the generator did.
        let flushed = if result.is_ok() {
            self.flush_entries(true)
        } else {
            Ok(())
        };
        self.view.running.store(false, Ordering::Release);
        result?;
        stopped?;
        flushed
    }

    fn run_loop(&mut self) -> Result<(), NodeError> {
        loop {
            if self.recorder.is_finished() {
                return Err(NodeError::PohStopped);
            }
            let first = match self.jobs.recv_timeout(TICK_FLUSH) {
                Ok(Msg::Job(job)) => job,
                Ok(Msg::Close) | Err(RecvTimeoutError::Disconnected) => return self.drain(),
                Err(RecvTimeoutError::Timeout) => {
                    let durable = self.last_durable.elapsed() >= DURABLE_EVERY;
                    self.flush_entries(durable)?;
                    continue;
                }
            };
            let mut batch = vec![first];
            let mut size = batch[0].txs.len();
            let mut closing = false;
            while size < self.settings.max_batch {
                match self.jobs.try_recv() {
                    Ok(Msg::Job(job)) => {
                        size += job.txs.len();
                        batch.push(job);
                    }
                    Ok(Msg::Close) => {
                        closing = true;
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        closing = true;
                        break;
                    }
                }
            }
            self.process(batch)?;
            if closing {
                return self.drain();
            }
        }
    }

    /// Commits every job still queued, then returns.
    fn drain(&mut self) -> Result<(), NodeError> {
        loop {
            let mut batch = Vec::new();
            let mut size = 0;
            while size < self.settings.max_batch {
                match self.jobs.try_recv() {
                    Ok(Msg::Job(job)) => {
                        size += job.txs.len();
                        batch.push(job);
                    }
                    Ok(Msg::Close) => {}
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return Ok(());
            }
            self.process(batch)?;
        }
    }

    fn process(&mut self, jobs: Vec<Job>) -> Result<(), NodeError> {
        let mut waiters = Vec::with_capacity(jobs.len());
        let mut txs: Vec<Prepared> = Vec::new();
        let mut received: Vec<f64> = Vec::new();
        for job in jobs {
            let start = txs.len();
            received.extend(std::iter::repeat_n(job.received_at, job.txs.len()));
            txs.extend(job.txs);
            waiters.push(Waiter {
                reply: job.reply,
                slots: start..txs.len(),
                _permit: job.permit,
            });
        }

        let (slots, new, missing) = self.classify(&txs)?;

        // PoH first: the entry that records the batch must exist before it can be stored.
        let mut recorded = None;
        if !new.is_empty() {
            let digests = new.iter().map(|&i| txs[i].digest).collect();
            recorded = Some(self.recorder.record(digests)?);
        }
        let target = recorded.map(|r| r.entry_index);
        let entries = self.take_entries(target)?;

        let mut records = Vec::with_capacity(new.len());
        let mut places = Vec::with_capacity(new.len());
        if let Some(r) = recorded {
            for (n, (&i, missing_parents)) in new.iter().zip(missing).enumerate() {
                let tx = mem::take(&mut txs[i].tx);
                let poh_seq = r.first_seq + n as u64;
                let dag_parents = if tx.parent_ids.is_empty() {
                    self.tips.take_newest(MAX_LINKED_TIPS)
                } else {
                    for parent in &tx.parent_ids {
                        self.tips.remove(parent);
                    }
                    tx.parent_ids.clone()
                };
                self.tips.add(poh_seq, tx.tx_id.clone());
                places.push((poh_seq, r.hash));
                records.push(NewTx {
                    record: TxRecord {
                        tx,
                        digest: txs[i].digest,
                        poh_seq,
                        poh_hash: r.hash,
                        entry_index: r.entry_index,
                        received_at: received[i],
                        dag_parents,
                        status: TxStatus::Ordered,
                        header_id: None,
                    },
                    missing_parents,
                });
            }
        }
        self.commit(&records, &entries, self.settings.durable)?;
        self.metrics.batch_size.record(records.len() as f64);

        for waiter in waiters {
            let answers = slots[waiter.slots.clone()]
                .iter()
                .map(|slot| match slot {
                    Slot::Done(result) => result.clone(),
                    Slot::New(n) => {
                        let (poh_seq, poh_hash) = places[*n];
                        Ok(Accepted::Stored { poh_seq, poh_hash })
                    }
                    Slot::SameAs(n) => {
                        let (poh_seq, poh_hash) = places[*n];
                        Ok(Accepted::Duplicate { poh_seq, poh_hash })
                    }
                })
                .collect();
            // A waiter that gave up (client gone) changes nothing: the data is stored.
            let _ = waiter.reply.send(answers);
        }
        Ok(())
    }

    /// Decides, for every transaction of the batch, duplicate / conflict / new; for the new
    /// ones (by index into `txs`), which parents are not stored yet.
    #[allow(clippy::type_complexity)]
    fn classify(
        &self,
        txs: &[Prepared],
    ) -> Result<(Vec<Slot>, Vec<usize>, Vec<Vec<String>>), NodeError> {
        let mut seen = HashSet::new();
        let mut ids: Vec<&str> = Vec::new();
        for p in txs {
            for id in std::iter::once(&p.tx.tx_id).chain(&p.tx.parent_ids) {
                if seen.insert(id.as_str()) {
                    ids.push(id);
                }
            }
        }
        let found = self.store.lookup(&ids)?;
        let stored: HashMap<&str, Known> = ids
            .iter()
            .zip(found)
            .filter_map(|(id, known)| known.map(|k| (*id, k)))
            .collect();

        let mut slots = Vec::with_capacity(txs.len());
        let mut new: Vec<usize> = Vec::new();
        let mut missing = Vec::new();
        let mut in_batch: HashMap<&str, usize> = HashMap::new();
        for (i, p) in txs.iter().enumerate() {
            let id = p.tx.tx_id.as_str();
            let slot = if let Some(k) = stored.get(id) {
                Slot::Done(if k.digest == p.digest {
                    Ok(Accepted::Duplicate {
                        poh_seq: k.seq,
                        poh_hash: k.poh_hash,
                    })
                } else {
                    Err(Rejected::Conflict)
                })
            } else if let Some(&n) = in_batch.get(id) {
                if txs[new[n]].digest == p.digest {
                    Slot::SameAs(n)
                } else {
                    Slot::Done(Err(Rejected::Conflict))
                }
            } else {
                // Parents stored before, or earlier in this batch, are known.
                missing.push(
                    p.tx.parent_ids
                        .iter()
                        .filter(|parent| {
                            !stored.contains_key(parent.as_str())
                                && !in_batch.contains_key(parent.as_str())
                        })
                        .cloned()
                        .collect(),
                );
                in_batch.insert(id, new.len());
                new.push(i);
                Slot::New(new.len() - 1)
            };
            slots.push(slot);
        }
        Ok((slots, new, missing))
    }

    /// Every entry the generator has emitted, waiting for entry `until` if given.
    fn take_entries(&mut self, until: Option<u64>) -> Result<Vec<(u64, Entry)>, NodeError> {
        let mut out = Vec::new();
        let mut next = self.chain.state.entries;
        loop {
            let needed = until.is_some_and(|u| next <= u);
            let recorded = if needed {
                self.entries.recv().map_err(|_| NodeError::PohStopped)?
            } else {
                match self.entries.try_recv() {
                    Ok(e) => e,
                    // A stopped generator is noticed by the run loop; what it sent is stored.
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(out),
                }
            };
            if recorded.index != next {
                return Err(NodeError::PohStopped);
            }
            next += 1;
            out.push((recorded.index, recorded.entry));
        }
    }

    fn flush_entries(&mut self, durable: bool) -> Result<(), NodeError> {
        let entries = self.take_entries(None)?;
        if entries.is_empty() && !durable {
            return Ok(());
        }
        self.commit(&[], &entries, durable && self.settings.durable)
    }

    fn commit(
        &mut self,
        txs: &[NewTx],
        entries: &[(u64, Entry)],
        durable: bool,
    ) -> Result<(), NodeError> {
        let mut chain = self.chain.clone();
        for (_, entry) in entries {
            chain.state.advance(entry, chain.hashes_per_tick);
        }
        let (tips_removed, tips_added) = self.tips.take_changes();
        let started = Instant::now();
        self.store.commit(
            &Commit {
                chain: Some(&chain),
                txs,
                entries,
                tips_removed: &tips_removed,
                tips_added: &tips_added,
            },
            durable,
        )?;
        self.metrics
            .commit_seconds
            .record(started.elapsed().as_secs_f64());
        if durable {
            self.last_durable = Instant::now();
        }
        *self.view.state.lock().unwrap_or_else(|p| p.into_inner()) = chain.state;
        self.view.hashes_per_second.store(
            self.recorder.hashes_per_second().to_bits(),
            Ordering::Relaxed,
        );
        self.chain = chain;
        Ok(())
    }
}

/// The DAG's current tips, newest last, and what changed since the last commit.
#[derive(Default)]
struct Tips {
    by_seq: BTreeMap<u64, String>,
    by_id: HashMap<String, u64>,
    removed: Vec<String>,
    added: Vec<(u64, String)>,
}

impl Tips {
    fn add(&mut self, seq: u64, id: String) {
        self.by_id.insert(id.clone(), seq);
        self.by_seq.insert(seq, id.clone());
        self.added.push((seq, id));
        while self.by_seq.len() > MAX_TIPS {
            if let Some((_, oldest)) = self.by_seq.pop_first() {
                self.by_id.remove(&oldest);
                self.removed.push(oldest);
            }
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(seq) = self.by_id.remove(id) {
            self.by_seq.remove(&seq);
            self.removed.push(id.to_string());
        }
    }

    /// Removes and returns up to `n` of the newest tips, oldest first.
    fn take_newest(&mut self, n: usize) -> Vec<String> {
        let mut taken = Vec::with_capacity(n);
        while taken.len() < n {
            let Some((_, id)) = self.by_seq.pop_last() else {
                break;
            };
            self.by_id.remove(&id);
            self.removed.push(id.clone());
            taken.push(id);
        }
        taken.reverse();
        taken
    }

    /// `(removed, added)` since the last call, netted: a tip added and removed within the
    /// same commit is in neither.
    fn take_changes(&mut self) -> (Vec<String>, Vec<(u64, String)>) {
        let mut added = mem::take(&mut self.added);
        added.retain(|(_, id)| self.by_id.contains_key(id));
        let mut removed = mem::take(&mut self.removed);
        removed.retain(|id| !self.by_id.contains_key(id));
        (removed, added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tips_link_the_newest_and_net_out_changes() {
        let mut tips = Tips::default();
        for (seq, id) in ["a", "b", "c"].iter().enumerate() {
            tips.add(seq as u64, id.to_string());
        }
        tips.take_changes();
        assert_eq!(tips.take_newest(2), vec!["b".to_string(), "c".to_string()]);
        tips.add(3, "d".into());
        tips.add(4, "e".into());
        tips.remove("e");
        let (mut removed, added) = tips.take_changes();
        removed.sort();
        assert_eq!(
            removed,
            vec!["b".to_string(), "c".to_string(), "e".to_string()]
        );
        assert_eq!(added, vec![(3, "d".to_string())]);
        assert_eq!(tips.take_newest(8), vec!["a".to_string(), "d".to_string()]);
    }

    #[test]
    fn tips_stay_bounded() {
        let mut tips = Tips::default();
        for seq in 0..(MAX_TIPS as u64 + 10) {
            tips.add(seq, format!("t{seq}"));
        }
        assert_eq!(tips.by_seq.len(), MAX_TIPS);
        assert_eq!(tips.by_id.len(), MAX_TIPS);
        assert!(!tips.by_id.contains_key("t0"));
    }
}
