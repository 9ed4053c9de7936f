//! The `poh.v1` wire types and gRPC service stubs, generated at build time from
//! `proto/poh.proto` (SPEC §4). Everything here is generated; the hand-written conversions
//! between these types and `poh_core::Tx` live with the code that uses them.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Generated `poh.v1` messages, enums, clients and servers.
pub mod v1 {
    tonic::include_proto!("poh.v1");
}

/// The encoded `FileDescriptorSet` of `poh.proto`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/poh_descriptor.bin"));
