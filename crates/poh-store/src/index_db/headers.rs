//! Sealed headers in the redb engine.
//!
//! | table           | key             | value                                            |
//! |-----------------|-----------------|--------------------------------------------------|
//! | `headers`       | height          | `hashes_in_tick` ‖ `seq` (u64 BE) ‖ signed bytes |
//! | `header_ends`   | `poh_end`       | height (u64 BE) ‖ `header_hash`                  |
//! | `header_hashes` | `header_hash`   | height (u64 BE)                                  |
//!
//! | `child_headers` | (chain, height) | seq ‖ entry ‖ poh_hash ‖ `hashes_in_tick` ‖ signed bytes |
//! | `child_hashes`  | `header_hash`   | (chain, height)                                  |
//! | `child_seqs`    | `poh_seq`       | (chain, height): child headers in item order     |
//!
//! `header_ends` is the items' index: the header that covers entry `i` is the first whose
//! `poh_end` is above `i`, one range lookup from a transaction's `entry_index`.

use poh_core::{ChainHead, Hash, Header};
use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{IndexDb, next_key};
use crate::{ChildHeader, StoreError};

pub(crate) const HEADERS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("headers");
pub(crate) const HEADER_ENDS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("header_ends");
pub(crate) const HEADER_HASHES: TableDefinition<'_, &[u8], u64> =
    TableDefinition::new("header_hashes");

pub(crate) const CHILD_HEADERS: TableDefinition<'_, (&str, u64), &[u8]> =
    TableDefinition::new("child_headers");
pub(crate) const CHILD_HASHES: TableDefinition<'_, &[u8], (&str, u64)> =
    TableDefinition::new("child_hashes");
pub(crate) const CHILD_SEQS: TableDefinition<'_, u64, (&str, u64)> =
    TableDefinition::new("child_seqs");

/// Creates the tables (for read transactions that must never meet a missing table).
pub(super) fn create(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(HEADERS)?;
    txn.open_table(HEADER_ENDS)?;
    txn.open_table(HEADER_HASHES)?;
    txn.open_table(CHILD_HEADERS)?;
    txn.open_table(CHILD_HASHES)?;
    txn.open_table(CHILD_SEQS)?;
    Ok(())
}

fn encode_child(child: &ChildHeader) -> Vec<u8> {
    let mut out = Vec::with_capacity(56 + 8000);
    out.extend_from_slice(&child.recorded_at_seq.to_be_bytes());
    out.extend_from_slice(&child.entry_index.to_be_bytes());
    out.extend_from_slice(&child.poh_hash.0);
    out.extend_from_slice(&child.hashes_in_tick.to_be_bytes());
    out.extend_from_slice(&child.header.to_signed_bytes());
    out
}

fn decode_child(bytes: &[u8]) -> Result<ChildHeader, StoreError> {
    let corrupt = || StoreError::Corrupt("child header record");
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(corrupt)
    };
    let poh_hash = bytes
        .get(16..48)
        .and_then(Hash::from_slice)
        .ok_or_else(corrupt)?;
    let header =
        Header::from_signed_bytes(bytes.get(56..).ok_or_else(corrupt)?).map_err(|_| corrupt())?;
    Ok(ChildHeader {
        recorded_at_seq: u64_at(0)?,
        entry_index: u64_at(8)?,
        poh_hash,
        hashes_in_tick: u64_at(48)?,
        header,
    })
}

/// Writes child headers inside a commit's transaction, refusing one that does not continue
/// its chain's last accepted header.
pub(super) fn put_children(
    txn: &WriteTransaction,
    children: &[ChildHeader],
) -> Result<(), StoreError> {
    if children.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(CHILD_HEADERS)?;
    let mut hashes = txn.open_table(CHILD_HASHES)?;
    let mut seqs = txn.open_table(CHILD_SEQS)?;
    for child in children {
        let h = &child.header;
        let chain = h.chain_id.as_str();
        let last = table
            .range((chain, 0)..=(chain, u64::MAX))?
            .next_back()
            .transpose()?
            .map(|(k, _)| k.value().1);
        let next = last.map_or(Some(0), |l| l.checked_add(1));
        if next != Some(h.height) {
            return Err(StoreError::Sequence(
                "child header height does not follow its chain's last accepted one",
            ));
        }
        table.insert((chain, h.height), encode_child(child).as_slice())?;
        hashes.insert(h.hash().0.as_slice(), (chain, h.height))?;
        seqs.insert(child.recorded_at_seq, (chain, h.height))?;
    }
    Ok(())
}

/// A stored header and the head after it.
fn decode_stored(bytes: &[u8]) -> Result<(Header, ChainHead), StoreError> {
    let corrupt = || StoreError::Corrupt("header record");
    let (in_tick, rest) = bytes.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let (seq, signed) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let header = Header::from_signed_bytes(signed).map_err(|_| corrupt())?;
    let head = ChainHead::after(
        &header,
        u64::from_be_bytes(*in_tick),
        u64::from_be_bytes(*seq),
    );
    Ok((header, head))
}

/// The header covering entry `index`, as `header_id`, from an open `header_ends` table.
pub(crate) fn covering(
    ends: &impl ReadableTable<u64, &'static [u8]>,
    index: u64,
) -> Result<Option<String>, StoreError> {
    Ok(covering_end(ends, index)?.map(|(_, hash)| hash.to_hex()))
}

/// The header covering entry `index`: its `poh_end` and its `header_hash`.
pub(crate) fn covering_end(
    ends: &impl ReadableTable<u64, &'static [u8]>,
    index: u64,
) -> Result<Option<(u64, Hash)>, StoreError> {
    let Some(found) = ends.range(index.saturating_add(1)..)?.next() else {
        return Ok(None);
    };
    let (end, value) = found?;
    let hash = value
        .value()
        .get(8..)
        .and_then(Hash::from_slice)
        .ok_or(StoreError::Corrupt("header index"))?;
    Ok(Some((end.value(), hash)))
}

impl IndexDb {
    pub(super) fn put_header_impl(
        &self,
        header: &Header,
        after: &ChainHead,
    ) -> Result<(), StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut headers = txn.open_table(HEADERS)?;
            let mut ends = txn.open_table(HEADER_ENDS)?;
            let mut hashes = txn.open_table(HEADER_HASHES)?;
            if header.height != next_key(&headers)? {
                return Err(StoreError::Sequence(
                    "header height does not follow the last stored header",
                ));
            }
            let expected_start = match ends.last()? {
                Some((end, _)) => end.value(),
                None => 0,
            };
            if header.poh_start != expected_start || header.poh_end <= header.poh_start {
                return Err(StoreError::Sequence(
                    "header does not cover the entries after the last stored header",
                ));
            }
            let hash = header.hash();
            let mut value = after.hashes_in_tick.to_be_bytes().to_vec();
            value.extend_from_slice(&after.seq.to_be_bytes());
            value.extend_from_slice(&header.to_signed_bytes());
            headers.insert(header.height, value.as_slice())?;
            let mut end = header.height.to_be_bytes().to_vec();
            end.extend_from_slice(&hash.0);
            ends.insert(header.poh_end, end.as_slice())?;
            hashes.insert(hash.0.as_slice(), header.height)?;
        }
        txn.commit()?;
        Ok(())
    }

    pub(super) fn header_head_impl(&self) -> Result<Option<ChainHead>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let headers = txn.open_table(HEADERS)?;
        let Some((_, value)) = headers.last()? else {
            return Ok(None);
        };
        Ok(Some(decode_stored(value.value())?.1))
    }

    pub(super) fn header_at_entry_impl(
        &self,
        entry_index: u64,
    ) -> Result<Option<(Header, u64)>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let ends = txn.open_table(HEADER_ENDS)?;
        let Some(found) = ends.range(entry_index.saturating_add(1)..)?.next() else {
            return Ok(None);
        };
        let (_, value) = found?;
        let height = value
            .value()
            .first_chunk::<8>()
            .map(|b| u64::from_be_bytes(*b))
            .ok_or(StoreError::Corrupt("header index"))?;
        let headers = txn.open_table(HEADERS)?;
        let value = headers
            .get(height)?
            .ok_or(StoreError::Corrupt("header index"))?;
        let (header, after) = decode_stored(value.value())?;
        let first = after
            .seq
            .checked_sub(header.item_count)
            .ok_or(StoreError::Corrupt("header record"))?;
        Ok(Some((header, first)))
    }

    pub(super) fn head_after_impl(&self, height: u64) -> Result<Option<ChainHead>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let headers = txn.open_table(HEADERS)?;
        let value = headers.get(height)?;
        value.map(|v| Ok(decode_stored(v.value())?.1)).transpose()
    }

    pub(super) fn headers_impl(&self, from: u64, limit: usize) -> Result<Vec<Header>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let headers = txn.open_table(HEADERS)?;
        headers
            .range(from..)?
            .take(limit)
            .map(|item| Ok(decode_stored(item?.1.value())?.0))
            .collect()
    }

    pub(super) fn header_by_hash_impl(&self, hash: &Hash) -> Result<Option<Header>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let Some(height) = txn.open_table(HEADER_HASHES)?.get(hash.0.as_slice())? else {
            return Ok(None);
        };
        let headers = txn.open_table(HEADERS)?;
        let value = headers
            .get(height.value())?
            .ok_or(StoreError::Corrupt("header hash index"))?;
        Ok(Some(decode_stored(value.value())?.0))
    }

    pub(super) fn child_head_impl(&self, chain_id: &str) -> Result<Option<ChainHead>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(CHILD_HEADERS)?;
        let last = table
            .range((chain_id, 0)..=(chain_id, u64::MAX))?
            .next_back()
            .transpose()?;
        let Some((_, value)) = last else {
            return Ok(None);
        };
        let child = decode_child(value.value())?;
        // A child's item count is not tracked (its seq is the child's business).
        Ok(Some(ChainHead::after(
            &child.header,
            child.hashes_in_tick,
            0,
        )))
    }

    pub(super) fn child_header_by_hash_impl(
        &self,
        hash: &Hash,
    ) -> Result<Option<ChildHeader>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let Some(key) = txn.open_table(CHILD_HASHES)?.get(hash.0.as_slice())? else {
            return Ok(None);
        };
        let (chain, height) = key.value();
        let table = txn.open_table(CHILD_HEADERS)?;
        let value = table
            .get((chain, height))?
            .ok_or(StoreError::Corrupt("child header hash index"))?;
        Ok(Some(decode_child(value.value())?))
    }

    pub(super) fn children_recorded_impl(
        &self,
        seqs: std::ops::Range<u64>,
    ) -> Result<Vec<ChildHeader>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let index = txn.open_table(CHILD_SEQS)?;
        let table = txn.open_table(CHILD_HEADERS)?;
        index
            .range(seqs)?
            .map(|item| {
                let (_, key) = item?;
                let (chain, height) = key.value();
                let value = table
                    .get((chain, height))?
                    .ok_or(StoreError::Corrupt("child header seq index"))?;
                decode_child(value.value())
            })
            .collect()
    }
}
