use super::{
    verify::{ChainAnchor, verify_chain},
    *,
};
use crate::{Batch, Poh, PohState, SigningKey, chain::Backend, seal::ChainHead, sha256};

const HPT: u64 = 16;
const PARENT: &str = "continental/asia";
const CHILD: &str = "municipality/tokyo";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed(&[seed; 32]).unwrap()
}

/// A chain made by the real state machine: each inner `Vec` is what one record mixes in,
/// recorded every third hash; ticks in between.
fn entries(chain_id: &str, ticks: usize, records: &mut impl FnMut() -> Vec<Hash>) -> Vec<Entry> {
    let mut poh = Poh::new(PohState::genesis(chain_id), HPT, Backend::portable());
    let mut out = Vec::new();
    for _ in 0..ticks {
        while !poh.hash_steps(3) {
            let items = records();
            if !items.is_empty()
                && let Ok(e) = poh.record(items)
            {
                out.push(e);
            }
        }
        out.extend(poh.tick());
    }
    out
}

/// Seals `entries` into headers of `size` entries.
fn seal(
    chain_id: &str,
    level: Level,
    key: &SigningKey,
    entries: &[Entry],
    size: usize,
) -> Vec<Header> {
    let mut head = ChainHead::genesis(chain_id);
    let mut out = Vec::new();
    for part in entries.chunks(size) {
        let mut batch = Batch::new(head.clone(), HPT);
        for e in part {
            batch.push(e).unwrap();
        }
        let (h, next) = batch.seal(chain_id, level, 2.5, key).unwrap().unwrap();
        out.push(h);
        head = next;
    }
    out
}

/// A continental chain that records a municipality's headers (and some transactions), as
/// file lines: the start line, then records.
fn file() -> (ChainStart, Vec<Record>) {
    file_signed_by(&key(2))
}

/// [`file`], the continental chain signed by `parent_key`.
fn file_signed_by(parent_key: &SigningKey) -> (ChainStart, Vec<Record>) {
    let mut n = 0u8;
    let child_entries = entries(CHILD, 4, &mut || {
        n = n.wrapping_add(1);
        vec![sha256(&[n])]
    });
    let child_headers = seal(CHILD, Level::Municipality, &key(1), &child_entries, 5);
    // The parent records each child header, and a transaction digest now and then.
    let mut pending: Vec<Hash> = child_headers.iter().map(Header::hash).collect();
    pending.reverse();
    let mut m = 0u8;
    let parent_entries = entries(PARENT, 8, &mut || {
        m = m.wrapping_add(1);
        match pending.pop() {
            Some(h) if m.is_multiple_of(2) => vec![sha256(b"tx"), h],
            Some(h) => vec![h],
            None => Vec::new(),
        }
    });
    assert!(pending.is_empty(), "every child header recorded");
    let parent_headers = seal(PARENT, Level::Continental, parent_key, &parent_entries, 7);
    let mut records = Vec::new();
    let mut seq = 0u64;
    for h in &parent_headers {
        records.push(Record::Header(h.clone()));
        let covered = &parent_entries[h.poh_start as usize..h.poh_end as usize];
        let mut children = Vec::new();
        for e in covered {
            records.push(Record::Entry(e.clone()));
            for item in &e.mixins {
                if let Some(c) = child_headers.iter().find(|c| c.hash() == *item) {
                    children.push(Record::Child(c.clone(), seq));
                }
                seq += 1;
            }
        }
        records.extend(children);
    }
    let start = ChainStart {
        format: FORMAT.into(),
        chain_id: PARENT.into(),
        level: Level::Continental,
        hashes_per_tick: HPT,
        public_key: hex::encode(parent_key.public_key()),
        height: 0,
        prev_header_hash: Hash::default(),
        poh_start: 0,
        start_hash: crate::genesis(PARENT),
        hashes_in_tick: Some(0),
        seq: 0,
        children: vec![ChildKey {
            chain_id: CHILD.into(),
            public_key: hex::encode(key(1).public_key()),
        }],
    };
    (start, records)
}

fn text(start: &ChainStart, records: &[Record]) -> Vec<u8> {
    let mut out = serde_json::to_string(start).unwrap();
    out.push('\n');
    for r in records {
        out.push_str(&r.to_line());
    }
    out.into_bytes()
}

fn check(start: &ChainStart, records: &[Record]) -> Result<verify::Report, verify::ChainError> {
    check_trusting(start, records, &[])
}

fn check_trusting(
    start: &ChainStart,
    records: &[Record],
    trusted: &[Vec<u8>],
) -> Result<verify::Report, verify::ChainError> {
    let bytes = text(start, records);
    let (read_start, reader) = ChainReader::open(bytes.as_slice()).unwrap();
    assert_eq!(&read_start, start);
    verify_chain(&read_start, reader, Backend::fastest(), trusted, &|_| {})
}

/// The line (1-based, the start line being 1) of record `i`.
fn line_of(i: usize) -> u64 {
    i as u64 + 2
}

#[test]
fn a_whole_chain_verifies_and_is_counted() {
    let (start, records) = file();
    let report = check(&start, &records).unwrap();
    let children = records
        .iter()
        .filter(|r| matches!(r, Record::Child(..)))
        .count();
    assert_eq!(report.child_headers, children as u64);
    assert!(report.child_headers >= 3);
    assert_eq!(
        report.entries,
        records
            .iter()
            .filter(|r| matches!(r, Record::Entry(_)))
            .count() as u64
    );
    assert!(report.headers >= 2 && report.items > report.child_headers);
}

/// The keys a file lists are its own claim: only a key the verifier already holds anchors
/// it, and only the chain's own key vouches for the chain.
#[test]
fn only_a_trusted_chain_key_anchors_a_chain_file() {
    let public = |seed: u8| key(seed).public_key().to_vec();
    let anchor = |start: &ChainStart, records: &[Record], trusted: &[Vec<u8>]| {
        check_trusting(start, records, trusted).unwrap().anchor
    };
    let (start, records) = file();
    assert_eq!(anchor(&start, &records, &[]), ChainAnchor::Unanchored);
    assert_eq!(
        anchor(&start, &records, &[public(9)]),
        ChainAnchor::Unanchored
    );
    // The child's key vouches for the child's headers, not for the chain that recorded them.
    assert_eq!(
        anchor(&start, &records, &[public(1)]),
        ChainAnchor::Unanchored
    );
    assert_eq!(
        anchor(&start, &records, &[public(9), public(2)]),
        ChainAnchor::Trusted
    );
    // The same chain id sealed under a fresh key checks whole, and the genuine key does not
    // anchor it.
    let (forged_start, forged) = file_signed_by(&key(7));
    assert_eq!(forged_start.chain_id, start.chain_id);
    assert_eq!(
        anchor(&forged_start, &forged, &[public(2)]),
        ChainAnchor::Unanchored
    );
    assert_eq!(
        anchor(&forged_start, &forged, &[public(7)]),
        ChainAnchor::Trusted
    );
    // A file with no header has nothing for a key to vouch for.
    assert_eq!(anchor(&start, &[], &[public(2)]), ChainAnchor::Unanchored);
}

/// Each tampering is caught, and named by the line of the item changed.
#[test]
fn every_tampering_is_named_by_its_line() {
    let (start, records) = file();
    let find = |want: &dyn Fn(&Record) -> bool| records.iter().position(want).unwrap();
    let entry_with_mixin = find(&|r| matches!(r, Record::Entry(e) if !e.mixins.is_empty()));
    let a_tick = find(&|r| matches!(r, Record::Entry(e) if e.is_tick()));
    let second_header = records
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Record::Header(_)))
        .nth(1)
        .unwrap()
        .0;
    let children: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Record::Child(..)))
        .map(|(i, _)| i)
        .collect();

    type Tamper = Box<dyn Fn(&mut Vec<Record>)>;
    let cases: Vec<(&str, Tamper, usize, &str)> = vec![
        (
            "one payload byte (a transaction's digest changes)",
            Box::new(move |r| {
                if let Record::Entry(e) = &mut r[entry_with_mixin] {
                    e.mixins[0].0[7] ^= 1;
                }
            }),
            entry_with_mixin,
            "hash mismatch",
        ),
        (
            "one mixin replaced by another item",
            Box::new(move |r| {
                if let Record::Entry(e) = &mut r[entry_with_mixin] {
                    e.mixins[0] = sha256(b"another transaction");
                }
            }),
            entry_with_mixin,
            "hash mismatch",
        ),
        (
            "one PoH entry hash",
            Box::new(move |r| {
                if let Record::Entry(e) = &mut r[a_tick] {
                    e.hash.0[0] ^= 1;
                }
            }),
            a_tick,
            "hash mismatch",
        ),
        (
            "one num_hashes",
            Box::new(move |r| {
                if let Record::Entry(e) = &mut r[a_tick] {
                    e.num_hashes -= 1;
                }
            }),
            a_tick,
            "hash mismatch",
        ),
        (
            "one header field",
            Box::new(move |r| {
                if let Record::Header(h) = &mut r[second_header] {
                    h.poh_hashes += 1;
                }
            }),
            second_header,
            "signature",
        ),
        (
            "one signature byte",
            Box::new(move |r| {
                if let Record::Header(h) = &mut r[second_header] {
                    h.signature[9] ^= 1;
                }
            }),
            second_header,
            "signature",
        ),
        (
            "two child headers swapped",
            Box::new({
                let c = children.clone();
                move |r| {
                    let (a, b) = (c[0], c[1]);
                    if let (Record::Child(ha, sa), Record::Child(hb, sb)) =
                        (r[a].clone(), r[b].clone())
                    {
                        r[a] = Record::Child(hb, sa);
                        r[b] = Record::Child(ha, sb);
                    }
                }
            }),
            children[0],
            "",
        ),
    ];
    for (name, tamper, at, why) in cases {
        let mut changed = records.clone();
        tamper(&mut changed);
        let e = check(&start, &changed).expect_err(name);
        assert_eq!(e.line, line_of(at), "{name}: {e}");
        assert!(e.why.contains(why), "{name}: {e}");
    }

    // A child header dropped: the next one of its chain no longer follows (the first one
    // too: a file from the parent's genesis has every child from its height 0).
    for drop in [children[0], children[1]] {
        let mut dropped = records.clone();
        dropped.remove(drop);
        let e = check(&start, &dropped).unwrap_err();
        assert_eq!(e.line, line_of(drop), "{e}");
        assert!(e.why.contains("does not follow"), "{e}");
    }
}

/// A tick period one hash short, with every entry hash recomputed so that only the period
/// rule can see it, and the header re-signed over the changed sums.
#[test]
fn a_tick_period_one_hash_short_is_caught() {
    let (start, mut records) = file();
    let first_header = 0;
    let Record::Header(mut header) = records[first_header].clone() else {
        panic!()
    };
    let count = (header.poh_end - header.poh_start) as usize;
    let tick = (1..=count)
        .find(|&i| matches!(&records[i], Record::Entry(e) if e.is_tick()))
        .unwrap();
    let mut prev = crate::genesis(PARENT);
    for (i, record) in records.iter_mut().enumerate().take(count + 1).skip(1) {
        let Record::Entry(e) = record else { panic!() };
        let n = if i == tick {
            e.num_hashes - 1
        } else {
            e.num_hashes
        };
        *e = Entry::compute(&prev, n, e.mixins.clone());
        prev = e.hash;
    }
    header.poh_hashes -= 1;
    header.poh_end_hash = prev;
    header.sign(&key(2)).unwrap();
    records[first_header] = Record::Header(header);
    let e = check(&start, &records).unwrap_err();
    assert_eq!(e.line, line_of(tick), "{e}");
    assert!(e.why.contains("tick period"), "{e}");
}

#[test]
fn files_that_are_not_chains_are_refused_with_their_line() {
    assert_eq!(ChainReader::open(&b""[..]).err().unwrap().line, 0);
    assert_eq!(ChainReader::open(&b"{}\n"[..]).err().unwrap().line, 1);
    let (start, records) = file();
    let mut bytes = text(&start, &records[..3]);
    bytes.extend_from_slice(b"{\"what\":1}\n");
    let (start, reader) = ChainReader::open(bytes.as_slice()).unwrap();
    let e = verify_chain(&start, reader, Backend::fastest(), &[], &|_| {}).unwrap_err();
    assert_eq!(e.line, 5, "{e}");
}
