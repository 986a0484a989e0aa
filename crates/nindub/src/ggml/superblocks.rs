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
    // ANCHOR: q4k_decode
    fn dequantize(&self, out: &mut [f32]) {
        let (d, min) = (self.d.to_f32(), self.dmin.to_f32());
        // 64 weights at a time: 32 bytes whose low nibbles are sub-block
        // 2i and whose high nibbles are sub-block 2i + 1.
        for (i, (q, y)) in self
            .qs
            .chunks_exact(32)
            .zip(out.chunks_exact_mut(64))
            .enumerate()
        {
            let (sc, m) = scale_min_k4(2 * i, &self.scales);
            let (d1, m1) = (d * sc as f32, min * m as f32);
            let (sc, m) = scale_min_k4(2 * i + 1, &self.scales);
            let (d2, m2) = (d * sc as f32, min * m as f32);
            for (l, &q) in q.iter().enumerate() {
                y[l] = d1 * (q & 0x0F) as f32 - m1;
                y[l + 32] = d2 * (q >> 4) as f32 - m2;
            }
        }
    }
    // ANCHOR_END: q4k_decode
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
        let (d, min) = (self.d.to_f32(), self.dmin.to_f32());
        // As Q4_K, and weight `l` of the 64 takes its fifth bit from
        // byte `l % 32` of `qh`, bit `2i` (low half) or `2i + 1` (high).
        for (i, (q, y)) in self
            .qs
            .chunks_exact(32)
            .zip(out.chunks_exact_mut(64))
            .enumerate()
        {
            let (u1, u2) = (1u8 << (2 * i), 1u8 << (2 * i + 1));
            let (sc, m) = scale_min_k4(2 * i, &self.scales);
            let (d1, m1) = (d * sc as f32, min * m as f32);
            let (sc, m) = scale_min_k4(2 * i + 1, &self.scales);
            let (d2, m2) = (d * sc as f32, min * m as f32);
            for (l, (&q, &h)) in q.iter().zip(&self.qh).enumerate() {
                let hi1 = if h & u1 != 0 { 16.0 } else { 0.0 };
                let hi2 = if h & u2 != 0 { 16.0 } else { 0.0 };
                y[l] = d1 * ((q & 0x0F) as f32 + hi1) - m1;
                y[l + 32] = d2 * ((q >> 4) as f32 + hi2) - m2;
            }
        }
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
        // Two halves of 128: 64 bytes of low nibbles, 32 of 2-bit pairs,
        // 8 scales (one per 16 weights).
        for (n, y) in out.chunks_exact_mut(128).enumerate() {
            let (ql, qh, sc) = (
                &self.ql[64 * n..],
                &self.qh[32 * n..],
                &self.scales[8 * n..],
            );
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i8 - 32;
                let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                y[l] = d * sc[is] as f32 * q1 as f32;
                y[l + 32] = d * sc[is + 2] as f32 * q2 as f32;
                y[l + 64] = d * sc[is + 4] as f32 * q3 as f32;
                y[l + 96] = d * sc[is + 6] as f32 * q4 as f32;
            }
        }
    }
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
