//! Promotion (`POST /v1/replica/promote`, `poh promote`): a replica becomes the primary of its
//! chain. It stops copying, its pipeline continues the chain from the last copied entry with
//! a PoH generator of its own, and sealing and the link to the parent start, continuing from
//! the last copied header. Refused unless this node's key is the chain's.

use std::sync::Arc;

use poh_store::Store;
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;

use crate::{IngestPipeline, NodeError, federation::key::fingerprint, shared::read_store};

/// What a promotion changes, handed down when the node is wired.
pub(crate) struct Promotion {
    pub pipeline: IngestPipeline,
    pub store: Arc<dyn Store>,
    /// This node's public key, which will sign the chain's next headers.
    pub node_key: Vec<u8>,
    /// The chain's key as configured (`--chain-key`), if it was.
    pub chain_key: Option<Vec<u8>>,
    /// Cancelled to stop the copy.
    pub copying: CancellationToken,
    /// Set once this node leads: what seals and links waits for it.
    pub leading: watch::Sender<bool>,
    /// One promotion at a time.
    pub once: Mutex<()>,
    /// `poh_target_hashes_per_second`, 0 while the node copies (it makes no PoH of its own),
    /// and the configured rate it shows once it leads.
    pub target: (metrics::Gauge, f64),
}

impl Promotion {
    /// Makes this replica the chain's primary.
    pub(crate) async fn promote(&self) -> Result<(), NodeError> {
        let _one = self.once.lock().await;
        if !self.pipeline.is_following() {
            return Err(NodeError::Promote("this node is a primary already".into()));
        }
        let chain_key = match &self.chain_key {
            Some(key) => Some(key.clone()),
            None => last_header_key(&self.store).await?,
        };
        // With no header copied and no key configured, nothing says whose chain this is.
        let chain_key = chain_key.ok_or_else(|| {
            NodeError::Promote(
                "this replica has copied no header, so it cannot tell the chain's key; start \
                 it with --chain-key set to the chain's public key file, then promote again"
                    .into(),
            )
        })?;
        if chain_key != self.node_key {
            return Err(NodeError::Promote(format!(
                "this node's key ({}) is not the chain's ({}); restart it with --node-key set \
                 to the chain's key file, then promote again",
                fingerprint(&self.node_key),
                fingerprint(&chain_key)
            )));
        }
        self.copying.cancel();
        self.pipeline.promote().await?;
        self.leading.send_replace(true);
        self.target.0.set(self.target.1);
        let state = self.pipeline.poh().state;
        tracing::info!(
            entries = state.entries,
            seq = state.mixins,
            "promoted: this node is now its chain's primary"
        );
        Ok(())
    }
}

/// The key of the last stored header (`None` before the first).
async fn last_header_key(store: &Arc<dyn Store>) -> Result<Option<Vec<u8>>, NodeError> {
    read_store(store, |s| {
        let Some(head) = s.header_head()? else {
            return Ok(None);
        };
        let last = head
            .height
            .checked_sub(1)
            .map(|h| s.headers(h, 1))
            .transpose()?;
        Ok(last
            .and_then(|h| h.into_iter().next())
            .map(|h| h.public_key))
    })
    .await
}
