//! Proof of History (SPEC §3): genesis, hash steps, records, ticks and entries.
//!
//! [`Poh`] is the single-threaded state machine; [`PohRecorder`](crate::recorder::PohRecorder)
//! drives it on its own thread. Every tick period is exactly `hashes_per_tick` hash operations
//! (steps plus records), ending with the tick entry, whatever the mode or the load.

use serde::{Deserialize, Serialize};

use crate::{Hash, chain::Backend, hashv, merkle};

/// Domain tag of the genesis hash.
pub const GENESIS_DOMAIN: &[u8] = b"poh.genesis.v1";

/// The first hash of chain `chain_id`: SHA-256("poh.genesis.v1" || chain_id).
pub fn genesis(chain_id: &str) -> Hash {
    hashv(&[GENESIS_DOMAIN, chain_id.as_bytes()])
}

/// One PoH entry. From the previous entry's hash, a tick (no mixins) applies `num_hashes` hash
/// steps; an entry with mixins applies `num_hashes - 1` steps, then records their Merkle root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Hash operations in this entry, ≥ 1.
    pub num_hashes: u64,
    /// The hash after them.
    pub hash: Hash,
    /// What was recorded (transaction digests or child header hashes), in order.
    pub mixins: Vec<Hash>,
}

impl Entry {
    /// Whether this entry is a tick.
    pub fn is_tick(&self) -> bool {
        self.mixins.is_empty()
    }

    /// The entry that follows `prev` by `num_hashes` operations recording `mixins`, computed
    /// the plain way. `num_hashes` must be ≥ 1.
    pub fn compute(prev: &Hash, num_hashes: u64, mixins: Vec<Hash>) -> Self {
        let mut hash = *prev;
        let steps = num_hashes.saturating_sub(u64::from(!mixins.is_empty()));
        Backend::portable().chain(&mut hash, steps);
        if !mixins.is_empty() {
            hash = record_hash(&hash, &merkle::root(&mixins));
        }
        Self {
            num_hashes,
            hash,
            mixins,
        }
    }
}

/// The record operation: SHA-256(h || m).
pub fn record_hash(h: &Hash, mixin: &Hash) -> Hash {
    hashv(&[&h.0, &mixin.0])
}

/// Where a chain stands, enough to resume it exactly after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PohState {
    /// The last hash (of the last entry, or the genesis).
    pub hash: Hash,
    /// Entries so far.
    pub entries: u64,
    /// Mixins recorded so far (the next one gets this `poh_seq`).
    pub mixins: u64,
    /// Hash operations already done in the current tick period.
    pub hashes_in_tick: u64,
    /// Hash operations since genesis.
    pub total_hashes: u64,
}

impl PohState {
    /// A new chain at its genesis.
    pub fn genesis(chain_id: &str) -> Self {
        Self {
            hash: genesis(chain_id),
            ..Self::default()
        }
    }

    /// The state after `entry`, which must follow this state.
    pub fn advance(&mut self, entry: &Entry, hashes_per_tick: u64) {
        self.hash = entry.hash;
        self.entries += 1;
        self.mixins += entry.mixins.len() as u64;
        self.total_hashes += entry.num_hashes;
        self.hashes_in_tick = if entry.is_tick() {
            0
        } else {
            (self.hashes_in_tick + entry.num_hashes) % hashes_per_tick.max(1)
        };
    }
}

/// The PoH state machine.
#[derive(Debug, Clone)]
pub struct Poh {
    state: PohState,
    /// Hash operations since the last entry.
    num_hashes: u64,
    hashes_per_tick: u64,
    /// Hash operations left in this tick period, the tick's own final step included.
    remaining: u64,
    backend: Backend,
}

impl Poh {
    /// Resumes (or starts, from [`PohState::genesis`]) a chain. `hashes_per_tick` ≥ 1.
    pub fn new(state: PohState, hashes_per_tick: u64, backend: Backend) -> Self {
        let hashes_per_tick = hashes_per_tick.max(1);
        let done = state.hashes_in_tick.min(hashes_per_tick - 1);
        Self {
            state,
            num_hashes: 0,
            hashes_per_tick,
            remaining: hashes_per_tick - done,
            backend,
        }
    }

    /// Where the chain stands after its last entry, plus the hashes done since.
    pub fn state(&self) -> PohState {
        self.state
    }

    /// The current hash, including steps not yet in an entry.
    pub fn hash(&self) -> Hash {
        self.state.hash
    }

    /// Hash operations left before the tick is due (1 means: only the tick's own step).
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Applies up to `max` hash steps but never the tick's own last step. Returns whether the
    /// tick is now due, in which case [`Poh::tick`] must come before anything else.
    pub fn hash_steps(&mut self, max: u64) -> bool {
        let n = max.min(self.remaining - 1);
        self.backend.chain(&mut self.state.hash, n);
        self.num_hashes += n;
        self.remaining -= n;
        self.state.total_hashes += n;
        self.state.hashes_in_tick += n;
        self.remaining == 1
    }

    /// Records `mixins` as one entry. Refused (and handed back) when the tick is due — the
    /// mixin must never take the tick's place, so tick first and retry — or when empty.
    pub fn record(&mut self, mixins: Vec<Hash>) -> Result<Entry, Vec<Hash>> {
        if self.remaining <= 1 || mixins.is_empty() {
            return Err(mixins);
        }
        self.state.hash = record_hash(&self.state.hash, &merkle::root(&mixins));
        self.remaining -= 1;
        self.state.hashes_in_tick += 1;
        self.state.total_hashes += 1;
        self.state.mixins += mixins.len() as u64;
        Ok(self.finish_entry(mixins))
    }

    /// Completes the tick period with its last hash step, once [`Poh::hash_steps`] has
    /// brought it due. `None` while hashes remain.
    pub fn tick(&mut self) -> Option<Entry> {
        if self.remaining != 1 {
            return None;
        }
        self.backend.chain(&mut self.state.hash, 1);
        self.state.total_hashes += 1;
        self.state.hashes_in_tick = 0;
        self.remaining = self.hashes_per_tick;
        Some(self.finish_entry(Vec::new()))
    }

    fn finish_entry(&mut self, mixins: Vec<Hash>) -> Entry {
        let entry = Entry {
            num_hashes: self.num_hashes + 1,
            hash: self.state.hash,
            mixins,
        };
        self.num_hashes = 0;
        self.state.entries += 1;
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256;

    #[test]
    fn genesis_is_the_spec_formula() {
        let mut bytes = b"poh.genesis.v1".to_vec();
        bytes.extend_from_slice(b"municipality/tokyo");
        assert_eq!(genesis("municipality/tokyo"), sha256(&bytes));
    }

    #[test]
    fn entries_follow_the_spec_and_mixins_never_take_the_ticks_place() {
        let start = PohState::genesis("t");
        let mut poh = Poh::new(start, 10, Backend::fastest());
        assert!(!poh.hash_steps(3));
        let m = vec![sha256(b"a"), sha256(b"b")];
        let e1 = poh.record(m.clone()).unwrap();
        assert_eq!(e1, Entry::compute(&start.hash, 4, m.clone()));
        // Hashes up to the tick, then the tick is due and a record is refused.
        assert!(poh.hash_steps(100));
        assert_eq!(poh.remaining(), 1);
        assert_eq!(poh.record(m.clone()), Err(m.clone()));
        let tick = poh.tick().unwrap();
        assert_eq!(tick, Entry::compute(&e1.hash, 6, vec![]));
        assert_eq!(
            e1.num_hashes + tick.num_hashes,
            10,
            "a tick period is hashes_per_tick"
        );
        assert_eq!(poh.tick(), None, "no tick before its hashes are done");
        let s = poh.state();
        assert_eq!(
            (s.entries, s.mixins, s.total_hashes, s.hashes_in_tick),
            (2, 2, 10, 0)
        );
        assert_eq!(poh.record(vec![]), Err(vec![]));
    }

    #[test]
    fn resuming_mid_tick_keeps_the_tick_period() {
        let mut state = PohState::genesis("t");
        let mut poh = Poh::new(state, 10, Backend::portable());
        poh.hash_steps(2);
        let e = poh.record(vec![sha256(b"x")]).unwrap();
        state.advance(&e, 10);
        assert_eq!(state, poh.state());
        let mut resumed = Poh::new(state, 10, Backend::portable());
        assert!(resumed.hash_steps(u64::MAX));
        assert_eq!(resumed.tick().unwrap().num_hashes, 7);
    }
}
