//! [`IngestPipeline`]: the one path every transport's transactions take, and the owner of
//! its threads.
//!
//! validate → verify signature (off the async runtime, on rayon) → admit against a bounded
//! budget → the committer thread ([`committer`]) dedupes and records the batch's digests in
//! PoH → the writer thread ([`writer`]) stores transactions and entries in one durable commit
//! → every waiter is answered. The two threads overlap: a batch is prepared while the previous
//! one waits for fsync. [`IngestPipeline::start`] resumes the chain from the store and starts
//! the PoH generator, the writer and the committer; it returns the handle every transport
//! shares and a [`PipelineJoin`] that resolves when they have all stopped.
//!
//! Admission is bounded in bytes, so a flood is refused early ([`SubmitError::Overloaded`])
//! instead of growing memory; streams wait for room instead ([`Admission::Wait`]), which pushes
//! back on the client through HTTP/2 flow control.
//!
//! On a replica the pipeline takes no writes ([`SubmitError::ReadOnly`]) and makes no PoH: it
//! stores the batches the replica copied ([`copy`]) until it is promoted.

mod classify;
mod committer;
mod copy;
mod tips;
mod view;
mod writer;

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use poh_core::{Hash, Header, Limits, PohConfig, PohState, Tx};
use poh_store::Store;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use committer::{CommitSettings, Committer};
pub(crate) use copy::Copied;
use view::PohView;
pub(crate) use writer::Relay;

use crate::{
    NodeError,
    config::IngestConfig,
    metrics::IngestMetrics,
    shared::{
        Accepted, Refusal, RejectReason, Rejected, SubmitError, Transport, TxResult, unix_now,
    },
    wire::json::PohOut,
};

/// The maps the committer keys by transaction ids. The ids are the clients' choice, so the
/// hasher is keyed at random (per process and per map): no one can pick ids that collide,
/// and foldhash costs a fraction of the standard library's SipHash per lookup.
pub(crate) type IdMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// A set of ids, hashed as [`IdMap`].
pub(crate) type IdSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Batches at least this large are prepared on rayon rather than on the async thread.
const INLINE_PREPARE_MAX: usize = 16;

/// What the committer answers a job: one result per transaction, or the whole job refused.
pub(crate) type JobAnswer = Result<Vec<TxResult>, SubmitError>;

/// How a submission waits for room in the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Refuse at once when full (unary calls: the client backs off).
    FailFast,
    /// Wait for room (streams: back-pressure through flow control).
    Wait,
}

/// A validated transaction on its way to the committer.
pub(crate) struct Prepared {
    pub tx: Tx,
    pub digest: Hash,
}

/// A verified child header whose hash is to be recorded as an item.
pub(crate) struct ChildItem {
    pub header: Header,
    /// The tick state after its entries.
    pub hashes_in_tick: u64,
}

/// One submission's valid transactions (or one child header), queued for the committer.
pub(crate) struct Job {
    pub txs: Vec<Prepared>,
    /// A child header to record after the transactions (boxed: rare, and a header is large).
    pub child: Option<Box<ChildItem>>,
    pub received_at: f64,
    pub reply: oneshot::Sender<JobAnswer>,
    /// Held until the job is answered: the budget it occupies.
    pub permit: OwnedSemaphorePermit,
}

pub(crate) enum Msg {
    Job(Job),
    /// Finish what is queued, then stop.
    Close,
    /// The writer stored what it was handed and can take the next batch.
    Written,
    /// The writer met a full disk: it refuses what it was handed until the committer has
    /// gone back to the stored chain.
    Full,
    /// A replica's copied batch, to store as it is.
    Copy(Box<Copied>),
    /// Turn the replica into a primary.
    Promote(oneshot::Sender<Result<(), NodeError>>),
}

struct Inner {
    jobs: Mutex<mpsc::Sender<Msg>>,
    budget: Arc<Semaphore>,
    budget_kib: u32,
    closed: AtomicBool,
    limits: Limits,
    metrics: Arc<IngestMetrics>,
    view: Arc<PohView>,
    /// With `--min-replica-acks`: the entries that many replicas hold durably. A write is
    /// answered once they hold it.
    replica_acks: std::sync::OnceLock<ReplicaAcks>,
}

/// What a write waits for with `--min-replica-acks`: the entries enough replicas hold, until
/// the node stops.
#[derive(Clone)]
pub(crate) struct ReplicaAcks {
    pub acked: tokio::sync::watch::Receiver<u64>,
    pub stopping: tokio_util::sync::CancellationToken,
}

impl Drop for Inner {
    /// The last handle gone: the committer finishes what is queued and stops (the writer holds
    /// a sender too, so the channel alone would not tell it).
    fn drop(&mut self) {
        let jobs = self.jobs.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = jobs.send(Msg::Close);
    }
}

/// Handle to the pipeline; cheap to clone, shared by every transport.
#[derive(Clone)]
pub struct IngestPipeline {
    inner: Arc<Inner>,
}

/// A submission that is queued; [`Pending::wait`] gives its answers.
pub struct Pending {
    results: Vec<Option<TxResult>>,
    reply: Option<oneshot::Receiver<JobAnswer>>,
    started: Instant,
    transport: Transport,
    metrics: Arc<IngestMetrics>,
    /// What answers wait for when replicas must hold a write first.
    replica_acks: Option<(ReplicaAcks, Arc<PohView>)>,
}

/// Resolves when the pipeline's threads have stopped: `Ok` after [`IngestPipeline::close`]
/// with everything committed, the first failure otherwise.
pub(crate) struct PipelineJoin(oneshot::Receiver<Result<(), NodeError>>);

impl Future for PipelineJoin {
    type Output = Result<(), NodeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|done| done.unwrap_or(Err(NodeError::TaskFailed("committer"))))
    }
}

impl IngestPipeline {
    /// Resumes `chain_id` from `store` (or starts it at genesis), refusing a store that holds
    /// another chain, and starts the PoH generator (not on a replica of `primary`), the
    /// writer and the committer. Newly stored transactions go to `relay` when given. Idle
    /// ticks are made durable at least every `durable_every`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        store: Arc<dyn Store>,
        chain_id: &str,
        poh: PohConfig,
        config: &IngestConfig,
        durable_every: Duration,
        metrics: IngestMetrics,
        relay: Option<Box<dyn Relay>>,
        primary: Option<Arc<str>>,
    ) -> Result<(Self, PipelineJoin), NodeError> {
        if !config.fsync {
            tracing::warn!(
                "fsync is off: acknowledged transactions are not durable and may be lost in a \
                 crash; for measurements only"
            );
        }
        let (jobs, queue) = mpsc::channel();
        let settings = CommitSettings {
            max_batch: config.max_batch,
            durable: config.fsync,
            durable_every,
        };
        let (committer, view) = Committer::open(
            store,
            chain_id,
            poh,
            settings,
            metrics.clone(),
            (jobs.clone(), queue),
            relay,
            primary,
        )?;
        let (committed, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("poh-committer".into())
            .spawn(move || {
                let _ = committed.send(committer.run());
            })
            .map_err(|_| NodeError::TaskFailed("committer"))?;
        let budget_kib = u32::try_from(config.queue_bytes / 1024)
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        let pipeline = Self {
            inner: Arc::new(Inner {
                jobs: Mutex::new(jobs),
                budget: Arc::new(Semaphore::new(budget_kib as usize)),
                budget_kib,
                closed: AtomicBool::new(false),
                limits: config.limits(),
                metrics: Arc::new(metrics),
                view,
                replica_acks: std::sync::OnceLock::new(),
            }),
        };
        Ok((pipeline, PipelineJoin(done)))
    }

    /// Submits transactions and waits for every answer, in order. Refuses the whole call at
    /// once when the node is full.
    pub async fn submit(
        &self,
        transport: Transport,
        txs: Vec<Tx>,
    ) -> Result<Vec<TxResult>, SubmitError> {
        self.enqueue(transport, txs, Admission::FailFast)
            .await?
            .wait()
            .await
    }

    /// Validates and queues transactions; the answers come from [`Pending::wait`]. Queue
    /// order is storage order, so a stream keeps its order by queueing one chunk at a time.
    pub async fn enqueue(
        &self,
        transport: Transport,
        txs: Vec<Tx>,
        admission: Admission,
    ) -> Result<Pending, SubmitError> {
        let inner = &self.inner;
        let started = Instant::now();
        inner.metrics.received(transport, txs.len() as u64);
        let refuse = |e: SubmitError, n: usize| {
            for _ in 0..n {
                inner.metrics.rejected(transport, e.reason());
            }
            e
        };
        if inner.closed.load(Ordering::Acquire) {
            return Err(refuse(SubmitError::ShuttingDown, txs.len()));
        }
        if let Some(read_only) = inner.view.read_only() {
            return Err(refuse(read_only, txs.len()));
        }
        if inner.view.is_full() {
            return Err(refuse(SubmitError::StorageFull, txs.len()));
        }
        // Budget in KiB: a fixed overhead per transaction plus its variable-size fields.
        let cost: usize = txs.iter().map(|tx| 1 + tx_bytes(tx) / 1024).sum();
        let cost = u32::try_from(cost)
            .unwrap_or(u32::MAX)
            .min(inner.budget_kib);
        let permit = match admission {
            Admission::FailFast => inner.budget.clone().try_acquire_many_owned(cost).ok(),
            Admission::Wait => inner.budget.clone().acquire_many_owned(cost).await.ok(),
        };
        let Some(permit) = permit else {
            return Err(refuse(SubmitError::Overloaded, txs.len()));
        };

        let n = txs.len();
        let prepared = self.prepare(txs).await;
        let mut results = Vec::with_capacity(n);
        let mut valid = Vec::with_capacity(n);
        for p in prepared {
            match p {
                Ok(p) => {
                    results.push(None);
                    valid.push(p);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let mut pending = Pending {
            results,
            reply: None,
            started,
            transport,
            metrics: inner.metrics.clone(),
            replica_acks: (inner.replica_acks.get()).map(|acks| (acks.clone(), inner.view.clone())),
        };
        if valid.is_empty() {
            return Ok(pending);
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            txs: valid,
            child: None,
            received_at: unix_now(),
            reply,
            permit,
        };
        let sent = inner
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Msg::Job(job));
        if sent.is_err() {
            return Err(refuse(SubmitError::ShuttingDown, n));
        }
        pending.reply = Some(answer);
        Ok(pending)
    }

    /// Validation, digest and signature check; on rayon for large or signed batches, since
    /// an ML-DSA-87 verification takes ~70 µs and must not stall the async runtime.
    async fn prepare(&self, txs: Vec<Tx>) -> Vec<Result<Prepared, Rejected>> {
        let limits = self.inner.limits;
        let metrics = self.inner.metrics.clone();
        let signed = txs.iter().any(|tx| !tx.signature.is_empty());
        if txs.len() <= INLINE_PREPARE_MAX && !signed {
            return txs
                .into_iter()
                .map(|tx| prepare_one(tx, &limits, &metrics))
                .collect();
        }
        let n = txs.len();
        let (done, result) = oneshot::channel();
        rayon::spawn(move || {
            use rayon::prelude::*;
            let out: Vec<_> = txs
                .into_par_iter()
                .map(|tx| prepare_one(tx, &limits, &metrics))
                .collect();
            let _ = done.send(out);
        });
        // The rayon job cannot be lost while the pool lives; answer Internal if it were.
        result
            .await
            .unwrap_or_else(|_| (0..n).map(|_| Err(Rejected::Internal)).collect())
    }

    /// Records a verified child header's `header_hash` as an item in this chain's PoH and
    /// stores the header with it, durably; the item's `poh_seq` and entry hash. The caller
    /// has checked that it continues the child's last stored header.
    pub(crate) async fn record_child(
        &self,
        header: Header,
        hashes_in_tick: u64,
    ) -> Result<(u64, Hash), SubmitError> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(SubmitError::ShuttingDown);
        }
        if let Some(read_only) = inner.view.read_only() {
            return Err(read_only);
        }
        if inner.view.is_full() {
            return Err(SubmitError::StorageFull);
        }
        // A header is a few KiB; it waits for room like a stream does.
        let permit = inner
            .budget
            .clone()
            .acquire_many_owned(8)
            .await
            .map_err(|_| SubmitError::ShuttingDown)?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            txs: Vec::new(),
            child: Some(Box::new(ChildItem {
                header,
                hashes_in_tick,
            })),
            received_at: unix_now(),
            reply,
            permit,
        };
        inner
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Msg::Job(job))
            .map_err(|_| SubmitError::ShuttingDown)?;
        match answer.await.map(|r| r.map(|r| r.into_iter().next())) {
            Ok(Ok(Some(Ok(Accepted::Stored { poh_seq, poh_hash })))) => Ok((poh_seq, poh_hash)),
            Ok(Err(e)) => Err(e),
            _ => Err(SubmitError::ShuttingDown),
        }
    }

    /// Refuses new submissions and tells the committer to finish what is queued.
    pub(crate) fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let _ = self
            .inner
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Msg::Close);
    }

    /// The PoH chain as stored, and the generator's measured rate.
    pub fn poh(&self) -> PohStatus {
        self.inner.view.status()
    }

    /// Stored PoH entries from index `from`, below `below`, at most `max`, as the writer
    /// stored them, so the sealer need not read them back; `None` when they are no longer
    /// held (read them from the store). Each entry is handed out once.
    pub(crate) fn take_stored_entries(
        &self,
        from: u64,
        below: u64,
        max: usize,
    ) -> Option<Vec<poh_core::Entry>> {
        self.inner.view.take_entries(from, below, max)
    }

    /// The first `poh_seq` not yet readable from the store: every stored transaction below
    /// it is. Changes after each commit; what subscribers follow.
    pub fn stored_seq(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.view.stored()
    }

    /// Whether the committer and the PoH generator are running.
    pub fn is_running(&self) -> bool {
        self.inner.view.is_running()
    }

    /// Reads the PoH generator's running hash count, whichever generator runs (a full disk
    /// stops it and its return starts another). Holds no part of the pipeline itself.
    pub(crate) fn hashes_total(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let view = self.inner.view.clone();
        move || view.rate().hashes_total()
    }
}

/// What `GET /v1/poh` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct PohStatus {
    /// The chain's id.
    pub chain_id: String,
    /// The state after the last stored entry.
    pub state: PohState,
    /// Hashes per second over the last few seconds.
    pub hashes_per_second: f64,
}

/// Here rather than in the wire, which sits below the pipeline and never names its types.
impl From<PohStatus> for PohOut {
    fn from(s: PohStatus) -> Self {
        Self {
            chain_id: s.chain_id,
            seq: s.state.mixins,
            entries: s.state.entries,
            hash: s.state.hash.to_hex(),
            hashes_per_second: s.hashes_per_second,
        }
    }
}

impl Pending {
    /// How many transactions the submission holds.
    pub(crate) fn len(&self) -> usize {
        self.results.len()
    }

    /// Waits for the committer and returns one answer per submitted transaction, in order,
    /// or the refusal of the whole submission (the disk filled while it was queued: nothing
    /// of it was stored).
    pub async fn wait(mut self) -> Result<Vec<TxResult>, SubmitError> {
        let stored = match self.reply.take() {
            Some(answer) => answer.await.ok(),
            None => Some(Ok(Vec::new())),
        };
        let m = &self.metrics;
        let stored = match stored.transpose() {
            Ok(stored) => stored,
            Err(refused) => {
                for _ in 0..self.results.len() {
                    m.rejected(self.transport, refused.reason());
                }
                return Err(refused);
            }
        };
        if let (Some(_), Some((acks, view))) = (&stored, &mut self.replica_acks) {
            // Everything durable now holds this write; once the replicas hold that much,
            // they hold it. A node stopping first answers that it cannot say: the write is
            // stored here, and a retry elsewhere finds it or stores it.
            let needed = view.status().state.entries;
            tokio::select! {
                _ = acks.acked.wait_for(|held| *held >= needed) => {}
                () = acks.stopping.cancelled() => {
                    for _ in 0..self.results.len() {
                        self.metrics.rejected(self.transport, RejectReason::Overloaded);
                    }
                    return Err(SubmitError::ShuttingDown);
                }
            }
        }
        let mut stored = stored.map(Vec::into_iter);
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut out = Vec::with_capacity(self.results.len());
        for slot in self.results {
            let result = match slot {
                Some(r) => r,
                // A committer that went away answered nothing: an internal failure.
                None => stored
                    .as_mut()
                    .and_then(Iterator::next)
                    .unwrap_or(Err(Rejected::Internal)),
            };
            match &result {
                Ok(_) => m.issued_success.increment(1),
                Err(Rejected::Internal) => {
                    m.issued_failure.increment(1);
                    m.rejected(self.transport, RejectReason::Internal);
                }
                Err(e) => m.rejected(self.transport, Refusal::of(e).reason),
            }
            out.push(result);
        }
        m.latency.record_many(elapsed, out.len());
        m.latency_summary.record_many(elapsed, out.len());
        Ok(out)
    }
}

fn prepare_one(tx: Tx, limits: &Limits, metrics: &IngestMetrics) -> Result<Prepared, Rejected> {
    tx.validate(limits)?;
    if !tx.signature.is_empty() {
        let started = Instant::now();
        let verified = tx.verify_signature();
        metrics
            .verify_latency
            .record(started.elapsed().as_secs_f64());
        verified.map_err(|_| Rejected::BadSignature)?;
    }
    let digest = tx.digest();
    Ok(Prepared { tx, digest })
}

/// The bytes a transaction occupies while queued, roughly.
pub(crate) fn tx_bytes(tx: &Tx) -> usize {
    tx.payload.len()
        + tx.public_key.len()
        + tx.signature.len()
        + tx.tx_id.len()
        + tx.holder_id.len()
        + tx.parent_ids.iter().map(String::len).sum::<usize>()
}
