//! A sealed header's batch: the header, the PoH entries it covers with the hash before them,
//! and the transaction records those entries recorded.
//!
//! **Byte format v1** (integers big-endian):
//!
//! ```text
//! "poh.batch.v1"                      12 ASCII bytes
//! u32 len || header signed bytes      Header::to_signed_bytes (SPEC §6 bytes, then signature)
//! start_hash                          32 bytes: the hash before entry poh_start
//! u32 entry count
//!   per entry: u32 len || entry       poh-store's entry encoding
//! u32 record count
//!   per record: u64 poh_seq || u32 len || record   poh-store's TxRecord encoding
//! ```
//!
//! Records are in `poh_seq` order; child-header items take seqs too but have no record. The
//! decoder reads untrusted bytes (rebuilt from fragments): every length is checked against
//! what is left before anything is allocated, so it never panics and never allocates more
//! than the input's size.

use poh_core::{ChainHead, Entry, Hash, Header, HeaderVerifier, Tx};
use poh_store::{
    Store, TxRecord,
    record::{decode_entry, encode_entry},
};

use super::FragmentError;

/// The format's tag and version.
pub const BATCH_MAGIC: &[u8; 12] = b"poh.batch.v1";

/// Entries and records read from the store at a time.
const PAGE: usize = 1024;
const PAGE_BYTES: usize = 4 << 20;

/// A sealed header's batch.
#[derive(Clone, Debug, PartialEq)]
pub struct SealedBatch {
    /// The header, as signed.
    pub header: Header,
    /// The hash before the first entry (the previous header's `poh_end_hash`, or the
    /// genesis hash at height 0).
    pub start_hash: Hash,
    /// Entries `poh_start..poh_end`.
    pub entries: Vec<Entry>,
    /// The transaction records of the header's items, in `poh_seq` order.
    pub txs: Vec<TxRecord>,
}

impl SealedBatch {
    /// The batch's bytes (format v1 above).
    pub fn encode(&self) -> Result<Vec<u8>, FragmentError> {
        let too_large = |what| FragmentError::TooLarge {
            header_id: self.header.id(),
            what,
        };
        let len = |n: usize, what| u32::try_from(n).map_err(|_| too_large(what));
        let mut out = Vec::new();
        out.extend_from_slice(BATCH_MAGIC);
        let header = self.header.to_signed_bytes();
        out.extend_from_slice(&len(header.len(), "header")?.to_be_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.start_hash.0);
        out.extend_from_slice(&len(self.entries.len(), "entry count")?.to_be_bytes());
        for entry in &self.entries {
            let bytes = encode_entry(entry);
            out.extend_from_slice(&len(bytes.len(), "entry")?.to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        out.extend_from_slice(&len(self.txs.len(), "record count")?.to_be_bytes());
        for record in &self.txs {
            let bytes = record.encode();
            out.extend_from_slice(&record.poh_seq.to_be_bytes());
            out.extend_from_slice(&len(bytes.len(), "record")?.to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Reads [`SealedBatch::encode`]'s bytes, which may be anything: an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, FragmentError> {
        let bad = FragmentError::BatchFormat;
        let mut r = Reader(bytes);
        if r.take(BATCH_MAGIC.len())? != BATCH_MAGIC {
            return Err(bad("no poh.batch.v1 tag"));
        }
        let header_len = r.u32()? as usize;
        let header = Header::from_signed_bytes(r.take(header_len)?)
            .map_err(|_| bad("the header does not decode"))?;
        let start_hash = Hash::from_slice(r.take(Hash::LEN)?).ok_or(bad("start hash"))?;
        // Each entry takes at least its 4-byte length, so the count is bounded by what is
        // left before anything is reserved.
        let count = r.u32()? as usize;
        let mut entries = Vec::with_capacity(count.min(r.0.len() / 4));
        for _ in 0..count {
            let len = r.u32()? as usize;
            entries.push(decode_entry(r.take(len)?).map_err(|_| bad("an entry does not decode"))?);
        }
        let count = r.u32()? as usize;
        let mut txs: Vec<TxRecord> = Vec::with_capacity(count.min(r.0.len() / 12));
        for _ in 0..count {
            let seq = r.u64()?;
            let len = r.u32()? as usize;
            let record =
                TxRecord::decode(seq, r.take(len)?).map_err(|_| bad("a record does not decode"))?;
            if txs.last().is_some_and(|last| last.poh_seq >= seq) {
                return Err(bad("records are not in poh_seq order"));
            }
            txs.push(record);
        }
        if !r.0.is_empty() {
            return Err(bad("bytes after the last record"));
        }
        Ok(Self {
            header,
            start_hash,
            entries,
            txs,
        })
    }

    /// The batch of this node's header at `height` as the store holds it, or `None` when
    /// there is no such header. Blocking (store reads).
    pub fn read(store: &dyn Store, height: u64) -> Result<Option<Self>, FragmentError> {
        let Some(header) = store.headers(height, 1)?.into_iter().next() else {
            return Ok(None);
        };
        if header.height != height {
            return Ok(None);
        }
        let head = head_before(store, &header)?;
        let wanted = header.poh_end.saturating_sub(header.poh_start);
        let mut entries = Vec::new();
        let mut start_hash = None;
        while (entries.len() as u64) < wanted {
            let from = header.poh_start + entries.len() as u64;
            let want = (wanted - entries.len() as u64).min(PAGE as u64) as usize;
            let page = store.entries(from, want, PAGE_BYTES)?;
            let Some(page) = page.filter(|p| !p.entries.is_empty()) else {
                return Err(missing(&header, "PoH entries"));
            };
            start_hash.get_or_insert(page.start_hash);
            entries.extend(page.entries);
        }
        let end = head.seq + header.item_count;
        let mut txs = Vec::new();
        let mut from = head.seq;
        while from < end {
            let page = store.txs_from_seq(from, PAGE, PAGE_BYTES)?;
            let Some(last) = page.last() else { break };
            from = last.poh_seq + 1;
            let done = from >= end;
            txs.extend(page.into_iter().filter(|r| r.poh_seq < end));
            if done {
                break;
            }
        }
        Ok(Some(Self {
            start_hash: start_hash.unwrap_or(head.start_hash),
            header,
            entries,
            txs,
        }))
    }

    /// Checks that the batch holds every item of its header: each `poh_seq` the header covers
    /// is one of its records or a child header the store recorded. Records that left the
    /// store before the batch was read (a TTL that ran before fragments were configured) are
    /// missing from it, and fragments written without them could never bring them back.
    /// Blocking (store reads).
    pub fn check_complete(&self, store: &dyn Store) -> Result<(), FragmentError> {
        let head = head_before(store, &self.header)?;
        let seqs = head.seq..head.seq.saturating_add(self.header.item_count);
        let children = store.children_recorded(seqs.clone())?;
        let mut records = self.txs.iter().map(|r| r.poh_seq).peekable();
        let mut children = children.iter().map(|c| c.recorded_at_seq).peekable();
        let mut gaps = Gaps::default();
        for seq in seqs {
            while records.next_if(|&r| r < seq).is_some() {}
            if records.next_if_eq(&seq).is_none() && children.next_if_eq(&seq).is_none() {
                gaps.add(seq);
            }
        }
        if gaps.count == 0 {
            return Ok(());
        }
        Err(FragmentError::Incomplete {
            header_id: self.header.id(),
            height: self.header.height,
            items: self.header.item_count,
            missing: gaps.count,
            seqs: gaps.to_string(),
        })
    }

    /// Checks the batch against `header` (this node's stored header) and what precedes it
    /// in `store`: the same header bytes; entries that re-hash from the previous header's
    /// end to `poh_end_hash` and give its `poh_hashes`, `items_root` and `item_count`
    /// (poh-core's [`HeaderVerifier`], the signature included); and every record's digest is
    /// SHA-256 of its signing bytes and the item at its `poh_seq`, recorded by the entry it
    /// names. Blocking (store reads, then hashing on every core).
    pub fn verify(&self, store: &dyn Store, header: &Header) -> Result<(), FragmentError> {
        let header_id = header.id();
        let mismatch = |reason: String| FragmentError::Mismatch {
            header_id: header_id.clone(),
            reason,
        };
        if self.header.to_signed_bytes() != header.to_signed_bytes() {
            return Err(mismatch("its header bytes differ".into()));
        }
        let head = head_before(store, header)?;
        if self.start_hash != head.start_hash {
            return Err(mismatch(format!(
                "it starts from {}, the previous header ends at {}",
                self.start_hash, head.start_hash
            )));
        }
        let hashes_per_tick = store
            .chain()?
            .ok_or_else(|| mismatch("the store holds no chain".into()))?
            .hashes_per_tick;
        let verifier = HeaderVerifier {
            chain_id: header.chain_id.clone(),
            level: header.level,
            public_key: header.public_key.clone(),
            hashes_per_tick,
        };
        verifier
            .verify(&head, header, &self.entries)
            .map_err(|source| FragmentError::Verify {
                header_id: header_id.clone(),
                source,
            })?;
        check_records(&head, header, &self.entries, &self.txs).map_err(mismatch)
    }
}

/// What header `header` continues: the genesis head at height 0, else the stored head after
/// the previous header.
fn head_before(store: &dyn Store, header: &Header) -> Result<ChainHead, FragmentError> {
    match header.height.checked_sub(1) {
        None => Ok(ChainHead::genesis(&header.chain_id)),
        Some(prev) => store
            .head_after(prev)?
            .ok_or_else(|| missing(header, "the previous header")),
    }
}

fn missing(header: &Header, what: &str) -> FragmentError {
    FragmentError::Mismatch {
        header_id: header.id(),
        reason: format!("the store has lost {what} of header {}", header.height),
    }
}

/// Every record is one of the batch's transaction items: its digest is what its transaction
/// hashes to and what the PoH recorded at its `poh_seq`, in the entry it names.
fn check_records(
    head: &ChainHead,
    header: &Header,
    entries: &[Entry],
    txs: &[TxRecord],
) -> Result<(), String> {
    // Walk entries and records together: both are in seq order.
    let mut seq = head.seq;
    let mut records = txs.iter().peekable();
    for (i, entry) in entries.iter().enumerate() {
        let index = header.poh_start + i as u64;
        for item in &entry.mixins {
            while let Some(record) = records.next_if(|r| r.poh_seq == seq) {
                check_record(record, item, index, entry)?;
            }
            seq += 1;
        }
    }
    match records.next() {
        None => Ok(()),
        Some(r) => Err(format!(
            "transaction {:?} has poh_seq {}, outside the header's items",
            r.tx.tx_id, r.poh_seq
        )),
    }
}

fn check_record(record: &TxRecord, item: &Hash, index: u64, entry: &Entry) -> Result<(), String> {
    let tx: &Tx = &record.tx;
    if tx.digest() != record.digest {
        return Err(format!(
            "transaction {:?}: its digest is not SHA-256 of its signing bytes",
            tx.tx_id
        ));
    }
    if &record.digest != item {
        return Err(format!(
            "transaction {:?}: the item at poh_seq {} is another digest",
            tx.tx_id, record.poh_seq
        ));
    }
    if record.entry_index != index || record.poh_hash != entry.hash {
        return Err(format!(
            "transaction {:?}: recorded by entry {index}, not the one it names",
            tx.tx_id
        ));
    }
    Ok(())
}

/// Missing `poh_seq`s: how many, and the first few as ranges (for one log line).
#[derive(Default)]
struct Gaps {
    count: u64,
    ranges: Vec<(u64, u64)>,
    more: bool,
}

impl Gaps {
    const SHOWN: usize = 4;

    fn add(&mut self, seq: u64) {
        self.count += 1;
        let shown = self.ranges.len();
        match self.ranges.last_mut() {
            Some((_, end)) if *end + 1 == seq => *end = seq,
            _ if shown < Self::SHOWN => self.ranges.push((seq, seq)),
            _ => self.more = true,
        }
    }
}

impl std::fmt::Display for Gaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, &(start, end)) in self.ranges.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            if start == end {
                write!(f, "{sep}{start}")?;
            } else {
                write!(f, "{sep}{start}-{end}")?;
            }
        }
        if self.more {
            write!(f, ", …")?;
        }
        Ok(())
    }
}

/// A cursor over untrusted bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FragmentError> {
        if n > self.0.len() {
            return Err(FragmentError::BatchFormat("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, FragmentError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, FragmentError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_read_as_ranges() {
        let mut gaps = Gaps::default();
        for seq in [3, 4, 5, 9, 11, 12, 20, 30, 31] {
            gaps.add(seq);
        }
        assert_eq!(gaps.count, 9);
        assert_eq!(gaps.to_string(), "3-5, 9, 11-12, 20, …");
    }

    #[test]
    fn arbitrary_bytes_are_errors_not_panics() {
        assert!(SealedBatch::decode(b"").is_err());
        assert!(SealedBatch::decode(BATCH_MAGIC).is_err());
        let mut huge = BATCH_MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(SealedBatch::decode(&huge).is_err());
        for n in 0..64u8 {
            let mut bytes = BATCH_MAGIC.to_vec();
            bytes.extend((0..n).map(|i| i.wrapping_mul(37)));
            assert!(SealedBatch::decode(&bytes).is_err());
        }
    }
}
