//! The fused engine's work between matrix products: norms, SwiGLU, RoPE,
//! attention over a KV cache, and the row-wise loops of a pass. Moved out
//! of `fused.rs` as they were; the engine calls them.

use rayon::prelude::*;

use crate::ggml::Activation;

pub(super) fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (ms + eps).sqrt();
    for ((o, v), w) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * w;
    }
}

pub(super) fn silu(g: f32) -> f32 {
    g / (1.0 + (-g).exp())
}

/// RoPE's angles at position `pos`.
pub(super) fn angles(inv_freq: &[f32], pos: usize, cos: &mut [f32], sin: &mut [f32]) {
    for ((c, s), f) in cos.iter_mut().zip(sin.iter_mut()).zip(inv_freq) {
        (*s, *c) = (pos as f32 * f).sin_cos();
    }
}

pub(super) fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Rotates each head's pairs `(x[2i], x[2i+1])` by the position's angle
/// (GGUF's Llama layout, candle's `rope_i`).
pub(super) fn rope(x: &mut [f32], hd: usize, cos: &[f32], sin: &[f32]) {
    for head in x.chunks_exact_mut(hd) {
        for (i, pair) in head.chunks_exact_mut(2).enumerate() {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * cos[i] - b * sin[i];
            pair[1] = a * sin[i] + b * cos[i];
        }
    }
}

/// Softmax(q·kᵀ/√d)·v for every head over every cached position, heads in
/// parallel; heads share a K/V head in groups (grouped-query attention).
/// `scores` is a buffer of `heads × positions`, grown as the cache grows.
pub(super) fn attention(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    (heads, kv_heads, hd): (usize, usize, usize),
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let n = k_cache.len() / (kv_heads * hd);
    let group = heads / kv_heads;
    scores.resize(heads * n, 0.0);
    out.par_chunks_mut(hd)
        .zip(scores.par_chunks_mut(n))
        .enumerate()
        .for_each(|(h, (oh, scores))| {
            let qh = &q[h * hd..(h + 1) * hd];
            head(qh, k_cache, v_cache, h / group, (kv_heads, hd), scores, oh);
        });
}

/// One head's attention: `qh` against K/V head `kvh` of every cached
/// position (`scores` as long as the positions), into `oh`.
pub(super) fn head(
    qh: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    kvh: usize,
    (kv_heads, hd): (usize, usize),
    scores: &mut [f32],
    oh: &mut [f32],
) {
    let kv_dim = kv_heads * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    for (t, s) in scores.iter_mut().enumerate() {
        let k = &k_cache[t * kv_dim + kvh * hd..t * kv_dim + (kvh + 1) * hd];
        *s = dot(qh, k) * scale;
    }
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    oh.fill(0.0);
    for (t, s) in scores.iter().enumerate() {
        let v = &v_cache[t * kv_dim + kvh * hd..t * kv_dim + (kvh + 1) * hd];
        let w = s / sum;
        for (o, v) in oh.iter_mut().zip(v) {
            *o += w * v;
        }
    }
}

/// The fewest rows of a pass that one thread takes for the row-wise work
/// (norms, RoPE, SwiGLU, quantizing): a row of it is a few microseconds,
/// and a batch of two or three decoding sequences is faster on one thread
/// than split.
pub(super) const ROWS_PER_TASK: usize = 4;

/// RMSNorm of every row of `x` into `h`, each quantized into its
/// activation, rows in parallel.
pub(super) fn norm_rows(x: &[f32], w: &[f32], eps: f32, h: &mut [f32], acts: &mut [Activation]) {
    let d = w.len();
    x.par_chunks_exact(d)
        .zip(h.par_chunks_exact_mut(d))
        .zip(acts.par_iter_mut())
        .with_min_len(ROWS_PER_TASK)
        .for_each(|((x, h), a)| {
            rms_norm(x, w, eps, h);
            a.quantize(h);
        });
}

/// A dot product in eight independent lanes, which the compiler can keep
/// in vector registers (a single running sum would serialise every add).
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}
