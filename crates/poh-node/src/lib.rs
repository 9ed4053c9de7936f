//! poh-node: a running poh node.
//!
//! - [`Node`] (`node`): the handle that owns every task; `spawn`, `shutdown`, `join`;
//! - [`NodeConfig`] (`config`): plain serde data, read from TOML and overridden by the CLI;
//! - [`IngestPipeline`] (`pipeline`): the one path every transport's transactions take —
//!   validate, verify, dedupe, group commit of transactions and PoH entries, answer;
//! - `grpc`: `PohService`, `DAGService`, health and reflection, with a layer for metrics,
//!   logs, deadlines and error masking;
//! - `http`: the HTTP/JSON API, `/metrics` and `/openapi.json`;
//! - `listener`: the one accept loop every TCP listener runs;
//! - [`metrics`]: the node's own Prometheus registry and typed handles.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod auth;
pub mod broadcast;
pub mod config;
mod error;
mod grpc;
mod http;
pub mod limits;
mod listener;
pub mod metrics;
mod node;
pub mod peers;
pub mod pipeline;
pub mod quic;
mod relay;
pub mod tls;
pub mod udp;

use std::{path::PathBuf, sync::Arc};

pub use config::NodeConfig;
pub use error::NodeError;
pub use grpc::{tx_from_pb, tx_to_pb};
pub use http::json::{tx_from_json, tx_to_json};
pub use node::Node;
pub use peers::{PeerBook, PeerProtocol, Peers, PeersError};
pub use pipeline::IngestPipeline;

/// Where a transaction came from (the `transport` label of SPEC §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// gRPC.
    Grpc = 0,
    /// HTTP/JSON.
    Http = 1,
    /// UDP datagrams.
    Udp = 2,
    /// QUIC streams.
    Quic = 3,
}

impl Transport {
    /// Every transport, in label order.
    pub const ALL: [Self; 4] = [Self::Grpc, Self::Http, Self::Udp, Self::Quic];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
            Self::Udp => "udp",
            Self::Quic => "quic",
        }
    }
}

/// What every server of a node shares.
#[derive(Clone)]
pub(crate) struct Services {
    pub pipeline: IngestPipeline,
    pub store: Arc<dyn poh_store::Store>,
    pub metrics: metrics::Metrics,
    pub peers_file: Option<PathBuf>,
    /// Client authentication, when configured.
    pub auth: Option<auth::Authenticator>,
    /// Per-client limits.
    pub limiter: Arc<limits::ClientLimiter>,
}

impl Services {
    /// Runs a store read on the blocking pool: redb reads do file I/O, which must not stall
    /// the async threads.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn poh_store::Store) -> Result<T, poh_store::StoreError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|_| NodeError::TaskFailed("store read"))?
            .map_err(NodeError::from)
    }
}
