//! Tests of the id index through its crate API, and a measurement (ignored; run it with
//! `cargo test --release -p poh-store measure_id_index -- --ignored --nocapture`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::run::{BLOCK_BYTES, ENTRIES_PER_BLOCK, HEADER_BYTES};
use super::*;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` random ids, as clients choose them.
fn random_ids(n: usize, seed: u64) -> Vec<String> {
    let mut rng = seed;
    (0..n)
        .map(|i| {
            format!(
                "tx-{:016x}{:016x}-{i}",
                splitmix(&mut rng),
                splitmix(&mut rng)
            )
        })
        .collect()
}

fn options(memtable_ids: usize, max_runs: usize) -> IdIndexOptions {
    IdIndexOptions {
        memtable_ids,
        max_runs,
    }
}

/// Seqs with gaps, as a log holding other items between transactions has them.
fn seq_of(i: usize) -> u64 {
    2 * i as u64 + 1
}

fn loc_of(i: usize) -> u64 {
    i as u64 * 1000 + 7
}

fn insert_range(index: &IdIndex, fps: &[u64], range: std::ops::Range<usize>, batch: usize) {
    let entries: Vec<_> = range.map(|i| (fps[i], seq_of(i), loc_of(i))).collect();
    for chunk in entries.chunks(batch) {
        index.insert(chunk).unwrap();
    }
}

fn lookup(index: &IdIndex, fp: u64) -> Vec<u64> {
    let mut out = Vec::new();
    index.candidates(fp, &mut out).unwrap();
    out
}

fn assert_found(index: &IdIndex, fps: &[u64], range: std::ops::Range<usize>) {
    for i in range {
        assert_eq!(lookup(index, fps[i]), [loc_of(i)], "id {i}");
    }
}

fn run_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "run"))
        .collect();
    files.sort();
    files
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x20;
    fs::write(path, bytes).unwrap();
}

fn damaged_at(result: Result<impl Sized, StoreError>) -> (u64, &'static str) {
    match result {
        Err(StoreError::Damaged { offset, what, .. }) => (offset, what),
        Err(e) => panic!("not Damaged: {e}"),
        Ok(_) => panic!("damage not detected"),
    }
}

#[test]
fn many_ids_through_flushes_merges_and_reopen() {
    let (n, memtable) = if cfg!(debug_assertions) {
        (200_000, 20_000)
    } else {
        (1_000_000, 50_000)
    };
    let dir = tempfile::tempdir().unwrap();
    let (index, covered) = IdIndex::open(dir.path(), options(memtable, 3)).unwrap();
    assert_eq!(covered, 0);
    let ids = random_ids(n, 1);
    let fps: Vec<u64> = ids.iter().map(|id| index.fingerprint(id)).collect();
    insert_range(&index, &fps, 0..n, 256);
    // Found wherever they are: memtables, runs being written or merged.
    assert_found(&index, &fps, 0..n);
    index.flush().unwrap();
    assert!(run_files(dir.path()).len() <= 3);
    assert_found(&index, &fps, 0..n);

    let absent = random_ids(n / 10, 2);
    let false_positives = absent
        .iter()
        .filter(|id| !lookup(&index, index.fingerprint(id)).is_empty())
        .count();
    assert!(false_positives * 100 < absent.len(), "{false_positives}");

    let key = index.fingerprint("some id");
    drop(index);
    let (index, covered) = IdIndex::open(dir.path(), options(memtable, 3)).unwrap();
    assert_eq!(index.fingerprint("some id"), key, "the key is kept");
    // A run ends one past the last seq of its memtable.
    let durable = (0..n).position(|i| seq_of(i) >= covered).unwrap_or(n);
    assert!(durable >= memtable, "covered {covered}");
    assert_eq!(
        covered,
        seq_of(durable - 1) + 1,
        "covered is a run boundary"
    );
    assert_found(&index, &fps, 0..durable);
    for &fp in &fps[durable..] {
        assert!(lookup(&index, fp).is_empty());
    }
    insert_range(&index, &fps, durable..n, 256);
    assert_found(&index, &fps, 0..n);
    index.flush().unwrap();
    assert_found(&index, &fps, 0..n);
}

#[test]
fn one_fingerprint_at_several_seqs_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = IdIndex::open(dir.path(), options(1000, 2)).unwrap();
    let middle = u64::MAX / 2;
    index.insert(&[(42, 10, 100)]).unwrap();
    index.insert(&[(7, 11, 110), (42, 12, 120)]).unwrap();
    assert_eq!(lookup(&index, 42), [120, 100], "memtable");

    // Fill the memtable with others (and one fingerprint many times, over several blocks,
    // both at the start of the run and in its middle) so it becomes a run.
    let mut rng = 3;
    let mut seq = 13;
    let mut batch = Vec::new();
    for i in 0..997u64 {
        let fp = match i % 3 {
            0 if i < 900 => 5,
            1 if i < 900 => middle,
            _ => splitmix(&mut rng),
        };
        batch.push((fp, seq, seq * 10));
        seq += 1;
    }
    index.insert(&batch).unwrap();
    index.flush().unwrap();
    assert_eq!(run_files(dir.path()).len(), 1);
    assert_eq!(lookup(&index, 42), [120, 100], "run");
    for fp in [5, middle] {
        let want: Vec<_> = batch
            .iter()
            .rev()
            .filter(|e| e.0 == fp)
            .map(|&(_, _, loc)| loc)
            .collect();
        assert_eq!(want.len(), 300);
        assert_eq!(lookup(&index, fp), want, "over several blocks");
    }

    let last = seq * 10;
    index.insert(&[(42, seq, last)]).unwrap();
    assert_eq!(lookup(&index, 42), [last, 120, 100], "memtable then run");
    // Two more runs: a merge, whose output keeps the order.
    for round in 0..2 {
        let batch: Vec<_> = (0..1000)
            .map(|i| {
                seq += 1;
                let fp = if i == 500 { 42 } else { splitmix(&mut rng) };
                (fp, seq, seq * 10 + round)
            })
            .collect();
        index.insert(&batch).unwrap();
    }
    index.flush().unwrap();
    assert_eq!(run_files(dir.path()).len(), 1, "merged");
    let found = lookup(&index, 42);
    assert_eq!(found.len(), 5);
    assert!(found.windows(2).all(|w| w[0] > w[1]), "{found:?}");
    assert_eq!(found[2..], [last, 120, 100]);
}

#[test]
fn damaged_bytes_are_reported_with_their_offset() {
    let dir = tempfile::tempdir().unwrap();
    let n = 10_000;
    let (index, _) = IdIndex::open(dir.path(), options(n, 4)).unwrap();
    let fps: Vec<u64> = random_ids(n, 4)
        .iter()
        .map(|id| index.fingerprint(id))
        .collect();
    insert_range(&index, &fps, 0..n, 256);
    index.flush().unwrap();
    drop(index);
    let [path] = run_files(dir.path()).try_into().unwrap();
    let mut sorted = fps.clone();
    sorted.sort_unstable();
    let block_3 = HEADER_BYTES + 3 * BLOCK_BYTES;

    flip(&path, block_3 + 100);
    let (index, _) = IdIndex::open(dir.path(), options(n, 4)).unwrap();
    let in_block_3 = sorted[3 * ENTRIES_PER_BLOCK as usize + 5];
    let mut out = Vec::new();
    assert_eq!(
        damaged_at(index.candidates(in_block_3, &mut out)),
        (block_3, "id index block checksum")
    );
    assert!(out.is_empty());
    assert_eq!(
        lookup(&index, sorted[0]).len(),
        1,
        "other blocks still read"
    );
    drop(index);
    flip(&path, block_3 + 100);

    let len = fs::metadata(&path).unwrap().len();
    let blocks = (n as u64).div_ceil(ENTRIES_PER_BLOCK);
    let bloom_at = HEADER_BYTES + blocks * BLOCK_BYTES;
    let fences_at = len - blocks * 8;
    for (at, want) in [
        (20, (0, "id index run header checksum")),
        (bloom_at + 3, (bloom_at, "id index bloom filter checksum")),
        (len - 2, (fences_at, "id index fences checksum")),
    ] {
        flip(&path, at);
        assert_eq!(damaged_at(IdIndex::open(dir.path(), options(n, 4))), want);
        flip(&path, at);
    }
    let (index, covered) = IdIndex::open(dir.path(), options(n, 4)).unwrap();
    assert_eq!(covered, seq_of(n - 1) + 1);
    assert_found(&index, &fps, 0..n);
}

#[test]
fn open_removes_temp_files_nested_runs_and_runs_after_a_gap() {
    let ids = random_ids(400, 5);
    let backup = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = IdIndex::open(dir.path(), options(100, 100)).unwrap();
    let fps: Vec<u64> = ids.iter().map(|id| index.fingerprint(id)).collect();
    insert_range(&index, &fps, 0..350, 50);
    index.flush().unwrap();
    drop(index);
    let inputs = run_files(dir.path());
    assert_eq!(inputs.len(), 3);
    for path in &inputs {
        fs::copy(path, backup.path().join(path.file_name().unwrap())).unwrap();
    }

    // A merge, then a crash before its inputs were removed, and one in the middle of a write.
    let (index, covered) = IdIndex::open(dir.path(), options(100, 3)).unwrap();
    assert_eq!(covered, seq_of(299) + 1);
    insert_range(&index, &fps, 300..400, 50);
    index.flush().unwrap();
    drop(index);
    let [merged] = run_files(dir.path()).try_into().unwrap();
    for path in &inputs {
        fs::copy(backup.path().join(path.file_name().unwrap()), path).unwrap();
    }
    let temp = dir.path().join(format!("{}.tmp", run::file_name(800, 900)));
    fs::write(&temp, b"half a run").unwrap();
    let (index, covered) = IdIndex::open(dir.path(), options(100, 3)).unwrap();
    assert_eq!(covered, seq_of(399) + 1);
    assert_eq!(run_files(dir.path()), std::slice::from_ref(&merged));
    assert!(!temp.exists());
    assert_found(&index, &fps, 0..400);
    drop(index);

    // A gap: the runs after it go, their ids come back from the caller.
    let dir = tempfile::tempdir().unwrap();
    for path in &inputs {
        fs::copy(
            backup.path().join(path.file_name().unwrap()),
            dir.path().join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    fs::copy(merged.parent().unwrap().join("key"), dir.path().join("key")).unwrap();
    fs::remove_file(dir.path().join(inputs[1].file_name().unwrap())).unwrap();
    let (index, covered) = IdIndex::open(dir.path(), options(100, 3)).unwrap();
    assert_eq!(covered, seq_of(99) + 1);
    assert_eq!(run_files(dir.path()).len(), 1);
    assert_found(&index, &fps, 0..100);
    assert!(lookup(&index, fps[250]).is_empty());
}

/// Sets the format version in a run's header, with a valid header checksum.
fn set_version(path: &Path, version: u32) {
    let mut bytes = fs::read(path).unwrap();
    bytes[8..12].copy_from_slice(&version.to_le_bytes());
    let crc_at = HEADER_BYTES as usize - 4;
    let crc = crc32fast::hash(&bytes[..crc_at]);
    bytes[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    fs::write(path, bytes).unwrap();
}

#[test]
fn open_removes_runs_of_an_older_format_and_refuses_newer_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = IdIndex::open(dir.path(), options(100, 100)).unwrap();
    let fps: Vec<u64> = random_ids(300, 10)
        .iter()
        .map(|id| index.fingerprint(id))
        .collect();
    insert_range(&index, &fps, 0..300, 50);
    index.flush().unwrap();
    drop(index);
    let runs = run_files(dir.path());
    assert_eq!(runs.len(), 3);

    // A format this code does not know yet is not removed: it is reported.
    set_version(&runs[1], 3);
    assert_eq!(
        damaged_at(IdIndex::open(dir.path(), options(100, 100))),
        (0, "id index run header")
    );
    assert_eq!(run_files(dir.path()), runs);

    // An older one is of no use: removed, and the runs after it too (a gap); the caller
    // inserts their ids again from its log.
    set_version(&runs[1], 1);
    let (index, covered) = IdIndex::open(dir.path(), options(100, 100)).unwrap();
    assert_eq!(covered, seq_of(99) + 1);
    assert_eq!(run_files(dir.path()), runs[..1]);
    assert_found(&index, &fps, 0..100);
    assert!(lookup(&index, fps[150]).is_empty());
    insert_range(&index, &fps, 100..300, 50);
    index.flush().unwrap();
    assert_found(&index, &fps, 0..300);
    drop(index);

    // All of them old: nothing covered.
    for path in run_files(dir.path()) {
        set_version(&path, 1);
    }
    let (index, covered) = IdIndex::open(dir.path(), options(100, 100)).unwrap();
    assert_eq!(covered, 0);
    assert!(run_files(dir.path()).is_empty());
    assert!(lookup(&index, fps[0]).is_empty());
}

#[test]
fn seqs_that_do_not_increase_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = IdIndex::open(dir.path(), options(100, 3)).unwrap();
    index.insert(&[(1, 10, 0)]).unwrap();
    let refused = |batch: &[(u64, u64, u64)]| {
        assert!(matches!(index.insert(batch), Err(StoreError::Sequence(_))));
    };
    refused(&[(2, 10, 0)]);
    refused(&[(2, 11, 0), (3, 11, 0)]);
    refused(&[(2, 12, 0), (3, 5, 0)]);
    refused(&[(2, 13, 0), (3, u64::MAX, 0)]);
    // Locs must increase with seqs too: runs keep ids in loc order.
    refused(&[(2, 11, 0)]);
    refused(&[(2, 11, 5), (3, 12, 4)]);
    for fp in [2, 3] {
        assert!(lookup(&index, fp).is_empty());
    }
    assert_eq!(lookup(&index, 1), [0]);
    index.insert(&[(2, 11, 5)]).unwrap();
    assert_eq!(lookup(&index, 2), [5]);

    // After a reopen, below what the runs cover.
    let batch: Vec<_> = (0..100).map(|i| (100 + i, 20 + i, 10 + i)).collect();
    index.insert(&batch).unwrap();
    index.flush().unwrap();
    drop(index);
    let (index, covered) = IdIndex::open(dir.path(), options(100, 3)).unwrap();
    assert_eq!(covered, 120);
    assert!(matches!(
        index.insert(&[(9, 119, 0)]),
        Err(StoreError::Sequence(_))
    ));
    index.insert(&[(9, 120, 0)]).unwrap();
}

#[test]
fn background_failures_are_reported_and_retried_without_losing_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = IdIndex::open(dir.path(), options(100, 3)).unwrap();
    let fps: Vec<u64> = random_ids(300, 6)
        .iter()
        .map(|id| index.fingerprint(id))
        .collect();
    index.shared.fail_steps.store(2, Ordering::Relaxed);
    insert_range(&index, &fps, 0..100, 50);
    assert!(matches!(index.flush(), Err(StoreError::Io { .. })));
    assert_found(&index, &fps, 0..100);
    assert!(
        matches!(index.flush(), Err(StoreError::Io { .. })),
        "retried"
    );
    index.flush().unwrap();
    assert_eq!(run_files(dir.path()).len(), 1);

    // Reported by the next insert, which adds nothing; the one after goes in.
    index.shared.fail_steps.store(1, Ordering::Relaxed);
    insert_range(&index, &fps, 100..200, 50);
    while !index.shared.failed.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let next = [(fps[200], seq_of(200), loc_of(200))];
    assert!(matches!(index.insert(&next), Err(StoreError::Io { .. })));
    assert!(lookup(&index, fps[200]).is_empty());
    index.insert(&next).unwrap();
    index.flush().unwrap();
    assert_eq!(run_files(dir.path()).len(), 2);
    assert_found(&index, &fps, 0..201);
}

#[test]
fn readers_find_every_inserted_id_while_tables_are_written_and_merged() {
    use std::sync::atomic::AtomicUsize;
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = IdIndex::open(dir.path(), options(2_000, 2)).unwrap();
    let n = 60_000;
    let fps: Vec<u64> = random_ids(n, 9)
        .iter()
        .map(|id| index.fingerprint(id))
        .collect();
    let inserted = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for reader in 0..2 {
            let (index, fps, inserted) = (&index, &fps, &inserted);
            s.spawn(move || {
                let mut rng = reader;
                loop {
                    let upto = inserted.load(Ordering::Acquire);
                    if upto > 0 {
                        let i = (splitmix(&mut rng) % upto as u64) as usize;
                        assert_eq!(lookup(index, fps[i]), [loc_of(i)], "id {i}");
                    }
                    if upto == n {
                        break;
                    }
                }
            });
        }
        for start in (0..n).step_by(256) {
            let end = (start + 256).min(n);
            insert_range(&index, &fps, start..end, 256);
            inserted.store(end, Ordering::Release);
        }
    });
    index.flush().unwrap();
    assert_found(&index, &fps, 0..n);
}

/// Keys with many entries (a holder's transactions; a record with several keys, as a
/// transaction with several parents): `postings` pages through them oldest first, from any
/// loc, across runs, merges, frozen and active memtables, and a reopen.
#[test]
fn postings_page_through_a_key_with_many_entries_wherever_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = IdIndex::open(dir.path(), options(700, 2)).unwrap();
    // Record i has key i % 3, and key 100 + i % 5 besides; key 7 only on every 97th.
    let keys = |i: u64| {
        let mut keys = vec![i % 3, 100 + i % 5];
        if i.is_multiple_of(97) {
            keys.push(7);
        }
        keys
    };
    let record = |i: u64| keys(i).into_iter().map(move |k| (k, 2 * i + 1, 10 * i));
    for chunk in (0..5000u64).collect::<Vec<_>>().chunks(64) {
        let batch: Vec<_> = chunk.iter().flat_map(|&i| record(i)).collect();
        index.insert(&batch).unwrap();
    }
    let want = |key: u64, from: u64| -> Vec<u64> {
        (0..5000u64)
            .filter(|&i| keys(i).contains(&key) && 10 * i >= from)
            .map(|i| 10 * i)
            .collect()
    };
    let page = |index: &IdIndex, key: u64, from: u64, max: usize| {
        let mut out = Vec::new();
        index.postings(key, from, max, &mut out).unwrap();
        out
    };
    let check = |index: &IdIndex| {
        for (key, from) in [(0, 0), (1, 12_345), (102, 49_000), (7, 0), (7, 30_000)] {
            let all = want(key, from);
            assert_eq!(
                page(index, key, from, usize::MAX),
                all,
                "key {key} from {from}"
            );
            // Page by page, each from one past the last.
            let (mut from, mut got) = (from, Vec::new());
            loop {
                let next = page(index, key, from, 100);
                let Some(&last) = next.last() else { break };
                from = last + 1;
                got.extend(next);
            }
            assert_eq!(got, all, "paged: key {key}");
        }
        assert!(page(index, 55, 0, 10).is_empty());
        assert_eq!(page(index, 0, 0, 3), [0, 30, 60]);
    };
    check(&index);
    index.flush().unwrap();
    check(&index);
    drop(index);
    let (index, covered) = IdIndex::open(dir.path(), options(700, 2)).unwrap();
    // What the runs do not cover is learned again, as the store does from its log.
    assert!(covered > 0 && covered < 2 * 4999 + 2, "{covered}");
    let again: Vec<_> = (0..5000u64)
        .filter(|i| 2 * i + 1 >= covered)
        .flat_map(record)
        .collect();
    index.insert(&again).unwrap();
    check(&index);
}
