//! Trials of "The Alchemy of Compression": reference solutions.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

/// Trial 1. The affine parameters `(S, Z)` for values in `[min, max]`.
pub fn scale_zero_point(min: f32, max: f32, qmin: i32, qmax: i32) -> (f32, i32) {
    let (a, b) = (min.min(0.0), max.max(0.0));
    if a == b {
        return (1.0, qmin);
    }
    let (lo, hi) = (qmin as f32, qmax as f32);
    let scale = (b - a) / (hi - lo);
    let zero = (lo - a / scale).round_ties_even().clamp(lo, hi) as i32;
    (scale, zero)
}

/// Trial 2a. Quantize every value.
pub fn quantize(x: ArrayView1<f32>, scale: f32, zero: i32, qmin: i32, qmax: i32) -> Array1<i32> {
    x.mapv(|v| {
        let q = (v / scale).round_ties_even() + zero as f32;
        q.clamp(qmin as f32, qmax as f32) as i32
    })
}

/// Trial 2b. The values the codes stand for.
pub fn dequantize(q: ArrayView1<i32>, scale: f32, zero: i32) -> Array1<f32> {
    q.mapv(|c| scale * (c - zero) as f32)
}

/// Trial 3a. Pack signed 4-bit codes two per byte, low nibble first.
pub fn pack_int4(codes: &[i8]) -> Vec<u8> {
    codes
        .chunks(2)
        .map(|pair| {
            let lo = pair[0] as u8 & 0x0f;
            let hi = pair.get(1).map_or(0, |&c| c as u8 & 0x0f);
            lo | (hi << 4)
        })
        .collect()
}

/// Trial 3b. The first `n` codes of packed nibbles, sign-extended.
pub fn unpack_int4(packed: &[u8], n: usize) -> Vec<i8> {
    // Move the nibble to the top of the byte; the arithmetic shift back
    // copies its sign bit.
    let nibble = |v: u8| (v << 4) as i8 >> 4;
    packed
        .iter()
        .flat_map(|&b| [nibble(b & 0x0f), nibble(b >> 4)])
        .take(n)
        .collect()
}

/// Trial 4. Symmetric INT8 quantization, one scale per output channel.
pub fn quantize_per_channel(w: ArrayView2<f32>) -> (Array2<i8>, Array1<f32>) {
    let scales = w.map_axis(Axis(1), |row| {
        let amax = row.fold(0.0f32, |m, &v| m.max(v.abs()));
        if amax == 0.0 { 1.0 } else { amax / 127.0 }
    });
    let mut codes = Array2::zeros(w.raw_dim());
    for ((r, c), q) in codes.indexed_iter_mut() {
        *q = (w[[r, c]] / scales[r])
            .round_ties_even()
            .clamp(-127.0, 127.0) as i8;
    }
    (codes, scales)
}

/// Trial 5. A Q4_K sub-block's 6-bit scale and minimum.
pub fn q4k_scale_min(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Trial 6. One column of GPTQ.
pub fn gptq_column(w: &mut [f32], j: usize, u_row: &[f32], value: f32) -> f32 {
    let e = (w[j] - value) / u_row[j];
    w[j] = value;
    for k in j + 1..w.len() {
        w[k] -= e * u_row[k];
    }
    e
}

// not a trial
/// A value rounded to f16 and back.
pub fn f16_round(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// Trial 7. Is re-encoding this block as Q4_1 lossless?
pub fn q4_1_lossless(block: &[f32; 32]) -> bool {
    let min = block.iter().copied().fold(f32::INFINITY, f32::min);
    let max = block.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (d16, m16) = (f16_round(d), f16_round(min));
    block.iter().all(|&x| {
        let q = ((x - min) * id + 0.5).min(15.0) as u8;
        f32::from(q) * d16 + m16 == x
    })
}
