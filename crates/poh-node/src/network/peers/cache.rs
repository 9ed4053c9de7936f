//! [`PeersCache`]: a node's one view of its peers file, shared by `GET /v1/peers`, the relay
//! and the health checks. The file is re-read only when it changed (its modification time,
//! size or inode), so `add-peer` takes effect on a running node without a restart, and the
//! relay, which asks once per transaction, looks at the file at most once a second.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use tokio::sync::Mutex;

use super::{PeerBook, Peers, PeersError};

/// How long the relay and the health checks trust the last look at the file.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The peers file as last read; cheap to share.
pub struct PeersCache {
    book: Option<PeerBook>,
    state: Mutex<State>,
}

struct State {
    peers: Arc<Peers>,
    /// What identified the file when it was read.
    version: Option<Version>,
    checked: Option<Instant>,
}

/// What changes when the file is edited: `add-peer` replaces it by a rename (a new inode),
/// an editor may rewrite it in place (a new size or modification time).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Version {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Version {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        }
    }
}

impl PeersCache {
    /// The view of the file at `path`; without one, no peers.
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            book: path.map(PeerBook::new),
            state: Mutex::new(State {
                peers: Arc::new(Peers::default()),
                version: None,
                checked: None,
            }),
        }
    }

    /// The peers as of at most a second ago. An unreadable or invalid file keeps the last
    /// good list (and is logged), so a bad edit never stops relaying.
    pub async fn current(&self) -> Arc<Peers> {
        match self.get(RELOAD_EVERY).await {
            Ok(peers) => peers,
            Err((e, last_good)) => {
                tracing::warn!(error = %e, "cannot read the peers file; keeping the last list");
                last_good
            }
        }
    }

    /// The peers as the file says now; an unreadable or invalid file is an error.
    pub async fn fresh(&self) -> Result<Arc<Peers>, PeersError> {
        self.get(Duration::ZERO).await.map_err(|(e, _)| e)
    }

    async fn get(&self, max_age: Duration) -> Result<Arc<Peers>, (PeersError, Arc<Peers>)> {
        let mut state = self.state.lock().await;
        let Some(book) = &self.book else {
            return Ok(state.peers.clone());
        };
        if state.checked.is_some_and(|at| at.elapsed() < max_age) {
            return Ok(state.peers.clone());
        }
        state.checked = Some(Instant::now());
        let path = book.path().to_path_buf();
        let version = tokio::fs::metadata(&path)
            .await
            .ok()
            .map(|m| Version::of(&m));
        if version.is_some() && version == state.version {
            return Ok(state.peers.clone());
        }
        let book = book.clone();
        let loaded = tokio::task::spawn_blocking(move || book.load())
            .await
            .unwrap_or_else(|_| {
                Err(PeersError::Read {
                    path,
                    source: std::io::Error::other("the read was cancelled"),
                })
            });
        match loaded {
            Ok(peers) => {
                state.peers = Arc::new(peers);
                state.version = version;
                Ok(state.peers.clone())
            }
            Err(e) => Err((e, state.peers.clone())),
        }
    }
}
