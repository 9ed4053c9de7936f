//! The wire encodings of SPEC §4, in both directions: what the listeners decode and the
//! clients encode. Nothing here does I/O. What they encode of a transaction's fate, and the
//! table from a refusal to its code on each wire, are [`shared`](crate::shared)'s, below both
//! the wire and the pipeline that answers.
//!
//! - [`json`]: the JSON form of a transaction (HTTP bodies and UDP datagrams) and every HTTP
//!   answer body;
//! - [`protobuf`]: `poh.v1` messages to and from the node's types, and the `Ack` of a result;
//! - [`headers`]: a sealed header and the federation's state in JSON (SPEC §6);
//! - [`expired`]: how a subscriber or `Sync` client is told of transactions the TTL expired;
//! - [`frame`]: QUIC's `u32 length || protobuf` framing, its ALPN and its error codes;
//! - [`replica`]: what a primary sends its replicas (`poh.replica.v1`, SPEC §10).

pub mod expired;
pub mod frame;
pub mod headers;
pub mod json;
pub mod protobuf;
pub mod replica;
