//! Trials of "The Cantrip and the Ritual": the decoding controls, by hand.
//!
//! Each function rewrites or reads a row of logits (the raw scores a model
//! gives every token of its vocabulary). A token that is ruled out gets
//! `f32::NEG_INFINITY`. The checks compare your answers with
//! `nindub::model::sample`, which the Codex's generator uses.
//!
//! Trials 6 and 7 leave the logits for the loop's speed limit: the bytes of
//! weights that every token reads. They are plain arithmetic, checked
//! against worked examples. Trial 8 uses hidden states as embeddings: the
//! ranking behind the chapter's search, checked against `nindub::search`.
// The stubs do not use their arguments yet: that is your job.
#![allow(unused_variables)]

use ndarray::{Array1, ArrayView1, ArrayView2};

/// Trial 1. Softmax at temperature `t > 0`: `pᵢ = exp(zᵢ/t) / Σⱼ exp(zⱼ/t)`.
///
/// Subtract the largest `zᵢ/t` before exponentiating, or large logits
/// overflow to infinity. Tokens at −∞ get probability 0.
pub fn softmax_t(logits: ArrayView1<f32>, t: f32) -> Array1<f32> {
    todo!("scale, shift by the max, exponentiate, normalise")
}

/// Trial 2. Top-k: keep the `k` highest logits, set the others to −∞. When
/// several logits tie at the threshold, keep the first ones (lowest index)
/// so that exactly `k` stay. `k ≥ len` keeps everything.
pub fn top_k(logits: &mut [f32], k: usize) {
    todo!("find the k-th largest, rule out what is below it")
}

/// Trial 3. Top-p (nucleus): keep the smallest set of most probable tokens
/// whose probabilities (softmax at temperature 1) add up to at least `p`;
/// set the others to −∞. The most probable token always stays.
pub fn top_p(logits: &mut [f32], p: f32) {
    todo!("sort by probability, accumulate until p is reached")
}

/// Trial 4. Repetition penalty (CTRL): for every distinct token in
/// `history`, divide its logit by `penalty` if the logit is positive,
/// multiply it by `penalty` if it is negative or zero. Each token is
/// penalised once, however often it appears.
pub fn repetition_penalty(logits: &mut [f32], history: &[u32], penalty: f32) {
    todo!("lower the logits of the tokens already seen")
}

/// Trial 5. A greedy decoding loop: starting from `prompt`, ask
/// `next_logits(sequence so far)` for the next row of logits, append its
/// arg-max (the first index on ties), and stop after `max_new` new tokens or
/// when the arg-max is `eos` (which is not appended). Return only the new
/// tokens.
pub fn greedy_decode(
    prompt: &[u32],
    max_new: usize,
    eos: u32,
    next_logits: &mut dyn FnMut(&[u32]) -> Vec<f32>,
) -> Vec<u32> {
    todo!("forward, arg-max, append, repeat")
}

/// Trial 6. Bytes of `params` weights stored at `bits_per_weight` bits
/// each, scales included: `⌈params · bits_per_weight / 8⌉` (a partial byte
/// still takes a whole one). `bits_per_weight` is finite and ≥ 0; compute
/// the product in f64. The usual values are exact in binary: 16.0 for f16,
/// 8.5 for llama.cpp's Q8_0 (32 bytes + a 2-byte scale per 32 weights), 5.0
/// for Q4_1 (16 bytes + a scale and a minimum), 4.5 for Q4_0.
///
/// Decoding one token reads every weight once, so this is the traffic of a
/// token. Example, SmolLM2-135M in Q4_1: its 30 layers' matrices hold
/// 106 168 320 weights at 5.0 bits → 66 355 200 bytes; its embedding, 49 152
/// × 576 = 28 311 552 weights, stays in Q8_0 at 8.5 bits → 30 081 024 bytes,
/// and it is read every token too: the embedding is tied, so it is also the
/// output head, whose matrix-vector product reads all of it (the lookup of
/// the input token reads one row). Together 96 436 224 bytes, 96.4 MB per
/// token (the norms' 140 kB of f32 are left out).
pub fn weight_bytes(params: u64, bits_per_weight: f64) -> u64 {
    todo!("bits, then bytes, rounded up")
}

/// Trial 7. The memory-bandwidth floor of a model on a machine.
///
/// A token cannot take less time than `weight_bytes_per_token /
/// read_bandwidth_bytes_per_s` seconds, so no decoder passes
/// `floor = read_bandwidth_bytes_per_s / weight_bytes_per_token` tokens/s
/// (a floor on the time, a ceiling on the speed). Return `(floor, fraction)`
/// with `fraction = measured_tokens_per_s / floor`, how much of that limit a
/// measured decoder reaches. Example: 96.4 MB per token at 30 GB/s → a floor
/// of 311.2 tokens/s; measuring 250 tokens/s reaches 0.803 of it.
///
/// The fraction is not clamped: above 1.0, fewer bytes crossed memory than
/// counted (the weights fit in a cache) or the measurement is wrong.
/// Neither value is ever NaN:
/// - no bytes per token (`weight_bytes_per_token == 0`): nothing bounds the
///   speed, the floor is `f64::INFINITY` (whatever the bandwidth);
/// - no bandwidth (`0.0`, with bytes to read): the floor is `0.0`;
/// - a measured speed of `0.0` gives a fraction of `0.0`, whatever the floor;
///   any other measured speed over a floor of `0.0` gives `f64::INFINITY`,
///   and over an infinite floor `0.0`.
pub fn bandwidth_floor(
    weight_bytes_per_token: u64,
    read_bandwidth_bytes_per_s: f64,
    measured_tokens_per_s: f64,
) -> (f64, f64) {
    todo!("bandwidth over bytes, then measured over floor")
}

/// Trial 8. Search by meaning: the `k` rows of `passages` (one embedding
/// per row) most similar to `query`, by cosine similarity
/// `cos(a, b) = a·b / (‖a‖ ‖b‖)`, best first, as `(row, cosine)`.
///
/// Ties keep the earlier row first; `k` larger than the number of rows
/// returns them all; a zero vector has cosine 0 with everything (do not
/// divide by 0). Example: rows `[1, 0]`, `[0.6, 0.8]`, `[0, 1]` and the
/// query `[2, 0.1]` → `[(0, 0.9988), (1, 0.6392)]` for `k = 2`.
pub fn cosine_top_k(
    query: ArrayView1<f32>,
    passages: ArrayView2<f32>,
    k: usize,
) -> Vec<(usize, f32)> {
    todo!("normalise, dot every row with the query, sort, keep k")
}
