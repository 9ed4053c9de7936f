//! The federation link's codec: prost, behind a walk over the encoded message that refuses
//! what would decode into far more memory than it took on the wire.
//!
//! A protobuf field can be two bytes on the wire and dozens in memory (an empty `Entry`
//! decodes into a struct with two vectors), so a message limit in bytes alone lets one
//! message inflate tens of times. [`BoundedCodec`] first walks the encoded fields, counting
//! entries and items and checking that every hash is 32 bytes, without allocating; only a
//! message within [`MAX_HEADER_ENTRIES`] and [`MAX_HEADER_ITEMS`] is decoded. A header at both
//! caps encodes in less than [`MAX_LINK_MESSAGE_BYTES`], so an honest child always fits.

use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

use crate::{
    federation::{ChildMessage, ParentMessage, ProveRequest, ProveResponse},
    replica::{Batch, ReplicaMessage},
};

/// Most PoH entries one header covers (and so one link message carries).
pub const MAX_HEADER_ENTRIES: usize = 1 << 16;
/// Most items one header covers: at 34 bytes each on the wire, with entries at their cap,
/// a header and its entries stay under [`MAX_LINK_MESSAGE_BYTES`].
pub const MAX_HEADER_ITEMS: usize = 1 << 18;
/// The largest link message.
pub const MAX_LINK_MESSAGE_BYTES: usize = 16 << 20;
/// The largest first message of a link (its `Hello`): the parent holds no more than this for
/// a caller it does not know yet.
pub const MAX_HELLO_BYTES: usize = 4 << 10;
/// Most links one proof carries (municipality, continental, global, and room to spare).
pub const MAX_PROOF_LINKS: usize = 8;
/// Most hashes in one link's audit path (a tree of 2^64 items needs 64).
pub const MAX_AUDIT_PATH: usize = 64;

/// Most records, and most child headers, one replica batch carries.
pub const MAX_BATCH_RECORDS: usize = MAX_HEADER_ITEMS;
/// Most names (parent ids and DAG parents) across one replica batch's records.
pub const MAX_BATCH_NAMES: usize = 1 << 20;
/// Most of the primary's own headers one replica batch carries.
pub const MAX_BATCH_HEADERS: usize = 256;

/// Why an encoded message was refused before decoding.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unbounded {
    /// The bytes are not a protobuf message.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// More of something than a message may carry.
    #[error("more {what} than a message may carry ({max})")]
    TooMany {
        /// Entries, items, links or audit path hashes.
        what: &'static str,
        /// The cap.
        max: usize,
    },
    /// A hash that is not 32 bytes.
    #[error("a {what} is {len} bytes, not 32")]
    HashLength {
        /// Which hash.
        what: &'static str,
        /// Its length.
        len: usize,
    },
}

/// A message the link's codec checks, encoded, before decoding it.
pub trait Bounded {
    /// Refuses an encoding that would decode into more than its caps allow.
    fn check_encoded(bytes: &[u8]) -> Result<(), Unbounded>;
}

impl Bounded for ChildMessage {
    fn check_encoded(bytes: &[u8]) -> Result<(), Unbounded> {
        let mut counts = Counts::default();
        // ChildMessage { 2: SealedHeader { 3: Entry { 2: hash, 3: mixins } } }
        for_each_field(bytes, |field, value| match (field, value) {
            (2, Value::Len(sealed)) => {
                for_each_field(sealed, |field, value| match (field, value) {
                    (3, Value::Len(entry)) => counts.entry(entry),
                    _ => Ok(()),
                })
            }
            _ => Ok(()),
        })
    }
}

impl Bounded for ProveResponse {
    fn check_encoded(bytes: &[u8]) -> Result<(), Unbounded> {
        let mut links = 0usize;
        // ProveResponse { 1: ProofLink { 1: item, 3: audit_path } }
        for_each_field(bytes, |field, value| match (field, value) {
            (1, Value::Len(link)) => {
                links += 1;
                if links > MAX_PROOF_LINKS {
                    return Err(too_many("proof links", MAX_PROOF_LINKS));
                }
                let mut path = 0usize;
                for_each_field(link, |field, value| match (field, value) {
                    (1, Value::Len(item)) => hash32("proof item", item),
                    (3, Value::Len(hash)) => {
                        path += 1;
                        if path > MAX_AUDIT_PATH {
                            return Err(too_many("audit path hashes", MAX_AUDIT_PATH));
                        }
                        hash32("audit path hash", hash)
                    }
                    _ => Ok(()),
                })
            }
            _ => Ok(()),
        })
    }
}

impl Bounded for Batch {
    fn check_encoded(bytes: &[u8]) -> Result<(), Unbounded> {
        let mut counts = Counts::default();
        let (mut records, mut children, mut headers, mut names) = (0usize, 0usize, 0usize, 0usize);
        let count = |n: &mut usize, what, max| {
            *n += 1;
            if *n > max {
                return Err(too_many(what, max));
            }
            Ok(())
        };
        // Batch { 2: Entry, 3: Record { 1: Tx { 5: parent_ids }, 4: dag_parents },
        //         4: ChildRecord, 5: Signed }
        for_each_field(bytes, |field, value| match (field, value) {
            (2, Value::Len(entry)) => counts.entry(entry),
            (3, Value::Len(record)) => {
                count(&mut records, "records", MAX_BATCH_RECORDS)?;
                for_each_field(record, |field, value| match (field, value) {
                    (1, Value::Len(tx)) => for_each_field(tx, |field, _| match field {
                        5 => count(&mut names, "parent names", MAX_BATCH_NAMES),
                        _ => Ok(()),
                    }),
                    (4, _) => count(&mut names, "parent names", MAX_BATCH_NAMES),
                    _ => Ok(()),
                })
            }
            (4, _) => count(&mut children, "child headers", MAX_BATCH_RECORDS),
            (5, _) => count(&mut headers, "headers", MAX_BATCH_HEADERS),
            _ => Ok(()),
        })
    }
}

/// Small by construction: they hold no repeated field.
impl Bounded for ReplicaMessage {
    fn check_encoded(_: &[u8]) -> Result<(), Unbounded> {
        Ok(())
    }
}

/// Small by construction: they hold no repeated field.
impl Bounded for ParentMessage {
    fn check_encoded(_: &[u8]) -> Result<(), Unbounded> {
        Ok(())
    }
}

impl Bounded for ProveRequest {
    fn check_encoded(_: &[u8]) -> Result<(), Unbounded> {
        Ok(())
    }
}

/// Entries and items seen so far in one message.
#[derive(Default)]
struct Counts {
    entries: usize,
    items: usize,
}

impl Counts {
    fn entry(&mut self, entry: &[u8]) -> Result<(), Unbounded> {
        self.entries += 1;
        if self.entries > MAX_HEADER_ENTRIES {
            return Err(too_many("entries", MAX_HEADER_ENTRIES));
        }
        for_each_field(entry, |field, value| match (field, value) {
            (2, Value::Len(hash)) => hash32("entry hash", hash),
            (3, Value::Len(mixin)) => {
                self.items += 1;
                if self.items > MAX_HEADER_ITEMS {
                    return Err(too_many("items", MAX_HEADER_ITEMS));
                }
                hash32("mixin", mixin)
            }
            _ => Ok(()),
        })
    }
}

fn too_many(what: &'static str, max: usize) -> Unbounded {
    Unbounded::TooMany { what, max }
}

fn hash32(what: &'static str, bytes: &[u8]) -> Result<(), Unbounded> {
    match bytes.len() {
        32 => Ok(()),
        len => Err(Unbounded::HashLength { what, len }),
    }
}

/// One field's value, as far as the walk needs it.
enum Value<'a> {
    /// A length-delimited field: bytes, a string, a message or a packed run.
    Len(&'a [u8]),
    /// Any fixed or varint scalar.
    Scalar,
}

/// Calls `visit` with every top-level field of the encoded message `bytes`.
fn for_each_field<'a>(
    mut bytes: &'a [u8],
    mut visit: impl FnMut(u64, Value<'a>) -> Result<(), Unbounded>,
) -> Result<(), Unbounded> {
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let field = key >> 3;
        if field == 0 {
            return Err(Unbounded::Malformed("field number 0"));
        }
        let value = match key & 7 {
            0 => varint(&mut bytes).map(|_| Value::Scalar)?,
            1 => skip(&mut bytes, 8).map(|_| Value::Scalar)?,
            2 => {
                let len = usize::try_from(varint(&mut bytes)?)
                    .map_err(|_| Unbounded::Malformed("length out of range"))?;
                Value::Len(skip(&mut bytes, len)?)
            }
            5 => skip(&mut bytes, 4).map(|_| Value::Scalar)?,
            _ => return Err(Unbounded::Malformed("unsupported wire type")),
        };
        visit(field, value)?;
    }
    Ok(())
}

fn varint(bytes: &mut &[u8]) -> Result<u64, Unbounded> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = bytes
            .split_first()
            .ok_or(Unbounded::Malformed("truncated varint"))?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(Unbounded::Malformed("varint longer than 10 bytes"))
}

fn skip<'a>(bytes: &mut &'a [u8], len: usize) -> Result<&'a [u8], Unbounded> {
    if bytes.len() < len {
        return Err(Unbounded::Malformed("truncated field"));
    }
    let (value, rest) = bytes.split_at(len);
    *bytes = rest;
    Ok(value)
}

/// Prost with [`Bounded::check_encoded`] before every decode.
#[derive(Debug, Clone)]
pub struct BoundedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for BoundedCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for BoundedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Bounded + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = BoundedEncoder<T>;
    type Decoder = BoundedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        BoundedEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder(PhantomData)
    }
}

/// Plain prost encoding.
#[derive(Debug)]
pub struct BoundedEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for BoundedEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // EncodeBuf grows as written to, so encoding cannot run out of room.
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding failed: {e}")))
    }
}

/// Checks, then decodes with prost.
#[derive(Debug)]
pub struct BoundedDecoder<U>(PhantomData<U>);

impl<U: Message + Default + Bounded> Decoder for BoundedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        use prost::bytes::Buf as _;
        let refused = |e: Unbounded| Status::invalid_argument(e.to_string());
        let malformed =
            |e: prost::DecodeError| Status::invalid_argument(format!("malformed message: {e}"));
        // tonic hands over one whole message in one contiguous buffer; should that ever
        // change, the copy keeps the check exact.
        if buf.chunk().len() != buf.remaining() {
            let copy = buf.copy_to_bytes(buf.remaining());
            U::check_encoded(&copy).map_err(refused)?;
            return U::decode(copy).map(Some).map_err(malformed);
        }
        U::check_encoded(buf.chunk()).map_err(refused)?;
        U::decode(buf).map(Some).map_err(malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federation::{Entry, SealedHeader, child_message};

    fn sealed(entries: Vec<Entry>) -> Vec<u8> {
        ChildMessage {
            kind: Some(child_message::Kind::Header(SealedHeader {
                // The largest header bytes (a 128-byte chain id) and signature.
                header: vec![7; 13 + 4 + 128 + 1 + 8 + 32 + 8 + 8 + 32 + 8 + 32 + 8 + 8 + 4 + 2592],
                signature: vec![7; 4627],
                entries,
            })),
        }
        .encode_to_vec()
    }

    fn entry(mixins: usize) -> Entry {
        Entry {
            num_hashes: u64::MAX,
            hash: vec![1; 32],
            mixins: vec![vec![2; 32]; mixins],
        }
    }

    /// The caps and the message limit agree: a header with the most entries, the most items
    /// and the largest varints still fits one message, so an honest child never stalls.
    #[test]
    fn a_header_at_both_caps_fits_one_message_and_passes() {
        let per_entry = MAX_HEADER_ITEMS / MAX_HEADER_ENTRIES;
        let bytes = sealed((0..MAX_HEADER_ENTRIES).map(|_| entry(per_entry)).collect());
        assert!(
            bytes.len() < MAX_LINK_MESSAGE_BYTES,
            "{} bytes at the caps",
            bytes.len()
        );
        ChildMessage::check_encoded(&bytes).unwrap();
        // All items in one entry is as legal.
        let mut entries = vec![entry(MAX_HEADER_ITEMS)];
        entries.extend((1..MAX_HEADER_ENTRIES).map(|_| entry(0)));
        ChildMessage::check_encoded(&sealed(entries)).unwrap();
    }

    #[test]
    fn one_entry_or_item_over_a_cap_is_refused_before_decoding() {
        let over = sealed((0..=MAX_HEADER_ENTRIES).map(|_| entry(0)).collect());
        assert_eq!(
            ChildMessage::check_encoded(&over),
            Err(too_many("entries", MAX_HEADER_ENTRIES))
        );
        let over = sealed(vec![entry(MAX_HEADER_ITEMS + 1)]);
        assert_eq!(
            ChildMessage::check_encoded(&over),
            Err(too_many("items", MAX_HEADER_ITEMS))
        );
    }

    /// The inflation attack: empty entries, two bytes each on the wire, fifty-odd in memory.
    #[test]
    fn a_message_of_empty_entries_is_refused_and_short_hashes_too() {
        let empty = sealed(vec![Entry::default(); MAX_HEADER_ENTRIES + 1]);
        assert!(ChildMessage::check_encoded(&empty).is_err());
        let mut short = entry(1);
        short.mixins[0].clear();
        assert_eq!(
            ChildMessage::check_encoded(&sealed(vec![short])),
            Err(Unbounded::HashLength {
                what: "mixin",
                len: 0
            })
        );
    }

    #[test]
    fn malformed_bytes_are_refused_not_panicked_on() {
        for bytes in [
            &[0x12, 0x05, 0x1a][..],
            &[0xff; 11],
            &[0x00],
            &[0x13],
            &[0x12, 0x02, 0x1a, 0x7f],
        ] {
            assert!(ChildMessage::check_encoded(bytes).is_err(), "{bytes:?}");
        }
        assert!(ChildMessage::check_encoded(&[]).is_ok());
    }

    #[test]
    fn a_proof_is_bounded_in_links_and_path() {
        use crate::federation::ProofLink;
        let link = |path: usize| ProofLink {
            item: vec![0; 32],
            index: 0,
            audit_path: vec![vec![0; 32]; path],
            header: vec![1; 100],
            signature: vec![1; 100],
        };
        let ok = ProveResponse {
            links: vec![link(MAX_AUDIT_PATH); MAX_PROOF_LINKS],
        };
        ProveResponse::check_encoded(&ok.encode_to_vec()).unwrap();
        let long = ProveResponse {
            links: vec![link(MAX_AUDIT_PATH + 1)],
        };
        assert!(ProveResponse::check_encoded(&long.encode_to_vec()).is_err());
        let many = ProveResponse {
            links: vec![link(1); MAX_PROOF_LINKS + 1],
        };
        assert!(ProveResponse::check_encoded(&many.encode_to_vec()).is_err());
    }
}
