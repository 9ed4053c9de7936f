//! Sealing headers over PoH entries, and checking them (SPEC §6).
//!
//! - [`ChainHead`]: where a chain of headers stands — the next height, the link, the first
//!   uncovered entry and the hash before it.
//! - [`Batch`]: entries gathered since the last header; [`Batch::seal`] signs the header
//!   that covers them.
//! - [`TickPeriods`]: the rule that every tick period is exactly `hashes_per_tick` hashes,
//!   which entry verification alone does not see.
//! - [`HeaderVerifier`]: what a parent (or any verifier) checks of one header from a known
//!   key: identity, signature, links, then the covered entries and what they sum to.

use crate::{
    Entry, Error, Hash, SigningKey,
    chain::Backend,
    header::{Header, Level},
    merkle, verify,
    verify::Failure,
};

/// Where a chain of headers stands: what the next header must continue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// The next header's height.
    pub height: u64,
    /// The `header_hash` the next header links to (zeros before the first).
    pub prev_header_hash: Hash,
    /// The next header's `poh_start`.
    pub poh_start: u64,
    /// The hash of entry `poh_start - 1` (the genesis hash at 0).
    pub start_hash: Hash,
    /// Hash operations already done in the tick period entry `poh_start` falls in.
    pub hashes_in_tick: u64,
    /// Items recorded before entry `poh_start`: the `poh_seq` of the next header's first
    /// item.
    pub seq: u64,
}

impl ChainHead {
    /// A chain with no header yet.
    pub fn genesis(chain_id: &str) -> Self {
        Self {
            height: 0,
            prev_header_hash: Hash::default(),
            poh_start: 0,
            start_hash: crate::genesis(chain_id),
            hashes_in_tick: 0,
            seq: 0,
        }
    }

    /// The head after `header`, which continued this one and whose entries left the tick
    /// period at `hashes_in_tick`.
    pub fn next(&self, header: &Header, hashes_in_tick: u64) -> Self {
        Self::after(header, hashes_in_tick, self.seq + header.item_count)
    }

    /// The head after `header`, given what it left: the tick period at `hashes_in_tick`,
    /// and `seq` items recorded in all.
    pub fn after(header: &Header, hashes_in_tick: u64, seq: u64) -> Self {
        Self {
            height: header.height + 1,
            prev_header_hash: header.hash(),
            poh_start: header.poh_end,
            start_hash: header.poh_end_hash,
            hashes_in_tick,
            seq,
        }
    }
}

/// Entries gathered for the next header.
#[derive(Clone, Debug)]
pub struct Batch {
    head: ChainHead,
    entries: u64,
    hashes: u64,
    end_hash: Hash,
    items: Vec<Hash>,
    ticks: TickPeriods,
}

impl Batch {
    /// An empty batch continuing `head` on a chain of `hashes_per_tick`.
    pub fn new(head: ChainHead, hashes_per_tick: u64) -> Self {
        Self {
            entries: 0,
            hashes: 0,
            end_hash: head.start_hash,
            items: Vec::new(),
            ticks: TickPeriods::new(hashes_per_tick, head.hashes_in_tick),
            head,
        }
    }

    /// Adds the next entry. The entry's own hash is trusted (the caller generated or verified
    /// it); how it fills its tick period is checked.
    pub fn push(&mut self, entry: &Entry) -> Result<(), Failure> {
        self.ticks.push(entry)?;
        self.entries += 1;
        self.hashes = self.hashes.saturating_add(entry.num_hashes);
        self.end_hash = entry.hash;
        self.items.extend_from_slice(&entry.mixins);
        Ok(())
    }

    /// Entries gathered.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Items gathered, in order.
    pub fn items(&self) -> &[Hash] {
        &self.items
    }

    /// The next entry's index.
    pub fn next_entry(&self) -> u64 {
        self.head.poh_start + self.entries
    }

    /// Signs the header over the gathered entries and returns it with the head after it.
    /// `None` when no entry was gathered (a header covers at least one).
    pub fn seal(
        &self,
        chain_id: &str,
        level: Level,
        timestamp: f64,
        key: &SigningKey,
    ) -> Result<Option<(Header, ChainHead)>, Error> {
        if self.entries == 0 {
            return Ok(None);
        }
        let mut header = Header {
            chain_id: chain_id.to_owned(),
            level,
            height: self.head.height,
            prev_header_hash: self.head.prev_header_hash,
            poh_start: self.head.poh_start,
            poh_end: self.head.poh_start + self.entries,
            poh_end_hash: self.end_hash,
            poh_hashes: self.hashes,
            items_root: merkle::root(&self.items),
            item_count: self.items.len() as u64,
            timestamp,
            public_key: Vec::new(),
            signature: Vec::new(),
        };
        header.sign(key)?;
        let head = self.head.next(&header, self.ticks.hashes_in_tick());
        Ok(Some((header, head)))
    }
}

/// Checks that every tick period is exactly `hashes_per_tick` hash operations and ends with
/// its tick: entries with mixins inside a period leave at least the tick's one hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickPeriods {
    hashes_per_tick: u64,
    in_tick: u64,
}

impl TickPeriods {
    /// Starts `in_tick` hashes into a period.
    pub fn new(hashes_per_tick: u64, in_tick: u64) -> Self {
        Self {
            hashes_per_tick,
            in_tick,
        }
    }

    /// Hash operations done in the current period.
    pub fn hashes_in_tick(&self) -> u64 {
        self.in_tick
    }

    /// Takes the next entry.
    pub fn push(&mut self, entry: &Entry) -> Result<(), Failure> {
        let total = self.in_tick.saturating_add(entry.num_hashes);
        if entry.is_tick() {
            if total != self.hashes_per_tick {
                return Err(Failure::TickPeriod {
                    hashes: total,
                    hashes_per_tick: self.hashes_per_tick,
                });
            }
            self.in_tick = 0;
        } else {
            if total >= self.hashes_per_tick {
                return Err(Failure::TickPeriod {
                    hashes: total,
                    hashes_per_tick: self.hashes_per_tick,
                });
            }
            self.in_tick = total;
        }
        Ok(())
    }
}

/// Why a header is refused. Each names the first thing that is wrong.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum HeaderError {
    /// The header is from another chain.
    #[error("chain_id is {got:?}, expected {expected:?}")]
    Chain {
        /// The configured chain.
        expected: String,
        /// The header's.
        got: String,
    },
    /// The header is from another level.
    #[error("level is {got}, expected {expected}")]
    Level {
        /// The configured level.
        expected: Level,
        /// The header's.
        got: Level,
    },
    /// Signed by a key other than the chain's.
    #[error("public_key is not the key configured for this chain")]
    Key,
    /// The signature does not verify.
    #[error("signature does not verify over the header bytes")]
    Signature,
    /// Not the next height.
    #[error("height is {got}, expected {expected}")]
    Height {
        /// The next height.
        expected: u64,
        /// The header's.
        got: u64,
    },
    /// `prev_header_hash` is not the last header's hash.
    #[error("prev_header_hash {got} does not link to the previous header {expected}")]
    Link {
        /// The last accepted header's hash.
        expected: Hash,
        /// The header's.
        got: Hash,
    },
    /// The covered range does not start where the last one ended, or is empty.
    #[error("covers entries {start}..{end}, expected a non-empty range from {expected}")]
    Range {
        /// The first uncovered entry.
        expected: u64,
        /// `poh_start`.
        start: u64,
        /// `poh_end`.
        end: u64,
    },
    /// Not as many entries as the header covers.
    #[error("{got} PoH entries came with a header covering {expected}")]
    EntryCount {
        /// `poh_end - poh_start`.
        expected: u64,
        /// Entries given.
        got: u64,
    },
    /// A covered entry does not verify.
    #[error("PoH entry {index}: {failure}")]
    Entry {
        /// The entry's index in the chain.
        index: u64,
        /// What is wrong with it.
        failure: Failure,
    },
    /// A summary field is not what the entries give.
    #[error("{field} is {claimed}, the entries give {computed}")]
    Summary {
        /// `poh_hashes`, `poh_end_hash`, `items_root` or `item_count`.
        field: &'static str,
        /// The header's value.
        claimed: String,
        /// The entries'.
        computed: String,
    },
}

/// Checks headers of one chain, signed by one known key.
#[derive(Clone, Debug)]
pub struct HeaderVerifier {
    /// The chain whose headers these are.
    pub chain_id: String,
    /// Its level.
    pub level: Level,
    /// Its public key.
    pub public_key: Vec<u8>,
    /// Its `hashes_per_tick` (bounds each entry and the tick periods).
    pub hashes_per_tick: u64,
}

impl HeaderVerifier {
    /// Identity, signature and the link to `head`: everything but the entries.
    pub fn check_header(&self, head: &ChainHead, header: &Header) -> Result<(), HeaderError> {
        if header.chain_id != self.chain_id {
            return Err(HeaderError::Chain {
                expected: self.chain_id.clone(),
                got: header.chain_id.clone(),
            });
        }
        if header.level != self.level {
            return Err(HeaderError::Level {
                expected: self.level,
                got: header.level,
            });
        }
        if header.public_key != self.public_key {
            return Err(HeaderError::Key);
        }
        header
            .verify_signature()
            .map_err(|_| HeaderError::Signature)?;
        check_link(head, header)
    }

    /// Everything, the covered entries' hashes included; returns the head after `header`.
    pub fn verify(
        &self,
        head: &ChainHead,
        header: &Header,
        entries: &[Entry],
    ) -> Result<ChainHead, HeaderError> {
        self.check_header(head, header)?;
        check_count(header, entries)?;
        verify::verify_parallel(
            Backend::fastest(),
            &head.start_hash,
            entries,
            self.hashes_per_tick,
            &|_| {},
        )
        .map_err(|e| HeaderError::Entry {
            index: head.poh_start + e.index as u64,
            failure: e.failure,
        })?;
        check_summary(head, header, entries, self.hashes_per_tick)
    }
}

/// `height`, `prev_header_hash` and the covered range continue `head`.
pub fn check_link(head: &ChainHead, header: &Header) -> Result<(), HeaderError> {
    if header.height != head.height {
        return Err(HeaderError::Height {
            expected: head.height,
            got: header.height,
        });
    }
    if header.prev_header_hash != head.prev_header_hash {
        return Err(HeaderError::Link {
            expected: head.prev_header_hash,
            got: header.prev_header_hash,
        });
    }
    if header.poh_start != head.poh_start || header.poh_end <= header.poh_start {
        return Err(HeaderError::Range {
            expected: head.poh_start,
            start: header.poh_start,
            end: header.poh_end,
        });
    }
    Ok(())
}

fn check_count(header: &Header, entries: &[Entry]) -> Result<(), HeaderError> {
    let expected = header.poh_end.saturating_sub(header.poh_start);
    if entries.len() as u64 != expected {
        return Err(HeaderError::EntryCount {
            expected,
            got: entries.len() as u64,
        });
    }
    Ok(())
}

/// The header's summary fields against entries whose hashes are already verified: tick
/// periods, `poh_hashes`, `poh_end_hash`, `items_root`, `item_count`. Returns the head after
/// the header.
pub fn check_summary(
    head: &ChainHead,
    header: &Header,
    entries: &[Entry],
    hashes_per_tick: u64,
) -> Result<ChainHead, HeaderError> {
    check_count(header, entries)?;
    let mut batch = Batch::new(head.clone(), hashes_per_tick);
    for (i, entry) in entries.iter().enumerate() {
        batch.push(entry).map_err(|failure| HeaderError::Entry {
            index: head.poh_start + i as u64,
            failure,
        })?;
    }
    let mismatch = |field, claimed: String, computed: String| {
        Err(HeaderError::Summary {
            field,
            claimed,
            computed,
        })
    };
    if header.poh_hashes != batch.hashes {
        return mismatch(
            "poh_hashes",
            header.poh_hashes.to_string(),
            batch.hashes.to_string(),
        );
    }
    if header.poh_end_hash != batch.end_hash {
        return mismatch(
            "poh_end_hash",
            header.poh_end_hash.to_hex(),
            batch.end_hash.to_hex(),
        );
    }
    if header.item_count != batch.items.len() as u64 {
        return mismatch(
            "item_count",
            header.item_count.to_string(),
            batch.items.len().to_string(),
        );
    }
    let root = merkle::root(&batch.items);
    if header.items_root != root {
        return mismatch("items_root", header.items_root.to_hex(), root.to_hex());
    }
    Ok(head.next(header, batch.ticks.hashes_in_tick()))
}

#[cfg(test)]
mod tests;
