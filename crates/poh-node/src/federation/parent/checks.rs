//! The checks a child's header passes before its entries are hashed.

use poh_core::{Entry, Header};
use poh_proto::federation as fed;

use super::MAX_CHILD_HASHES;

/// Roughly what a decoded link message occupies: its byte fields, and the vectors and
/// structs that hold them.
pub(super) fn decoded_bytes(sealed: &fed::SealedHeader) -> usize {
    const VEC: usize = std::mem::size_of::<Vec<u8>>();
    let entries = sealed.entries.iter().map(|e| {
        std::mem::size_of::<fed::Entry>()
            + e.hash.len()
            + e.mixins.iter().map(|m| VEC + m.len()).sum::<usize>()
    });
    std::mem::size_of::<fed::SealedHeader>()
        + sealed.header.len()
        + sealed.signature.len()
        + entries.sum::<usize>()
}

/// A child's header time: a number, not before its last header's, and not ahead of this
/// node's clock by more than `skew` seconds. PoH orders a chain's headers; their timestamps
/// are the child's word, so the parent keeps them at least monotonic and near its own time.
pub(super) fn check_timestamp(
    timestamp: f64,
    last: Option<f64>,
    now: f64,
    skew: f64,
) -> Result<(), String> {
    if !timestamp.is_finite() || timestamp < 0.0 {
        return Err(format!("timestamp {timestamp} is not a time"));
    }
    if let Some(last) = last
        && timestamp < last
    {
        return Err(format!(
            "timestamp {timestamp} is before the previous header's {last}"
        ));
    }
    if timestamp > now + skew {
        return Err(format!(
            "timestamp {timestamp} is {:.1} s ahead of this node's clock (the limit is {skew} s)",
            timestamp - now
        ));
    }
    Ok(())
}

/// What the entries claim, checked before any of it is hashed: the most work a header can
/// cost is its entries times the child's `hashes_per_tick`, and exactly the `poh_hashes` and
/// `item_count` it signed.
pub(super) fn check_work(
    header: &Header,
    entries: &[Entry],
    hashes_per_tick: u64,
) -> Result<(), String> {
    let covered = header.poh_end.saturating_sub(header.poh_start);
    if entries.len() as u64 != covered {
        return Err(format!(
            "{} PoH entries came with a header covering {covered}",
            entries.len()
        ));
    }
    let mut hashes = 0u64;
    let mut items = 0u64;
    for (i, e) in entries.iter().enumerate() {
        if e.num_hashes == 0 || e.num_hashes > hashes_per_tick {
            return Err(format!(
                "PoH entry {}: num_hashes {} is outside 1..={hashes_per_tick}, this chain's \
                 hashes_per_tick",
                header.poh_start + i as u64,
                e.num_hashes
            ));
        }
        hashes = hashes.saturating_add(e.num_hashes);
        items += e.mixins.len() as u64;
    }
    if hashes != header.poh_hashes || hashes > MAX_CHILD_HASHES {
        return Err(format!(
            "poh_hashes is {}, the entries claim {hashes} (at most {MAX_CHILD_HASHES})",
            header.poh_hashes
        ));
    }
    if items != header.item_count {
        return Err(format!(
            "item_count is {}, the entries hold {items}",
            header.item_count
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_is_finite_monotonic_and_not_far_ahead() {
        let now = 1_000_000.0;
        assert!(check_timestamp(now, Some(now - 1.0), now, 30.0).is_ok());
        assert!(check_timestamp(now + 29.0, None, now, 30.0).is_ok());
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0] {
            assert!(check_timestamp(bad, None, now, 30.0).is_err(), "{bad}");
        }
        assert!(check_timestamp(now - 2.0, Some(now - 1.0), now, 30.0).is_err());
        assert!(check_timestamp(now + 31.0, None, now, 30.0).is_err());
    }
}
