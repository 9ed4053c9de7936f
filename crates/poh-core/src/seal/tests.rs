use super::*;
use crate::{Poh, PohState, sha256};

const HPT: u64 = 16;
const CHAIN: &str = "municipality/test";

/// A chain made by the real state machine: `ticks` tick periods, with a record of `per`
/// items after every third step of each period.
fn chain(ticks: usize, per: usize) -> Vec<Entry> {
    let mut poh = Poh::new(PohState::genesis(CHAIN), HPT, Backend::portable());
    let mut out = Vec::new();
    let mut n = 0u8;
    for _ in 0..ticks {
        while !poh.hash_steps(3) {
            let items = (0..per)
                .map(|_| {
                    n = n.wrapping_add(1);
                    sha256(&[n])
                })
                .collect();
            if let Ok(e) = poh.record(items) {
                out.push(e);
            }
        }
        out.extend(poh.tick());
    }
    out
}

fn key() -> SigningKey {
    SigningKey::from_seed(&[5; 32]).unwrap()
}

fn verifier() -> HeaderVerifier {
    HeaderVerifier {
        chain_id: CHAIN.into(),
        level: Level::Municipality,
        public_key: key().public_key().to_vec(),
        hashes_per_tick: HPT,
    }
}

/// Seals `entries` into headers of `size` entries each.
fn seal_all(entries: &[Entry], size: usize) -> Vec<Header> {
    let key = key();
    let mut head = ChainHead::genesis(CHAIN);
    let mut out = Vec::new();
    for part in entries.chunks(size) {
        let mut batch = Batch::new(head.clone(), HPT);
        for e in part {
            batch.push(e).unwrap();
        }
        let (header, next) = batch
            .seal(CHAIN, Level::Municipality, 1.5, &key)
            .unwrap()
            .unwrap();
        out.push(header);
        head = next;
    }
    out
}

#[test]
fn sealed_headers_cover_their_entries_and_verify_in_a_chain() {
    let entries = chain(6, 2);
    let headers = seal_all(&entries, 5);
    let mut head = ChainHead::genesis(CHAIN);
    let mut covered = 0;
    for h in &headers {
        assert_eq!(h.poh_start, covered);
        let part = &entries[h.poh_start as usize..h.poh_end as usize];
        head = verifier().verify(&head, h, part).unwrap();
        covered = h.poh_end;
    }
    assert_eq!(covered, entries.len() as u64);
    let items: u64 = headers.iter().map(|h| h.item_count).sum();
    assert_eq!(
        items,
        entries.iter().map(|e| e.mixins.len() as u64).sum::<u64>()
    );
    assert!(items > 0);
    assert_eq!(headers[1].prev_header_hash, headers[0].hash());
    assert_eq!(headers[0].prev_header_hash, Hash::default());
}

#[test]
fn an_empty_batch_seals_nothing() {
    let batch = Batch::new(ChainHead::genesis(CHAIN), HPT);
    assert!(
        batch
            .seal(CHAIN, Level::Municipality, 0.0, &key())
            .unwrap()
            .is_none()
    );
}

#[test]
fn each_broken_rule_is_named() {
    let entries = chain(4, 1);
    let headers = seal_all(&entries, 7);
    let genesis = ChainHead::genesis(CHAIN);
    let first = &headers[0];
    let part = &entries[..7];
    let check = |header: &Header, entries: &[Entry]| verifier().verify(&genesis, header, entries);
    assert!(check(first, part).is_ok());

    let mut h = first.clone();
    h.signature[10] ^= 1;
    assert_eq!(check(&h, part), Err(HeaderError::Signature));

    let other = SigningKey::from_seed(&[6; 32]).unwrap();
    let mut h = first.clone();
    h.sign(&other).unwrap();
    assert_eq!(check(&h, part), Err(HeaderError::Key));

    // A re-signed header with a wrong field is caught by the field's own rule.
    let resigned = |change: fn(&mut Header)| {
        let mut h = first.clone();
        change(&mut h);
        h.sign(&key()).unwrap();
        h
    };
    assert!(matches!(
        check(&resigned(|h| h.height = 1), part),
        Err(HeaderError::Height {
            expected: 0,
            got: 1
        })
    ));
    assert!(matches!(
        check(&resigned(|h| h.prev_header_hash.0[0] = 1), part),
        Err(HeaderError::Link { .. })
    ));
    assert!(matches!(
        check(&resigned(|h| h.poh_hashes += 1), part),
        Err(HeaderError::Summary {
            field: "poh_hashes",
            ..
        })
    ));
    assert!(matches!(
        check(&resigned(|h| h.items_root.0[3] ^= 1), part),
        Err(HeaderError::Summary {
            field: "items_root",
            ..
        })
    ));
    assert!(matches!(
        check(&resigned(|h| h.poh_end_hash.0[3] ^= 1), part),
        Err(HeaderError::Summary {
            field: "poh_end_hash",
            ..
        })
    ));
    assert!(matches!(
        check(&resigned(|h| h.item_count += 1), part),
        Err(HeaderError::Summary {
            field: "item_count",
            ..
        })
    ));
    assert!(matches!(
        check(
            &resigned(|h| h.chain_id = "municipality/other".into()),
            part
        ),
        Err(HeaderError::Chain { .. })
    ));
    assert!(matches!(
        check(first, &part[..6]),
        Err(HeaderError::EntryCount {
            expected: 7,
            got: 6
        })
    ));

    // Entries that do not verify are named by their index in the chain.
    let mut bad = part.to_vec();
    bad[4].mixins[0].0[0] ^= 1;
    assert!(matches!(
        check(first, &bad),
        Err(HeaderError::Entry { index: 4, .. })
    ));
}

#[test]
fn tick_periods_must_be_exact() {
    let entries = chain(3, 1);
    let mut ticks = TickPeriods::new(HPT, 0);
    for e in &entries {
        ticks.push(e).unwrap();
    }
    assert_eq!(ticks.hashes_in_tick(), 0);

    // A tick one hash short: the entry hashes still verify when recomputed, but the period
    // is not hashes_per_tick long.
    let first_tick = entries.iter().position(Entry::is_tick).unwrap();
    let mut short = entries.clone();
    let prev = if first_tick == 0 {
        crate::genesis(CHAIN)
    } else {
        short[first_tick - 1].hash
    };
    short[first_tick] = Entry::compute(&prev, short[first_tick].num_hashes - 1, Vec::new());
    let mut ticks = TickPeriods::new(HPT, 0);
    let failure = short.iter().map(|e| ticks.push(e)).find_map(Result::err);
    assert_eq!(
        failure,
        Some(Failure::TickPeriod {
            hashes: HPT - 1,
            hashes_per_tick: HPT
        })
    );

    // A record may not use the tick's own last hash.
    let mut ticks = TickPeriods::new(HPT, HPT - 2);
    let record = Entry::compute(&Hash::default(), 2, vec![Hash::default()]);
    assert!(ticks.push(&record).is_err());
}
