//! llama.cpp's K-quants: super-blocks of 256 weights, each type defined
//! once (layout, size asserted, read, write, decode), as
//! [`super::blocks`] defines the blocks of 32.
//!
//! A super-block is 8 sub-blocks of 32 (16 of 16 for Q6_K). Each sub-block
//! has its own scale (and, for Q4_K and Q5_K, its own minimum), but those
//! are not f16s: they are small integers (6 bits; 8 for Q6_K) that multiply
//! one f16 per super-block. What a Q4_1 block spends on two f16s per 32
//! weights (1 bit per weight), Q4_K spends on 12 bytes of 6-bit scales and
//! mins plus two f16s per 256 (0.5 bit per weight):
//!
//! | type | bytes | layout | value of code `q` in sub-block `j` |
//! |---|---|---|---|
//! | Q4_K | 144 | f16 `d`, f16 `dmin`, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles | `d·sⱼ·q − dmin·mⱼ` |
//! | Q5_K | 176 | as Q4_K, then 32 bytes of fifth bits | `d·sⱼ·q − dmin·mⱼ` |
//! | Q6_K | 210 | 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 × i8 scales, f16 `d` | `d·sⱼ·(q − 32)` |
//!
//! The orders of the codes inside are GGML's (`ggml-common.h`,
//! `dequantize_row_q4_K` and friends in `ggml-quants.c`), and the tests
//! check every decode against candle's, which ports the same C.

use candle_core::quantized::GgmlDType;
use half::f16;

use super::blocks::{Block, f16_at};

/// Weights per super-block.
pub const QK_K: usize = 256;
/// Bytes of packed 6-bit scales and mins (Q4_K, Q5_K).
pub const K_SCALE_SIZE: usize = 12;

/// `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}

/// `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ5K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}

/// `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: f16,
}

const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

// ANCHOR: scale_min
/// Sub-block `j`'s 6-bit scale and 6-bit min from the 12 packed bytes.
///
/// Bytes 0–3 hold the scales of sub-blocks 0–3 in their low 6 bits, bytes
/// 4–7 their mins; sub-blocks 4–7 keep their low 4 bits in the nibbles of
/// bytes 8–11 and their top 2 bits in the spare top bits of bytes 0–7.
pub fn scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}
// ANCHOR_END: scale_min

/// Sub-blocks of 32 per super-block.
pub const SUB_BLOCKS: usize = QK_K / 32;

/// Q4_K and Q5_K: a 6-bit scale and minimum per sub-block of 32, against
/// the super-block's f16 `d` and `dmin`. Sub-block `j`'s weights are
/// `d·sⱼ·q − dmin·mⱼ`; the decode and the kernels are written once for both.
pub trait ScaleMin: Block {
    /// The f16 `d` and `dmin`, as floats.
    fn d_min(&self) -> (f32, f32);
    /// The 12 bytes of packed 6-bit scales and minimums.
    fn packed(&self) -> &[u8; K_SCALE_SIZE];
    /// Sub-block `j`'s 32 codes.
    fn codes(&self, j: usize) -> [u8; 32];

    /// Sub-block `j`'s multiplier and offset: `(d·sⱼ, dmin·mⱼ)`.
    fn scale_offset(&self, j: usize) -> (f32, f32) {
        let ((d, min), (sc, m)) = (self.d_min(), scale_min_k4(j, self.packed()));
        (d * sc as f32, min * m as f32)
    }
}

// ANCHOR: q4k_codes
impl ScaleMin for BlockQ4K {
    fn d_min(&self) -> (f32, f32) {
        (self.d.to_f32(), self.dmin.to_f32())
    }
    fn packed(&self) -> &[u8; K_SCALE_SIZE] {
        &self.scales
    }
    /// Sub-block `j`'s 32 codes, in 0..16. The 128 bytes are four runs of
    /// 32: run `i` holds sub-block `2i` in its low nibbles and `2i + 1` in
    /// its high ones (not weight `l` and `l + 16`, as the blocks of 32 do).
    fn codes(&self, j: usize) -> [u8; 32] {
        let (run, shift) = (&self.qs[32 * (j / 2)..], 4 * (j % 2));
        std::array::from_fn(|l| (run[l] >> shift) & 0x0F)
    }
}
// ANCHOR_END: q4k_codes

impl ScaleMin for BlockQ5K {
    fn d_min(&self) -> (f32, f32) {
        (self.d.to_f32(), self.dmin.to_f32())
    }
    fn packed(&self) -> &[u8; K_SCALE_SIZE] {
        &self.scales
    }
    /// Sub-block `j`'s 32 codes, in 0..32: Q4_K's nibbles, and the fifth
    /// bit of weight `l` is bit `j` of `qh[l]`.
    fn codes(&self, j: usize) -> [u8; 32] {
        let (run, shift) = (&self.qs[32 * (j / 2)..], 4 * (j % 2));
        std::array::from_fn(|l| ((run[l] >> shift) & 0x0F) | (((self.qh[l] >> j) & 1) << 4))
    }
}

// ANCHOR: q4k_decode
/// Decodes a Q4_K or Q5_K super-block: sub-block by sub-block, its codes
/// times its multiplier, less its offset.
fn dequantize_scale_min<B: ScaleMin>(block: &B, out: &mut [f32]) {
    for (j, y) in out.chunks_exact_mut(32).enumerate() {
        let (scale, offset) = block.scale_offset(j);
        for (y, q) in y.iter_mut().zip(block.codes(j)) {
            *y = scale * q as f32 - offset;
        }
    }
}
// ANCHOR_END: q4k_decode

impl BlockQ6K {
    /// Sub-block `j`'s 32 codes less 32, in −32..32; its first 16 take
    /// scale `2j`, the others `2j + 1`. Each half of 128 weights has 64
    /// bytes of low nibbles and 32 of 2-bit pairs: sub-block `k` of the
    /// half takes nibbles from bytes `32·(k mod 2)` on (low nibbles for
    /// `k < 2`) and bits `2k, 2k + 1` of the pairs.
    pub fn codes(&self, j: usize) -> [i8; 32] {
        let (half, k) = (j / 4, j % 4);
        let ql = &self.ql[64 * half + 32 * (k % 2)..];
        let qh = &self.qh[32 * half..];
        let (lo, hi) = (4 * (k / 2), 2 * k);
        std::array::from_fn(|l| (((ql[l] >> lo) & 0x0F) | (((qh[l] >> hi) & 3) << 4)) as i8 - 32)
    }
}

fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    std::array::from_fn(|i| b[at + i])
}

impl Block for BlockQ4K {
    const DTYPE: GgmlDType = GgmlDType::Q4K;
    const VALUES: usize = QK_K;
    fn read(b: &[u8]) -> Self {
        BlockQ4K {
            d: f16_at(b, 0),
            dmin: f16_at(b, 2),
            scales: array(b, 4),
            qs: array(b, 16),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.d.to_le_bytes());
        out.extend_from_slice(&self.dmin.to_le_bytes());
        out.extend_from_slice(&self.scales);
        out.extend_from_slice(&self.qs);
    }
    fn dequantize(&self, out: &mut [f32]) {
        dequantize_scale_min(self, out)
    }
}

impl Block for BlockQ5K {
    const DTYPE: GgmlDType = GgmlDType::Q5K;
    const VALUES: usize = QK_K;
    fn read(b: &[u8]) -> Self {
        BlockQ5K {
            d: f16_at(b, 0),
            dmin: f16_at(b, 2),
            scales: array(b, 4),
            qh: array(b, 16),
            qs: array(b, 48),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.d.to_le_bytes());
        out.extend_from_slice(&self.dmin.to_le_bytes());
        out.extend_from_slice(&self.scales);
        out.extend_from_slice(&self.qh);
        out.extend_from_slice(&self.qs);
    }
    fn dequantize(&self, out: &mut [f32]) {
        dequantize_scale_min(self, out)
    }
}

impl Block for BlockQ6K {
    const DTYPE: GgmlDType = GgmlDType::Q6K;
    const VALUES: usize = QK_K;
    fn read(b: &[u8]) -> Self {
        BlockQ6K {
            ql: array(b, 0),
            qh: array(b, 128),
            scales: array::<16>(b, 192).map(|s| s as i8),
            d: f16_at(b, 208),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ql);
        out.extend_from_slice(&self.qh);
        out.extend(self.scales.iter().map(|&s| s as u8));
        out.extend_from_slice(&self.d.to_le_bytes());
    }
    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (j, y) in out.chunks_exact_mut(32).enumerate() {
            let codes = self.codes(j);
            for (h, (y, q)) in y
                .chunks_exact_mut(16)
                .zip(codes.chunks_exact(16))
                .enumerate()
            {
                let scale = d * self.scales[2 * j + h] as f32;
                for (y, &q) in y.iter_mut().zip(q) {
                    *y = scale * q as f32;
                }
            }
        }
    }
}

// The encoders: llama.cpp's reference quantizers (`quantize_row_q4_K_ref`,
// `_q5_K_ref`, `_q6_K_ref` and their helpers in `ggml-quants.c`, MIT), ported
// line for line so that a file nindub writes holds the blocks llama.cpp
// would write. Only the order of floating-point operations can differ: a C
// compiler may fuse a multiply and an add, Rust never does.

/// Values this close to 0 count as a block of zeros (`GROUP_MAX_EPS`).
const GROUP_MAX_EPS: f32 = 1e-15;

/// GGML's `nearest_int`: round half to even through the float adder's own
/// rounding (exact for |x| < 2²²).
fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// Codes in `0..=nmax` with a scale and a minimum for one sub-block,
/// minimising the weighted squared error over `nstep + 1` candidate scales
/// around `nmax / (max − min)` (`make_qkx2_quants`). Returns `(scale, −min)`.
fn make_qkx2_quants(
    x: &[f32],
    nmax: i32,
    weights: &[f32],
    l_out: &mut [u8],
    (rmin, rdelta, nstep): (f32, f32, i32),
) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        min = min.min(x[i]);
        max = max.max(x[i]);
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_error += weights[i] * (diff * diff);
    }
    let mut laux = [0u8; 32];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let (w, l) = (weights[i], l as f32);
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * (diff * diff);
            }
            if cur_error < best_error {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Signed codes `−nmax..nmax` (stored `+ nmax`) and a scale for one
/// sub-block of Q6_K, searching 18 scales around `−nmax / max` for the
/// smallest error weighted by `x²` (`make_qx_quants`, `rmse_type = 1`).
fn make_qx_quants(x: &[f32], nmax: i32, l_out: &mut [i8]) -> f32 {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let mut iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0f32, 0f32);
    for (i, &v) in x.iter().enumerate() {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        l_out[i] = (l + nmax) as i8;
        let (w, l) = (v * v, l as f32);
        sumlx += w * v * l;
        suml2 += w * l * l;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for &v in x {
            let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (i, &v) in x.iter().enumerate() {
                let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
                l_out[i] = (l + nmax) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// The shared part of Q4_K and Q5_K: 8 sub-blocks' codes in `0..=nmax`,
/// their 6-bit scales and mins packed, and the two f16 multipliers.
fn encode_k(
    x: &[f32],
    nmax: i32,
    search: (f32, f32, i32),
) -> (f16, f16, [u8; K_SCALE_SIZE], [u8; QK_K]) {
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let sum_x2: f32 = xs.iter().fold(0.0, |s, v| s + v * v);
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights: [f32; 32] = std::array::from_fn(|i| av_x + xs[i].abs());
        let (scale, min) =
            make_qkx2_quants(xs, nmax, &weights, &mut l[32 * j..32 * j + 32], search);
        (scales[j], mins[j]) = (scale, min);
        max_scale = max_scale.max(scale);
        max_min = max_min.max(min);
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; K_SCALE_SIZE];
    for j in 0..8 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0x0F) | ((lm & 0x0F) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, &packed);
        let d = d.to_f32() * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for ii in 0..32 {
            l[32 * j + ii] = nearest_int((x[32 * j + ii] + dm) / d).clamp(0, nmax) as u8;
        }
    }
    (d, dmin, packed, l)
}

impl BlockQ4K {
    /// 256 weights as llama.cpp's `quantize_row_q4_K_ref` encodes them.
    pub fn quantize(x: &[f32]) -> BlockQ4K {
        let (d, dmin, scales, l) = encode_k(x, 15, (-1.0, 0.1, 20));
        let mut qs = [0u8; QK_K / 2];
        for (n, q) in (0..QK_K).step_by(64).zip(qs.chunks_exact_mut(32)) {
            for i in 0..32 {
                q[i] = l[n + i] | (l[n + i + 32] << 4);
            }
        }
        BlockQ4K {
            d,
            dmin,
            scales,
            qs,
        }
    }
}

impl BlockQ5K {
    /// 256 weights as llama.cpp's `quantize_row_q5_K_ref` encodes them.
    pub fn quantize(x: &[f32]) -> BlockQ5K {
        let (d, dmin, scales, l) = encode_k(x, 31, (-0.5, 0.1, 15));
        let (mut qs, mut qh) = ([0u8; QK_K / 2], [0u8; QK_K / 8]);
        let (mut m1, mut m2) = (1u8, 2u8);
        for (n, q) in (0..QK_K).step_by(64).zip(qs.chunks_exact_mut(32)) {
            for j in 0..32 {
                let (mut l1, mut l2) = (l[n + j], l[n + j + 32]);
                if l1 > 15 {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                if l2 > 15 {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                q[j] = l1 | (l2 << 4);
            }
            m1 <<= 2;
            m2 <<= 2;
        }
        BlockQ5K {
            d,
            dmin,
            scales,
            qh,
            qs,
        }
    }
}

impl BlockQ6K {
    /// 256 weights as llama.cpp's `quantize_row_q6_K_ref` encodes them.
    pub fn quantize(x: &[f32]) -> BlockQ6K {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; QK_K / 16];
        let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
        for (ib, s) in scales.iter_mut().enumerate() {
            *s = make_qx_quants(&x[16 * ib..16 * ib + 16], 32, &mut l[16 * ib..16 * ib + 16]);
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = *s;
            }
        }
        let mut y = BlockQ6K {
            ql: [0; QK_K / 2],
            qh: [0; QK_K / 4],
            scales: [0; QK_K / 16],
            d: f16::from_f32(0.0),
        };
        if max_abs_scale < GROUP_MAX_EPS {
            return y;
        }
        let iscale = -128.0 / max_scale;
        y.d = f16::from_f32(1.0 / iscale);
        for (ys, s) in y.scales.iter_mut().zip(&scales) {
            *ys = nearest_int(iscale * s).min(127) as i8;
        }
        for j in 0..QK_K / 16 {
            let d = y.d.to_f32() * y.scales[j] as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let q = nearest_int(x[16 * j + ii] / d).clamp(-32, 31);
                l[16 * j + ii] = (q + 32) as i8;
            }
        }
        for (h, j) in (0..QK_K).step_by(128).enumerate() {
            let (ql, qh) = (
                &mut y.ql[64 * h..64 * h + 64],
                &mut y.qh[32 * h..32 * h + 32],
            );
            for i in 0..32 {
                let q = |k: usize| l[j + i + k] as u8;
                ql[i] = (q(0) & 0x0F) | ((q(64) & 0x0F) << 4);
                ql[i + 32] = (q(32) & 0x0F) | ((q(96) & 0x0F) << 4);
                qh[i] =
                    (q(0) >> 4) | ((q(32) >> 4) << 2) | ((q(64) >> 4) << 4) | ((q(96) >> 4) << 6);
            }
        }
        y
    }
}

/// A row of floats as K-quant super-blocks of type `t` (Q4_K, Q5_K or
/// Q6_K), in llama.cpp's encoding; `None` for another type or a row that
/// is not whole super-blocks.
pub fn quantize_row(t: GgmlDType, x: &[f32]) -> Option<Vec<u8>> {
    if x.len() % QK_K != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(x.len() / QK_K * t.type_size());
    for sb in x.chunks_exact(QK_K) {
        match t {
            GgmlDType::Q4K => BlockQ4K::quantize(sb).write(&mut out),
            GgmlDType::Q5K => BlockQ5K::quantize(sb).write(&mut out),
            GgmlDType::Q6K => BlockQ6K::quantize(sb).write(&mut out),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ggml::dtype;
    use candle_core::{Device, Tensor};

    /// A weight-like row set: mostly small, a few large.
    fn weights(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let x = ((i * 2654435761usize) % 10007) as f32 / 10007.0 - 0.5;
                if i % 97 == 0 { 8.0 * x } else { x * 0.1 }
            })
            .collect()
    }

    #[test]
    fn every_decode_is_candles_bit_for_bit() {
        let v = weights(4 * 768);
        let t = Tensor::from_vec(v, (4, 768), &Device::Cpu).unwrap();
        for ty in [
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
            GgmlDType::Q5_1,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q5K,
            GgmlDType::Q6K,
        ] {
            let q = candle_core::quantized::QTensor::quantize(&t, ty).unwrap();
            let bytes = q.data().unwrap();
            let theirs: Vec<f32> = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let mut ours = vec![0f32; theirs.len()];
            dtype::dequantize(ty, &bytes, &mut ours).unwrap();
            let same = ours
                .iter()
                .zip(&theirs)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{ty:?}");
        }
    }

    #[test]
    fn super_blocks_round_trip_through_bytes() {
        let v = weights(QK_K);
        let t = Tensor::from_vec(v, (1, QK_K), &Device::Cpu).unwrap();
        for ty in [GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K] {
            let q = candle_core::quantized::QTensor::quantize(&t, ty).unwrap();
            let bytes = q.data().unwrap().to_vec();
            let mut again = vec![];
            match ty {
                GgmlDType::Q4K => BlockQ4K::read(&bytes).write(&mut again),
                GgmlDType::Q5K => BlockQ5K::read(&bytes).write(&mut again),
                _ => BlockQ6K::read(&bytes).write(&mut again),
            }
            assert_eq!(again, bytes, "{ty:?}");
        }
    }

    /// Our encoders against candle's older port of the same C, by plain
    /// SQNR: within half a dB (llama.cpp's search minimises an error that
    /// weighs large weights more, not the plain squared error). Bit for bit
    /// against llama.cpp's own files is the Alchemy's fixture: every tensor
    /// of its Q4_K_M, Q5_K_M and Q6_K files.
    #[test]
    fn encoders_stay_close_to_candles() {
        let v = weights(16 * QK_K);
        let t = Tensor::from_vec(v.clone(), (16, QK_K), &Device::Cpu).unwrap();
        let sqnr = |ty, bytes: &[u8]| {
            let mut back = vec![0f32; v.len()];
            dtype::dequantize(ty, bytes, &mut back).unwrap();
            let (s, n) = v.iter().zip(&back).fold((0f64, 0f64), |(s, n), (x, y)| {
                (s + f64::from(*x).powi(2), n + f64::from(x - y).powi(2))
            });
            10.0 * (s / n).log10()
        };
        for ty in [GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K] {
            let ours = quantize_row(ty, &v).unwrap();
            let theirs = candle_core::quantized::QTensor::quantize(&t, ty).unwrap();
            let theirs = theirs.data().unwrap();
            assert_eq!(ours.len(), theirs.len());
            let (a, b) = (sqnr(ty, &ours), sqnr(ty, &theirs));
            assert!(
                a > 15.0 && (a - b).abs() < 0.5,
                "{ty:?}: ours {a:.2} dB, candle's {b:.2} dB"
            );
        }
        // A block of zeros, and a row that is not whole super-blocks.
        let zeros = quantize_row(GgmlDType::Q6K, &[0.0; QK_K]).unwrap();
        assert!(zeros.iter().all(|&b| b == 0));
        assert!(quantize_row(GgmlDType::Q4K, &[0.0; 100]).is_none());
        assert!(quantize_row(GgmlDType::Q8_0, &[0.0; QK_K]).is_none());
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-3.5), -4);
    }

    #[test]
    fn scales_of_the_upper_four_sub_blocks_borrow_the_spare_bits() {
        // Sub-block 5: scale = low nibble of byte 9 | (top bits of byte 1) << 4.
        let mut q = [0u8; K_SCALE_SIZE];
        q[9] = 0x3A; // low nibble 0xA (scale), high nibble 0x3 (min)
        q[1] = 0b1100_0000; // top bits 3 → scale += 48
        q[5] = 0b0100_0000; // top bits 1 → min += 16
        assert_eq!(scale_min_k4(5, &q), (0x0A | 48, 0x03 | 16));
        assert_eq!(scale_min_k4(1, &q), (0, 0));
    }
}
