//! The node's own use of its peers: relaying newly stored transactions (`--relay`) and the
//! periodic health checks behind `active_peers` (SPEC §5).
//!
//! The peers file is re-read when it changes (checked at most once a second), so `add-peer`
//! takes effect on a running node without a restart.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use futures_util::future::join_all;
use poh_core::Tx;
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    broadcast::Broadcaster,
    metrics::Metrics,
    peers::{PeerBook, PeerProtocol, Peers},
};

/// Relay broadcasts in flight at once; beyond it the queue waits (and fills, and then the
/// writer drops what does not fit, so memory stays bounded).
const RELAY_IN_FLIGHT: usize = 256;
/// How often the peers file is looked at for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The peers file as last read, re-read when its modification time changes.
pub(crate) struct PeersCache {
    book: Option<PeerBook>,
    peers: Arc<Peers>,
    modified: Option<SystemTime>,
    checked: Option<Instant>,
}

impl PeersCache {
    pub(crate) fn new(path: Option<PathBuf>) -> Self {
        Self {
            book: path.map(PeerBook::new),
            peers: Arc::new(Peers::default()),
            modified: None,
            checked: None,
        }
    }

    /// The current peers; an unreadable file keeps the last good list (and is logged).
    pub(crate) async fn current(&mut self) -> Arc<Peers> {
        if self.checked.is_some_and(|at| at.elapsed() < RELOAD_EVERY) {
            return self.peers.clone();
        }
        self.checked = Some(Instant::now());
        let Some(book) = &self.book else {
            return self.peers.clone();
        };
        let path = book.path().to_path_buf();
        let modified = tokio::fs::metadata(&path)
            .await
            .and_then(|m| m.modified())
            .ok();
        if modified.is_some() && modified == self.modified {
            return self.peers.clone();
        }
        let book = PeerBook::new(path);
        match tokio::task::spawn_blocking(move || book.load()).await {
            Ok(Ok(peers)) => {
                self.peers = Arc::new(peers);
                self.modified = modified;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the peers file; keeping the last list")
            }
            Err(_) => tracing::warn!("reading the peers file failed"),
        }
        self.peers.clone()
    }
}

/// Forwards each transaction from `queue` to every peer once, until `shutdown`.
pub(crate) async fn relay(
    mut queue: mpsc::Receiver<Tx>,
    broadcaster: Arc<Broadcaster>,
    mut peers: PeersCache,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(RELAY_IN_FLIGHT));
    let mut sends = JoinSet::new();
    loop {
        let tx = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            tx = queue.recv() => match tx {
                Some(tx) => tx,
                None => break,
            },
        };
        let current = peers.current().await;
        if current.is_empty() {
            continue;
        }
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        while sends.try_join_next().is_some() {}
        let broadcaster = broadcaster.clone();
        sends.spawn(async move {
            let report = broadcaster.broadcast(&current, &tx).await;
            for failed in report.peers.iter().filter(|r| r.outcome.is_err()) {
                tracing::debug!(
                    tx_id = %tx.tx_id,
                    peer = %failed.peer,
                    protocol = failed.protocol.as_str(),
                    error = ?failed.outcome,
                    "relay failed"
                );
            }
            drop(permit);
        });
    }
    // Sends in flight get their own timeout to finish; a stopping node does not wait longer.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while sends.join_next().await.is_some() {}
    })
    .await;
    sends.abort_all();
}

/// Checks every peer each `every` and sets `active_peers` to how many answered. UDP peers,
/// which cannot answer, are not counted.
pub(crate) async fn health(
    broadcaster: Arc<Broadcaster>,
    mut peers: PeersCache,
    metrics: Metrics,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let current = peers.current().await;
        let broadcaster = &*broadcaster;
        let checks = current
            .iter()
            .filter(|(protocol, _)| *protocol != PeerProtocol::Udp)
            .map(|(protocol, peer)| {
                let pin = current.pin(peer);
                async move { broadcaster.check(protocol, peer, pin).await }
            });
        let answered = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            results = join_all(checks) => results.iter().filter(|r| r.is_ok()).count(),
        };
        metrics.active_peers.set(answered as f64);
    }
}
