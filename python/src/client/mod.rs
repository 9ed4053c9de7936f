//! The package's clients of a node: [`Client`], blocking, and [`AsyncClient`], for asyncio.
//! Both make the same calls ([`calls`]) over the same channels, TLS and token handling as the
//! `poh` CLI (`poh_node::network::client`), on one tokio runtime per process ([`runtime`]);
//! the node's answers become the same Python objects ([`convert`]). Proofs come from the node's HTTP API
//! ([`http`]), as for `poh prove`.

mod asyncio;
mod blocking;
mod calls;
mod convert;
mod http;
mod runtime;

pub use self::{
    asyncio::{AsyncClient, AsyncPages, AsyncSubscription},
    blocking::{Client, Pages, Subscription},
    convert::{Ack, Page, Record, Status},
};
