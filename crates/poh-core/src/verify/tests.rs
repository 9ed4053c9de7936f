use proptest::prelude::*;

use super::*;
use crate::sha256;

/// A chain of `shape.len()` entries: (num_hashes, mixin count) each.
fn chain(start: Hash, shape: &[(u64, usize)]) -> Vec<Entry> {
    let mut prev = start;
    shape
        .iter()
        .enumerate()
        .map(|(i, &(n, m))| {
            let mixins = (0..m).map(|j| sha256(&[i as u8, j as u8])).collect();
            let e = Entry::compute(&prev, n.max(1), mixins);
            prev = e.hash;
            e
        })
        .collect()
}

/// The `hashes_per_tick` of the test chains: above every entry's `num_hashes`.
const MAX: u64 = 64;

fn all_verifiers(start: &Hash, entries: &[Entry]) -> Vec<(String, Result<(), VerifyError>)> {
    let mut out = vec![("serial".to_string(), verify_serial(start, entries, MAX))];
    for b in Backend::all() {
        out.push((
            format!("lanes/{}", b.name()),
            verify_lanes(b, start, entries, MAX),
        ));
        out.push((
            format!("parallel/{}", b.name()),
            verify_parallel(b, start, entries, MAX, &|_| {}),
        ));
    }
    out
}

#[test]
fn every_bit_flip_in_every_field_of_every_entry_is_caught_at_its_index() {
    let start = sha256(b"start");
    let entries = chain(start, &[(3, 0), (1, 1), (5, 2), (2, 0), (4, 3), (1, 0)]);
    for (name, r) in all_verifiers(&start, &entries) {
        assert_eq!(r, Ok(()), "{name}");
    }
    for i in 0..entries.len() {
        // A flip in entry i can also break entry i + 1 (through its hash), but entry i is
        // checked too, so i must be the index reported.
        let mut cases: Vec<Vec<Entry>> = Vec::new();
        for bit in 0..64 {
            let mut e = entries.clone();
            e[i].num_hashes ^= 1 << bit;
            cases.push(e);
        }
        for byte in 0..32 {
            for bit in 0..8 {
                let mut e = entries.clone();
                e[i].hash.0[byte] ^= 1 << bit;
                cases.push(e);
                for m in 0..entries[i].mixins.len() {
                    let mut e = entries.clone();
                    e[i].mixins[m].0[byte] ^= 1 << bit;
                    cases.push(e);
                }
            }
        }
        // Adding or removing a mixin changes the entry too.
        let mut e = entries.clone();
        e[i].mixins.push(sha256(b"extra"));
        cases.push(e);
        if !entries[i].mixins.is_empty() {
            let mut e = entries.clone();
            e[i].mixins.pop();
            cases.push(e);
        }
        for case in &cases {
            for (name, r) in all_verifiers(&start, case) {
                assert_eq!(r.map_err(|e| e.index), Err(i), "{name}, entry {i}");
            }
        }
    }
    // A different start hash breaks entry 0.
    for (name, r) in all_verifiers(&sha256(b"other"), &entries) {
        assert_eq!(r.map_err(|e| e.index), Err(0), "{name}");
    }
}

#[test]
fn zero_hashes_and_more_than_a_tick_are_refused() {
    let start = sha256(b"s");
    let mut entries = chain(start, &[(2, 0), (2, 1), (3, 0)]);
    entries[2].num_hashes = MAX + 1;
    entries[1].num_hashes = 0;
    for (name, r) in all_verifiers(&start, &entries) {
        assert_eq!(
            r,
            Err(VerifyError {
                index: 1,
                failure: Failure::ZeroHashes
            }),
            "{name}"
        );
    }
    entries[1].num_hashes = 2;
    for (name, r) in all_verifiers(&start, &entries) {
        let failure = Failure::TooManyHashes {
            num_hashes: MAX + 1,
            max: MAX,
        };
        assert_eq!(r, Err(VerifyError { index: 2, failure }), "{name}");
    }
}

#[test]
fn the_first_of_several_bad_entries_is_reported_across_chunks() {
    let start = sha256(b"s");
    let shape: Vec<(u64, usize)> = (0..600).map(|i| (1 + (i % 7) as u64, i % 3)).collect();
    let mut entries = chain(start, &shape);
    entries[500].hash.0[0] ^= 1;
    entries[300].hash.0[0] ^= 1;
    entries[450].num_hashes = 0;
    for (name, r) in all_verifiers(&start, &entries) {
        assert_eq!(r.map_err(|e| e.index), Err(300), "{name}");
    }
}

proptest! {
    #[test]
    fn fast_verifiers_agree_with_the_plain_one(
        shape in prop::collection::vec((1u64..40, 0usize..4), 0..90),
        corrupt in prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let start = sha256(b"p");
        let mut entries = chain(start, &shape);
        if let (Some((at, byte)), false) = (corrupt, entries.is_empty()) {
            let i = at.index(entries.len());
            entries[i].hash.0[usize::from(byte) % 32] ^= 1;
        }
        let reference = verify_serial(&start, &entries, MAX);
        for (name, r) in all_verifiers(&start, &entries) {
            prop_assert_eq!(&r, &reference, "{}", name);
        }
    }
}
