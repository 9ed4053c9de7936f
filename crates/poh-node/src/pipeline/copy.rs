//! What a replica hands the pipeline: batches it copied and verified ([`Copied`]), stored by
//! the committer as they are, and the promotion that makes it a primary.

use poh_core::Entry;
use poh_store::{ChildHeader, TxRecord};
use tokio::sync::{oneshot, watch};

use super::{IngestPipeline, JobAnswer, Msg, writer::Answer};
use crate::{NodeError, shared::SubmitError};

/// A batch a replica copied from its primary and verified against the stored chain.
pub(crate) struct Copied {
    /// Consecutive entries continuing the stored chain.
    pub entries: Vec<(u64, Entry)>,
    /// The transactions they recorded, in seq order, as the primary stored them.
    pub records: Vec<TxRecord>,
    /// The seqs of those the primary's TTL expired, stored as the stubs they came as.
    pub expired: Vec<u64>,
    /// The child headers they recorded.
    pub children: Vec<ChildHeader>,
    /// Answered once the batch is durable.
    pub answer: Answer,
}

impl IngestPipeline {
    /// Hands a copied batch to be stored, durably, after the ones before it; the answer comes
    /// once it is. `bytes` is what it holds in memory, counted against the pipeline's budget
    /// like any write while it waits. Batches are stored in the order they are handed over.
    pub(crate) async fn copy(
        &self,
        entries: Vec<(u64, Entry)>,
        records: Vec<TxRecord>,
        expired: Vec<u64>,
        children: Vec<ChildHeader>,
        bytes: usize,
    ) -> Result<oneshot::Receiver<JobAnswer>, SubmitError> {
        let inner = &self.inner;
        let kib = u32::try_from(1 + bytes / 1024)
            .unwrap_or(u32::MAX)
            .min(inner.budget_kib);
        let permit = inner
            .budget
            .clone()
            .acquire_many_owned(kib)
            .await
            .map_err(|_| SubmitError::ShuttingDown)?;
        let (reply, answer) = oneshot::channel();
        let copied = Copied {
            entries,
            records,
            expired,
            children,
            answer: Answer {
                reply,
                results: Vec::new(),
                permit,
            },
        };
        self.send(Msg::Copy(Box::new(copied)))?;
        Ok(answer)
    }

    /// Makes this replica the primary of its chain: it stops taking copies, starts a PoH
    /// generator from the last stored entry and takes writes. Nothing on a primary.
    pub(crate) async fn promote(&self) -> Result<(), NodeError> {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Promote(reply))
            .map_err(|_| NodeError::TaskFailed("committer"))?;
        answer
            .await
            .unwrap_or(Err(NodeError::TaskFailed("committer")))
    }

    /// From now on, a write is answered only once `acks.acked` (the entries enough replicas
    /// hold durably) reaches the entries durable when it was stored (`--min-replica-acks`),
    /// or refused as the node stops.
    pub(crate) fn require_replica_acks(&self, acks: super::ReplicaAcks) {
        let _ = self.inner.replica_acks.set(acks);
    }

    /// Whether this node is a replica (it takes no writes).
    pub fn is_following(&self) -> bool {
        self.inner.view.is_following()
    }

    /// The number of entries readable from the store; changes after each durable commit.
    pub fn durable_entries(&self) -> watch::Receiver<u64> {
        self.inner.view.entries()
    }

    fn send(&self, message: Msg) -> Result<(), SubmitError> {
        self.inner
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(message)
            .map_err(|_| SubmitError::ShuttingDown)
    }
}
