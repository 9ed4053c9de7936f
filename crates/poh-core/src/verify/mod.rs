//! Verification of PoH entries from a start hash (SPEC §3).
//!
//! - [`verify_serial`]: the plain verifier — one entry after another with the portable
//!   hasher. It is the reference the others are tested against.
//! - [`verify_lanes`]: one core, many entries at once. Each entry is checked from its
//!   predecessor's hash, so entries are independent chains; a scheduler keeps every lane of
//!   the backend (16 for AVX-512, 4 for SHA-NI) busy, refilling a lane as its entry ends.
//! - [`verify_parallel`]: [`verify_lanes`] on chunks spread over the rayon pool.
//!
//! All three report the *first* bad entry, whatever order the work finished in. They take
//! the chain's `hashes_per_tick`: no entry can have more hashes than a tick period, and the
//! bound keeps a forged `num_hashes` from buying hours of hashing.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::{
    Hash,
    chain::Backend,
    merkle,
    poh::{Entry, record_hash},
};

/// Why an entry fails.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// `num_hashes` is 0, which no entry can have.
    #[error("num_hashes is 0; every entry has at least one hash")]
    ZeroHashes,
    /// More hashes than a whole tick period, which no entry of this chain can have.
    #[error("num_hashes is {num_hashes}, above the chain's hashes_per_tick of {max}")]
    TooManyHashes {
        /// What the entry claims.
        num_hashes: u64,
        /// The chain's `hashes_per_tick`.
        max: u64,
    },
    /// Recomputing the entry from its predecessor gives another hash.
    #[error("hash mismatch: the entry says {claimed}, recomputing gives {computed}")]
    HashMismatch {
        /// The hash in the entry.
        claimed: Hash,
        /// The hash its predecessor, `num_hashes` and mixins lead to.
        computed: Hash,
    },
    /// A tick period that is not exactly `hashes_per_tick` hash operations ending with its
    /// tick (an entry with mixins used the tick's last hash, or a tick came early or late).
    #[error(
        "tick period reaches {hashes} hashes at this entry; every period is exactly \
         {hashes_per_tick}, ending with its tick"
    )]
    TickPeriod {
        /// Hashes in the period up to and including this entry.
        hashes: u64,
        /// The chain's `hashes_per_tick`.
        hashes_per_tick: u64,
    },
}

/// The first entry that does not verify, by its index in the verified slice.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("PoH entry {index} does not verify: {failure}")]
pub struct VerifyError {
    /// Index of the entry in the slice that was verified.
    pub index: usize,
    /// What is wrong with it.
    pub failure: Failure,
}

impl VerifyError {
    /// The same error with `offset` added to the index, for a slice that starts later.
    pub fn offset(mut self, offset: usize) -> Self {
        self.index += offset;
        self
    }
}

/// The hash each entry starts from.
fn start_of<'a>(start: &'a Hash, entries: &'a [Entry], i: usize) -> &'a Hash {
    if i == 0 { start } else { &entries[i - 1].hash }
}

/// Hash steps before the optional record.
fn steps(entry: &Entry) -> u64 {
    entry.num_hashes - u64::from(!entry.is_tick())
}

/// Finishes an entry whose steps are done: the record, then the comparison.
fn finish(entry: &Entry, mut hash: Hash, index: usize) -> Result<(), VerifyError> {
    if !entry.is_tick() {
        hash = record_hash(&hash, &merkle::root(&entry.mixins));
    }
    if hash == entry.hash {
        Ok(())
    } else {
        Err(VerifyError {
            index,
            failure: Failure::HashMismatch {
                claimed: entry.hash,
                computed: hash,
            },
        })
    }
}

/// The checks that need no hashing.
fn check_count(entry: &Entry, index: usize, max: u64) -> Result<(), VerifyError> {
    let failure = match entry.num_hashes {
        0 => Failure::ZeroHashes,
        n if n > max => Failure::TooManyHashes { num_hashes: n, max },
        _ => return Ok(()),
    };
    Err(VerifyError { index, failure })
}

/// The reference verifier: serial, portable, one entry at a time.
pub fn verify_serial(
    start: &Hash,
    entries: &[Entry],
    hashes_per_tick: u64,
) -> Result<(), VerifyError> {
    for (i, entry) in entries.iter().enumerate() {
        check_count(entry, i, hashes_per_tick)?;
        let mut hash = *start_of(start, entries, i);
        Backend::portable().chain(&mut hash, steps(entry));
        finish(entry, hash, i)?;
    }
    Ok(())
}

/// Verifies on the calling thread, interleaving as many entries as `backend` has lanes.
pub fn verify_lanes(
    backend: Backend,
    start: &Hash,
    entries: &[Entry],
    hashes_per_tick: u64,
) -> Result<(), VerifyError> {
    let width = backend.lanes();
    // (entry index, steps left) per busy lane; `states` holds the matching hashes.
    let mut busy: Vec<(usize, u64)> = Vec::with_capacity(width);
    let mut states: Vec<Hash> = Vec::with_capacity(width);
    let mut next = 0;
    let mut first_bad: Option<VerifyError> = None;
    let bad_at = |e: &Option<VerifyError>| e.as_ref().map_or(usize::MAX, |e| e.index);

    loop {
        // Refill idle lanes; entries after a known failure need no work.
        while busy.len() < width && next < entries.len().min(bad_at(&first_bad)) {
            if let Err(e) = check_count(&entries[next], next, hashes_per_tick) {
                first_bad = Some(e);
                break;
            }
            busy.push((next, steps(&entries[next])));
            states.push(*start_of(start, entries, next));
            next += 1;
        }
        if busy.is_empty() {
            break;
        }
        let run = busy.iter().map(|&(_, left)| left).min().unwrap_or(0);
        backend.chains(&mut states, run);
        let mut lane = 0;
        while lane < busy.len() {
            busy[lane].1 -= run;
            if busy[lane].1 > 0 {
                lane += 1;
                continue;
            }
            let (index, _) = busy.swap_remove(lane);
            let hash = states.swap_remove(lane);
            if let Err(e) = finish(&entries[index], hash, index)
                && e.index < bad_at(&first_bad)
            {
                first_bad = Some(e);
            }
        }
        // Lanes working past a known failure are wasted; drop them.
        let limit = bad_at(&first_bad);
        let mut lane = 0;
        while lane < busy.len() {
            if busy[lane].0 > limit {
                busy.swap_remove(lane);
                states.swap_remove(lane);
            } else {
                lane += 1;
            }
        }
    }
    first_bad.map_or(Ok(()), Err)
}

/// Entries per parallel work item: enough to fill the lanes several times over, small
/// enough for an even spread over the cores and a smooth progress bar.
const CHUNK: usize = 128;

/// Verifies on every thread of the current rayon pool; `progress` is called with the number
/// of entries each finished chunk covered.
pub fn verify_parallel(
    backend: Backend,
    start: &Hash,
    entries: &[Entry],
    hashes_per_tick: u64,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(), VerifyError> {
    let first_bad = AtomicUsize::new(usize::MAX);
    let errors: Vec<VerifyError> = entries
        .par_chunks(CHUNK)
        .enumerate()
        .filter_map(|(c, chunk)| {
            let offset = c * CHUNK;
            if offset > first_bad.load(Ordering::Relaxed) {
                return None;
            }
            let chunk_start = start_of(start, entries, offset);
            let result = verify_lanes(backend, chunk_start, chunk, hashes_per_tick)
                .map_err(|e| e.offset(offset));
            progress(chunk.len());
            let e = result.err()?;
            first_bad.fetch_min(e.index, Ordering::Relaxed);
            Some(e)
        })
        .collect();
    errors
        .into_iter()
        .min_by_key(|e| e.index)
        .map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests;
