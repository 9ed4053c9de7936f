//! The `poh.v1` wire types and gRPC service stubs, generated at build time from
//! `proto/poh.proto` (SPEC §4), and the federation link's, from `proto/federation.proto`.
//!
//! - [`v1`]: the generated messages, enums, clients and servers;
//! - [`federation`]: `poh.federation.v1`, the link a child chain pushes its headers over;
//! - [`replica`]: `poh.replica.v1`, the stream a replica copies its primary's chain over;
//! - [`bounded`]: the codec of the federation link and the replica's copy, which refuses a
//!   message that would decode into far more memory than its bytes, and their caps;
//! - `timestamped`: `Tx` and `TxRequest`, hand-written so a `-0.0` timestamp is sent (prost
//!   drops it), re-exported in [`v1`] and used by the generated code in their place.
//!
//! The conversions between these types and `poh_core::Tx` live with the code that uses them.

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bounded;
mod timestamped;

/// Generated `poh.v1` messages, enums, clients and servers.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    pub use crate::timestamped::{Tx, TxRequest};

    tonic::include_proto!("poh.v1");
}

/// Generated `poh.federation.v1` messages, client and server.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod federation {
    tonic::include_proto!("poh.federation.v1");
}

/// Generated `poh.replica.v1` messages, client and server.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod replica {
    include!(concat!(env!("OUT_DIR"), "/replica/poh.replica.v1.rs"));
}

/// The encoded `FileDescriptorSet` of `poh.proto`, `federation.proto` and `replica.proto`, for
/// gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/poh_descriptor.bin"));

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::v1;

    /// `proto/poh.proto` must stay exactly the block in SPEC §4 (the contract other languages
    /// compile). CI checks out `shared/` beside the repository, as every developer has it.
    #[test]
    fn the_proto_is_the_specs_block_verbatim() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let spec = std::fs::read_to_string(format!("{root}/../shared/SPEC.md"))
            .expect("../shared/SPEC.md beside the repository");
        let block = spec
            .split("```proto\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a ```proto block in SPEC.md");
        let proto = std::fs::read_to_string(format!("{root}/proto/poh.proto")).unwrap();
        let body = proto.split_once('\n').map(|(_comment, body)| body).unwrap();
        assert_eq!(body, block);
    }

    /// Field numbers on the wire, as a client in another language encodes them.
    #[test]
    fn tx_encodes_with_the_spec_field_numbers() {
        let tx = v1::Tx {
            tx_id: "a".into(),
            holder_id: "h".into(),
            timestamp: 1.0,
            payload: vec![9],
            parent_ids: vec!["p".into()],
            public_key: vec![],
            signature: vec![],
        };
        // 1:"a" 2:"h" 3:double 1.0 4:[9] 5:"p"
        let expected = "0a016112016819000000000000f03f2201092a0170";
        assert_eq!(hex(&tx.encode_to_vec()), expected);
        let ack = v1::Ack {
            success: true,
            message: String::new(),
            code: v1::AckCode::Duplicate as i32,
            poh_seq: 5,
            poh_hash: vec![0xAB],
        };
        assert_eq!(hex(&ack.encode_to_vec()), "0801180220052a01ab");
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
