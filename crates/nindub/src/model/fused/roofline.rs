//! The engine's roofline, measured and computed: the machine's read
//! bandwidth (the floor of a token), the rate at which the kernel consumes
//! weights beyond the caches, and the batch at which a step turns
//! compute-bound. `nindub bench` prints the first two beside the engine.

use rayon::prelude::*;

use crate::error::Result;
use crate::ggml::{Activation, Format, Prefetch, QMatrix};

// ANCHOR: floor
/// The machine's read bandwidth, in bytes per second: the best of `runs`
/// parallel passes summing a buffer of `bytes` (larger than the caches, as
/// a model's weights are). A token cannot be generated faster than its
/// weights can be read: `bandwidth / bytes_per_token` is the floor.
pub fn read_bandwidth(bytes: usize, runs: usize) -> f64 {
    let words = vec![1u64; bytes / 8];
    let mut best = f64::MAX;
    for _ in 0..runs.max(1) {
        let started = std::time::Instant::now();
        let sum: u64 = words
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold(0u64, |a, &w| a.wrapping_add(w)))
            .sum();
        best = best.min(started.elapsed().as_secs_f64());
        std::hint::black_box(sum);
    }
    (words.len() * 8) as f64 / best
}
// ANCHOR_END: floor

/// How fast the fused kernel consumes Q4_1 weights that are not in the
/// core's caches, in bytes per second: the best of `runs` matrix-vector
/// products over a synthetic Q4_1 matrix of about `bytes` (576 columns,
/// SmolLM2's width), asking for the weights ahead of the kernel or not
/// ([`Prefetch`]). Beside [`read_bandwidth`] it says whether the kernel or
/// the memory is the wall.
pub fn kernel_read_rate(bytes: usize, runs: usize, prefetch: Prefetch) -> Result<f64> {
    const COLS: usize = 576;
    let row_bytes = Format::Q4_1.row_bytes(COLS);
    let rows = (bytes / row_bytes).max(1);
    // Blocks of `d = 1/16`, `m = −1/2` and codes from a counter: the
    // values do not matter to the speed, only that they are finite.
    let (d, m) = (half::f16::from_f32(0.0625), half::f16::from_f32(-0.5));
    let mut data = Vec::with_capacity(rows * row_bytes);
    for b in 0..rows * COLS / crate::ggml::QK {
        data.extend_from_slice(&d.to_le_bytes());
        data.extend_from_slice(&m.to_le_bytes());
        data.extend((0..16).map(|i| (b * 7 + i * 13) as u8));
    }
    let w = QMatrix::from_blocks(
        "synthetic",
        candle_core::quantized::GgmlDType::Q4_1,
        &[rows, COLS],
        data,
    )?;
    let mut x = Activation::new(COLS);
    x.quantize(&(0..COLS).map(|i| (i % 17) as f32 - 8.0).collect::<Vec<_>>());
    let mut out = vec![0f32; rows];
    let mut best = f64::MAX;
    for _ in 0..runs.max(1) {
        let started = std::time::Instant::now();
        w.matvec_with(&x, &mut out, prefetch);
        best = best.min(started.elapsed().as_secs_f64());
        std::hint::black_box(&out);
    }
    Ok(w.bytes() as f64 / best)
}

// ANCHOR: knee
/// The roofline of one decode step for a batch of sequences: the weights
/// are read once (`weight_bytes / bandwidth` seconds, whatever the batch)
/// and each sequence does its own arithmetic (`flops_per_token /
/// peak_flops` seconds each); the step takes the longer of the two. The
/// smallest batch `b ≥ 1` whose arithmetic takes at least as long as the
/// reading, `b · flops_per_token / peak_flops ≥ weight_bytes / bandwidth`:
/// below it a step costs the same for one sequence or `b`, above it every
/// sequence adds its arithmetic. `None` unless every input is positive and
/// finite.
pub fn compute_bound_batch(
    weight_bytes: f64,
    flops_per_token: f64,
    bandwidth: f64,
    peak_flops: f64,
) -> Option<u64> {
    let inputs = [weight_bytes, flops_per_token, bandwidth, peak_flops];
    if !inputs.iter().all(|v| v.is_finite() && *v > 0.0) {
        return None;
    }
    let (read, compute) = (weight_bytes / bandwidth, flops_per_token / peak_flops);
    // A float cast saturates: a knee past u64::MAX reads as u64::MAX.
    Some(((read / compute).ceil() as u64).max(1))
}
// ANCHOR_END: knee
