//! A Merkle tree over 32-byte leaves, as RFC 6962 (Certificate
//! Transparency) defines it: leaves and inner nodes hashed with different
//! prefixes, so that no leaf can pass for a node, and a tree of `n`
//! leaves split at the largest power of two below `n`, so that every size
//! has exactly one shape.
//!
//! The content manifest ([`super::manifest`]) hashes each tensor into a
//! leaf, each layer's leaves into a layer root, and the layer roots into
//! the model's root. An inclusion proof lets one layer file be checked
//! against a signed root without reading the others.

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The prefix of a leaf's hash (RFC 6962 §2.1).
const LEAF: u8 = 0x00;
/// The prefix of an inner node's hash.
const NODE: u8 = 0x01;

// ANCHOR: merkle
/// The hash of a leaf: `SHA-256(0x00 ‖ data)`.
pub fn leaf(data: &[u8]) -> Digest {
    Sha256::new()
        .chain_update([LEAF])
        .chain_update(data)
        .finalize()
        .into()
}

/// The hash of an inner node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node(left: &Digest, right: &Digest) -> Digest {
    Sha256::new()
        .chain_update([NODE])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The root over leaf hashes already computed (RFC 6962's MTH): the
/// empty tree is `SHA-256("")`, one leaf is its own root, and `n > 1`
/// leaves split at `k`, the largest power of two below `n`.
pub fn root(leaves: &[Digest]) -> Digest {
    match leaves {
        [] => Sha256::digest([]).into(),
        [one] => *one,
        _ => {
            let k = split_point(leaves.len());
            node(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}
// ANCHOR_END: merkle

/// The largest power of two strictly below `n` (for `n > 1`).
fn split_point(n: usize) -> usize {
    debug_assert!(n > 1);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The sibling hashes from leaf `index` up to the root (RFC 6962's
/// PATH), nearest first; `None` if `index` is out of range.
pub fn proof(leaves: &[Digest], index: usize) -> Option<Vec<Digest>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    let (mut lo, mut hi, mut i) = (0, leaves.len(), index);
    // Descend, recording the sibling subtree at each split, then reverse
    // so the nearest sibling comes first.
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if i < k {
            path.push(root(&leaves[lo + k..hi]));
            hi = lo + k;
        } else {
            path.push(root(&leaves[lo..lo + k]));
            lo += k;
            i -= k;
        }
    }
    path.reverse();
    Some(path)
}

/// Whether `leaf` at `index` of a tree of `size` leaves, with `path`
/// (from [`proof`]), hashes up to `root`.
pub fn verify_proof(
    leaf: &Digest,
    index: usize,
    size: usize,
    path: &[Digest],
    root: &Digest,
) -> bool {
    if index >= size {
        return false;
    }
    // Replay the descent to learn, at each level, which side we are on.
    let mut sides = Vec::new();
    let (mut lo, mut hi, mut i) = (0usize, size, index);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if i < k {
            sides.push(true); // we are the left child
            hi = lo + k;
        } else {
            sides.push(false);
            lo += k;
            i -= k;
        }
    }
    if sides.len() != path.len() {
        return false;
    }
    let mut h = *leaf;
    for (sibling, left) in path.iter().zip(sides.iter().rev()) {
        h = if *left {
            node(&h, sibling)
        } else {
            node(sibling, &h)
        };
    }
    &h == root
}

/// Lowercase hex of a digest.
pub fn hex(d: &Digest) -> String {
    crate::fsx::hex(d)
}

/// A digest from 64 hex digits.
pub fn parse_hex(s: &str) -> Option<Digest> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut d = [0u8; 32];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Digest> {
        (0..n).map(|i| leaf(&(i as u32).to_le_bytes())).collect()
    }

    #[test]
    fn the_small_trees_have_the_shapes_rfc_6962_gives_them() {
        assert_eq!(
            hex(&root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let l = leaves(4);
        assert_eq!(root(&l[..1]), l[0]);
        assert_eq!(root(&l[..2]), node(&l[0], &l[1]));
        // Three leaves: ((0,1),2), not (0,(1,2)).
        assert_eq!(root(&l[..3]), node(&node(&l[0], &l[1]), &l[2]));
        assert_eq!(root(&l), node(&node(&l[0], &l[1]), &node(&l[2], &l[3])));
        // A leaf is never a node: the prefixes differ.
        assert_ne!(leaf(&[l[0], l[1]].concat()), node(&l[0], &l[1]));
    }

    #[test]
    fn the_empty_leaf_matches_rfc_6962s_test_vector() {
        // The hash of the empty leaf, SHA-256(0x00), as published with
        // Certificate Transparency's reference tests.
        assert_eq!(
            hex(&leaf(&[])),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    proptest! {
        #[test]
        fn every_leaf_proves_its_place_and_no_other(n in 1usize..40, seed in 0usize..1000) {
            let l = leaves(n);
            let r = root(&l);
            let i = seed % n;
            let p = proof(&l, i).unwrap();
            prop_assert!(verify_proof(&l[i], i, n, &p, &r));
            if n > 1 {
                let j = (i + 1) % n;
                prop_assert!(!verify_proof(&l[i], j, n, &p, &r));
                prop_assert!(!verify_proof(&l[j], i, n, &p, &r));
            }
            prop_assert!(proof(&l, n).is_none());
        }

        #[test]
        fn changing_any_leaf_changes_the_root(n in 1usize..40, seed in 0usize..1000) {
            let mut l = leaves(n);
            let r = root(&l);
            let i = seed % n;
            l[i][0] ^= 1;
            prop_assert_ne!(root(&l), r);
        }
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let d = leaf(b"x");
        assert_eq!(parse_hex(&hex(&d)), Some(d));
        assert_eq!(parse_hex(&format!("0x{}", hex(&d))), Some(d));
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex(&"é".repeat(32)), None);
    }
}
