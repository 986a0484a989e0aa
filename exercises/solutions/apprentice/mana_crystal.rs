//! Trials of "The Mana Crystal": reference solutions.

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
pub fn bits(dtype: Dtype) -> u64 {
    match dtype {
        Dtype::F32 => 32,
        Dtype::F16 | Dtype::BF16 => 16,
        Dtype::Int8 => 8,
        Dtype::Int4 => 4,
    }
}

/// Trial 2. Bytes for a `rows × cols` weight matrix.
pub fn matrix_bytes(rows: u64, cols: u64, dtype: Dtype, group: u64) -> u64 {
    let per_group = match dtype {
        Dtype::F32 | Dtype::F16 | Dtype::BF16 => return rows * cols * bits(dtype) / 8,
        Dtype::Int8 => 2,
        Dtype::Int4 => 4,
    };
    let row = (cols * bits(dtype)).div_ceil(8) + cols.div_ceil(group) * per_group;
    rows * row
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
pub fn llama_params(s: &LlamaShape) -> u64 {
    let q = s.heads * s.head_dim;
    let kv = s.kv_heads * s.head_dim;
    let attention = q * s.hidden + 2 * kv * s.hidden + s.hidden * q;
    let mlp = 3 * s.hidden * s.intermediate;
    let layer = attention + mlp + 2 * s.hidden;
    let head = if s.tied { 0 } else { s.vocab * s.hidden };
    s.vocab * s.hidden + s.layers * layer + s.hidden + head
}

/// Trial 4. Bytes of the KV cache.
pub fn kv_cache_bytes(
    layers: u64,
    kv_heads: u64,
    head_dim: u64,
    context: u64,
    batch: u64,
    bytes_per_elem: u64,
) -> u64 {
    2 * layers * kv_heads * head_dim * context * batch * bytes_per_elem
}

/// Trial 5. The bytes left on the device, or `None` if it does not fit.
pub fn headroom(
    weights: u64,
    kv_cache: u64,
    activations: u64,
    overhead: u64,
    budget: u64,
) -> Option<u64> {
    let total = weights
        .checked_add(kv_cache)?
        .checked_add(activations)?
        .checked_add(overhead)?;
    budget.checked_sub(total)
}

/// Trial 6. The longest context that fits.
pub fn max_context(fixed: u64, kv_per_token: u64, budget: u64, model_max: u64) -> u64 {
    let Some(left) = budget.checked_sub(fixed) else {
        return 0;
    };
    if kv_per_token == 0 {
        return model_max;
    }
    (left / kv_per_token).min(model_max)
}

/// Trial 7. The bytes an array's elements occupy.
pub fn footprint<T>(a: &ArrayD<T>) -> usize {
    a.len() * std::mem::size_of::<T>()
}
