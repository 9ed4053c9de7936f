//! Relaying (`--relay`, SPEC §5): each transaction this node stores for the first time is
//! forwarded once to every peer. Duplicates never reach the queue, so a ring of relaying nodes
//! stops once every node has the transaction.
//!
//! The sends run in the common accept-and-drain loop: at most [`RELAY_IN_FLIGHT`] broadcasts
//! at once; beyond it the queue waits, then fills. The queue is bounded in bytes
//! (`peers.relay_queue_bytes`), a transaction's share held until its broadcast ends; what does
//! not fit is dropped, counted (`poh_relay_dropped_total`) and logged at most once a second,
//! so a slow peer never grows memory.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use metrics::Counter;
use poh_core::Tx;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{
    broadcast::Broadcaster,
    peers::{Peers, PeersCache},
};
use crate::{
    pipeline::{Relay, tx_bytes},
    shared::{Source, accept_and_drain},
};

/// Relay broadcasts in flight at once.
const RELAY_IN_FLIGHT: usize = 256;

/// A newly stored transaction to relay, and its share of the queue's bytes.
pub(crate) struct Queued {
    tx: Tx,
    _share: OwnedSemaphorePermit,
}

/// Where the pipeline's writer puts newly stored transactions; never blocks.
pub(crate) struct RelaySender {
    queue: mpsc::UnboundedSender<Queued>,
    kib: Arc<Semaphore>,
    dropped: Counter,
    /// When the last drop was logged, and the drops since.
    unlogged: Mutex<(Option<Instant>, u64)>,
}

/// The queue of newly stored transactions, bounded to `bytes`.
pub(crate) fn queue(
    bytes: usize,
    dropped: Counter,
) -> (RelaySender, mpsc::UnboundedReceiver<Queued>) {
    let (queue, rx) = mpsc::unbounded_channel();
    let kib = (bytes / 1024).clamp(1, Semaphore::MAX_PERMITS);
    let sender = RelaySender {
        queue,
        kib: Arc::new(Semaphore::new(kib)),
        dropped,
        unlogged: Mutex::new((None, 0)),
    };
    (sender, rx)
}

impl Relay for RelaySender {
    /// Queues `tx` when its bytes fit; otherwise counts it dropped.
    fn send(&self, tx: &Tx) {
        let kib = u32::try_from(1 + tx_bytes(tx) / 1024).unwrap_or(u32::MAX);
        let queued = match self.kib.clone().try_acquire_many_owned(kib) {
            Ok(share) => self
                .queue
                .send(Queued {
                    tx: tx.clone(),
                    _share: share,
                })
                .is_ok(),
            Err(_) => false,
        };
        if !queued {
            self.drop_one();
        }
    }
}

impl RelaySender {
    fn drop_one(&self) {
        self.dropped.increment(1);
        let mut unlogged = self.unlogged.lock().unwrap_or_else(|p| p.into_inner());
        unlogged.1 += 1;
        if unlogged
            .0
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            tracing::warn!(
                dropped = unlogged.1,
                "relay queue full: newly stored transactions not relayed (peers too slow?)"
            );
            *unlogged = (Some(Instant::now()), 0);
        }
    }
}

/// The queue of newly stored transactions, each with the peers it goes to; while there are
/// no peers, transactions are taken and dropped.
struct Stored {
    queue: mpsc::UnboundedReceiver<Queued>,
    peers: Arc<PeersCache>,
}

impl Source for Stored {
    type Item = (Queued, Arc<Peers>);

    async fn next(&mut self) -> Option<Self::Item> {
        loop {
            let tx = self.queue.recv().await?;
            let peers = self.peers.current().await;
            if !peers.is_empty() {
                return Some((tx, peers));
            }
        }
    }
}

/// Forwards each transaction from `queue` to every peer once, until `shutdown`.
pub(crate) async fn relay(
    queue: mpsc::UnboundedReceiver<Queued>,
    broadcaster: Arc<Broadcaster>,
    peers: Arc<PeersCache>,
    shutdown: CancellationToken,
) {
    let source = Stored { queue, peers };
    accept_and_drain(
        "relay",
        source,
        RELAY_IN_FLIGHT,
        shutdown,
        move |(queued, peers): (Queued, Arc<Peers>)| {
            let broadcaster = broadcaster.clone();
            async move {
                let tx = &queued.tx;
                let report = broadcaster.broadcast(&peers, tx).await;
                for failed in report.peers.iter().filter(|r| r.outcome.is_err()) {
                    tracing::debug!(
                        tx_id = %tx.tx_id,
                        peer = %failed.peer,
                        protocol = failed.protocol.as_str(),
                        error = ?failed.outcome,
                        "relay failed"
                    );
                }
            }
        },
    )
    .await;
}
