//! Relaying (`--relay`, SPEC §5): each transaction this node stores for the first time is
//! forwarded once to every peer. Duplicates never reach the queue, so a ring of relaying nodes
//! stops once every node has the transaction.
//!
//! The sends run in the common accept-and-drain loop: at most [`RELAY_IN_FLIGHT`] broadcasts
//! at once; beyond it the queue waits, then fills, and the writer drops (and logs) what does
//! not fit, so a slow peer never grows memory.

use std::sync::Arc;

use poh_core::Tx;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    broadcast::Broadcaster,
    peers::{Peers, PeersCache},
};
use crate::ingress::listener::{Source, accept_and_drain};

/// Relay broadcasts in flight at once.
const RELAY_IN_FLIGHT: usize = 256;

/// The queue of newly stored transactions, each with the peers it goes to; while there are
/// no peers, transactions are taken and dropped.
struct Stored {
    queue: mpsc::Receiver<Tx>,
    peers: Arc<PeersCache>,
}

impl Source for Stored {
    type Item = (Tx, Arc<Peers>);

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
    queue: mpsc::Receiver<Tx>,
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
        move |(tx, peers)| {
            let broadcaster = broadcaster.clone();
            async move {
                let report = broadcaster.broadcast(&peers, &tx).await;
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
