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
                *q = round_to_i8(v * inv);
                sum += *q as i32;
            }
            // Stored as f16, as ggml's Q8_0/Q8_1 blocks do (and so candle's
            // and llama.cpp's kernels): the same rounding, the same sums.
            self.d[b] = half::f16::from_f32(d).to_f32();
            self.s[b] = half::f16::from_f32(d * sum as f32).to_f32();
        }
    }
}

/// `y.round() as i8` (halves away from zero, saturating) without the call
/// to libm's `roundf` that `f32::round` is on a baseline x86-64 build: the
/// truncation is one instruction, `y − trunc(y)` is exact, and the
/// fraction says which way to go. NaN gives 0, as `NaN.round() as i8` does.
#[inline]
fn round_to_i8(y: f32) -> i8 {
    let t = y as i32;
    let f = y - t as f32;
    let r = t.saturating_add((f >= 0.5) as i32 - (f <= -0.5) as i32);
    r.clamp(i8::MIN.into(), i8::MAX.into()) as i8
}

#[cfg(test)]
mod tests {
    use super::round_to_i8;

    #[test]
    fn rounding_is_f32_round_on_every_value_a_code_can_take() {
        // Every f32 in [−128, 128] is too many; every one near a half or
        // an integer, and a dense sweep between, is where they could differ.
        let mut ys = vec![
            f32::NAN,
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
            -1e30,
        ];
        for k in -256..=256 {
            let h = k as f32 / 2.0;
            let mut up = h;
            let mut down = h;
            for _ in 0..64 {
                ys.extend([up, down]);
                up = f32::from_bits(up.to_bits() + 1);
                down = f32::from_bits(down.to_bits().wrapping_sub(1));
            }
        }
        ys.extend((0..1_000_000).map(|i| -128.0 + 256.0 * i as f32 / 1e6));
        for y in ys {
            assert_eq!(
                round_to_i8(y),
                y.round() as i8,
                "y = {y:?} ({:#x})",
                y.to_bits()
            );
        }
    }
}
