//! poh-node: a running poh node. The folders follow the data flow:
//!
//! - [`wire`]: the encodings of SPEC §4 in both directions: a transaction as JSON, as
//!   protobuf and in QUIC frames, every answer body, [`Transport`], and the one table from a
//!   refusal to its code on each wire;
//! - [`ingress`]: where requests arrive: the common accept-and-drain listener, the gate
//!   (per-client limits, then authentication) and the gRPC, HTTP, UDP and QUIC servers, each
//!   turning its wire format into a `Tx`;
//! - [`pipeline`]: [`IngestPipeline`], the one path every transaction takes: validate, verify,
//!   dedupe, record in PoH and store in one durable group commit, answer; it owns the
//!   committer, writer and PoH threads;
//! - [`federation`]: sealing this chain's headers over its stored PoH entries, and its place
//!   between the federation levels;
//! - [`retention`]: after sealing: old sealed transactions expire from the hot store (TTL),
//!   and every sealed batch is erasure-coded into fragments in object storage;
//! - [`network`]: what goes out: the peers file, [`Broadcaster`](network::Broadcaster), relay,
//!   health checks, and every client (gRPC, HTTP, UDP, QUIC);
//! - [`Node`] (`node`): wiring only: it starts the store, the pipeline, the ingress and the
//!   network, and owns every task (`spawn`, `shutdown`, `join`);
//! - beside them: [`NodeConfig`] ([`config`], plain serde data), [`tls`] (certificates and trust,
//!   both directions), `reload` (what SIGHUP and changed files reload live: certificates, the
//!   CA and allow-list, tokens and JWT keys, `[limits]`), [`metrics`] (the node's own
//!   Prometheus registry), [`NodeError`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

// The layers, from the bottom: each may use the ones declared before it, never those after
// (tests/it/layers.rs reads this order). One to a group, so rustfmt keeps the order.
mod error;

pub mod config;

pub mod shared;

pub mod metrics;

pub mod wire;

pub mod tls;

pub mod pipeline;

pub mod network;

pub mod federation;

pub mod retention;

pub mod ingress;

mod reload;

mod node;

pub use config::NodeConfig;
pub use error::NodeError;
pub use network::peers::{PeerBook, Peers, PeersError};
pub use node::Node;
pub use pipeline::IngestPipeline;
pub use shared::Transport;
pub use wire::{
    json::{tx_from_json, tx_to_json},
    protobuf::{tx_from_pb, tx_to_pb},
};
