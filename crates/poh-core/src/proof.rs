//! Inclusion proofs: that an item (a transaction's digest) is ordered by a chain, and how far
//! up the federation that order reaches.
//!
//! A proof is a list of [`ProofLink`]s. The first says the item is leaf `index` of its
//! header's items (an RFC 6962 audit path to `items_root`); each next one says the previous
//! header's `header_hash` is an item of a header of the level above. Every header is signed;
//! [`verify_links`] checks every path, every signature and every step up, and names the
//! first link that fails.

use crate::{Hash, Header, merkle};

/// One step: `item` is leaf `index` of `header`'s items.
#[derive(Clone, Debug, PartialEq)]
pub struct ProofLink {
    /// The item: a transaction digest, or the header hash of the link below.
    pub item: Hash,
    /// Its index among the header's items.
    pub index: u64,
    /// The RFC 6962 audit path from the item to `items_root`.
    pub audit_path: Vec<Hash>,
    /// The header whose items hold it.
    pub header: Header,
}

/// The first link of a proof that fails, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("link {link}: {why}")]
pub struct ProofError {
    /// 0 for the item's own header, then one per level up.
    pub link: usize,
    /// What is wrong.
    pub why: String,
}

/// Builds the link for item `index` of `items`, the items `header` covers.
pub fn link(items: &[Hash], index: usize, header: Header) -> Option<ProofLink> {
    Some(ProofLink {
        item: *items.get(index)?,
        index: index as u64,
        audit_path: merkle::inclusion_proof(items, index)?,
        header,
    })
}

/// Checks that `item` is ordered by the first link's header and each header by the next
/// one's, every header's signature included.
pub fn verify_links(item: &Hash, links: &[ProofLink]) -> Result<(), ProofError> {
    let fail = |link, why: String| Err(ProofError { link, why });
    let Some(first) = links.first() else {
        return fail(0, "the proof has no link".into());
    };
    if first.item != *item {
        return fail(
            0,
            format!("item {} is not the one proven ({item})", first.item),
        );
    }
    for (k, l) in links.iter().enumerate() {
        let h = &l.header;
        if h.verify_signature().is_err() {
            return fail(
                k,
                format!(
                    "header {} of {}: signature does not verify",
                    h.height, h.chain_id
                ),
            );
        }
        let size = usize::try_from(h.item_count).unwrap_or(usize::MAX);
        let index = usize::try_from(l.index).unwrap_or(usize::MAX);
        if !merkle::verify_inclusion(&l.item.0, index, size, &l.audit_path, &h.items_root) {
            return fail(
                k,
                format!(
                    "item {} is not leaf {} of the {} items of header {} of {} (items_root {})",
                    l.item, l.index, h.item_count, h.height, h.chain_id, h.items_root
                ),
            );
        }
        if let Some(up) = links.get(k + 1) {
            if up.item != h.hash() {
                return fail(
                    k + 1,
                    format!(
                        "item {} is not the hash of the header below ({})",
                        up.item,
                        h.hash()
                    ),
                );
            }
            if up.header.level.as_u8() != h.level.as_u8() + 1 {
                return fail(
                    k + 1,
                    format!(
                        "a {} header does not order a {} one",
                        up.header.level, h.level
                    ),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Level, SigningKey, sha256};

    fn header(level: Level, items: &[Hash], key: &SigningKey) -> Header {
        let mut h = Header {
            chain_id: format!("{level}/x"),
            level,
            height: 1,
            prev_header_hash: Hash::default(),
            poh_start: 0,
            poh_end: 1,
            poh_end_hash: Hash::default(),
            poh_hashes: 1,
            items_root: merkle::root(items),
            item_count: items.len() as u64,
            timestamp: 0.0,
            public_key: Vec::new(),
            signature: Vec::new(),
        };
        h.sign(key).unwrap();
        h
    }

    #[test]
    fn a_three_level_proof_verifies_and_each_broken_link_is_named() {
        let key = SigningKey::from_seed(&[3; 32]).unwrap();
        let tx = sha256(b"tx");
        let city_items: Vec<Hash> = (0..5u8).map(|i| sha256(&[i])).chain([tx]).collect();
        let city = header(Level::Municipality, &city_items, &key);
        let continent_items = vec![sha256(b"a"), city.hash(), sha256(b"b")];
        let continent = header(Level::Continental, &continent_items, &key);
        let world_items = vec![continent.hash()];
        let world = header(Level::Global, &world_items, &key);
        let links = vec![
            link(&city_items, 5, city).unwrap(),
            link(&continent_items, 1, continent).unwrap(),
            link(&world_items, 0, world).unwrap(),
        ];
        verify_links(&tx, &links).unwrap();
        assert_eq!(verify_links(&sha256(b"other"), &links).unwrap_err().link, 0);

        let mut bad = links.clone();
        bad[1].audit_path[0].0[0] ^= 1;
        assert_eq!(verify_links(&tx, &bad).unwrap_err().link, 1);
        let mut bad = links.clone();
        bad[2].header.signature[0] ^= 1;
        assert_eq!(verify_links(&tx, &bad).unwrap_err().link, 2);
        let mut bad = links.clone();
        bad[1].index = 2;
        assert_eq!(verify_links(&tx, &bad).unwrap_err().link, 1);
        let mut bad = links.clone();
        bad.swap(1, 2);
        assert_eq!(verify_links(&tx, &bad).unwrap_err().link, 1);
        assert_eq!(verify_links(&tx, &[]).unwrap_err().link, 0);
    }
}
