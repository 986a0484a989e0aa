//! An activation quantized once per matrix product, in blocks of 32: the
//! other operand of every kernel (llama.cpp's Q8_1).

use super::blocks::QK;

/// An activation vector quantized once per use, in blocks of 32: scale
/// `d`, the scaled sum `s = d·Σq` (for Q4_1's offsets), and 8-bit values
/// (llama.cpp's Q8_1).
#[derive(Debug, Clone, Default)]
pub struct Activation {
    pub(crate) d: Vec<f32>,
    pub(crate) s: Vec<f32>,
    pub(crate) q: Vec<i8>,
}

impl Activation {
    pub fn new(len: usize) -> Self {
        Activation {
            d: vec![0.0; len / QK],
            s: vec![0.0; len / QK],
            q: vec![0; len],
        }
    }

    /// Quantizes `x` (a multiple of 32 long) into this buffer.
    pub fn quantize(&mut self, x: &[f32]) {
        for (b, chunk) in x.chunks_exact(QK).enumerate() {
            let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for (q, v) in self.q[b * QK..(b + 1) * QK].iter_mut().zip(chunk) {
                *q = (v * inv).round() as i8;
                sum += *q as i32;
            }
            // Stored as f16, as ggml's Q8_0/Q8_1 blocks do (and so candle's
            // and llama.cpp's kernels): the same rounding, the same sums.
            self.d[b] = half::f16::from_f32(d).to_f32();
            self.s[b] = half::f16::from_f32(d * sum as f32).to_f32();
        }
    }
}
