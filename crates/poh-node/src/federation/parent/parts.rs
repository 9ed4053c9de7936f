//! [`LinkParts`]: what the parent's side of the link uses of the node, as values. The link is
//! served by the gRPC router, in the servers above the federation; taking these rather than
//! the servers' own `Services` keeps the federation from reaching up for them.

use std::sync::Arc;

use poh_store::Store;
use tokio_util::sync::CancellationToken;

use crate::{
    federation::{Federation, prove::Prover},
    metrics::Metrics,
    pipeline::IngestPipeline,
    shared::ByteBudget,
};

/// What the parent's side of the link uses of the node, handed over by the servers.
#[derive(Clone)]
pub(crate) struct LinkParts {
    pub federation: Arc<Federation>,
    pub pipeline: IngestPipeline,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub prover: Arc<Prover>,
    /// The link's own budget (`federation.link_buffered_bytes`): the decoded header is held
    /// against it while it is checked.
    pub budget: Arc<ByteBudget>,
    /// Cancelled when the node stops: every link ends at once.
    pub shutdown: CancellationToken,
}
