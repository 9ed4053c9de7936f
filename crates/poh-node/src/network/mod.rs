//! The network: everything that goes out from the node to other nodes.
//!
//! - [`peers`]: the peers file (SPEC §5), and the node's one cached view of it;
//! - [`broadcast`]: one transaction to every peer of every protocol at once, with per-peer
//!   timeouts and retries;
//! - [`relay`]: forwarding each newly stored transaction once (`--relay`);
//! - [`health`]: peer reachability and `active_peers`;
//! - [`repair`]: catch-up (`Sync`) and repair (`Repair`) of what this node missed;
//! - [`client`]: every client, per transport (gRPC, HTTP, UDP, QUIC), and the connections to
//!   peers they keep.

pub mod broadcast;
pub mod client;
pub mod health;
pub mod peers;
pub(crate) mod relay;
pub(crate) mod repair;

pub use broadcast::{BroadcastReport, Broadcaster, Delivery, PeerResult};
