//! poh-node: a running poh node, in layers. Each module may use the ones below it, never one
//! above; `tests/it/layers.rs` reads the order from the module declarations here (bottom
//! first) and fails naming every `use crate::…` or `crate::…` path that reaches up. Where a
//! lower layer needs something of a higher one, the higher hands it down as a value or a trait
//! object, and only [`Node`], at the top, wires the layers together. From the bottom:
//!
//! 1. `error`: [`NodeError`], the one error type. Below the configuration, because every layer
//!    reports through it, the configuration's checks included; the errors it carries
//!    (`FragmentError`) are defined with it for the same reason.
//! 2. [`config`]: [`NodeConfig`], plain serde data, and the checks of its own values, a
//!    fragments coding and location strings among them. `NodeConfig::validate` itself is the
//!    network's: one of its checks needs to know how the parent is dialled.
//! 3. [`shared`]: what layers that know nothing of each other speak alike: [`Transport`], what
//!    becomes of a transaction and the one table from a refusal to its code on every wire
//!    (below both the pipeline that answers and the wire that encodes), the byte budget and the
//!    client key (held by the servers and by the federation link), the accept-and-drain loop
//!    (run by the servers and by the relay), `Live` values (replaced by the reload, read below
//!    it).
//! 4. [`metrics`]: the node's own Prometheus registry.
//! 5. [`wire`]: the encodings of SPEC §4 in both directions: a transaction as JSON, as protobuf
//!    and in QUIC frames, every answer body. It names no type of the layers above; they build
//!    the bodies of their own types (`PohOut`, `FederationOut`).
//! 6. [`tls`]: certificates and trust, both directions.
//! 7. [`pipeline`]: [`IngestPipeline`], the one path every transaction takes: validate, verify,
//!    dedupe, record in PoH and store in one durable group commit, answer; it owns the
//!    committer, writer and PoH threads. What it stores for the first time goes to the relay
//!    through its `Relay` trait, which the network implements and the node hands in.
//! 8. [`network`]: what goes out: the peers file, [`Broadcaster`](network::Broadcaster), relay,
//!    health checks, catch-up and repair, and every client (gRPC, HTTP, UDP, QUIC).
//! 9. [`federation`]: sealing this chain's headers over its stored PoH entries, the link to the
//!    parent and from the children, inclusion proofs. The parent's side of the link is served
//!    by the servers above, which hand it what it uses of the node as values (`LinkParts`).
//! 10. [`replica`]: copies of the chain (SPEC §10): the primary's side of the copy stream, and
//!     a replica's (`--follow`), which verifies what it copies and hands it to the pipeline.
//!     Above the federation, whose header checks it uses; served by the servers above.
//! 11. [`retention`]: after sealing: old sealed transactions expire from the hot store (TTL),
//!     and every sealed batch is erasure-coded into fragments in object storage.
//! 12. [`ingress`]: where requests arrive: the gate (per-client limits, then authentication)
//!     and the gRPC, HTTP, UDP and QUIC servers, each turning its wire format into a `Tx`;
//!     above everything they serve.
//! 13. `reload`: what SIGHUP and changed files reload live (certificates, the CA and
//!     allow-list, tokens and JWT keys, `[limits]`), reaching into the layers that hold them.
//! 14. [`Node`] (`node`): wiring only: it starts the store, the pipeline, the servers, the
//!     network, the federation and retention, and owns every task (`spawn`, `shutdown`,
//!     `join`).
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

// The layers, bottom first: the order tests/it/layers.rs checks. One to a group, so rustfmt
// keeps it.
mod error;

pub mod config;

pub mod shared;

pub mod metrics;

pub mod wire;

pub mod tls;

pub mod pipeline;

pub mod network;

pub mod federation;

pub mod replica;

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
