//! The types that cross the [`Store`](crate::Store) trait, and their on-disk encodings.
//!
//! Values are protobuf messages (prost), so a field can be added later without rewriting the
//! database; fields 1–7 of [`StoredTx`] are those of `poh.v1.Tx`.

use poh_core::{Entry, Hash, Header, PohState, Tx};
use prost::Message as _;

use crate::StoreError;

/// Where a transaction stands in the DAG (SPEC §2). `UNKNOWN` is the absence of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Stored and PoH-recorded, but a parent is not yet known to this node.
    Pending,
    /// Stored, PoH-recorded, every parent known.
    Ordered,
    /// Covered by a sealed header.
    Sealed,
}

/// What the id index says of a stored transaction: enough to tell a duplicate from a
/// conflict and to answer a duplicate with the original's place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Known {
    /// Its `poh_seq`.
    pub seq: u64,
    /// Its digest (SHA-256 of the signing bytes).
    pub digest: Hash,
    /// The hash of the entry that recorded it.
    pub poh_hash: Hash,
}

/// A stored transaction with everything the node knows of it.
#[derive(Clone, Debug, PartialEq)]
pub struct TxRecord {
    /// The transaction exactly as sent.
    pub tx: Tx,
    /// SHA-256 of its signing bytes.
    pub digest: Hash,
    /// Its index in the node's stream of recorded mixins.
    pub poh_seq: u64,
    /// The hash of the entry that recorded it.
    pub poh_hash: Hash,
    /// Index of that entry.
    pub entry_index: u64,
    /// When the node received it (Unix seconds).
    pub received_at: f64,
    /// DAG links: its `parent_ids`, or the tips it was linked to when it named none.
    pub dag_parents: Vec<String>,
    /// Where it stands; filled in on read.
    pub status: TxStatus,
    /// The header that sealed it, once sealed.
    pub header_id: Option<String>,
}

/// A transaction the committer is storing for the first time.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTx {
    /// The record to write (`status` is ignored: it follows from `missing_parents`).
    pub record: TxRecord,
    /// Its parents that are not stored yet (neither before this commit nor earlier in it):
    /// it is `PENDING` until each of them arrives.
    pub missing_parents: Vec<String>,
}

/// A chain's identity and where its PoH stands, after the last stored entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainMeta {
    /// The chain's id (genesis input).
    pub chain_id: String,
    /// Its `hashes_per_tick`; a chain cannot change it.
    pub hashes_per_tick: u64,
    /// The PoH state after the last stored entry.
    pub state: PohState,
}

/// A child chain's header this node accepted, and where its own PoH recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChildHeader {
    /// The header, as the child signed it.
    pub header: Header,
    /// The tick state after the header's entries (what the child's next header continues).
    pub hashes_in_tick: u64,
    /// This node's `poh_seq` of the `header_hash` item.
    pub recorded_at_seq: u64,
    /// Index of this node's entry that recorded it.
    pub entry_index: u64,
    /// That entry's hash.
    pub poh_hash: Hash,
}

/// One atomic write (see [`Store::commit`](crate::Store::commit)).
#[derive(Clone, Debug, Default)]
pub struct Commit<'a> {
    /// The chain after this commit, when it changed (the committer always gives it).
    pub chain: Option<&'a ChainMeta>,
    /// New transactions in increasing `poh_seq` order, after the last stored one (gaps are
    /// the items of child headers).
    pub txs: &'a [NewTx],
    /// PoH entries `(index, entry)` in order, following the last stored one.
    pub entries: &'a [(u64, Entry)],
    /// Transactions that stopped being tips (a new transaction names them as parents).
    pub tips_removed: &'a [String],
    /// New tips `(poh_seq, tx_id)`.
    pub tips_added: &'a [(u64, String)],
    /// Child headers recorded by this commit's entries; each continues its chain's last one.
    pub child_headers: &'a [ChildHeader],
    /// The `poh_seq`s, in increasing order, of those of `txs` whose records had expired
    /// where they were copied from (a replica's copy): each is stored as the stub it is (id, digest, entry, DAG
    /// parents) and marked expired at once, as on the primary.
    pub expired: &'a [u64],
}

/// A page of PoH entries and the hash the first one starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryPage {
    /// The hash before entry `from` (the genesis for 0).
    pub start_hash: Hash,
    /// The entries.
    pub entries: Vec<Entry>,
}

/// On-disk form of a transaction record (fields 1–7 are `poh.v1.Tx`).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StoredTx {
    #[prost(string, tag = "1")]
    pub tx_id: String,
    #[prost(string, tag = "2")]
    pub holder_id: String,
    /// The timestamp's IEEE-754 bits. `fixed64` is `double`'s wire form, and it is left out
    /// only for bits 0 (`+0.0`), so `-0.0` is kept (a `double` field would drop it).
    #[prost(fixed64, tag = "3")]
    pub timestamp_bits: u64,
    #[prost(bytes = "vec", tag = "4")]
    pub payload: Vec<u8>,
    #[prost(string, repeated, tag = "5")]
    pub parent_ids: Vec<String>,
    #[prost(bytes = "vec", tag = "6")]
    pub public_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "7")]
    pub signature: Vec<u8>,
    #[prost(bytes = "vec", tag = "8")]
    pub digest: Vec<u8>,
    #[prost(bytes = "vec", tag = "9")]
    pub poh_hash: Vec<u8>,
    #[prost(uint64, tag = "10")]
    pub entry_index: u64,
    #[prost(double, tag = "11")]
    pub received_at: f64,
    #[prost(string, repeated, tag = "12")]
    pub dag_parents: Vec<String>,
}

/// On-disk form of an entry: mixins are concatenated 32-byte digests.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredEntry {
    #[prost(uint64, tag = "1")]
    num_hashes: u64,
    #[prost(bytes = "vec", tag = "2")]
    hash: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    mixins: Vec<u8>,
}

/// An entry's hash alone: decoding skips the mixins (a commit's entry holds thousands).
#[derive(Clone, PartialEq, prost::Message)]
struct StoredEntryHash {
    #[prost(bytes = "vec", tag = "2")]
    hash: Vec<u8>,
}

/// The hash of an entry stored as [`encode_entry`] wrote it, without decoding its mixins.
pub(crate) fn decode_entry_hash(bytes: &[u8]) -> Result<Hash, StoreError> {
    let s = StoredEntryHash::decode(bytes).map_err(|_| StoreError::Corrupt("PoH entry"))?;
    hash_from(&s.hash, "PoH entry hash")
}

/// On-disk form of [`ChainMeta`].
#[derive(Clone, PartialEq, prost::Message)]
struct StoredChain {
    #[prost(string, tag = "1")]
    chain_id: String,
    #[prost(uint64, tag = "2")]
    hashes_per_tick: u64,
    #[prost(bytes = "vec", tag = "3")]
    hash: Vec<u8>,
    #[prost(uint64, tag = "4")]
    entries: u64,
    #[prost(uint64, tag = "5")]
    mixins: u64,
    #[prost(uint64, tag = "6")]
    hashes_in_tick: u64,
    #[prost(uint64, tag = "7")]
    total_hashes: u64,
}

fn hash_from(bytes: &[u8], what: &'static str) -> Result<Hash, StoreError> {
    Hash::from_slice(bytes).ok_or(StoreError::Corrupt(what))
}

/// Length of an id-index value: seq (8, big-endian), digest (32), poh_hash (32).
pub(crate) const KNOWN_LEN: usize = 72;

impl Known {
    #[cfg(test)]
    pub(crate) fn encode(&self) -> [u8; KNOWN_LEN] {
        let mut out = [0u8; KNOWN_LEN];
        out[..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..40].copy_from_slice(&self.digest.0);
        out[40..].copy_from_slice(&self.poh_hash.0);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let bytes: &[u8; KNOWN_LEN] = bytes
            .try_into()
            .map_err(|_| StoreError::Corrupt("id index value"))?;
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[..8]);
        Ok(Self {
            seq: u64::from_be_bytes(seq),
            digest: hash_from(&bytes[8..40], "id index digest")?,
            poh_hash: hash_from(&bytes[40..], "id index poh_hash")?,
        })
    }
}

impl TxRecord {
    /// The stable on-disk encoding of the record (a protobuf message whose fields 1–7 are
    /// `poh.v1.Tx`); `poh_seq`, `status` and `header_id` are not part of it (the seq is the
    /// record's key, the rest is derived on read). Also the form a batch's fragments carry.
    pub fn encode(&self) -> Vec<u8> {
        self.stored().encode_to_vec()
    }

    /// Decodes [`TxRecord::encode`]'s bytes, which may be untrusted (an error, never a
    /// panic); `status` is `Ordered` and `header_id` `None` until the caller fills them in.
    pub fn decode(poh_seq: u64, bytes: &[u8]) -> Result<Self, StoreError> {
        let s = StoredTx::decode(bytes).map_err(|_| StoreError::Corrupt("transaction record"))?;
        let digest = hash_from(&s.digest, "transaction digest")?;
        let poh_hash = hash_from(&s.poh_hash, "transaction poh_hash")?;
        Ok(Self::from_stored(poh_seq, s, digest, poh_hash))
    }

    /// The log engine's form of the record: [`TxRecord::encode`] without what a reader
    /// derives, about a fifth of it: the digest (hashed again from the transaction), the
    /// `poh_hash` when `entry_stored` (the hash of entry `entry_index`, stored with it), and
    /// `dag_parents` when they are the transaction's own `parent_ids` (as they always are when
    /// it names any).
    pub(crate) fn encode_compact(&self, entry_stored: bool) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_compact_into(entry_stored, &mut out);
        out
    }

    /// [`TxRecord::encode_compact`] appended to `out`, field by field from the record (no
    /// copy of it first): the writer's per-transaction work.
    pub(crate) fn encode_compact_into(&self, entry_stored: bool, out: &mut Vec<u8>) {
        use prost::encoding::{
            WireType, bytes, double, encode_key, encode_varint, fixed64, string, uint64,
        };
        let tx = &self.tx;
        // As the derived encoder does: a field at its default value is left out.
        if !tx.tx_id.is_empty() {
            string::encode(1, &tx.tx_id, out);
        }
        if !tx.holder_id.is_empty() {
            string::encode(2, &tx.holder_id, out);
        }
        let bits = tx.timestamp.to_bits();
        if bits != 0 {
            fixed64::encode(3, &bits, out);
        }
        if !tx.payload.is_empty() {
            bytes::encode(4, &tx.payload, out);
        }
        string::encode_repeated(5, &tx.parent_ids, out);
        if !tx.public_key.is_empty() {
            bytes::encode(6, &tx.public_key, out);
        }
        if !tx.signature.is_empty() {
            bytes::encode(7, &tx.signature, out);
        }
        if !entry_stored {
            encode_key(9, WireType::LengthDelimited, out);
            encode_varint(Hash::LEN as u64, out);
            out.extend_from_slice(&self.poh_hash.0);
        }
        if self.entry_index != 0 {
            uint64::encode(10, &self.entry_index, out);
        }
        if self.received_at != 0.0 {
            double::encode(11, &self.received_at, out);
        }
        let own_parents = !self.tx.parent_ids.is_empty() && self.dag_parents == self.tx.parent_ids;
        if !own_parents {
            string::encode_repeated(12, &self.dag_parents, out);
        }
    }

    /// What is kept of an expired record once its bytes are gone: its id, digest, entry and
    /// DAG parents (and its `poh_hash` when `with_poh_hash`; else it is the entry's hash),
    /// enough to answer a resubmission (duplicate or conflict), to name the header that
    /// sealed it, to check a restore, and for a replica to copy it. Read by [`TxRecord::decode_compact`].
    pub(crate) fn encode_stub(&self, with_poh_hash: bool) -> Vec<u8> {
        StoredTx {
            tx_id: self.tx.tx_id.clone(),
            digest: self.digest.0.to_vec(),
            poh_hash: match with_poh_hash {
                true => self.poh_hash.0.to_vec(),
                false => Vec::new(),
            },
            entry_index: self.entry_index,
            // Kept so a replica copying the stub links the DAG as the primary did.
            dag_parents: self.dag_parents.clone(),
            ..StoredTx::default()
        }
        .encode_to_vec()
    }

    /// Decodes [`TxRecord::encode_compact`]'s bytes, or [`TxRecord::encode`]'s; `None` for
    /// the `poh_hash` when they leave it out (the caller looks it up by `entry_index`).
    pub(crate) fn decode_compact(
        poh_seq: u64,
        bytes: &[u8],
    ) -> Result<(Self, Option<Hash>), StoreError> {
        let mut s =
            StoredTx::decode(bytes).map_err(|_| StoreError::Corrupt("transaction record"))?;
        let poh_hash = match s.poh_hash.is_empty() {
            true => None,
            false => Some(hash_from(&s.poh_hash, "transaction poh_hash")?),
        };
        if s.dag_parents.is_empty() {
            s.dag_parents = s.parent_ids.clone();
        }
        let digest = match s.digest.is_empty() {
            true => None,
            false => Some(hash_from(&s.digest, "transaction digest")?),
        };
        let mut record = Self::from_stored(poh_seq, s, digest.unwrap_or_default(), Hash::default());
        if digest.is_none() {
            record.digest = record.tx.digest();
        }
        if let Some(hash) = poh_hash {
            record.poh_hash = hash;
        }
        Ok((record, poh_hash))
    }

    fn stored(&self) -> StoredTx {
        let tx = &self.tx;
        StoredTx {
            tx_id: tx.tx_id.clone(),
            holder_id: tx.holder_id.clone(),
            timestamp_bits: tx.timestamp.to_bits(),
            payload: tx.payload.clone(),
            parent_ids: tx.parent_ids.clone(),
            public_key: tx.public_key.clone(),
            signature: tx.signature.clone(),
            digest: self.digest.0.to_vec(),
            poh_hash: self.poh_hash.0.to_vec(),
            entry_index: self.entry_index,
            received_at: self.received_at,
            dag_parents: self.dag_parents.clone(),
        }
    }

    fn from_stored(poh_seq: u64, s: StoredTx, digest: Hash, poh_hash: Hash) -> Self {
        Self {
            digest,
            poh_hash,
            tx: Tx {
                tx_id: s.tx_id,
                holder_id: s.holder_id,
                timestamp: f64::from_bits(s.timestamp_bits),
                payload: s.payload,
                parent_ids: s.parent_ids,
                public_key: s.public_key,
                signature: s.signature,
            },
            poh_seq,
            entry_index: s.entry_index,
            received_at: s.received_at,
            dag_parents: s.dag_parents,
            status: TxStatus::Ordered,
            header_id: None,
        }
    }
}

/// The stable on-disk encoding of a PoH entry (a protobuf message; the mixins as
/// concatenated 32-byte digests).
pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    StoredEntry {
        num_hashes: entry.num_hashes,
        hash: entry.hash.0.to_vec(),
        mixins: entry.mixins.iter().flat_map(|m| m.0).collect(),
    }
    .encode_to_vec()
}

/// Decodes [`encode_entry`]'s bytes, which may be untrusted (an error, never a panic).
pub fn decode_entry(bytes: &[u8]) -> Result<Entry, StoreError> {
    let s = StoredEntry::decode(bytes).map_err(|_| StoreError::Corrupt("PoH entry"))?;
    if s.mixins.len() % Hash::LEN != 0 {
        return Err(StoreError::Corrupt("PoH entry mixins"));
    }
    Ok(Entry {
        num_hashes: s.num_hashes,
        hash: hash_from(&s.hash, "PoH entry hash")?,
        mixins: s
            .mixins
            .chunks_exact(Hash::LEN)
            .map(|m| hash_from(m, "PoH entry mixin"))
            .collect::<Result<_, _>>()?,
    })
}

impl ChainMeta {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let s = &self.state;
        StoredChain {
            chain_id: self.chain_id.clone(),
            hashes_per_tick: self.hashes_per_tick,
            hash: s.hash.0.to_vec(),
            entries: s.entries,
            mixins: s.mixins,
            hashes_in_tick: s.hashes_in_tick,
            total_hashes: s.total_hashes,
        }
        .encode_to_vec()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let s = StoredChain::decode(bytes).map_err(|_| StoreError::Corrupt("chain record"))?;
        Ok(Self {
            chain_id: s.chain_id,
            hashes_per_tick: s.hashes_per_tick,
            state: PohState {
                hash: hash_from(&s.hash, "chain hash")?,
                entries: s.entries,
                mixins: s.mixins,
                hashes_in_tick: s.hashes_in_tick,
                total_hashes: s.total_hashes,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poh_core::sha256;

    #[test]
    fn records_round_trip_bit_exact() {
        let record = TxRecord {
            tx: Tx {
                tx_id: "a:1".into(),
                holder_id: "h".into(),
                timestamp: 0.1 + 0.2,
                payload: vec![0, 1, 255],
                parent_ids: vec!["p".into()],
                public_key: vec![7; 3],
                signature: vec![8; 2],
            },
            digest: sha256(b"d"),
            poh_seq: 42,
            poh_hash: sha256(b"h"),
            entry_index: 9,
            received_at: 1.5,
            dag_parents: vec!["p".into()],
            status: TxStatus::Ordered,
            header_id: None,
        };
        let back = TxRecord::decode(42, &record.encode()).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.tx.timestamp.to_bits(), (0.1f64 + 0.2).to_bits());

        // -0.0 keeps its sign, and a record is read back with the digest it was stored with.
        let mut negative_zero = record.clone();
        negative_zero.tx.timestamp = -0.0;
        let back = TxRecord::decode(42, &negative_zero.encode()).unwrap();
        assert_eq!(back.tx.timestamp.to_bits(), (-0.0f64).to_bits());
        // Field 3 as `fixed64` is byte for byte what the `double` it replaced wrote, so data
        // directories written before stay readable.
        let bits = StoredTx {
            timestamp_bits: 1.5f64.to_bits(),
            ..StoredTx::default()
        };
        assert_eq!(bits.encode_to_vec(), [0x19, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f]);

        let entry = Entry {
            num_hashes: 7,
            hash: sha256(b"e"),
            mixins: vec![sha256(b"1"), sha256(b"2")],
        };
        assert_eq!(decode_entry(&encode_entry(&entry)).unwrap(), entry);
        assert_eq!(
            decode_entry_hash(&encode_entry(&entry)).unwrap(),
            entry.hash
        );

        let known = Known {
            seq: u64::MAX - 1,
            digest: sha256(b"x"),
            poh_hash: sha256(b"y"),
        };
        assert_eq!(Known::decode(&known.encode()).unwrap(), known);
        assert!(Known::decode(&[0; 5]).is_err());
    }

    /// The writer's field-by-field encoder writes what the derived one would, and what it
    /// leaves out comes back on decode.
    #[test]
    fn compact_records_hold_what_cannot_be_derived_and_decode_whole() {
        let tx = Tx {
            tx_id: "a:1".into(),
            holder_id: "h".into(),
            timestamp: -0.0,
            payload: vec![0, 1, 255],
            parent_ids: vec!["p".into(), "q".into()],
            public_key: vec![7; 3],
            signature: vec![8; 2],
        };
        let record = TxRecord {
            digest: tx.digest(),
            dag_parents: tx.parent_ids.clone(),
            tx,
            poh_seq: 42,
            poh_hash: sha256(b"h"),
            entry_index: 9,
            received_at: 1.5,
            status: TxStatus::Ordered,
            header_id: None,
        };
        let linked = TxRecord {
            tx: Tx {
                parent_ids: Vec::new(),
                ..record.tx.clone()
            },
            dag_parents: vec!["tip".into()],
            entry_index: 0,
            received_at: 0.0,
            ..record.clone()
        };
        for r in [&record, &linked] {
            for entry_stored in [false, true] {
                let mut stored = r.stored();
                stored.digest.clear();
                if entry_stored {
                    stored.poh_hash.clear();
                }
                if r.dag_parents == r.tx.parent_ids && !r.tx.parent_ids.is_empty() {
                    stored.dag_parents.clear();
                }
                let compact = r.encode_compact(entry_stored);
                assert_eq!(compact, stored.encode_to_vec());
                assert!(compact.len() < r.encode().len());
                let (mut back, poh_hash) = TxRecord::decode_compact(42, &compact).unwrap();
                assert_eq!(poh_hash, (!entry_stored).then_some(r.poh_hash));
                back.poh_hash = r.poh_hash;
                let mut want = r.clone();
                want.digest = r.tx.digest();
                assert_eq!(back, want);
            }
        }
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        assert!(TxRecord::decode(0, &[0xff, 0xff, 0xff]).is_err());
        assert!(decode_entry(&[0x1a, 0x03, 1, 2, 3]).is_err());
        assert!(ChainMeta::decode(b"\x1a\x01x").is_err());
    }
}
