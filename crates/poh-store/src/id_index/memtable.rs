//! The in-memory part of the index: the ids inserted since the last run was cut.
//!
//! Entries are appended in seq order (inserts arrive in seq order, and locs grow with seqs) to
//! one vector, and found through an open-addressing table of `u32` indexes into it. Seqs are
//! not kept per entry: the record at `loc` holds its own, and the table keeps only its seq
//! range. Against a `HashMap<u64, _>` this takes about a third of the memory (16 bytes per
//! entry plus 8–16 bytes of table, no per-bucket padding), keeps colliding fingerprints without a side structure (a second entry
//! under the same fingerprint is just another slot further along the probe), and gives the
//! background thread its entries without walking a hash table.

/// `(fingerprint, loc)`.
pub(super) type Entry = (u64, u64);

/// A memtable: the ids of seqs `[first_seq, end_seq)` not yet in a run.
pub(super) struct Memtable {
    first_seq: u64,
    end_seq: u64,
    /// The loc of the last entry pushed here or into the tables before it (`None`: not known,
    /// as after an open): the next one must be above it.
    last_loc: Option<u64>,
    /// In insertion order, hence seq and loc order.
    entries: Vec<Entry>,
    /// `index + 1` into `entries`, 0 for an empty slot; a power of two long, at most half full
    /// so probes stay short.
    slots: Vec<u32>,
}

impl Memtable {
    /// An empty memtable whose ids start at `first_seq` and have locs above `last_loc`, sized
    /// for `expected` entries.
    pub(super) fn new(first_seq: u64, last_loc: Option<u64>, expected: usize) -> Self {
        Self {
            first_seq,
            end_seq: first_seq,
            last_loc,
            entries: Vec::with_capacity(expected),
            slots: vec![0; (expected.max(8) * 2).next_power_of_two()],
        }
    }

    /// How many entries it holds.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The first seq it covers.
    pub(super) fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// One past the last seq it covers: the least seq the next insert may use.
    pub(super) fn end_seq(&self) -> u64 {
        self.end_seq
    }

    /// The loc of the last entry, here or in the tables before it, when known: the next insert
    /// must use a greater one.
    pub(super) fn last_loc(&self) -> Option<u64> {
        self.last_loc
    }

    fn home(&self, fp: u64) -> usize {
        // Fingerprints are uniform already; the multiply only makes the slot independent of
        // the bits the bloom filters use, which costs nothing and removes a thing to check.
        (fp.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & (self.slots.len() - 1)
    }

    fn place(&mut self, fp: u64, index: u32) {
        let mask = self.slots.len() - 1;
        let mut at = self.home(fp);
        while self.slots[at] != 0 {
            at = (at + 1) & mask;
        }
        self.slots[at] = index;
    }

    /// Appends an entry. The caller checked that `seq >= end_seq()`, `seq < u64::MAX` and
    /// `loc > last_loc()`, and keeps the memtable far below `u32::MAX` entries.
    pub(super) fn push(&mut self, fp: u64, seq: u64, loc: u64) {
        if (self.entries.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        self.entries.push((fp, loc));
        self.place(fp, self.entries.len() as u32);
        self.end_seq = seq + 1;
        self.last_loc = Some(loc);
    }

    /// Doubles the table: only when one batch overshoots the memtable's intended size.
    fn grow(&mut self) {
        self.slots = vec![0; self.slots.len() * 2];
        // Re-placing in entry order keeps equal fingerprints in loc order along their probe.
        for i in 0..self.entries.len() {
            let fp = self.entries[i].0;
            self.place(fp, i as u32 + 1);
        }
    }

    /// Appends the loc of every entry under `fp`, newest first.
    pub(super) fn collect(&self, fp: u64, out: &mut Vec<u64>) {
        let mask = self.slots.len() - 1;
        let start = out.len();
        let mut at = self.home(fp);
        loop {
            let index = self.slots[at];
            if index == 0 {
                break;
            }
            let (efp, loc) = self.entries[index as usize - 1];
            if efp == fp {
                out.push(loc);
            }
            at = (at + 1) & mask;
        }
        // Linear probing found them in insertion (loc) order.
        out[start..].reverse();
    }

    /// Its entries sorted by `(fingerprint, loc)`, as a run stores them.
    pub(super) fn sorted(&self) -> Vec<Entry> {
        let mut sorted = self.entries.clone();
        // Locs are unique: nothing to keep stable.
        sorted.sort_unstable();
        sorted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_entries_newest_first_across_growth() {
        let mut table = Memtable::new(10, None, 4);
        for seq in 10..1000u64 {
            table.push(seq % 7, seq, seq * 2);
        }
        assert_eq!(table.len(), 990);
        assert_eq!(table.end_seq(), 1000);
        assert_eq!(table.last_loc(), Some(1998));
        let mut out = Vec::new();
        table.collect(3, &mut out);
        let want: Vec<_> = (10..1000u64)
            .rev()
            .filter(|s| s % 7 == 3)
            .map(|s| s * 2)
            .collect();
        assert_eq!(out, want);
        out.clear();
        table.collect(99, &mut out);
        assert!(out.is_empty());
        let sorted = table.sorted();
        assert_eq!(sorted.len(), 990);
        assert!(sorted.windows(2).all(|w| w[0] < w[1]));
    }
}
