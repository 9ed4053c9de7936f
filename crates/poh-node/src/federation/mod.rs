//! Federation (SPEC §6): this chain's sealed headers, and its place between the levels.
//!
//! - [`key`]: the node's signing key, given or made in the data directory on first start;
//! - [`sealer`]: the task that seals headers over the durably stored PoH entries, at an
//!   interval that adapts to the load;
//! - [`link`]: the child's side of the link: every sealed header, with its entries, pushed to
//!   the parent from the height the parent expects;
//! - [`parent`]: the parent's side of the link: children's headers checked and recorded as
//!   items of this chain's PoH;
//! - [`prove`]: inclusion proofs, from this chain's header up through its parent's.

pub mod key;
pub(crate) mod link;
pub mod parent;
pub(crate) mod prove;
pub(crate) mod sealer;

use std::path::Path;

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use poh_core::{Level, SigningKey};

use crate::{
    NodeConfig, NodeError,
    wire::headers::{ChildOut, FederationOut},
};

/// A chain of the level below whose headers this node accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    /// Its `chain_id`.
    pub chain_id: String,
    /// Its ML-DSA-87 public key.
    pub public_key: Vec<u8>,
    /// The `hashes_per_tick` its tick periods are checked against (this node's setting for
    /// it, never the child's word).
    pub hashes_per_tick: u64,
}

/// The node's place in the federation (`GET /v1/federation`).
#[derive(Clone, Debug)]
pub struct Federation {
    /// This chain.
    pub chain_id: String,
    /// Its level.
    pub level: Level,
    /// Where its headers go (a gRPC address), if anywhere.
    pub parent: Option<String>,
    /// The chains whose headers it accepts.
    pub children: Vec<Child>,
    /// The public key its headers are signed with.
    pub public_key: Vec<u8>,
    /// Seconds a child's header timestamp may be ahead of this node's clock.
    pub max_child_clock_skew: f64,
}

impl Federation {
    /// Reads the node key (making one when none is given and none is kept) and the
    /// children's public keys.
    pub(crate) fn load(config: &NodeConfig) -> Result<(Self, SigningKey), NodeError> {
        let f = &config.federation;
        let key = key::load_or_create(f.node_key.as_deref(), &config.data_dir)?;
        let children = f
            .children
            .iter()
            .map(|c| {
                Ok(Child {
                    chain_id: c.chain_id.clone(),
                    public_key: key::read_public_key(Path::new(&c.public_key_file))?,
                    hashes_per_tick: c.hashes_per_tick.unwrap_or(config.poh.hashes_per_tick),
                })
            })
            .collect::<Result<_, NodeError>>()?;
        tracing::info!(
            chain_id = %config.chain_id,
            level = %f.level,
            key_fingerprint = %key::fingerprint(key.public_key()),
            "signing headers"
        );
        let federation = Self {
            chain_id: config.chain_id.clone(),
            level: f.level,
            parent: f.parent.clone(),
            children,
            public_key: key.public_key().to_vec(),
            max_child_clock_skew: f.max_child_clock_skew,
        };
        Ok((federation, key))
    }

    /// `GET /v1/federation`, with this chain's height and each child's. Built here, not in
    /// the wire, which sits below the federation and never names its types.
    pub(crate) fn out(&self, height: Option<u64>, children: &[Option<u64>]) -> FederationOut {
        FederationOut {
            chain_id: self.chain_id.clone(),
            level: self.level,
            height,
            parent: self.parent.clone(),
            children: self
                .children
                .iter()
                .zip(children.iter().chain(std::iter::repeat(&None)))
                .map(|(c, height)| ChildOut {
                    chain_id: c.chain_id.clone(),
                    public_key_b64: B64.encode(&c.public_key),
                    height: *height,
                })
                .collect(),
        }
    }
}
