//! Ingress: every way a transaction or a question reaches the node. Each server decodes its
//! wire format ([`crate::wire`]) into a `Tx` and hands it to the one
//! [`IngestPipeline`](crate::IngestPipeline).
//!
//! - [`listener`]: the accept-and-drain loop every listener runs, and TCP serving (TLS, HTTP/1
//!   and HTTP/2);
//! - [`gate`]: per-client admission and authentication, in front of every gRPC call and HTTP
//!   request; [`limits`] and [`auth`] are what it checks;
//! - [`grpc`]: `PohService`, `DAGService`, health and reflection;
//! - [`http`]: the HTTP/JSON API, `/metrics` and `/openapi.json`;
//! - [`udp`]: where a datagram becomes a `Tx`;
//! - [`quic`]: where a QUIC stream's frames become `Tx`s and their `Ack`s go back.

pub mod auth;
pub(crate) mod gate;
pub(crate) mod grpc;
pub(crate) mod http;
pub mod limits;
pub(crate) mod listener;
pub(crate) mod quic;
pub mod udp;

use std::sync::Arc;

use crate::{IngestPipeline, NodeError, metrics::Metrics, network::peers::PeersCache};

/// What every server of a node shares.
#[derive(Clone)]
pub(crate) struct Services {
    pub pipeline: IngestPipeline,
    pub store: Arc<dyn poh_store::Store>,
    pub metrics: Metrics,
    /// The node's view of its peers file (`GET /v1/peers`).
    pub peers: Arc<PeersCache>,
    /// Client authentication, when configured.
    pub auth: Option<auth::Authenticator>,
    /// Per-client limits.
    pub limiter: Arc<limits::ClientLimiter>,
    /// The bytes held while requests are read, across all clients.
    pub buffered: Arc<limits::ByteBudget>,
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
