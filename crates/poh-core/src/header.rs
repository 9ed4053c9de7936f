//! Sealed headers (SPEC §6): the [`Header`], its canonical bytes, `header_hash`, ML-DSA-87
//! signing, and the federation [`Level`].
//!
//! The header bytes are the one encoding that is signed and hashed; they are also what a
//! header is stored and exported as ([`Header::to_signed_bytes`]: the header bytes, then the
//! signature), so a stored header is checked by recomputing exactly what was signed.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{Error, Hash, SigningKey, sha256, signing};

/// Domain tag that opens the header bytes.
pub const HEADER_DOMAIN: &[u8; 13] = b"poh.header.v1";

/// Longest `chain_id` a header may carry, in bytes.
pub const MAX_CHAIN_ID_BYTES: usize = 128;

/// A chain's place in the federation.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Level 0: takes transactions.
    #[default]
    Municipality = 0,
    /// Level 1: orders municipalities' headers.
    Continental = 1,
    /// Level 2: orders continental headers.
    Global = 2,
}

impl Level {
    /// Every level, bottom up.
    pub const ALL: [Self; 3] = [Self::Municipality, Self::Continental, Self::Global];

    /// The level's number in the header bytes.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The level numbered `n`.
    pub fn from_u8(n: u8) -> Option<Self> {
        Self::ALL.get(usize::from(n)).copied()
    }

    /// The level's name, as in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Municipality => "municipality",
            Self::Continental => "continental",
            Self::Global => "global",
        }
    }

    /// The level whose headers this one orders (`None` for municipalities).
    pub fn below(self) -> Option<Self> {
        self.as_u8().checked_sub(1).and_then(Self::from_u8)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("unknown level {s:?}: use municipality, continental or global"))
    }
}

/// A sealed header (SPEC §6): what one node's PoH covered between two seals.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// The sealing node's chain.
    pub chain_id: String,
    /// The sealing node's level.
    pub level: Level,
    /// 0 for the first header, then +1.
    pub height: u64,
    /// `header_hash` of header `height - 1`; zeros at height 0.
    pub prev_header_hash: Hash,
    /// First entry covered.
    pub poh_start: u64,
    /// One past the last entry covered.
    pub poh_end: u64,
    /// The hash of entry `poh_end - 1`.
    pub poh_end_hash: Hash,
    /// Sum of `num_hashes` over the covered entries.
    pub poh_hashes: u64,
    /// RFC 6962 root of every item recorded in the covered entries, in order.
    pub items_root: Hash,
    /// How many items that is.
    pub item_count: u64,
    /// Unix seconds when sealed.
    pub timestamp: f64,
    /// The sealing node's ML-DSA-87 public key.
    pub public_key: Vec<u8>,
    /// ML-DSA-87 over the header bytes.
    pub signature: Vec<u8>,
}

/// Why bytes are not a header.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end before the field does.
    #[error("header bytes end inside {0}")]
    Truncated(&'static str),
    /// The bytes do not open with `poh.header.v1`.
    #[error("header bytes do not start with \"poh.header.v1\"")]
    Domain,
    /// A field's value is out of its range.
    #[error("header field {field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Bytes left after the header (and signature).
    #[error("{0} bytes after the header")]
    Trailing(usize),
}

impl Header {
    /// The canonical header bytes (SPEC §6): signed and hashed.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER_DOMAIN.len()
                + 4
                + self.chain_id.len()
                + 1
                + 8 * 6
                + 32 * 3
                + 8
                + 4
                + self.public_key.len(),
        );
        out.extend_from_slice(HEADER_DOMAIN);
        put_bytes(&mut out, self.chain_id.as_bytes());
        out.push(self.level.as_u8());
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.prev_header_hash.0);
        out.extend_from_slice(&self.poh_start.to_be_bytes());
        out.extend_from_slice(&self.poh_end.to_be_bytes());
        out.extend_from_slice(&self.poh_end_hash.0);
        out.extend_from_slice(&self.poh_hashes.to_be_bytes());
        out.extend_from_slice(&self.items_root.0);
        out.extend_from_slice(&self.item_count.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_bits().to_be_bytes());
        put_bytes(&mut out, &self.public_key);
        out
    }

    /// `header_hash` = SHA-256(header bytes).
    pub fn hash(&self) -> Hash {
        sha256(&self.bytes())
    }

    /// `header_id`: the `header_hash` in lowercase hex.
    pub fn id(&self) -> String {
        self.hash().to_hex()
    }

    /// Sets `public_key` to `key`'s and signs the header bytes.
    pub fn sign(&mut self, key: &SigningKey) -> Result<(), Error> {
        self.public_key = key.public_key().to_vec();
        self.signature = key.sign(&self.bytes())?;
        Ok(())
    }

    /// Checks the signature against the header's own `public_key`. Whether that key is the
    /// expected one is the caller's question.
    pub fn verify_signature(&self) -> Result<(), Error> {
        signing::verify(&self.public_key, &self.bytes(), &self.signature)
    }

    /// The header bytes followed by the signature: how a header is stored and exported.
    pub fn to_signed_bytes(&self) -> Vec<u8> {
        let mut out = self.bytes();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Reads [`Header::to_signed_bytes`]: everything after the header bytes is the signature.
    pub fn from_signed_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader(bytes);
        let mut header = Self::read(&mut r)?;
        header.signature = r.0.to_vec();
        Ok(header)
    }

    /// Reads exactly the header bytes (no signature).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader(bytes);
        let header = Self::read(&mut r)?;
        match r.0.len() {
            0 => Ok(header),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.take(HEADER_DOMAIN.len(), "the domain tag")? != HEADER_DOMAIN {
            return Err(DecodeError::Domain);
        }
        let chain_id = r.bytes("chain_id")?;
        if chain_id.is_empty() || chain_id.len() > MAX_CHAIN_ID_BYTES {
            return Err(DecodeError::Field {
                field: "chain_id",
                reason: "must be 1-128 bytes",
            });
        }
        let chain_id = std::str::from_utf8(chain_id)
            .map_err(|_| DecodeError::Field {
                field: "chain_id",
                reason: "not UTF-8",
            })?
            .to_owned();
        let level = Level::from_u8(r.take(1, "level")?[0]).ok_or(DecodeError::Field {
            field: "level",
            reason: "must be 0, 1 or 2",
        })?;
        Ok(Self {
            chain_id,
            level,
            height: r.u64("height")?,
            prev_header_hash: r.hash("prev_header_hash")?,
            poh_start: r.u64("poh_start")?,
            poh_end: r.u64("poh_end")?,
            poh_end_hash: r.hash("poh_end_hash")?,
            poh_hashes: r.u64("poh_hashes")?,
            items_root: r.hash("items_root")?,
            item_count: r.u64("item_count")?,
            timestamp: f64::from_bits(r.u64("timestamp")?),
            public_key: r.bytes("public_key")?.to_vec(),
            signature: Vec::new(),
        })
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths come from bounded fields (a chain id, a 2592-byte key); saturate rather than
    // wrap if a caller ever builds something absurd.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        Ok(u64::from_be_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    fn hash(&mut self, what: &'static str) -> Result<Hash, DecodeError> {
        Hash::from_slice(self.take(32, what)?).ok_or(DecodeError::Truncated(what))
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let b = self.take(4, what)?;
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        self.take(len, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            chain_id: "municipality/tokyo".into(),
            level: Level::Municipality,
            height: 7,
            prev_header_hash: Hash([0x11; 32]),
            poh_start: 100,
            poh_end: 164,
            poh_end_hash: Hash([0x22; 32]),
            poh_hashes: 800_000,
            items_root: Hash([0x33; 32]),
            item_count: 5,
            timestamp: 1_700_000_000.5,
            public_key: vec![0xab, 0xcd],
            signature: Vec::new(),
        }
    }

    /// The header bytes written out field by field from SPEC §6, so an implementation in
    /// another language can check itself against the same hex.
    #[test]
    fn header_bytes_follow_the_spec_layout() {
        let expected = [
            "706f682e6865616465722e7631",           // "poh.header.v1"
            "00000012",                             // len(chain_id) = 18
            "6d756e69636970616c6974792f746f6b796f", // "municipality/tokyo"
            "00",                                   // level 0
            "0000000000000007",                     // height
            &"11".repeat(32),                       // prev_header_hash
            "0000000000000064",                     // poh_start = 100
            "00000000000000a4",                     // poh_end = 164
            &"22".repeat(32),                       // poh_end_hash
            "00000000000c3500",                     // poh_hashes = 800,000
            &"33".repeat(32),                       // items_root
            "0000000000000005",                     // item_count
            "41d954fc40200000",                     // timestamp 1700000000.5 as IEEE-754
            "00000002",                             // len(public_key)
            "abcd",                                 // public_key
        ]
        .concat();
        let header = sample();
        assert_eq!(hex::encode(header.bytes()), expected);
        assert_eq!(
            header.hash(),
            sha256(&hex::decode(&expected).unwrap()),
            "header_hash is SHA-256 of exactly those bytes"
        );
        assert_eq!(header.id(), header.hash().to_hex());
    }

    #[test]
    fn signed_headers_verify_and_any_changed_field_breaks_them() {
        let key = SigningKey::from_seed(&[7; 32]).unwrap();
        let mut header = sample();
        header.sign(&key).unwrap();
        header.verify_signature().unwrap();
        let changes: [fn(&mut Header); 5] = [
            |h| h.height += 1,
            |h| h.items_root.0[0] ^= 1,
            |h| h.level = Level::Global,
            |h| h.timestamp += 1.0,
            |h| h.signature[0] ^= 1,
        ];
        for change in changes {
            let mut bad = header.clone();
            change(&mut bad);
            assert!(bad.verify_signature().is_err());
        }
    }

    #[test]
    fn headers_round_trip_and_bad_bytes_are_errors() {
        let key = SigningKey::from_seed(&[9; 32]).unwrap();
        let mut header = sample();
        header.sign(&key).unwrap();
        let stored = header.to_signed_bytes();
        assert_eq!(Header::from_signed_bytes(&stored).unwrap(), header);
        let unsigned = header.bytes();
        let mut plain = header.clone();
        plain.signature.clear();
        assert_eq!(Header::from_bytes(&unsigned).unwrap(), plain);
        assert_eq!(
            Header::from_bytes(&stored),
            Err(DecodeError::Trailing(header.signature.len()))
        );
        for cut in [0, 5, 13, 20, 60, unsigned.len() - 1] {
            assert!(
                Header::from_bytes(&unsigned[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut level = unsigned.clone();
        level[13 + 4 + 18] = 3;
        assert!(matches!(
            Header::from_bytes(&level),
            Err(DecodeError::Field { field: "level", .. })
        ));
        let mut domain = unsigned;
        domain[0] = b'P';
        assert_eq!(Header::from_bytes(&domain), Err(DecodeError::Domain));
    }

    #[test]
    fn levels_have_names_numbers_and_a_level_below() {
        for level in Level::ALL {
            assert_eq!(level.name().parse::<Level>().unwrap(), level);
            assert_eq!(Level::from_u8(level.as_u8()), Some(level));
        }
        assert_eq!(Level::Global.below(), Some(Level::Continental));
        assert_eq!(Level::Municipality.below(), None);
        assert!("city".parse::<Level>().is_err());
        assert_eq!(Level::from_u8(3), None);
    }
}
