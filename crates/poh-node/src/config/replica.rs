//! `[replica]`: following a primary (SPEC §10), and what a primary waits for from its
//! replicas.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A replica's primary, and a primary's replicas.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicaConfig {
    /// The primary's gRPC address (`--follow`): this node is a replica of it, copying its
    /// chain and taking no writes. Dialled like every client: TLS and the peers' token.
    pub follow: Option<String>,
    /// The chain's public key file (`--chain-key`), that every copied header must be signed
    /// with. Without it, a new replica takes the key of the first header it copies (over a
    /// connection it verified) and holds every later header to it.
    pub chain_key: Option<PathBuf>,
    /// On a primary (`--min-replica-acks`): a write is answered only once this many replicas
    /// hold it durably.
    pub min_replica_acks: usize,
}
