//! RFC 6962 (Certificate Transparency) Merkle Tree Hash over SHA-256, with inclusion proofs.
//!
//! leaf = SHA-256(0x00 || item), node = SHA-256(0x01 || left || right), the tree split at the
//! largest power of two below n, and the root of no items SHA-256(""). The prefixes keep a leaf
//! from ever passing for an inner node (second-preimage resistance).

use crate::{Hash, hashv, sha256};

/// Hash of one leaf.
pub fn leaf_hash(item: &[u8]) -> Hash {
    hashv(&[&[0x00], item])
}

/// Hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    hashv(&[&[0x01], &left.0, &right.0])
}

/// The Merkle Tree Hash of `items`.
pub fn root<T: AsRef<[u8]>>(items: &[T]) -> Hash {
    if items.is_empty() {
        return sha256(b"");
    }
    let mut level: Vec<Hash> = items.iter().map(|i| leaf_hash(i.as_ref())).collect();
    // Pairing left to right and carrying an odd last node up unchanged is exactly the RFC's
    // "split at the largest power of two" recursion, without recursion or extra buffers.
    while level.len() > 1 {
        let next = level.len().div_ceil(2);
        for i in 0..next {
            level[i] = match (level.get(2 * i), level.get(2 * i + 1)) {
                (Some(l), Some(r)) => node_hash(l, r),
                (Some(l), None) => *l,
                _ => unreachable!("2i < len for i < ceil(len/2)"),
            };
        }
        level.truncate(next);
    }
    level[0]
}

/// Every level of the tree over a set of items, kept so that each audit path is read, not
/// recomputed: for a sealed header, whose items never change, every proof after the first
/// costs `log n` lookups instead of `n` hashes.
#[derive(Clone, Debug)]
pub struct Tree {
    /// Leaf hashes first, the root last; an odd last node is carried up unchanged, which is
    /// the RFC's split at the largest power of two (see [`root`]).
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// The tree over `items`.
    pub fn new<T: AsRef<[u8]>>(items: &[T]) -> Self {
        let mut levels = vec![
            items
                .iter()
                .map(|i| leaf_hash(i.as_ref()))
                .collect::<Vec<_>>(),
        ];
        while let Some(below) = levels.last().filter(|l| l.len() > 1) {
            let above = below
                .chunks(2)
                .map(|pair| match pair {
                    [l, r] => node_hash(l, r),
                    [single] => *single,
                    _ => unreachable!("chunks(2) yields one or two"),
                })
                .collect();
            levels.push(above);
        }
        Self { levels }
    }

    /// How many items it holds.
    pub fn len(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// Whether it holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The Merkle Tree Hash, as [`root`] gives it.
    pub fn root(&self) -> Hash {
        match self.levels.last().and_then(|top| top.first()) {
            Some(top) if !self.is_empty() => *top,
            _ => sha256(b""),
        }
    }

    /// The audit path of item `index`, as [`inclusion_proof`] gives it.
    pub fn path(&self, index: usize) -> Option<Vec<Hash>> {
        if index >= self.len() {
            return None;
        }
        let mut at = index;
        let mut path = Vec::new();
        for level in &self.levels[..self.levels.len() - 1] {
            // A node without a sibling is carried up: no hash on the path at this level.
            if let Some(sibling) = level.get(at ^ 1) {
                path.push(*sibling);
            }
            at /= 2;
        }
        Some(path)
    }

    /// Bytes it occupies, for whoever caches trees.
    pub fn bytes(&self) -> usize {
        self.levels.iter().map(|l| l.len() * 32).sum()
    }
}

/// The audit path of item `index` (RFC 6962 §2.1.1), or `None` when `index` is out of range.
pub fn inclusion_proof<T: AsRef<[u8]>>(items: &[T], index: usize) -> Option<Vec<Hash>> {
    if index >= items.len() {
        return None;
    }
    let mut proof = Vec::new();
    path(items, index, &mut proof);
    Some(proof)
}

fn path<T: AsRef<[u8]>>(items: &[T], index: usize, proof: &mut Vec<Hash>) {
    let n = items.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if index < k {
        path(&items[..k], index, proof);
        proof.push(root(&items[k..]));
    } else {
        path(&items[k..], index - k, proof);
        proof.push(root(&items[..k]));
    }
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// Checks that `item` is leaf `index` of a tree of `size` items with root `root`, using the
/// RFC 9162 §2.1.3.2 algorithm.
pub fn verify_inclusion(
    item: &[u8],
    index: usize,
    size: usize,
    proof: &[Hash],
    root: &Hash,
) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = leaf_hash(item);
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Certificate Transparency's reference inputs and tree heads (merkle_tree_test.cc, also
    /// used by RFC 6962 implementations everywhere).
    const CT_LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const CT_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn ct_leaves() -> Vec<Vec<u8>> {
        CT_LEAVES.iter().map(|h| hex::decode(h).unwrap()).collect()
    }

    fn h(s: &str) -> Hash {
        s.parse().unwrap()
    }

    #[test]
    fn matches_certificate_transparency_roots() {
        let leaves = ct_leaves();
        for n in 0..=8 {
            assert_eq!(root(&leaves[..n]), h(CT_ROOTS[n]), "tree size {n}");
        }
    }

    #[test]
    fn matches_certificate_transparency_audit_paths() {
        let leaves = ct_leaves();
        let cases: [(usize, [&str; 3]); 2] = [
            (
                0,
                [
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                [
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (index, expected) in cases {
            let proof = inclusion_proof(&leaves, index).unwrap();
            assert_eq!(proof, expected.map(h).to_vec(), "leaf {index}");
            assert!(verify_inclusion(
                &leaves[index],
                index,
                8,
                &proof,
                &h(CT_ROOTS[8])
            ));
        }
    }

    /// The RFC's recursive definition, as written, to check the iterative one against.
    fn reference_root(items: &[Vec<u8>]) -> Hash {
        match items.len() {
            0 => sha256(b""),
            1 => leaf_hash(&items[0]),
            n => node_hash(
                &reference_root(&items[..split(n)]),
                &reference_root(&items[split(n)..]),
            ),
        }
    }

    proptest! {
        #[test]
        fn iterative_root_and_proofs_agree_with_the_definition(
            items in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 0..70),
            flip in any::<usize>(),
        ) {
            let r = root(&items);
            prop_assert_eq!(r, reference_root(&items));
            for i in 0..items.len() {
                let proof = inclusion_proof(&items, i).unwrap();
                prop_assert!(verify_inclusion(&items[i], i, items.len(), &proof, &r));
                // A tampered path fails.
                if !proof.is_empty() {
                    let mut bad = proof.clone();
                    let k = flip % bad.len();
                    bad[k].0[0] ^= 1;
                    prop_assert!(!verify_inclusion(&items[i], i, items.len(), &bad, &r));
                }
            }
            prop_assert_eq!(inclusion_proof(&items, items.len()), None);
        }
    }

    #[test]
    fn a_kept_tree_gives_the_rfc_root_and_paths() {
        for n in 0..70usize {
            let items: Vec<[u8; 1]> = (0..n).map(|i| [i as u8]).collect();
            let tree = Tree::new(&items);
            assert_eq!(tree.root(), root(&items), "n = {n}");
            for i in 0..n {
                assert_eq!(tree.path(i), inclusion_proof(&items, i), "n = {n}, i = {i}");
            }
            assert_eq!(tree.path(n), None);
        }
    }
}
