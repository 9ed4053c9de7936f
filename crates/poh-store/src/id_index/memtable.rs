//! The in-memory part of the index: the keys inserted since the last run was cut.
//!
//! Entries are appended in seq order (inserts arrive in seq order, and locs grow with seqs) to
//! one vector. An open-addressing table of `u32` indexes finds the newest entry of each
//! fingerprint, and each entry links to the one before it under the same fingerprint. Seqs
//! are not kept per entry: the record at `loc` holds its own, and the table keeps only its seq
//! range. Against a `HashMap<u64, Vec<_>>` this takes about a third of the memory (20 bytes
//! per entry plus 8–16 bytes of table, no per-bucket padding), a key with many entries (a
//! holder's transactions, a parent's children) costs one slot however many it has, and the
//! background thread gets its entries without walking a hash table.

/// `(fingerprint, loc)`.
pub(super) type Entry = (u64, u64);

/// A memtable: the entries of seqs `[first_seq, end_seq)` not yet in a run.
pub(super) struct Memtable {
    first_seq: u64,
    end_seq: u64,
    /// The loc of the last entry pushed here or into the tables before it (`None`: not known,
    /// as after an open): the next one must not be below it.
    last_loc: Option<u64>,
    /// In insertion order, hence seq and loc order.
    entries: Vec<Entry>,
    /// For each entry, `index + 1` of the entry before it under the same fingerprint (0:
    /// none).
    before: Vec<u32>,
    /// `index + 1` of the newest entry of a fingerprint, 0 for an empty slot; a power of two
    /// long, at most half full so probes stay short.
    slots: Vec<u32>,
    /// Slots in use.
    keys: usize,
}

impl Memtable {
    /// An empty memtable whose entries start at `first_seq` and have locs from `last_loc` on,
    /// sized for `expected` entries.
    pub(super) fn new(first_seq: u64, last_loc: Option<u64>, expected: usize) -> Self {
        Self {
            first_seq,
            end_seq: first_seq,
            last_loc,
            entries: Vec::with_capacity(expected),
            before: Vec::with_capacity(expected),
            slots: vec![0; (expected.max(8) * 2).next_power_of_two()],
            keys: 0,
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

    /// One past the last seq it covers: the least seq the next record may use.
    pub(super) fn end_seq(&self) -> u64 {
        self.end_seq
    }

    /// The loc of the last entry, here or in the tables before it, when known.
    pub(super) fn last_loc(&self) -> Option<u64> {
        self.last_loc
    }

    fn home(&self, fp: u64) -> usize {
        // Fingerprints are uniform already; the multiply only makes the slot independent of
        // the bits the bloom filters use, which costs nothing and removes a thing to check.
        (fp.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & (self.slots.len() - 1)
    }

    /// The slot of `fp`: the one holding its newest entry, or the empty one it would take.
    fn slot(&self, fp: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = self.home(fp);
        loop {
            let index = self.slots[at];
            if index == 0 || self.entries[index as usize - 1].0 == fp {
                return at;
            }
            at = (at + 1) & mask;
        }
    }

    /// Appends an entry. The caller checked that `seq >= end_seq() - 1`, `seq < u64::MAX`
    /// and `loc >= last_loc()` (equal only for another key of the same record), and keeps
    /// the memtable far below `u32::MAX` entries.
    pub(super) fn push(&mut self, fp: u64, seq: u64, loc: u64) {
        if (self.keys + 1) * 2 > self.slots.len() {
            self.grow();
        }
        self.entries.push((fp, loc));
        let at = self.slot(fp);
        self.keys += usize::from(self.slots[at] == 0);
        self.before.push(self.slots[at]);
        self.slots[at] = self.entries.len() as u32;
        self.end_seq = seq + 1;
        self.last_loc = Some(loc);
    }

    /// Covers the seqs below `end_seq`, whether or not they had keys.
    pub(super) fn cover(&mut self, end_seq: u64) {
        self.end_seq = self.end_seq.max(end_seq);
    }

    /// Doubles the table: only when one batch overshoots the memtable's intended size.
    fn grow(&mut self) {
        self.slots = vec![0; self.slots.len() * 2];
        // In entry order, so each slot ends with its fingerprint's newest entry.
        for i in 0..self.entries.len() {
            let at = self.slot(self.entries[i].0);
            self.slots[at] = i as u32 + 1;
        }
    }

    /// Appends the loc of every entry under `fp`, newest first.
    pub(super) fn collect(&self, fp: u64, out: &mut Vec<u64>) {
        let mut index = self.slots[self.slot(fp)];
        while index != 0 {
            out.push(self.entries[index as usize - 1].1);
            index = self.before[index as usize - 1];
        }
    }

    /// Appends the loc of every entry under `fp` from `min_loc` on, oldest first. Reads only
    /// those entries (and the one before the first).
    pub(super) fn collect_from(&self, fp: u64, min_loc: u64, out: &mut Vec<u64>) {
        let start = out.len();
        let mut index = self.slots[self.slot(fp)];
        while index != 0 {
            let loc = self.entries[index as usize - 1].1;
            if loc < min_loc {
                break;
            }
            out.push(loc);
            index = self.before[index as usize - 1];
        }
        out[start..].reverse();
    }

    /// Its entries sorted by `(fingerprint, loc)`, as a run stores them.
    pub(super) fn sorted(&self) -> Vec<Entry> {
        let mut sorted = self.entries.clone();
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
        table.collect_from(3, 1500, &mut out);
        let mut from: Vec<_> = want.into_iter().filter(|&l| l >= 1500).collect();
        from.reverse();
        assert_eq!(out, from);
        let sorted = table.sorted();
        assert_eq!(sorted.len(), 990);
        assert!(sorted.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn many_keys_grow_the_table_and_one_record_may_have_several() {
        let mut table = Memtable::new(0, None, 2);
        for seq in 0..5000u64 {
            // Two keys per record, at the same loc.
            table.push(seq, seq, seq * 10);
            table.push(seq + 1_000_000, seq, seq * 10);
        }
        for seq in [0, 1234, 4999] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            table.collect(seq, &mut a);
            table.collect(seq + 1_000_000, &mut b);
            assert_eq!((a, b), (vec![seq * 10], vec![seq * 10]));
        }
    }
}
