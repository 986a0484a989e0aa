//! Trials of "The Mana Crystal": how many bytes a model needs.
//!
//! Read the chapter first (`cargo codex serve`, then Part I). Every trial is
//! plain integer arithmetic; the checks compare your answers with published
//! model sizes and with `nindub::budget`.
// The stubs do not use their arguments yet: that is your job.
#![allow(unused_variables)]

use ndarray::ArrayD;

/// How a tensor's elements are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    BF16,
    /// Signed 8-bit integers, symmetric: one f16 scale per group.
    Int8,
    /// 4-bit integers, affine: one f16 scale and one f16 minimum per group.
    Int4,
}

/// Trial 1. Bits per stored element, scales not included.
///
/// `F32` → 32, `F16`/`BF16` → 16, `Int8` → 8, `Int4` → 4.
pub fn bits(dtype: Dtype) -> u64 {
    todo!("return the bits of one element")
}

/// Trial 2. Bytes for a `rows × cols` weight matrix.
///
/// Floats: `rows · cols · bits / 8`. Integers are grouped along each row in
/// groups of `group` weights (the last group of a row may be partial) and
/// packed tightly within a row (`⌈cols · bits / 8⌉` bytes per row); each group
/// adds a 2-byte f16 scale, and for `Int4` (affine) also a 2-byte minimum.
///
/// Example: `Int4`, 1 × 64, group 32 → 32 bytes of nibbles + 2 groups × 4
/// bytes = 40 bytes, i.e. 5 bits per weight (llama.cpp's Q4_1).
pub fn matrix_bytes(rows: u64, cols: u64, dtype: Dtype, group: u64) -> u64 {
    todo!("values plus the scales of every group")
}

/// The shape of a Llama-style decoder (the fields of its `config.json`).
#[derive(Clone, Copy, Debug)]
pub struct LlamaShape {
    pub vocab: u64,
    pub hidden: u64,
    pub intermediate: u64,
    pub layers: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    /// The output head reuses the embedding matrix.
    pub tied: bool,
}

/// Trial 3. The number of parameters of a Llama-style decoder.
///
/// Embedding `vocab × hidden`; per layer: Q `heads·head_dim × hidden`, K and
/// V `kv_heads·head_dim × hidden` each, O `hidden × heads·head_dim`, the
/// SwiGLU MLP's gate, up and down (`3 · hidden · intermediate`) and two
/// RMSNorm vectors of `hidden`; then a final norm (`hidden`) and, unless
/// tied, an output head `vocab × hidden`.
pub fn llama_params(s: &LlamaShape) -> u64 {
    todo!("sum the tensors")
}

/// Trial 4. Bytes of the KV cache: for each layer, one key and one value
/// vector of `kv_heads × head_dim` elements per token, per sequence.
///
/// `2 · layers · kv_heads · head_dim · context · batch · bytes_per_elem`
pub fn kv_cache_bytes(
    layers: u64,
    kv_heads: u64,
    head_dim: u64,
    context: u64,
    batch: u64,
    bytes_per_elem: u64,
) -> u64 {
    todo!("two vectors per layer per token")
}

/// Trial 5. Does it fit? The bytes left on a device of `budget` bytes once
/// weights, KV cache, activations and the runtime's overhead are resident,
/// or `None` if they exceed it. Beware of overflow: sizes are large.
pub fn headroom(
    weights: u64,
    kv_cache: u64,
    activations: u64,
    overhead: u64,
    budget: u64,
) -> Option<u64> {
    todo!("subtract, or say it does not fit")
}

/// Trial 6. The longest context (in tokens, at most `model_max`) such that
/// `fixed + kv_per_token · context ≤ budget`; 0 if not even one token fits
/// (and `model_max` when tokens cost nothing, `kv_per_token == 0`).
pub fn max_context(fixed: u64, kv_per_token: u64, budget: u64, model_max: u64) -> u64 {
    todo!("solve the inequality for the context")
}

/// Trial 7. The bytes an array's elements occupy: its element count times
/// the size of one element (`std::mem::size_of::<T>()`). Activations are
/// such arrays: a batch of hidden states is `batch × tokens × hidden`.
pub fn footprint<T>(a: &ArrayD<T>) -> usize {
    todo!("count the elements and weigh one")
}
