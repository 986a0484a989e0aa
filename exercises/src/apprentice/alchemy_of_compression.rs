//! Trials of "The Alchemy of Compression": quantization, by hand.
//!
//! A real number `x` is stored as an integer code `q` in `[q_min, q_max]`,
//! with a **scale** `S > 0` and an integer **zero-point** `Z`:
//!
//! ```text
//! q = clamp(round(x / S) + Z, q_min, q_max)        x̂ = S · (q − Z)
//! ```
//!
//! `round` is always *round half to even* (`f32::round_ties_even`: 2.5 → 2,
//! 3.5 → 4), as in PyTorch and NumPy. The checks compare your answers with
//! `nindub::compress::quant`, the Codex's quantizer, which stores its scales as f16
//! (rounded up); yours stay plain f32, so scales are compared with a small
//! tolerance.
// The stubs do not use their arguments yet: that is your job.
#![allow(unused_variables)]

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

/// Trial 1. The affine parameters `(S, Z)` for values in `[min, max]`.
///
/// 1. Widen the range to contain 0: `a = min(min, 0)`, `b = max(max, 0)`.
/// 2. If `a == b` (all values are 0), return `(1.0, qmin)`.
/// 3. `S = (b − a) / (qmax − qmin)`: the range spread over every code.
/// 4. `Z = round(qmin − a / S)`, clamped to `[qmin, qmax]`: the code that
///    stands for 0.0.
///
/// Because `Z` is an integer code, 0.0 is represented *exactly*
/// (`q = Z` gives `x̂ = S · 0 = 0`): padding and ReLU zeros stay zeros.
///
/// Example: `[−1, 3]` on `0..=255` → `S = 4/255`, `Z = round(63.75) = 64`.
pub fn scale_zero_point(min: f32, max: f32, qmin: i32, qmax: i32) -> (f32, i32) {
    todo!("widen to contain 0, then S = (b − a)/(qmax − qmin) and Z = round(qmin − a/S)")
}

/// Trial 2a. Quantize every value: `q = clamp(round(x / S) + Z, qmin, qmax)`.
///
/// Divide by `S` (do not multiply by `1/S`), round half to even *before*
/// adding `Z`, then saturate: values beyond the range get `qmin` or `qmax`.
pub fn quantize(x: ArrayView1<f32>, scale: f32, zero: i32, qmin: i32, qmax: i32) -> Array1<i32> {
    todo!("x / S, round half to even, + Z, clamp")
}

/// Trial 2b. The values the codes stand for: `x̂ = S · (q − Z)`.
///
/// Inside the range, `|x − x̂| ≤ S/2`: the error is at most half a step.
pub fn dequantize(q: ArrayView1<i32>, scale: f32, zero: i32) -> Array1<f32> {
    todo!("S · (q − Z), element by element")
}

/// Trial 3a. Pack signed 4-bit codes (each in `−8..=7`) two per byte.
///
/// Element `2k` goes in the **low** nibble of byte `k`, element `2k + 1` in
/// the **high** nibble; a negative code is stored as its two's-complement
/// nibble (its 4 low bits: −1 → `0xF`, −8 → `0x8`). An odd count is padded
/// with a 0 nibble, so `n` codes take `⌈n/2⌉` bytes.
///
/// Example: `[1, 2]` → `[0x21]`; `[−1]` → `[0x0F]`.
pub fn pack_int4(codes: &[i8]) -> Vec<u8> {
    todo!("two codes per byte: low nibble first, masked with 0x0F")
}

/// Trial 3b. The first `n` codes of packed nibbles (low nibble first).
///
/// A nibble is signed: `0x0..=0x7` are 0..7, `0x8..=0xF` are −8..−1.
/// Sign-extend it to an `i8`.
pub fn unpack_int4(packed: &[u8], n: usize) -> Vec<i8> {
    todo!("split each byte into two nibbles, sign-extend, keep n")
}

/// Trial 4. Symmetric INT8 quantization, one scale per output channel.
///
/// A weight matrix `w` is `[out, in]`: row `r` feeds output `r`. Each row
/// gets its own scale, so one row with a huge outlier does not ruin the
/// resolution of the others:
///
/// ```text
/// S_r = max_j |w[r, j]| / 127        (a row of zeros: S_r = 1)
/// q[r, j] = clamp(round(w[r, j] / S_r), −127, 127)      (Z = 0)
/// ```
///
/// Return the codes (the shape of `w`) and the scales (one per row). `w`
/// may be any view, a transposed one included.
pub fn quantize_per_channel(w: ArrayView2<f32>) -> (Array2<i8>, Array1<f32>) {
    todo!("a scale per row from its largest |w|, then round and clamp each weight")
}

/// Trial 5. Sub-block `j`'s 6-bit scale and 6-bit minimum in a Q4_K
/// super-block (llama.cpp's `get_scale_min_k4`).
///
/// A Q4_K super-block has 8 sub-blocks of 32 weights, and each sub-block's
/// scale and minimum are 6-bit integers packed into 12 bytes:
///
/// ```text
/// j < 4:   scale = q[j] & 63                      min = q[j + 4] & 63
/// j ≥ 4:   scale = low nibble of q[j + 4]         min = high nibble of q[j + 4]
///          + (top 2 bits of q[j − 4]) << 4        + (top 2 bits of q[j]) << 4
/// ```
///
/// (the first four sub-blocks use only 6 of each byte's 8 bits; the last
/// four keep their low 4 bits in bytes 8..12 and borrow the spare 2 bits).
pub fn q4k_scale_min(j: usize, q: &[u8; 12]) -> (u8, u8) {
    todo!(
        "two cases: j < 4 reads bytes j and j + 4; j ≥ 4 joins a nibble of byte j + 4 with 2 spare bits"
    )
}

/// Trial 6. One column of GPTQ on one row of weights.
///
/// GPTQ rounds a row `w` one column at a time. After weight `j` is set to
/// its code's `value`, the rounding error is scaled by `u_row[j]` and
/// taken off every later weight in the proportions of `u_row` (row `j` of
/// `U`, the upper Cholesky factor of the inverse Hessian):
///
/// ```text
/// e    = (w[j] − value) / u_row[j]
/// w[j] = value
/// w[k] = w[k] − e · u_row[k]          for every k > j
/// ```
///
/// Return `e`. The weights before `j` are not touched.
pub fn gptq_column(w: &mut [f32], j: usize, u_row: &[f32], value: f32) -> f32 {
    todo!("compute e from the old w[j], set w[j], then walk k = j + 1 .. w.len()")
}

// not a trial
/// A value rounded to f16 and back, as a GGUF block stores its scale and
/// minimum (given: trial 7 needs it).
pub fn f16_round(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// Trial 7. Would re-encoding this block as Q4_1 give back exactly these
/// values? (Then requantizing it is lossless, and a tool may copy it.)
///
/// GGML's Q4_1 rule: `d = (max − min) / 15`, `id = 1 / d` (0 when `d` is 0),
/// codes `q = min(15, ⌊(x − min) · id + 0.5⌋)`; the block stores `d` and
/// `min` as f16 ([`f16_round`]) and decodes `q · d₁₆ + min₁₆`. The block is
/// lossless when every decoded value equals the original, bit for bit.
pub fn q4_1_lossless(block: &[f32; 32]) -> bool {
    todo!(
        "encode as GGML does (d and id from the unrounded range), decode with the f16 d and min, compare"
    )
}
