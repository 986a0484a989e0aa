//! Trials of "The Cantrip and the Ritual": the decoding controls, by hand.
//!
//! Each function rewrites or reads a row of logits (the raw scores a model
//! gives every token of its vocabulary). A token that is ruled out gets
//! `f32::NEG_INFINITY`. The checks compare your answers with
//! `nindub::sample`, which the Codex's generator uses.
// The stubs do not use their arguments yet: that is your job.
#![allow(unused_variables)]

use ndarray::{Array1, ArrayView1};

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
