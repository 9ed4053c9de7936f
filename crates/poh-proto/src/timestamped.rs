//! `poh.v1.Tx` and `poh.v1.TxRequest`, the two messages that carry a client's timestamp, with
//! their `prost::Message` written by hand.
//!
//! SPEC §2 stores a timestamp bit-exact as sent, and `-0.0` is a valid one. proto3 omits a
//! field equal to its default, and the protobuf language guide is explicit that `-0.0` is *not*
//! the default of a `double`: the reference implementations (C++, Java, Go, upb for Python)
//! compare the bit pattern and send it. prost's derive compares with `!=` and drops it
//! (tokio-rs/prost#1177), so a `-0.0` relayed by one node would reach the next as `+0.0`, with
//! another digest and a broken signature. These impls are what the derive would generate, with
//! that one comparison made on the bits. Everything else about the wire is unchanged (field
//! numbers, unknown fields skipped, UTF-8 checked); the tests pin both.

use prost::{
    DecodeError, Message,
    bytes::{Buf, BufMut},
    encoding::{self, DecodeContext, WireType},
};

/// A transaction, as `PohService` and QUIC carry it.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct Tx {
    /// Field 1.
    pub tx_id: String,
    /// Field 2.
    pub holder_id: String,
    /// Field 3: Unix seconds, sent whenever its bits are not those of `+0.0`.
    pub timestamp: f64,
    /// Field 4.
    pub payload: Vec<u8>,
    /// Field 5.
    pub parent_ids: Vec<String>,
    /// Field 6.
    pub public_key: Vec<u8>,
    /// Field 7.
    pub signature: Vec<u8>,
}

/// A transaction as `DAGService.SubmitTransaction` carries it (text payload, other numbering).
#[derive(Clone, PartialEq, Default, Debug)]
pub struct TxRequest {
    /// Field 1.
    pub tx_id: String,
    /// Field 2: UTF-8 text, stored as its bytes.
    pub payload: String,
    /// Field 3.
    pub parent_ids: Vec<String>,
    /// Field 4.
    pub holder_id: String,
    /// Field 5: Unix seconds, sent whenever its bits are not those of `+0.0`.
    pub timestamp: f64,
    /// Field 6.
    pub public_key: Vec<u8>,
    /// Field 7.
    pub signature: Vec<u8>,
}

/// proto3 implicit presence for a `double`: absent only when it is `+0.0`, bit for bit.
fn double_is_default(value: f64) -> bool {
    value.to_bits() == 0
}

fn encode_double(tag: u32, value: f64, buf: &mut impl BufMut) {
    if !double_is_default(value) {
        encoding::double::encode(tag, &value, buf);
    }
}

fn double_len(tag: u32, value: f64) -> usize {
    if double_is_default(value) {
        0
    } else {
        encoding::double::encoded_len(tag, &value)
    }
}

#[allow(clippy::ptr_arg)] // prost's string encoder takes `&String`.
fn encode_string(tag: u32, value: &String, buf: &mut impl BufMut) {
    if !value.is_empty() {
        encoding::string::encode(tag, value, buf);
    }
}

#[allow(clippy::ptr_arg)]
fn string_len(tag: u32, value: &String) -> usize {
    if value.is_empty() {
        0
    } else {
        encoding::string::encoded_len(tag, value)
    }
}

#[allow(clippy::ptr_arg)] // prost's bytes encoder takes a `BytesAdapter`, which `[u8]` is not.
fn encode_bytes(tag: u32, value: &Vec<u8>, buf: &mut impl BufMut) {
    if !value.is_empty() {
        encoding::bytes::encode(tag, value, buf);
    }
}

#[allow(clippy::ptr_arg)]
fn bytes_len(tag: u32, value: &Vec<u8>) -> usize {
    if value.is_empty() {
        0
    } else {
        encoding::bytes::encoded_len(tag, value)
    }
}

/// Names the field a decode error came from, as the derive does.
fn at(message: &'static str, field: &'static str) -> impl FnOnce(DecodeError) -> DecodeError {
    move |mut error| {
        error.push(message, field);
        error
    }
}

impl Message for Tx {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encode_string(1, &self.tx_id, buf);
        encode_string(2, &self.holder_id, buf);
        encode_double(3, self.timestamp, buf);
        encode_bytes(4, &self.payload, buf);
        encoding::string::encode_repeated(5, &self.parent_ids, buf);
        encode_bytes(6, &self.public_key, buf);
        encode_bytes(7, &self.signature, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        const NAME: &str = "Tx";
        match tag {
            1 => encoding::string::merge(wire_type, &mut self.tx_id, buf, ctx)
                .map_err(at(NAME, "tx_id")),
            2 => encoding::string::merge(wire_type, &mut self.holder_id, buf, ctx)
                .map_err(at(NAME, "holder_id")),
            3 => encoding::double::merge(wire_type, &mut self.timestamp, buf, ctx)
                .map_err(at(NAME, "timestamp")),
            4 => encoding::bytes::merge(wire_type, &mut self.payload, buf, ctx)
                .map_err(at(NAME, "payload")),
            5 => encoding::string::merge_repeated(wire_type, &mut self.parent_ids, buf, ctx)
                .map_err(at(NAME, "parent_ids")),
            6 => encoding::bytes::merge(wire_type, &mut self.public_key, buf, ctx)
                .map_err(at(NAME, "public_key")),
            7 => encoding::bytes::merge(wire_type, &mut self.signature, buf, ctx)
                .map_err(at(NAME, "signature")),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        string_len(1, &self.tx_id)
            + string_len(2, &self.holder_id)
            + double_len(3, self.timestamp)
            + bytes_len(4, &self.payload)
            + encoding::string::encoded_len_repeated(5, &self.parent_ids)
            + bytes_len(6, &self.public_key)
            + bytes_len(7, &self.signature)
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

impl Message for TxRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encode_string(1, &self.tx_id, buf);
        encode_string(2, &self.payload, buf);
        encoding::string::encode_repeated(3, &self.parent_ids, buf);
        encode_string(4, &self.holder_id, buf);
        encode_double(5, self.timestamp, buf);
        encode_bytes(6, &self.public_key, buf);
        encode_bytes(7, &self.signature, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        const NAME: &str = "TxRequest";
        match tag {
            1 => encoding::string::merge(wire_type, &mut self.tx_id, buf, ctx)
                .map_err(at(NAME, "tx_id")),
            2 => encoding::string::merge(wire_type, &mut self.payload, buf, ctx)
                .map_err(at(NAME, "payload")),
            3 => encoding::string::merge_repeated(wire_type, &mut self.parent_ids, buf, ctx)
                .map_err(at(NAME, "parent_ids")),
            4 => encoding::string::merge(wire_type, &mut self.holder_id, buf, ctx)
                .map_err(at(NAME, "holder_id")),
            5 => encoding::double::merge(wire_type, &mut self.timestamp, buf, ctx)
                .map_err(at(NAME, "timestamp")),
            6 => encoding::bytes::merge(wire_type, &mut self.public_key, buf, ctx)
                .map_err(at(NAME, "public_key")),
            7 => encoding::bytes::merge(wire_type, &mut self.signature, buf, ctx)
                .map_err(at(NAME, "signature")),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        string_len(1, &self.tx_id)
            + string_len(2, &self.payload)
            + encoding::string::encoded_len_repeated(3, &self.parent_ids)
            + string_len(4, &self.holder_id)
            + double_len(5, self.timestamp)
            + bytes_len(6, &self.public_key)
            + bytes_len(7, &self.signature)
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn negative_zero_is_sent_and_positive_zero_is_not() {
        let positive = Tx::default();
        assert!(positive.encode_to_vec().is_empty());
        let negative = Tx {
            timestamp: -0.0,
            ..Tx::default()
        };
        // field 3, 64-bit: tag 0x19, then the bits of -0.0 little-endian.
        assert_eq!(hex(&negative.encode_to_vec()), "190000000000000080");
        let back = Tx::decode(negative.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back.timestamp.to_bits(), (-0.0f64).to_bits());

        let request = TxRequest {
            timestamp: -0.0,
            ..TxRequest::default()
        };
        assert_eq!(hex(&request.encode_to_vec()), "290000000000000080");
        let back = TxRequest::decode(request.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back.timestamp.to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn every_field_round_trips_and_unknown_fields_are_skipped() {
        let tx = Tx {
            tx_id: "t".into(),
            holder_id: "h".into(),
            timestamp: 1.5,
            payload: vec![1, 2],
            parent_ids: vec!["a".into(), "b".into()],
            public_key: vec![3],
            signature: vec![4],
        };
        let mut bytes = tx.encode_to_vec();
        assert_eq!(bytes.len(), tx.encoded_len());
        // An unknown field 9 (varint 1) from a newer sender is skipped.
        bytes.extend_from_slice(&[0x48, 0x01]);
        assert_eq!(Tx::decode(bytes.as_slice()).unwrap(), tx);

        let request = TxRequest {
            tx_id: "t".into(),
            payload: "text".into(),
            parent_ids: vec!["a".into()],
            holder_id: "h".into(),
            timestamp: 2.0,
            public_key: vec![3],
            signature: vec![4],
        };
        let bytes = request.encode_to_vec();
        assert_eq!(bytes.len(), request.encoded_len());
        assert_eq!(TxRequest::decode(bytes.as_slice()).unwrap(), request);
    }

    #[test]
    fn bad_utf8_and_wrong_wire_types_are_decode_errors() {
        // field 1 (tx_id), length 1, byte 0xFF: not UTF-8.
        let error = Tx::decode([0x0a, 0x01, 0xff].as_slice()).unwrap_err();
        assert!(error.to_string().contains("Tx.tx_id"), "{error}");
        // field 3 (timestamp) sent as a varint.
        assert!(Tx::decode([0x18, 0x01].as_slice()).is_err());
        // field 2 (payload) of a TxRequest must be UTF-8 text.
        assert!(TxRequest::decode([0x12, 0x01, 0xff].as_slice()).is_err());
    }
}
