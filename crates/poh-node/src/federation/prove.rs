//! Inclusion proofs: the links that show an item ordered by this chain's header, and by the
//! headers of the levels above (asked of the parent over `Federation/Prove`, which asks its
//! own parent in turn). A level that cannot be reached, or has not sealed over the item yet,
//! ends the proof there: what is returned always verifies.
//!
//! A proof must cost far less to answer than a header did to seal. The [`Prover`] keeps the
//! Merkle trees of recently proven headers (a sealed header's items never change), builds a
//! missing one only within a bound on concurrent work, and reuses what the parent answered
//! for a header for a moment, so a flood of proof requests neither re-reads every covered
//! entry each time nor turns into a flood of calls upward.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use poh_core::{Hash, Header, merkle::Tree, proof::ProofLink};
use poh_proto::{
    bounded::{MAX_LINK_MESSAGE_BYTES, MAX_PROOF_LINKS},
    federation::{ProveRequest, federation_client::FederationClient},
};
use poh_store::Store;
use tokio::sync::{OnceCell, Semaphore};
use tonic::transport::Channel;

use super::link::covered_entries;
use crate::{
    NodeError,
    network::client::{Bearer, ClientTls, grpc_channel},
    wire::protobuf::link_from_pb,
};

/// Trees built at once: each reads a header's entries and hashes its items.
const BUILDERS: usize = 2;
/// How long a proof waits for a builder before it is refused as overload.
const BUILD_WAIT: Duration = Duration::from_secs(5);
/// Bytes of trees kept (a header at the item cap needs 16 MiB)…
const CACHE_BYTES: usize = 64 << 20;
/// …and headers remembered at most, built or not (one whose build was refused stays listed
/// until it is tried again or falls out).
const MAX_KEPT: usize = 1024;
/// How long the parent's answer for one header is reused.
const UPWARD_FRESH: Duration = Duration::from_secs(1);

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProveError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] poh_store::StoreError),
    /// Every builder stayed busy for [`BUILD_WAIT`].
    #[error("the node is busy building proofs; retry later")]
    Busy,
    /// A builder task died.
    #[error("a proof builder stopped unexpectedly")]
    Task,
}

/// A sealed header and the tree of its items.
struct Sealed {
    header: Header,
    /// The `poh_seq` of its first item.
    first_seq: u64,
    items: Vec<Hash>,
    tree: Tree,
}

impl Sealed {
    fn bytes(&self) -> usize {
        self.items.len() * 32 + self.tree.bytes()
    }
}

/// A header's tree, built by the first proof that needs it while the others wait for it.
type Kept = Arc<OnceCell<Arc<Sealed>>>;

/// Builds proofs with cached trees, bounded work, and the way up.
pub(crate) struct Prover {
    store: Arc<dyn Store>,
    /// `poh_proof_trees_total{result="kept"}` and `{result="built"}`.
    trees_used: [metrics::Counter; 2],
    builders: Semaphore,
    /// Trees by the entry their header starts at, most recently used last.
    trees: Mutex<VecDeque<(u64, Kept)>>,
    upward: Option<Upward>,
    /// The parent's last answer per header hash, and when it came.
    above: Mutex<HashMap<Hash, (Instant, Vec<ProofLink>)>>,
}

impl Prover {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        upward: Option<Upward>,
        trees_used: [metrics::Counter; 2],
    ) -> Self {
        Self {
            store,
            trees_used,
            builders: Semaphore::new(BUILDERS),
            trees: Mutex::new(VecDeque::new()),
            upward,
            above: Mutex::new(HashMap::new()),
        }
    }

    /// The proof of the item with `poh_seq` `seq`, recorded in entry `entry_index`: this
    /// node's link and those above it; `None` until a header covers it.
    pub(crate) async fn prove(
        &self,
        entry_index: u64,
        seq: u64,
    ) -> Result<Option<Vec<ProofLink>>, ProveError> {
        let Some(own) = self.own_link(entry_index, seq).await? else {
            return Ok(None);
        };
        let header_hash = own.header.hash();
        let mut links = vec![own];
        links.extend(self.links_above(header_hash).await);
        Ok(Some(links))
    }

    /// This node's link alone.
    async fn own_link(&self, entry_index: u64, seq: u64) -> Result<Option<ProofLink>, ProveError> {
        let store = self.store.clone();
        let found = tokio::task::spawn_blocking(move || store.header_at_entry(entry_index))
            .await
            .map_err(|_| ProveError::Task)??;
        let Some((header, first_seq)) = found else {
            return Ok(None);
        };
        let sealed = self.sealed(header, first_seq).await?;
        let index = seq
            .checked_sub(sealed.first_seq)
            .and_then(|i| usize::try_from(i).ok());
        Ok(index.and_then(|i| {
            Some(ProofLink {
                item: *sealed.items.get(i)?,
                index: i as u64,
                audit_path: sealed.tree.path(i)?,
                header: sealed.header.clone(),
            })
        }))
    }

    /// The tree of `header`, kept or built.
    async fn sealed(&self, header: Header, first_seq: u64) -> Result<Arc<Sealed>, ProveError> {
        let cell = {
            let mut trees = self.trees.lock().unwrap_or_else(|p| p.into_inner());
            let at = trees
                .iter()
                .position(|(start, _)| *start == header.poh_start);
            let cell = match at.and_then(|i| trees.remove(i)) {
                Some((_, cell)) => cell,
                None => Arc::new(OnceCell::new()),
            };
            trees.push_back((header.poh_start, cell.clone()));
            cell
        };
        let built = std::sync::atomic::AtomicBool::new(false);
        let sealed = cell
            .get_or_try_init(|| async {
                built.store(true, std::sync::atomic::Ordering::Relaxed);
                let _turn = tokio::time::timeout(BUILD_WAIT, self.builders.acquire())
                    .await
                    .map_err(|_| ProveError::Busy)?
                    .map_err(|_| ProveError::Task)?;
                let store = self.store.clone();
                tokio::task::spawn_blocking(move || {
                    let items: Vec<Hash> = covered_entries(store.as_ref(), &header)?
                        .into_iter()
                        .flat_map(|e| e.mixins)
                        .collect();
                    let tree = Tree::new(&items);
                    Ok::<_, ProveError>(Arc::new(Sealed {
                        header,
                        first_seq,
                        items,
                        tree,
                    }))
                })
                .await
                .map_err(|_| ProveError::Task)?
            })
            .await
            .cloned();
        self.evict();
        let sealed = sealed?;
        let built = built.load(std::sync::atomic::Ordering::Relaxed);
        self.trees_used[usize::from(built)].increment(1);
        Ok(sealed)
    }

    /// Drops the least recently used trees beyond [`CACHE_BYTES`].
    fn evict(&self) {
        let mut trees = self.trees.lock().unwrap_or_else(|p| p.into_inner());
        let mut kept = 0usize;
        let mut keep = trees.len().min(MAX_KEPT);
        for (n, (_, cell)) in trees.iter().rev().take(keep).enumerate() {
            kept += cell.get().map_or(0, |s| s.bytes());
            if kept > CACHE_BYTES {
                keep = n;
                break;
            }
        }
        let drop = trees.len() - keep;
        trees.drain(..drop);
    }

    /// The links above this node's header `header_hash`, as far as the levels above know.
    pub(crate) async fn links_above(&self, header_hash: Hash) -> Vec<ProofLink> {
        let Some(up) = &self.upward else {
            return Vec::new();
        };
        {
            let mut above = self.above.lock().unwrap_or_else(|p| p.into_inner());
            above.retain(|_, (at, _)| at.elapsed() < UPWARD_FRESH);
            if let Some((_, links)) = above.get(&header_hash) {
                return links.clone();
            }
        }
        let links = up.links_above(header_hash).await;
        let mut above = self.above.lock().unwrap_or_else(|p| p.into_inner());
        above.insert(header_hash, (Instant::now(), links.clone()));
        links
    }
}

/// The way up: the parent's `Federation` service.
pub(crate) struct Upward {
    parent: String,
    channel: Channel,
    bearer: Option<Bearer>,
}

impl Upward {
    /// A lazily connected client of `parent`, trusted and authenticated like every link.
    pub(crate) fn new(parent: &str, tls: &ClientTls, timeout: Duration) -> Result<Self, NodeError> {
        let channel = grpc_channel(parent, tls, timeout)
            .map_err(|why| NodeError::Config(format!("--parent {parent}: {why}")))?;
        Ok(Self {
            parent: parent.to_string(),
            channel,
            bearer: tls.token.clone(),
        })
    }

    /// The links above this node's header `header_hash`, as far as the levels above know.
    async fn links_above(&self, header_hash: Hash) -> Vec<ProofLink> {
        let mut client = FederationClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_LINK_MESSAGE_BYTES);
        let mut request = tonic::Request::new(ProveRequest {
            header_hash: header_hash.0.to_vec(),
        });
        if let Some(b) = &self.bearer {
            b.authorize(&mut request);
        }
        let links = match client.prove(request).await {
            Ok(answer) => answer.into_inner().links,
            Err(status) => {
                tracing::info!(parent = %self.parent, %status, "the parent did not prove a header; the proof stops at this level");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for link in links.into_iter().take(MAX_PROOF_LINKS) {
            match link_from_pb(link) {
                Ok(link) => out.push(link),
                Err(why) => {
                    tracing::warn!(parent = %self.parent, %why, "the parent sent a bad proof link");
                    break;
                }
            }
        }
        out
    }
}
