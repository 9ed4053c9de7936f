//! Inclusion proofs: that an item (a transaction's digest) is ordered by a chain, and how far
//! up the federation that order reaches.
//!
//! A proof is a list of [`ProofLink`]s. The first says the item is leaf `index` of its
//! header's items (an RFC 6962 audit path to `items_root`); each next one says the previous
//! header's `header_hash` is an item of a header of the level above. Every header is signed;
//! [`verify_links`] checks every path, every signature and every step up, names the first
//! link that fails, and says which link a trusted key signed ([`Anchor`]).
//!
//! A header's signature only shows that whoever holds the key inside that header signed it,
//! and anyone can make a key and sign headers under any chain id. So a proof means something
//! only under a key the verifier already trusts. Trusting link `j`'s key vouches for links
//! `0..=j`: a parent records only headers signed by the key it is configured with for that
//! child, so each header down from `j` was checked by the level above it.

use crate::{Hash, Header, merkle};

/// Who vouches for a proof whose links all verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// The header of `link` is signed by a trusted key, which vouches for it and every link
    /// below; the highest such link.
    Trusted {
        /// 0 for the item's own header, then one per level up.
        link: usize,
        /// That header's chain.
        chain_id: String,
    },
    /// Every link verifies, but no header is signed by a trusted key: anyone with a key of
    /// their own could have made the proof.
    Unanchored,
}

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
/// one's, every header's signature included, and finds the highest link whose header is
/// signed by one of the `trusted` public keys. Every link must verify, anchored or not: a
/// proof with a broken link is refused whole.
pub fn verify_links(
    item: &Hash,
    links: &[ProofLink],
    trusted: &[Vec<u8>],
) -> Result<Anchor, ProofError> {
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
    let anchor = links
        .iter()
        .enumerate()
        .rev()
        .find(|(_, l)| trusted.contains(&l.header.public_key))
        .map_or(Anchor::Unanchored, |(link, l)| Anchor::Trusted {
            link,
            chain_id: l.header.chain_id.clone(),
        });
    Ok(anchor)
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

    /// A municipality, continental and global header, each signed by its own key, the
    /// transaction `tx` recorded at the bottom: the links, and the keys bottom up.
    fn three_levels(tx: Hash) -> (Vec<ProofLink>, [SigningKey; 3]) {
        let keys = [3, 4, 5].map(|seed| SigningKey::from_seed(&[seed; 32]).unwrap());
        let city_items: Vec<Hash> = (0..5u8).map(|i| sha256(&[i])).chain([tx]).collect();
        let city = header(Level::Municipality, &city_items, &keys[0]);
        let continent_items = vec![sha256(b"a"), city.hash(), sha256(b"b")];
        let continent = header(Level::Continental, &continent_items, &keys[1]);
        let world_items = vec![continent.hash()];
        let world = header(Level::Global, &world_items, &keys[2]);
        let links = vec![
            link(&city_items, 5, city).unwrap(),
            link(&continent_items, 1, continent).unwrap(),
            link(&world_items, 0, world).unwrap(),
        ];
        (links, keys)
    }

    fn public(key: &SigningKey) -> Vec<u8> {
        key.public_key().to_vec()
    }

    #[test]
    fn a_three_level_proof_verifies_and_each_broken_link_is_named() {
        let tx = sha256(b"tx");
        let (links, keys) = three_levels(tx);
        let trusted = [public(&keys[2])];
        let verify = |links: &[ProofLink]| verify_links(&tx, links, &trusted);
        assert!(matches!(
            verify(&links),
            Ok(Anchor::Trusted { link: 2, .. })
        ));
        let other = verify_links(&sha256(b"other"), &links, &trusted);
        assert_eq!(other.unwrap_err().link, 0);

        let mut bad = links.clone();
        bad[1].audit_path[0].0[0] ^= 1;
        assert_eq!(verify(&bad).unwrap_err().link, 1);
        let mut bad = links.clone();
        bad[2].header.signature[0] ^= 1;
        assert_eq!(verify(&bad).unwrap_err().link, 2);
        let mut bad = links.clone();
        bad[1].index = 2;
        assert_eq!(verify(&bad).unwrap_err().link, 1);
        let mut bad = links.clone();
        bad.swap(1, 2);
        assert_eq!(verify(&bad).unwrap_err().link, 1);
        assert_eq!(verify(&[]).unwrap_err().link, 0);
    }

    #[test]
    fn only_a_trusted_key_anchors_a_proof_and_it_vouches_for_the_links_below_it() {
        let tx = sha256(b"tx");
        // Fresh keys sign every level: the proof is whole, yet nothing vouches for it.
        let (links, keys) = three_levels(tx);
        let stranger = public(&SigningKey::from_seed(&[9; 32]).unwrap());
        let anchor = |trusted: &[Vec<u8>]| verify_links(&tx, &links, trusted).unwrap();
        assert_eq!(anchor(&[]), Anchor::Unanchored);
        assert_eq!(anchor(std::slice::from_ref(&stranger)), Anchor::Unanchored);
        let at = |link: usize, level: Level| Anchor::Trusted {
            link,
            chain_id: format!("{level}/x"),
        };
        assert_eq!(
            anchor(&[stranger.clone(), public(&keys[2])]),
            at(2, Level::Global)
        );
        assert_eq!(anchor(&[public(&keys[1])]), at(1, Level::Continental));
        assert_eq!(anchor(&[public(&keys[0])]), at(0, Level::Municipality));
        // The highest trusted link is the one named: it vouches for the most.
        assert_eq!(
            anchor(&[public(&keys[0]), public(&keys[1])]),
            at(1, Level::Continental)
        );
    }

    #[test]
    fn a_forged_top_over_a_genuine_lower_part_is_not_anchored_by_the_genuine_top_key() {
        let tx = sha256(b"tx");
        let (mut links, keys) = three_levels(tx);
        // Someone else's global header, under the same chain id, over the genuine
        // continental one: every link still verifies on its own terms.
        let forger = SigningKey::from_seed(&[7; 32]).unwrap();
        let world_items = vec![links[1].header.hash()];
        let forged = header(Level::Global, &world_items, &forger);
        assert_eq!(forged.chain_id, links[2].header.chain_id);
        links[2] = link(&world_items, 0, forged).unwrap();
        let anchor = |trusted: &[Vec<u8>]| verify_links(&tx, &links, trusted).unwrap();
        assert_eq!(anchor(&[public(&keys[2])]), Anchor::Unanchored);
        // The genuine continental key still vouches for what it signed, and no further.
        assert_eq!(
            anchor(&[public(&keys[2]), public(&keys[1])]),
            Anchor::Trusted {
                link: 1,
                chain_id: "continental/x".into()
            }
        );
    }
}
