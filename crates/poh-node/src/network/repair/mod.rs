//! Getting back what this node missed, from its gRPC peers, through the one ingest pipeline:
//!
//! - [`sync`] (catch-up): at start and then periodically, each peer's `Sync` stream from the
//!   point this node last synced from that peer (kept in the store, so a restart resumes),
//!   page by page, so memory stays bounded whatever the gap;
//! - [`fetch`] (repair): the unknown parents of `PENDING` transactions, asked of each peer in
//!   turn with `Repair`, paging through answers that the peer bounds by bytes.
//!
//! A peer's records are input like any other: validated and signature-checked by the
//! pipeline, deduplicated against the store (a different transaction under a stored id is a
//! conflict and changes nothing), and, for repair, refused unless their id was asked for. What
//! is refused is counted (`poh_repair_records_total{result="refused"}`) and logged, and the
//! node carries on with the next peer.

mod fetch;
mod sync;

use std::{collections::HashMap, sync::Arc, time::Duration};

use poh_core::Tx;
use poh_proto::v1::poh_service_client::PohServiceClient;
use poh_store::Store;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::{client::PeerClients, peers::PeersCache};
use crate::{
    config::RepairConfig,
    metrics::{RecordResult, RepairMetrics, RepairSource},
    pipeline::{Admission, IngestPipeline, Pending},
    shared::{Accepted, Rejected, Transport},
};

/// What catch-up and repair share.
pub(crate) struct Repairer {
    store: Arc<dyn Store>,
    pipeline: IngestPipeline,
    clients: Arc<PeerClients>,
    peers: Arc<PeersCache>,
    config: RepairConfig,
    metrics: RepairMetrics,
    /// How long one call to a peer may take (each `Sync` message, each `Repair` answer).
    timeout: Duration,
    failures: FailureLog,
    /// The last missing parent asked for: the next round lists those after it.
    repair_cursor: std::sync::Mutex<String>,
}

/// Why a round with one peer stopped early.
#[derive(Debug, thiserror::Error)]
enum PeerError {
    #[error("cannot reach the peer: {0}")]
    Connect(String),
    #[error("the peer answered {code:?}: {message}")]
    Status { code: tonic::Code, message: String },
    #[error("the peer did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the peer broke the protocol: {0}")]
    Protocol(&'static str),
    #[error("this node could not store what the peer sent ({0}); retrying next round")]
    Local(String),
}

impl From<tonic::Status> for PeerError {
    fn from(s: tonic::Status) -> Self {
        Self::Status {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

impl Repairer {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        pipeline: IngestPipeline,
        clients: Arc<PeerClients>,
        peers: Arc<PeersCache>,
        config: RepairConfig,
        metrics: RepairMetrics,
        timeout: Duration,
    ) -> Self {
        Self {
            store,
            pipeline,
            clients,
            peers,
            config,
            metrics,
            timeout,
            failures: FailureLog::default(),
            repair_cursor: std::sync::Mutex::new(String::new()),
        }
    }

    /// Whether there is anything to run.
    pub(crate) fn is_on(config: &RepairConfig) -> bool {
        !config.sync_interval.0.is_zero() || !config.repair_interval.0.is_zero()
    }

    /// Runs catch-up and repair until `shutdown`, each on its own interval (a zero interval
    /// turns that part off).
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let sync = this
            .clone()
            .every(this.config.sync_interval.0, shutdown.clone(), |r| {
                Box::pin(async move { r.sync_round().await })
            });
        let repair = this
            .clone()
            .every(this.config.repair_interval.0, shutdown, |r| {
                Box::pin(async move { r.repair_round().await })
            });
        tokio::join!(sync, repair);
    }

    async fn every(
        self: Arc<Self>,
        period: Duration,
        shutdown: CancellationToken,
        round: impl Fn(Arc<Self>) -> futures_util::future::BoxFuture<'static, ()>,
    ) {
        if period.is_zero() {
            return;
        }
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = round(self.clone()) => {}
            }
        }
    }

    /// The gRPC peers, each with its pin.
    async fn grpc_peers(&self) -> Vec<(String, Option<String>)> {
        let peers = self.peers.current().await;
        peers
            .get(Transport::Grpc)
            .iter()
            .map(|p| (p.clone(), peers.pin(p).map(str::to_string)))
            .collect()
    }

    fn client(
        &self,
        peer: &str,
        pin: Option<&str>,
    ) -> Result<PohServiceClient<Channel>, PeerError> {
        let channel = self.clients.grpc(peer, pin).map_err(PeerError::Connect)?;
        // A Sync page or a Repair answer is bounded by bytes, under the default 2 MiB limit
        // of every node; a larger limit only guards against peers configured otherwise.
        Ok(PohServiceClient::new(channel).max_decoding_message_size(16 << 20))
    }

    /// Counts a failed call and passes its error on.
    fn failed(&self, source: RepairSource, error: PeerError) -> PeerError {
        self.metrics.request(source, false);
        error
    }

    /// A store call on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, poh_store::StoreError> + Send + 'static,
    ) -> Result<T, PeerError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|_| PeerError::Local("the store task was cancelled".into()))?
            .map_err(|e| PeerError::Local(e.to_string()))
    }

    /// Stores `txs` through the pipeline (waiting for room, as a stream does) and counts what
    /// became of each. Returns the ids stored or already stored; an internal failure is an
    /// error, so the caller retries rather than moves past them.
    async fn store(&self, source: RepairSource, txs: Vec<Tx>) -> Result<Vec<String>, PeerError> {
        let (ids, pending) = self.submit(txs).await?;
        self.settle(source, ids, pending).await
    }

    /// Queues `txs` in the pipeline; [`Repairer::settle`] waits for them.
    async fn submit(&self, txs: Vec<Tx>) -> Result<(Vec<String>, Pending), PeerError> {
        let ids: Vec<String> = txs.iter().map(|t| t.tx_id.clone()).collect();
        let pending = self
            .pipeline
            .enqueue(Transport::Grpc, txs, Admission::Wait)
            .await
            .map_err(|e| PeerError::Local(e.to_string()))?;
        Ok((ids, pending))
    }

    /// Waits for queued transactions and counts what became of each (see [`Repairer::store`]).
    async fn settle(
        &self,
        source: RepairSource,
        ids: Vec<String>,
        pending: Pending,
    ) -> Result<Vec<String>, PeerError> {
        let results = pending
            .wait()
            .await
            .map_err(|e| PeerError::Local(e.to_string()))?;
        let mut have = Vec::with_capacity(ids.len());
        let mut refused = Vec::new();
        for (id, result) in ids.into_iter().zip(results) {
            match result {
                Ok(Accepted::Stored { .. }) => {
                    self.metrics.records(source, RecordResult::Stored, 1);
                    have.push(id);
                }
                Ok(Accepted::Duplicate { .. }) => {
                    self.metrics.records(source, RecordResult::Duplicate, 1);
                    have.push(id);
                }
                Err(Rejected::Internal) => {
                    return Err(PeerError::Local("internal error".into()));
                }
                Err(why) => {
                    self.metrics.records(source, RecordResult::Refused, 1);
                    refused.push(format!("{id}: {why}"));
                }
            }
        }
        if !refused.is_empty() {
            tracing::warn!(
                count = refused.len(),
                first = %refused[0],
                "refused transactions a peer sent"
            );
        }
        Ok(have)
    }
}

/// Logs a peer's failure once until it recovers, so a peer that stays down does not fill the
/// log every round.
#[derive(Default)]
struct FailureLog(std::sync::Mutex<HashMap<String, String>>);

impl FailureLog {
    fn failed(&self, what: &'static str, peer: &str, error: &PeerError) {
        let text = error.to_string();
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.get(peer) != Some(&text) {
            tracing::warn!(peer, error = %text, "{what} from this peer failed; retrying");
            seen.insert(peer.to_string(), text);
        }
    }

    fn ok(&self, peer: &str) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.remove(peer).is_some() {
            tracing::info!(peer, "the peer answers again");
        }
    }
}
