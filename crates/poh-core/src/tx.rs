//! The transaction ([`Tx`], SPEC §2), its canonical signing bytes and its digest.

use sha2::{Digest, Sha256};

use crate::Hash;

/// Domain separation tag that opens the signing bytes.
pub const SIGNING_DOMAIN: &[u8; 9] = b"poh.tx.v1";

/// A transaction exactly as a client sent it. Nothing here is trusted until
/// [`Tx::validate`](crate::validate) has passed.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Tx {
    /// 1–128 bytes of `[A-Za-z0-9._:-]`; the idempotency key.
    pub tx_id: String,
    /// 0–128 bytes of UTF-8 without control characters.
    pub holder_id: String,
    /// Unix seconds, finite and ≥ 0; kept bit-exact.
    pub timestamp: f64,
    /// Opaque application bytes.
    pub payload: Vec<u8>,
    /// Explicit DAG parents (≤ 64 distinct tx ids).
    pub parent_ids: Vec<String>,
    /// Empty, or a raw ML-DSA-87 public key.
    pub public_key: Vec<u8>,
    /// Empty, or an ML-DSA-87 signature over [`Tx::signing_bytes`].
    pub signature: Vec<u8>,
}

impl Tx {
    /// Feeds the canonical encoding (SPEC §2) to `sink`, piece by piece.
    fn write_signing_bytes(&self, sink: &mut impl FnMut(&[u8])) {
        // Validation bounds every length far below u32::MAX; saturating keeps an unvalidated
        // transaction from wrapping into a different, valid-looking encoding.
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
        sink(SIGNING_DOMAIN);
        sink(&len(self.tx_id.len()));
        sink(self.tx_id.as_bytes());
        sink(&len(self.holder_id.len()));
        sink(self.holder_id.as_bytes());
        sink(&self.timestamp.to_bits().to_be_bytes());
        sink(&len(self.parent_ids.len()));
        for parent in &self.parent_ids {
            sink(&len(parent.len()));
            sink(parent.as_bytes());
        }
        sink(&len(self.payload.len()));
        sink(&self.payload);
    }

    /// The canonical bytes that are signed and hashed (SPEC §2; integers big-endian).
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + self.tx_id.len()
                + self.holder_id.len()
                + self.payload.len()
                + self.parent_ids.iter().map(|p| p.len() + 4).sum::<usize>(),
        );
        self.write_signing_bytes(&mut |b| out.extend_from_slice(b));
        out
    }

    /// SHA-256 of the signing bytes: what PoH mixes in and what Merkle trees hash.
    pub fn digest(&self) -> Hash {
        let mut hasher = Sha256::new();
        self.write_signing_bytes(&mut |b| hasher.update(b));
        Hash(hasher.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One fixed transaction and its signing bytes, written out by hand from the layout in
    /// SPEC §2 so that clients in other languages can check their encoders against it.
    #[test]
    fn signing_bytes_match_the_hand_written_layout() {
        let tx = Tx {
            tx_id: "tx-1".into(),
            holder_id: "alice".into(),
            timestamp: 1_700_000_000.5,
            payload: b"hi".to_vec(),
            parent_ids: vec!["p0".into(), "p:1".into()],
            public_key: vec![],
            signature: vec![],
        };
        let expected = concat!(
            "706f682e74782e7631", // "poh.tx.v1"
            "00000004",
            "74782d31", // len 4, "tx-1"
            "00000005",
            "616c696365",       // len 5, "alice"
            "41d954fc40200000", // f64 1700000000.5
            "00000002",         // two parents
            "00000002",
            "7030", // "p0"
            "00000003",
            "703a31", // "p:1"
            "00000002",
            "6869", // payload "hi"
        );
        assert_eq!(hex::encode(tx.signing_bytes()), expected);
        assert_eq!(tx.digest(), crate::sha256(&tx.signing_bytes()));
        // SHA-256 of the bytes above, computed independently (Python hashlib).
        assert_eq!(
            tx.digest().to_hex(),
            "4968748b1c4e452e0a1cbd8da099df1fa66a5915e3f011e47ab691f6d078aa13"
        );
    }

    #[test]
    fn public_key_and_signature_are_not_signed() {
        let mut tx = Tx {
            tx_id: "a".into(),
            ..Tx::default()
        };
        let before = tx.digest();
        tx.public_key = vec![1; 3];
        tx.signature = vec![2; 3];
        assert_eq!(tx.digest(), before);
    }
}
