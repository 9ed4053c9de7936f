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
//! - [`quic`]: where a QUIC stream's frames become `Tx`s and their `Ack`s go back;
//! - [`subscribe`]: the store cursors and limits behind `Subscribe` and `GET /v1/events`;
//! - [`queries`]: a holder's transactions and a transaction's children, for `List` and
//!   `GET /v1/tx?holder_id=`, `GET /v1/tx/{id}/children`.

pub mod auth;
pub(crate) mod gate;
pub(crate) mod grpc;
pub(crate) mod http;
pub mod limits;
pub(crate) mod listener;
pub(crate) mod queries;
pub(crate) mod quic;
pub(crate) mod subscribe;
pub mod udp;

use std::sync::Arc;

use crate::{
    IngestPipeline, NodeError,
    federation::parent::LinkParts,
    metrics::Metrics,
    network::peers::PeersCache,
    shared::{ByteBudget, read_store},
};

/// What every server of a node shares.
#[derive(Clone)]
pub(crate) struct Services {
    pub pipeline: IngestPipeline,
    pub store: Arc<dyn poh_store::Store>,
    /// Shared, not copied: the services are cloned for every request.
    pub metrics: Arc<Metrics>,
    /// The node's view of its peers file (`GET /v1/peers`).
    pub peers: Arc<PeersCache>,
    /// Client authentication, when configured.
    pub auth: Option<auth::Authenticator>,
    /// Per-client limits.
    pub limiter: Arc<limits::ClientLimiter>,
    /// The bytes held while requests are read, across all clients.
    pub buffered: Arc<ByteBudget>,
    /// The federation link's own budget: children's messages and the headers being checked,
    /// so a link can never take the room of client writes.
    pub link_buffered: Arc<ByteBudget>,
    /// The node's place in the federation.
    pub federation: Arc<crate::federation::Federation>,
    /// Inclusion proofs: this chain's links, kept trees, and the way to the parent.
    pub prover: Arc<crate::federation::prove::Prover>,
    /// Subscriptions open now, and their limits.
    pub subscriptions: Arc<subscribe::Subscriptions>,
    /// Headers sealed so far (changes when the sealer stores one).
    pub sealed: tokio::sync::watch::Receiver<u64>,
    /// The chain's `hashes_per_tick`.
    pub hashes_per_tick: u64,
    /// On a primary: the replicas copying from it now.
    pub replicas: Arc<crate::replica::Replicas>,
    /// On a replica: where it stands against its primary (`None` on a primary).
    pub follow: Option<Arc<crate::replica::FollowStatus>>,
    /// On a replica: what makes it the primary (`None` on a primary).
    pub promotion: Option<Arc<crate::replica::promote::Promotion>>,
    /// Cancelled when the node stops: long-lived answers (subscriptions) end on it.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl Services {
    /// Reads the store on the blocking pool ([`read_store`]).
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn poh_store::Store) -> Result<T, poh_store::StoreError> + Send + 'static,
    ) -> Result<T, NodeError> {
        read_store(&self.store, f).await
    }

    /// What the federation link's parent side uses of the node, handed down to it.
    pub(crate) fn link_parts(&self) -> LinkParts {
        LinkParts {
            federation: self.federation.clone(),
            pipeline: self.pipeline.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            prover: self.prover.clone(),
            budget: self.link_buffered.clone(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// What the primary's side of a replica's copy uses of the node, handed down to it.
    pub(crate) fn copy_parts(&self) -> crate::replica::serve::CopyParts {
        crate::replica::serve::CopyParts {
            store: self.store.clone(),
            pipeline: self.pipeline.clone(),
            chain_id: self.federation.chain_id.clone(),
            hashes_per_tick: self.hashes_per_tick,
            sealed: self.sealed.clone(),
            replicas: self.replicas.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

/// A response body and something held until the body is sent or dropped (a client's
/// in-flight slot, a connection's busy mark). Length and end pass through, so an answer keeps
/// its `content-length` (a wrapper that hid them would turn every reply chunked).
pub(crate) struct Holding<G> {
    body: axum::body::Body,
    _held: G,
}

impl<G: Send + Unpin + 'static> Holding<G> {
    /// `body`, holding `held` for as long as it lives.
    pub(crate) fn body(body: axum::body::Body, held: G) -> axum::body::Body {
        axum::body::Body::new(Self { body, _held: held })
    }
}

impl<G: Send + Unpin + 'static> http_body::Body for Holding<G> {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
