//! Trials of "The Grimoire of Ownership": a model's provenance, made exact.
//!
//! A model file says nothing about where it came from, and a name on a hub
//! page proves nothing. What can be checked is a hash: hash every tensor,
//! gather the hashes into one Merkle root, and the model has an identity
//! that changes when any weight does and that a signature can cover. Then a
//! derivative can name its parent by that root and say how it was made (a
//! quantization keeps every tensor's name and shape; a split into shards
//! keeps the tensors themselves), and the promise can be checked against
//! the two manifests. And once lineage is exact, so is money: a payment to
//! a derivative can be split among its ancestors to the last unit.
//!
//! The three trials walk that path: a Merkle root as Certificate
//! Transparency defines it (trial 1), the check of a lineage edge (trial
//! 2), and a royalty split down a chain of models with integer arithmetic
//! that creates and loses nothing (trial 3). The checks compare every
//! answer with the engine's `nindub::provenance`.
// The stubs do not use their arguments yet: that is your job.
#![allow(unused_variables)]

/// Trial 1. The Merkle root of four leaves, as RFC 6962 (Certificate
/// Transparency) defines it, with SHA-256 (the `sha2` crate: look up
/// `Sha256::new`, `update` or `chain_update`, and `finalize`):
///
/// ```text
/// leaf(d)    = SHA-256(0x00 ‖ d)
/// node(l, r) = SHA-256(0x01 ‖ l ‖ r)
/// root       = node(node(leaf(d₀), leaf(d₁)), node(leaf(d₂), leaf(d₃)))
/// ```
///
/// The one-byte prefixes are the point: without them a leaf whose data is
/// 64 bytes, two hashes side by side, hashes exactly like an inner node
/// over those two hashes, so a tree of some leaves could be passed off as
/// a tree of others with the same root (a second preimage). With them, no
/// leaf can pass for a node.
///
/// Leaves may be empty: `leaf([]) = SHA-256(0x00)`, which begins
/// `6e340b9c…` (RFC 6962's own test vector).
pub fn merkle_root(leaves: [&[u8]; 4]) -> [u8; 32] {
    todo!("hash each leaf with 0x00, then pairs of hashes with 0x01, twice")
}

/// One tensor as a content manifest records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    /// Unique within a model, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Outermost dimension first.
    pub shape: Vec<u64>,
    /// How it is stored: `F32`, `F16`, `Q8_0`, `Q4_0`, …
    pub dtype: String,
    /// The SHA-256 of its bytes, 64 lowercase hex digits.
    pub sha256: String,
}

/// How a child model was made from its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// Every tensor kept, by name and shape, some stored in another type
    /// (so with other bytes and another hash).
    Quantized,
    /// The same tensors, byte for byte, cut into other files: the same
    /// names, shapes, types and hashes (and so the same Merkle root).
    Split,
}

/// Trial 2. Whether the edge from `parent` to `child` keeps what
/// `relation` promises: `Ok(())`, or `Err` with a message that names the
/// first offending tensor (and no other tensor).
///
/// - `Quantized`: every tensor of the parent is in the child with the same
///   shape (its `dtype` and `sha256` may change), and the child has no
///   tensor the parent lacks.
/// - `Split`: every tensor of the parent is in the child with the same
///   shape, the same `dtype` and the same `sha256`, and the child has no
///   tensor the parent lacks.
///
/// The first offending tensor: walk the parent's tensors in name order
/// (the order of `str`, byte by byte: `blk.10.w` comes before `blk.2.w`);
/// the first one missing from the child, or present but changed, is it.
/// If there is none, it is the first of the child's tensors, in name
/// order, that the parent lacks. The lists come in any order; names are
/// unique within each list.
///
/// Example: a parent `[a: [4] F32, b: [8] F32]` and a child
/// `[b: [16] Q8_0, a: [4] Q8_0]` → quantized, `Err` naming `b` (reshaped);
/// with `b: [8] Q8_0` instead, `Ok(())` quantized, while a split fails on
/// `a` (its type changed).
pub fn verify_edge(parent: &[Tensor], child: &[Tensor], relation: Relation) -> Result<(), String> {
    todo!("the parent's tensors in name order, then the child's new ones")
}

/// 100 %, in the units of a royalty percent (Story Protocol's
/// `MAX_PERCENT`): 1 % is 1 000 000.
pub const MAX_PERCENT: u32 = 100_000_000;

/// Trial 3. An `amount` (in the currency's smallest unit) paid to the last
/// model of a chain, split among the chain under LAP: what each model ends
/// with, model 0 (the root) first and the paid model last.
///
/// The chain is `0 ← 1 ← 2 ← … ← n`, with `n = links.len()`: model
/// `i + 1` was made from model `i` under a license that owes model `i`
/// the percent `links[i]` (of [`MAX_PERCENT`]).
///
/// LAP (Liquid Absolute Percentage, one of the two policies of Story's
/// Royalty Module): every ancestor's percent applies to the revenue of
/// *every* descendant, not only of its child. A model's royalty stack is
/// its parent's stack plus the percent of the link between them, so the
/// paid model `n` owes ancestor `i` the percent `links[i]` of the whole
/// `amount` (the link just below `i`, whatever lies between), and owes
/// `links[0] + … + links[n − 1]` in all.
///
/// - Each ancestor's share is `amount · links[i] / MAX_PERCENT`, rounded
///   down, as a contract's integer division would; the paid model keeps
///   the rest, so the result always sums to `amount` exactly.
/// - Every `amount` up to `u128::MAX` must work, without overflow and
///   without a float: `amount · links[i]` does not fit in a `u128` when
///   `amount` is large.
/// - `Err` when the stack is over 100 % (more than `MAX_PERCENT`), which
///   a single link over `MAX_PERCENT` already is: the paid model cannot
///   owe more than it received.
///
/// Example (Story's documented chain): links `[5 %, 10 %]`, 100 tokens
/// paid to model 2 → `[5, 10, 85]` tokens. Under LRP, where a parent is
/// paid only from its child's revenue, it would be `[0.5, 9.5, 90]`: not
/// this trial. 7 units → `[0, 0, 7]` (15 % of 7 is 1.05, and neither
/// share reaches a unit); 20 units → `[1, 2, 17]`.
pub fn royalty_split(links: &[u32], amount: u128) -> Result<Vec<u128>, String> {
    todo!("each ancestor's floor share of the whole amount, the rest to the payee")
}
