//! The writer: the pipeline's second stage, on its own thread.
//!
//! The committer decides everything about a batch (dedupe, PoH places, DAG links, answers) and
//! hands it here; the writer stores it in one transaction and only then answers. Splitting the
//! two lets the committer prepare batch N+1 while batch N waits for fsync, which is what bounds
//! a single-threaded committer under many small requests. Batches are written strictly in the
//! order they were prepared, so the store still only ever sees a continuation of itself.
//!
//! Transactions handed over but not yet stored are kept in [`InFlight`], so the committer can
//! dedupe against them as if they were stored.

use std::{
    sync::{Arc, Mutex, MutexGuard, mpsc},
    thread::JoinHandle,
    time::Instant,
};

use poh_core::{Entry, Tx};
use poh_store::{ChainMeta, ChildHeader, Commit, Known, NewTx, Store, StoreError};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::{IdMap, JobAnswer, Msg, PohView};
use crate::{
    NodeError,
    metrics::IngestMetrics,
    shared::{SubmitError, TxResult},
};

/// Where the writer hands each transaction it stored for the first time: the relay, on a node
/// started with `--relay`. The relay is the network's, above the pipeline, so it comes in as
/// this, handed over when the node is wired. It must never block the writer.
pub(crate) trait Relay: Send {
    /// Takes `tx` to relay, or counts it dropped.
    fn send(&self, tx: &Tx);
}

/// Transactions prepared but not yet stored, by id.
#[derive(Default)]
pub(crate) struct InFlight(Mutex<IdMap<String, Known>>);

impl InFlight {
    /// The map; a poisoned lock is still consistent (every update is a single call).
    pub(crate) fn lock(&self) -> MutexGuard<'_, IdMap<String, Known>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One job's answers, sent once its batch is stored.
pub(crate) struct Answer {
    pub reply: oneshot::Sender<JobAnswer>,
    pub results: Vec<TxResult>,
    /// The job's share of the admission budget, released with the answer.
    pub permit: OwnedSemaphorePermit,
}

impl Answer {
    /// Answers the job: stored, or refused as a whole. A waiter that gave up (client gone)
    /// changes nothing.
    pub(crate) fn send(self, answer: JobAnswer) {
        let _ = self.reply.send(answer);
        drop(self.permit);
    }
}

/// What the committer hands the writer.
pub(crate) enum ToWriter {
    /// A batch to store.
    Write(Box<Write>),
    /// Every batch before this was prepared on a chain the store never took (the disk
    /// filled); the batches after it continue what is stored.
    Resync,
}

/// Everything one commit writes, decided by the committer.
pub(crate) struct Write {
    /// The chain as it stands after `entries`.
    pub chain: ChainMeta,
    pub txs: Vec<NewTx>,
    pub entries: Vec<(u64, Entry)>,
    pub tips_removed: Vec<String>,
    pub tips_added: Vec<(u64, String)>,
    pub child_headers: Vec<ChildHeader>,
    /// The seqs of `txs` copied as expired stubs (a replica's copy).
    pub expired: Vec<u64>,
    pub durable: bool,
    pub answers: Vec<Answer>,
}

/// The committer's handle on the writer thread.
pub(crate) struct WriterHandle {
    writes: Option<mpsc::Sender<ToWriter>>,
    thread: Option<JoinHandle<Result<(), NodeError>>>,
}

impl WriterHandle {
    /// Starts the writer thread; it says [`Msg::Written`] on `done` after each commit.
    pub(crate) fn spawn(
        store: Arc<dyn Store>,
        in_flight: Arc<InFlight>,
        view: Arc<PohView>,
        metrics: IngestMetrics,
        done: mpsc::Sender<Msg>,
        relay: Option<Box<dyn Relay>>,
    ) -> Result<Self, NodeError> {
        let (writes, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("poh-writer".into())
            .spawn(move || {
                write_all(
                    &*store,
                    &in_flight,
                    &view,
                    &metrics,
                    &done,
                    relay.as_deref(),
                    queue,
                )
            })
            .map_err(|_| NodeError::TaskFailed("writer"))?;
        Ok(Self {
            writes: Some(writes),
            thread: Some(thread),
        })
    }

    /// Queues a batch for the writer.
    pub(crate) fn send(&mut self, write: Write) -> Result<(), NodeError> {
        self.hand(ToWriter::Write(Box::new(write)))
    }

    /// Tells the writer that what follows continues the stored chain again.
    pub(crate) fn resync(&mut self) -> Result<(), NodeError> {
        self.hand(ToWriter::Resync)
    }

    fn hand(&mut self, message: ToWriter) -> Result<(), NodeError> {
        if let Some(writes) = &self.writes
            && writes.send(message).is_ok()
        {
            return Ok(());
        }
        // The writer stopped: its error is the reason.
        Err(self
            .finish()
            .err()
            .unwrap_or(NodeError::TaskFailed("writer")))
    }

    /// Whether the writer thread has ended (it only does on failure while batches may come).
    pub(crate) fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Lets the writer store what it was handed, then waits for it.
    pub(crate) fn finish(&mut self) -> Result<(), NodeError> {
        self.writes = None;
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or(Err(NodeError::TaskFailed("writer"))),
            None => Ok(()),
        }
    }
}

fn write_all(
    store: &dyn Store,
    in_flight: &InFlight,
    view: &PohView,
    metrics: &IngestMetrics,
    done: &mpsc::Sender<Msg>,
    relay: Option<&dyn Relay>,
    queue: mpsc::Receiver<ToWriter>,
) -> Result<(), NodeError> {
    // After a full disk refused a batch, every batch behind it continues that batch's chain:
    // each is refused too, unwritten, until the committer resyncs.
    let mut refusing = false;
    for message in queue {
        let write = match message {
            ToWriter::Write(write) if !refusing => *write,
            ToWriter::Write(write) => {
                refuse(*write);
                continue;
            }
            ToWriter::Resync => {
                refusing = false;
                continue;
            }
        };
        let started = Instant::now();
        let stored = store.commit(
            &Commit {
                chain: Some(&write.chain),
                txs: &write.txs,
                entries: &write.entries,
                tips_removed: &write.tips_removed,
                tips_added: &write.tips_added,
                child_headers: &write.child_headers,
                expired: &write.expired,
            },
            write.durable,
        );
        match stored {
            Ok(()) => {}
            Err(e @ StoreError::Full { .. }) => {
                tracing::warn!(error = %e, "a commit met a full disk; refusing writes");
                refuse(write);
                refusing = true;
                let _ = done.send(Msg::Full);
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        metrics
            .commit_seconds
            .record(started.elapsed().as_secs_f64());
        // Stored first, forgotten second: a lookup that misses here finds it in the store.
        if !write.txs.is_empty() {
            let mut in_flight = in_flight.lock();
            for new in &write.txs {
                in_flight.remove(&new.record.tx.tx_id);
            }
        }
        view.set_stored(write.chain.state, write.durable, write.entries);
        if let Some(relay) = relay {
            // Only what this commit stored for the first time: duplicates are never relayed,
            // so a ring of relaying nodes stops once every node has the transaction.
            for new in &write.txs {
                relay.send(&new.record.tx);
            }
        }
        // The committer may hand over the next batch while these answers go out.
        let _ = done.send(Msg::Written);
        for mut answer in write.answers {
            let results = std::mem::take(&mut answer.results);
            answer.send(Ok(results));
        }
    }
    Ok(())
}

/// Answers every job of a batch that was not stored: refused, nothing of it kept.
fn refuse(write: Write) {
    for answer in write.answers {
        answer.send(Err(SubmitError::StorageFull));
    }
}
