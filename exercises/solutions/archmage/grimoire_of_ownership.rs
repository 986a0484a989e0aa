//! Trials of "The Grimoire of Ownership": reference solutions.

use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// RFC 6962's prefix of a leaf's hash.
const LEAF: u8 = 0x00;
/// RFC 6962's prefix of an inner node's hash.
const NODE: u8 = 0x01;

/// `SHA-256(0x00 ‖ data)`.
fn leaf(data: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update([LEAF])
        .chain_update(data)
        .finalize()
        .into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update([NODE])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// Trial 1. The RFC 6962 Merkle root of four leaves.
pub fn merkle_root(leaves: [&[u8]; 4]) -> [u8; 32] {
    let [a, b, c, d] = leaves.map(leaf);
    node(&node(&a, &b), &node(&c, &d))
}

/// One tensor as a content manifest records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub dtype: String,
    pub sha256: String,
}

/// How a child model was made from its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    Quantized,
    Split,
}

/// Trial 2. The edge's verdict, naming the first offending tensor.
pub fn verify_edge(parent: &[Tensor], child: &[Tensor], relation: Relation) -> Result<(), String> {
    // Maps by name: iteration in name order, and look-ups by name.
    let by_name = |ts: &[Tensor]| -> BTreeMap<String, Tensor> {
        ts.iter().map(|t| (t.name.clone(), t.clone())).collect()
    };
    let (p, c) = (by_name(parent), by_name(child));
    for (name, was) in &p {
        let Some(now) = c.get(name) else {
            return Err(format!("tensor {name} is missing from the child"));
        };
        if now.shape != was.shape {
            return Err(format!(
                "tensor {name} has shape {:?}, not {:?}",
                now.shape, was.shape
            ));
        }
        if relation == Relation::Split {
            if now.dtype != was.dtype {
                return Err(format!(
                    "tensor {name} is stored as {}, not {}: a split keeps the bytes",
                    now.dtype, was.dtype
                ));
            }
            if now.sha256 != was.sha256 {
                return Err(format!(
                    "tensor {name} has other bytes (sha256 {}, not {}): a split keeps them",
                    now.sha256, was.sha256
                ));
            }
        }
    }
    match c.keys().find(|name| !p.contains_key(*name)) {
        Some(name) => Err(format!("tensor {name} is new: the parent has none such")),
        None => Ok(()),
    }
}

/// 100 %, in the units of a royalty percent.
pub const MAX_PERCENT: u32 = 100_000_000;

/// Trial 3. A LAP split down a chain: each ancestor's floor share, the rest
/// to the paid model.
pub fn royalty_split(links: &[u32], amount: u128) -> Result<Vec<u128>, String> {
    let stack: u64 = links.iter().map(|&p| u64::from(p)).sum();
    if stack > u64::from(MAX_PERCENT) {
        return Err(format!(
            "the royalty stack is {stack} of {MAX_PERCENT}: over 100 %"
        ));
    }
    let m = u128::from(MAX_PERCENT);
    // ⌊amount · p / m⌋ without the product: with amount = q · m + r, it is
    // q · p + ⌊r · p / m⌋, where q · p ≤ amount and r · p < m² fit.
    let mut held: Vec<u128> = links
        .iter()
        .map(|&p| {
            let p = u128::from(p);
            amount / m * p + amount % m * p / m
        })
        .collect();
    // The shares add up to at most amount · stack / m ≤ amount.
    let paid: u128 = held.iter().sum();
    held.push(amount - paid);
    Ok(held)
}
