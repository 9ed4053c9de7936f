//! The fragment: one Reed-Solomon shard of a batch, with a header that makes it
//! self-describing and self-checking.
//!
//! **Byte format v1** (integers big-endian, 90 bytes before the shard):
//!
//! ```text
//! "pohfrag"            7 ASCII bytes
//! u8 version           1
//! header_hash          32 bytes: the sealed header whose batch this is
//! u16 k                data fragments
//! u16 m                parity fragments
//! u16 index            0..k are data, k..k+m parity
//! u64 batch_len        the batch's length before padding
//! u32 shard_len        the shard's length (even: reed-solomon-simd works on 16-bit words)
//! checksum             32 bytes: SHA-256 of every byte above and the shard
//! shard                shard_len bytes
//! ```
//!
//! The checksum covers the header fields too, so a flipped bit anywhere makes the fragment
//! fail its check and be skipped rather than poison the rebuild. The batch is cut into `k`
//! shards of `shard_len` bytes (the last padded with zeros); `m` parity shards follow.

use poh_core::{Hash, sha256};

use super::FragmentError;
use crate::config::check_coding;

/// The format's tag.
pub const FRAGMENT_MAGIC: &[u8; 7] = b"pohfrag";
/// The format's version.
pub const FRAGMENT_VERSION: u8 = 1;
/// Bytes before the shard.
pub const FRAGMENT_HEADER_LEN: usize = 7 + 1 + 32 + 2 + 2 + 2 + 8 + 4 + 32;

/// A fragment whose checksum holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// The header whose batch this is.
    pub header_hash: Hash,
    /// Data fragments.
    pub k: usize,
    /// Parity fragments.
    pub m: usize,
    /// This fragment's index.
    pub index: usize,
    /// The batch's length.
    pub batch_len: u64,
    /// The shard.
    pub shard: &'a [u8],
}

/// The shard length for a batch of `batch_len` bytes in `k` shards: the even number at
/// least `batch_len / k`, and at least 2 (reed-solomon-simd refuses empty and odd shards).
pub fn shard_len(batch_len: u64, k: usize) -> Option<u64> {
    let per = batch_len.div_ceil(u64::try_from(k).ok()?.max(1));
    Some(per.max(2).next_multiple_of(2))
}

/// The `k + m` fragments of `batch`, in index order.
pub fn encode(
    header_hash: &Hash,
    batch: &[u8],
    k: usize,
    m: usize,
) -> Result<Vec<Vec<u8>>, FragmentError> {
    check_coding(k, m).map_err(|_| FragmentError::FragmentFormat("unsupported k and m"))?;
    let too_large = || FragmentError::TooLarge {
        header_id: header_hash.to_hex(),
        what: "shard length",
    };
    let shard = shard_len(batch.len() as u64, k)
        .filter(|&s| s <= u64::from(u32::MAX))
        .ok_or_else(too_large)? as usize;
    let data: Vec<Vec<u8>> = (0..k)
        .map(|i| {
            let mut s = vec![0u8; shard];
            let from = (i * shard).min(batch.len());
            let to = ((i + 1) * shard).min(batch.len());
            s[..to - from].copy_from_slice(&batch[from..to]);
            s
        })
        .collect();
    let parity = reed_solomon_simd::encode(k, m, &data)?;
    Ok(data
        .iter()
        .chain(parity.iter())
        .enumerate()
        .map(|(index, s)| {
            write(&Fragment {
                header_hash: *header_hash,
                k,
                m,
                index,
                batch_len: batch.len() as u64,
                shard: s,
            })
        })
        .collect())
}

/// A fragment's bytes. `k`, `m` and `index` fit in 16 bits and the shard in 32 (checked by
/// [`encode`], the one caller).
fn write(f: &Fragment<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAGMENT_HEADER_LEN + f.shard.len());
    out.extend_from_slice(FRAGMENT_MAGIC);
    out.push(FRAGMENT_VERSION);
    out.extend_from_slice(&f.header_hash.0);
    for n in [f.k, f.m, f.index] {
        out.extend_from_slice(&(n as u16).to_be_bytes());
    }
    out.extend_from_slice(&f.batch_len.to_be_bytes());
    out.extend_from_slice(&(f.shard.len() as u32).to_be_bytes());
    let checksum = checksum(&out, f.shard);
    out.extend_from_slice(&checksum.0);
    out.extend_from_slice(f.shard);
    out
}

fn checksum(fields: &[u8], shard: &[u8]) -> Hash {
    let mut joined = Vec::with_capacity(fields.len() + shard.len());
    joined.extend_from_slice(fields);
    joined.extend_from_slice(shard);
    sha256(&joined)
}

impl<'a> Fragment<'a> {
    /// Reads a fragment from untrusted bytes: the layout, the coding parameters and the
    /// checksum. An error, never a panic; nothing is allocated but the checksum's input.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, FragmentError> {
        let bad = FragmentError::FragmentFormat;
        if bytes.len() < FRAGMENT_HEADER_LEN {
            return Err(bad("shorter than a fragment header"));
        }
        let (head, shard) = bytes.split_at(FRAGMENT_HEADER_LEN);
        if &head[..7] != FRAGMENT_MAGIC {
            return Err(bad("no pohfrag tag"));
        }
        if head[7] != FRAGMENT_VERSION {
            return Err(bad("an unknown version"));
        }
        let u16_at = |at: usize| usize::from(u16::from_be_bytes([head[at], head[at + 1]]));
        let (k, m, index) = (u16_at(40), u16_at(42), u16_at(44));
        let mut b8 = [0u8; 8];
        b8.copy_from_slice(&head[46..54]);
        let batch_len = u64::from_be_bytes(b8);
        let mut b4 = [0u8; 4];
        b4.copy_from_slice(&head[54..58]);
        let declared = u64::from(u32::from_be_bytes(b4));
        if declared != shard.len() as u64 {
            return Err(bad("the shard length is not the declared one"));
        }
        if checksum(&head[..58], shard).0[..] != head[58..90] {
            return Err(bad("its SHA-256 does not match (corrupted)"));
        }
        check_coding(k, m).map_err(|_| bad("unsupported k and m"))?;
        if index >= k + m {
            return Err(bad("index out of range"));
        }
        if shard_len(batch_len, k) != Some(declared) {
            return Err(bad("the shard length does not fit the batch length"));
        }
        Ok(Self {
            header_hash: Hash::from_slice(&head[8..40]).ok_or(bad("header hash"))?,
            k,
            m,
            index,
            batch_len,
            shard,
        })
    }
}

/// The batch from at least `k` fragments of one batch (same header, `k`, `m`, `batch_len`;
/// distinct indexes). Data shards present are used as they are; missing ones are rebuilt
/// from parity.
pub fn rebuild(fragments: &[Fragment<'_>]) -> Result<Vec<u8>, FragmentError> {
    let Some(first) = fragments.first() else {
        return Err(FragmentError::FragmentFormat("no fragments"));
    };
    let (k, m, batch_len) = (first.k, first.m, first.batch_len);
    if fragments
        .iter()
        .any(|f| (f.k, f.m, f.batch_len, f.header_hash) != (k, m, batch_len, first.header_hash))
    {
        return Err(FragmentError::FragmentFormat(
            "fragments of different batches",
        ));
    }
    let mut data: Vec<Option<&[u8]>> = vec![None; k];
    for f in fragments.iter().filter(|f| f.index < k) {
        data[f.index] = Some(f.shard);
    }
    let restored = if data.iter().all(Option::is_some) {
        Default::default()
    } else {
        let originals = fragments.iter().filter(|f| f.index < k);
        let recovery = fragments.iter().filter(|f| f.index >= k);
        reed_solomon_simd::decode(
            k,
            m,
            originals.map(|f| (f.index, f.shard)),
            recovery.map(|f| (f.index - k, f.shard)),
        )?
    };
    let mut out = Vec::with_capacity(first.shard.len() * k);
    for (i, shard) in data.iter().enumerate() {
        match shard.or_else(|| restored.get(&i).map(Vec::as_slice)) {
            Some(s) => out.extend_from_slice(s),
            None => {
                return Err(FragmentError::FragmentFormat(
                    "a data shard was not rebuilt",
                ));
            }
        }
    }
    // The declared length fits the shards (checked on decode), so this only drops padding.
    out.truncate(usize::try_from(batch_len).unwrap_or(usize::MAX));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_k_fragments_rebuild_and_a_flipped_bit_is_caught() {
        let batch: Vec<u8> = (0..1001u32).map(|i| (i * 7) as u8).collect();
        let h = sha256(b"header");
        let frags = encode(&h, &batch, 4, 2).unwrap();
        assert_eq!(frags.len(), 6);
        for skip in [[0, 1], [2, 3], [4, 5], [0, 5], [1, 3]] {
            let some: Vec<_> = frags
                .iter()
                .enumerate()
                .filter(|(i, _)| !skip.contains(i))
                .map(|(_, f)| Fragment::decode(f).unwrap())
                .collect();
            assert_eq!(rebuild(&some).unwrap(), batch);
        }
        for at in [0, 10, 45, 60, 89, 90, frags[0].len() - 1] {
            let mut bad = frags[0].clone();
            bad[at] ^= 1;
            assert!(Fragment::decode(&bad).is_err(), "byte {at}");
        }
        assert!(Fragment::decode(&frags[0][..50]).is_err());
        // An empty batch still makes valid, tiny fragments.
        let empty = encode(&h, &[], 1, 1).unwrap();
        let f: Vec<_> = empty.iter().map(|f| Fragment::decode(f).unwrap()).collect();
        assert_eq!(rebuild(&f[1..]).unwrap(), Vec::<u8>::new());
    }
}
