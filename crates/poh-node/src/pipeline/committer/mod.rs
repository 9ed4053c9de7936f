//! The committer: the pipeline's first stage, on its own thread.
//!
//! It takes every job queued while the previous batch was prepared (group commit: the batch
//! grows with the load, up to `max_batch` transactions), dedupes against the store, the batches
//! not yet stored and the batch itself, records the new digests in PoH as one entry, links the
//! DAG, and hands the batch, with every entry emitted since the last one, to the [`writer`]
//! thread, which stores it in one durable transaction and answers the waiters. When idle it
//! still hands over the ticks the generator keeps producing.
//!
//! On a replica ([`follow`]) the committer makes no PoH of its own: it stores the batches the
//! replica copied and verified, deciding their DAG links and tips as the primary did, until a
//! promotion starts a generator from the stored chain.
//!
//! A full disk ([`full`]) refuses writes until space returns: the committer drops what it
//! prepared past the stored chain, stops the generator, and resumes from the store once a
//! probe commit succeeds. Any other storage or PoH failure ends both threads with an error,
//! which stops the node: a chain whose entries were generated but not stored cannot be
//! continued safely, and a restart resumes from the store.
//!
//! [`writer`]: super::writer

use std::{
    collections::VecDeque,
    mem,
    sync::{
        Arc,
        mpsc::{self, RecvTimeoutError, TryRecvError},
    },
    time::{Duration, Instant},
};

use poh_core::{Hash, PohConfig, PohRecorder, PohState, RateProbe, RecordedEntry};
use poh_store::{ChainMeta, ChildHeader, Commit, Known, NewTx, Store, TxRecord, TxStatus};

mod follow;
mod full;
mod handover;

use handover::PendingWrite;

use super::{
    ChildItem, Job, Msg, PohView, Prepared,
    classify::{Classified, Slot, classify},
    tips::{MAX_LINKED_TIPS, Tips, Unstored},
    writer::{Answer, InFlight, Relay, WriterHandle},
};
use crate::{
    NodeError,
    metrics::IngestMetrics,
    shared::{Accepted, SubmitError},
};

/// Entries the generator may emit ahead of the committer; beyond, the clock waits for it.
const ENTRY_QUEUE: usize = 4096;
/// How long idle ticks may stay uncommitted.
const TICK_FLUSH: Duration = Duration::from_millis(100);

/// Tuning of the committer.
#[derive(Clone, Copy, Debug)]
pub(super) struct CommitSettings {
    /// Most transactions in one commit.
    pub max_batch: usize,
    /// Whether a commit waits for fsync (off only for benchmarks).
    pub durable: bool,
    /// Idle ticks are committed without fsync, but made durable at least this often (the
    /// sealer can only seal durable entries, so this is at most its shortest interval).
    pub durable_every: Duration,
}

pub(super) struct Committer {
    store: Arc<dyn Store>,
    /// The PoH generator; `None` while the disk is full or on a replica.
    recorder: Option<PohRecorder>,
    entries: mpsc::Receiver<RecordedEntry>,
    jobs: mpsc::Receiver<Msg>,
    /// The chain as it stands after everything handed to the writer.
    chain: ChainMeta,
    tips: Tips,
    /// Children handed to the writer whose named parents are missing.
    unstored: Unstored,
    view: Arc<PohView>,
    metrics: IngestMetrics,
    settings: CommitSettings,
    last_durable: Instant,
    in_flight: Arc<InFlight>,
    writer: WriterHandle,
    /// Prepared, not yet handed to the writer.
    pending: PendingWrite,
    /// Whether the writer is storing something (it says [`Msg::Written`] when done).
    writer_busy: bool,
    /// The entries the generator could not send when it stopped (its sink was full).
    leftover: VecDeque<RecordedEntry>,
    /// How the generator is started again after a full disk.
    poh: PohConfig,
    /// While the disk is full: when to try writing again.
    full: Option<full::Probe>,
    /// Whether this is a replica: it stores copied batches and takes no writes.
    following: bool,
}

/// One job's waiter, once its transactions are taken for the batch.
struct Waiter {
    job: Answer,
    slots: std::ops::Range<usize>,
    /// The job's child header, by index among the batch's.
    child: Option<usize>,
}

impl Committer {
    /// Opens the chain in `store` (or starts it at genesis), checks it is the configured one,
    /// and starts the PoH generator from the last stored entry (not on a replica:
    /// `following`) and the writer it hands batches to. The committer owns both and stops
    /// them, in order, when it stops.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open(
        store: Arc<dyn Store>,
        chain_id: &str,
        poh: PohConfig,
        settings: CommitSettings,
        metrics: IngestMetrics,
        (sender, jobs): (mpsc::Sender<Msg>, mpsc::Receiver<Msg>),
        relay: Option<Box<dyn Relay>>,
        primary: Option<Arc<str>>,
    ) -> Result<(Self, Arc<PohView>), NodeError> {
        let following = primary.is_some();
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
        let tips = Tips::load(store.as_ref())?;
        let (recorder, entries) = match following {
            false => {
                let (recorder, entries) = start_generator(poh, chain.state)?;
                (Some(recorder), entries)
            }
            true => (None, mpsc::sync_channel(0).1),
        };
        let rate = recorder.as_ref().map_or_else(
            || RateProbe::stopped(chain.state.total_hashes),
            PohRecorder::probe,
        );
        let view = Arc::new(PohView::new(
            chain_id,
            chain.state,
            settings.durable,
            rate,
            primary,
        ));
        let in_flight = Arc::new(InFlight::default());
        let writer = WriterHandle::spawn(
            store.clone(),
            in_flight.clone(),
            view.clone(),
            metrics.clone(),
            sender,
            relay,
        )?;
        let committer = Self {
            store,
            recorder,
            entries,
            jobs,
            chain,
            tips,
            unstored: Unstored::default(),
            view: view.clone(),
            metrics,
            settings,
            last_durable: Instant::now(),
            in_flight,
            writer,
            pending: PendingWrite::default(),
            writer_busy: false,
            leftover: VecDeque::new(),
            poh,
            full: None,
            following,
        };
        Ok((committer, view))
    }

    /// Runs until the pipeline closes (then drains and flushes) or something fails.
    pub(super) fn run(mut self) -> Result<(), NodeError> {
        let result = self.run_loop();
        let stopped = match &mut self.recorder {
            Some(recorder) => recorder
                .shutdown()
                .map(|leftover| self.leftover = leftover.into()),
            None => Ok(()),
        };
        // Whatever the generator emitted before it stopped is stored, so the chain on disk
        // ends where the generator did (after a full disk, it stopped where the store did).
        let flushed = if result.is_ok() && self.full.is_none() && !self.following {
            self.flush_entries(true).and_then(|()| self.send_pending())
        } else {
            Ok(())
        };
        let written = self.writer.finish();
        self.view.set_stopped();
        result?;
        stopped?;
        flushed?;
        written
    }

    fn run_loop(&mut self) -> Result<(), NodeError> {
        loop {
            if self.recorder.as_ref().is_some_and(PohRecorder::is_finished) {
                return Err(NodeError::PohStopped);
            }
            if self.writer.is_finished() {
                return Err(self
                    .writer
                    .finish()
                    .err()
                    .unwrap_or(NodeError::TaskFailed("writer")));
            }
            let closing = match self.jobs.recv_timeout(TICK_FLUSH) {
                Ok(Msg::Job(job)) if self.following => {
                    self.refuse_read_only(job);
                    false
                }
                Ok(Msg::Job(job)) => self.take_batch(job)?,
                Ok(Msg::Written) => {
                    self.written();
                    false
                }
                Ok(Msg::Full) => {
                    self.enter_full()?;
                    false
                }
                Ok(Msg::Copy(copy)) => {
                    self.copy(*copy)?;
                    false
                }
                Ok(Msg::Promote(reply)) => {
                    let _ = reply.send(self.promote());
                    false
                }
                Ok(Msg::Close) | Err(RecvTimeoutError::Disconnected) => true,
                Err(RecvTimeoutError::Timeout) => {
                    if self.recorder.is_some() {
                        let durable = self.last_durable.elapsed() >= self.settings.durable_every;
                        self.flush_entries(durable)?;
                    }
                    false
                }
            };
            if self.full.as_ref().is_some_and(full::Probe::is_due) {
                self.probe()?;
            }
            if closing {
                return self.drain();
            }
            // While the writer is busy, what is prepared waits and grows; it goes as soon as
            // the writer is free, or when it is a full batch.
            if !self.writer_busy || self.pending.txs.len() >= self.settings.max_batch {
                self.send_pending()?;
            }
        }
    }

    /// Prepares `first` and every job queued behind it, up to a batch. True when the pipeline
    /// is closing.
    fn take_batch(&mut self, first: Job) -> Result<bool, NodeError> {
        let mut size = first.txs.len();
        let mut batch = vec![first];
        let (mut closing, mut full) = (false, false);
        while size < self.settings.max_batch {
            match self.jobs.try_recv() {
                Ok(Msg::Job(job)) => {
                    size += job.txs.len();
                    batch.push(job);
                }
                Ok(Msg::Written) => self.written(),
                Ok(Msg::Full) => full = true,
                Ok(Msg::Copy(copy)) => self.copy(*copy)?,
                Ok(Msg::Promote(reply)) => {
                    let _ = reply.send(self.promote());
                }
                Ok(Msg::Close) | Err(TryRecvError::Disconnected) => {
                    closing = true;
                    break;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        self.process(batch)?;
        if full {
            self.enter_full()?;
        }
        Ok(closing)
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
                    Ok(Msg::Full) => self.enter_full()?,
                    Ok(Msg::Copy(copy)) => self.copy(*copy)?,
                    Ok(Msg::Promote(reply)) => {
                        let _ = reply.send(Err(NodeError::Promote("the node is stopping".into())));
                    }
                    Ok(Msg::Close | Msg::Written) => {}
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return self.send_pending();
            }
            self.process(batch)?;
            self.send_pending()?;
        }
    }

    fn process(&mut self, jobs: Vec<Job>) -> Result<(), NodeError> {
        if self.full.is_some() {
            for job in jobs {
                let _ = job.reply.send(Err(SubmitError::StorageFull));
            }
            return Ok(());
        }
        let mut waiters = Vec::with_capacity(jobs.len());
        let mut txs: Vec<Prepared> = Vec::new();
        let mut received: Vec<f64> = Vec::new();
        let mut children: Vec<ChildItem> = Vec::new();
        for job in jobs {
            let start = txs.len();
            received.extend(std::iter::repeat_n(job.received_at, job.txs.len()));
            txs.extend(job.txs);
            let child = job.child.map(|c| {
                children.push(*c);
                children.len() - 1
            });
            waiters.push(Waiter {
                job: Answer {
                    reply: job.reply,
                    results: Vec::new(),
                    permit: job.permit,
                },
                slots: start..txs.len(),
                child,
            });
        }

        let Classified {
            slots,
            new,
            missing,
        } = classify(self.store.as_ref(), &self.in_flight, &txs)?;

        // PoH first: the entry that records the batch must exist before it can be stored.
        // Child headers' hashes are items after the batch's transactions.
        let mut recorded = None;
        if !new.is_empty() || !children.is_empty() {
            let items = new
                .iter()
                .map(|&i| txs[i].digest)
                .chain(children.iter().map(|c| c.header.hash()))
                .collect();
            let recorder = self.recorder.as_ref().ok_or(NodeError::PohStopped)?;
            recorded = Some(recorder.record(items)?);
        }
        let child_places: Vec<(u64, Hash)> = match recorded {
            Some(r) => (0..children.len())
                .map(|k| (r.first_seq + (new.len() + k) as u64, r.hash))
                .collect(),
            None => Vec::new(),
        };
        let target = recorded.map(|r| r.entry_index);
        let entries = self.take_entries(target)?;

        let mut records = Vec::with_capacity(new.len());
        let mut places = Vec::with_capacity(new.len());
        if let Some(r) = recorded {
            let ids: Vec<&str> = new.iter().map(|&i| txs[i].tx.tx_id.as_str()).collect();
            let mut children = self.store.waiting_children(&ids)?;
            let mut in_flight = self.in_flight.lock();
            for (n, (&i, missing_parents)) in new.iter().zip(missing).enumerate() {
                let tx = mem::take(&mut txs[i].tx);
                let poh_seq = r.first_seq + n as u64;
                // Whoever already names this transaction: stored, handed to the writer, or
                // earlier in this batch.
                let kids = &mut children[n];
                kids.extend(self.unstored.children(&tx.tx_id).iter().cloned());
                let dag_parents = if tx.parent_ids.is_empty() {
                    self.tips.take_newest(MAX_LINKED_TIPS, kids)
                } else {
                    for parent in &tx.parent_ids {
                        self.tips.remove(parent);
                    }
                    tx.parent_ids.clone()
                };
                if kids.is_empty() {
                    self.tips.add(poh_seq, tx.tx_id.clone());
                }
                for parent in &missing_parents {
                    self.unstored.add(parent, &tx.tx_id);
                }
                places.push((poh_seq, r.hash));
                in_flight.insert(
                    tx.tx_id.clone(),
                    Known {
                        seq: poh_seq,
                        digest: txs[i].digest,
                        poh_hash: r.hash,
                    },
                );
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

        let mut answers = Vec::with_capacity(waiters.len());
        for mut waiter in waiters {
            if let Some(k) = waiter.child {
                let (poh_seq, poh_hash) = child_places[k];
                waiter.job.results = vec![Ok(Accepted::Stored { poh_seq, poh_hash })];
                answers.push(waiter.job);
                continue;
            }
            waiter.job.results = slots[waiter.slots.clone()]
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
            answers.push(waiter.job);
        }
        if let Some(r) = recorded {
            let accepted = children
                .into_iter()
                .zip(&child_places)
                .map(|(c, &(seq, _))| ChildHeader {
                    header: c.header,
                    hashes_in_tick: c.hashes_in_tick,
                    recorded_at_seq: seq,
                    entry_index: r.entry_index,
                    poh_hash: r.hash,
                });
            self.pending.children.extend(accepted);
        }
        self.add_pending(records, entries, self.settings.durable, answers);
        Ok(())
    }
}

/// A generator continuing `state`, and the channel its entries come by.
fn start_generator(
    poh: PohConfig,
    state: PohState,
) -> Result<(PohRecorder, mpsc::Receiver<RecordedEntry>), NodeError> {
    let (sink, entries) = mpsc::sync_channel(ENTRY_QUEUE);
    Ok((PohRecorder::spawn(poh, state, sink)?, entries))
}
