//! One row of blocks · one quantized activation: the kernels of the
//! products in [`super::matrix`]. [`portable`] is the reference, written
//! for reading; the AVX2 versions (`super::avx2`) compute the same sums and
//! are picked at run time when the CPU has AVX2, FMA and F16C.

use super::activation::Activation;
use super::blocks::Format;

/// A row's bytes · an activation.
pub(crate) type RowDot = fn(&[u8], &Activation) -> f32;

/// The row·activation kernel for a format: AVX2 when the CPU has it
/// (checked at run time), portable code otherwise.
pub(crate) fn kernel(format: Format) -> RowDot {
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: the three AVX2 kernels need AVX2, FMA and F16C, which
        // the CPU was just found to have; they read `row` and `x` within
        // the lengths the caller's QMatrix and Activation guarantee.
        return match format {
            Format::Q4_0 => |r, x| unsafe { super::avx2::q4_0(r, x) },
            Format::Q4_1 => |r, x| unsafe { super::avx2::q4_1(r, x) },
            Format::Q8_0 => |r, x| unsafe { super::avx2::q8_0(r, x) },
        };
    }
    match format {
        Format::Q4_0 => portable::q4_0,
        Format::Q4_1 => portable::q4_1,
        Format::Q8_0 => portable::q8_0,
    }
}

/// Whether the CPU has what the AVX2 kernels need: AVX2, FMA and F16C
/// (checked at run time; the standard library caches the answer).
#[cfg(target_arch = "x86_64")]
fn simd() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

/// How many activations one tile kernel takes at once.
pub(crate) const TILE: usize = 4;

/// A row's bytes · [`TILE`] activations: each weight block read and
/// unpacked once for all of them.
pub(crate) type RowTile = fn(&[u8], &[&Activation; TILE]) -> [f32; TILE];

/// The row·tile kernel for a format: AVX2 when the CPU has it, otherwise
/// the portable row kernel once per activation. Either way each of the
/// [`TILE`] sums is bit-identical to [`kernel`]'s for that activation.
pub(crate) fn tile_kernel(format: Format) -> RowTile {
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: as in `kernel`: the CPU has AVX2, FMA and F16C, and each
        // activation is as long as the row.
        return match format {
            Format::Q4_0 => |r, xs| unsafe { super::avx2::q4_0_tile(r, xs) },
            Format::Q4_1 => |r, xs| unsafe { super::avx2::q4_1_tile(r, xs) },
            Format::Q8_0 => |r, xs| unsafe { super::avx2::q8_0_tile(r, xs) },
        };
    }
    match format {
        Format::Q4_0 => |r, xs| xs.map(|x| portable::q4_0(r, x)),
        Format::Q4_1 => |r, xs| xs.map(|x| portable::q4_1(r, x)),
        Format::Q8_0 => |r, xs| xs.map(|x| portable::q8_0(r, x)),
    }
}

// ANCHOR: portable
/// The reference kernels: one block at a time, integer products summed
/// exactly, then scaled.
pub mod portable {
    use super::super::activation::Activation;
    use super::super::blocks::{Block, BlockQ4_0, BlockQ4_1, BlockQ8_0, Format, QK};

    /// A row of `format` blocks · `x`, with the portable kernel.
    pub fn row(format: Format, bytes: &[u8], x: &Activation) -> f32 {
        match format {
            Format::Q4_0 => q4_0(bytes, x),
            Format::Q4_1 => q4_1(bytes, x),
            Format::Q8_0 => q8_0(bytes, x),
        }
    }

    pub fn q4_1(row: &[u8], x: &Activation) -> f32 {
        let mut acc = 0f32;
        for (b, block) in row.chunks_exact(Format::Q4_1.block_bytes()).enumerate() {
            let blk = BlockQ4_1::read(block);
            let (d, m, qs) = (blk.d.to_f32(), blk.m.to_f32(), &blk.qs);
            let xq = &x.q[b * QK..(b + 1) * QK];
            let mut dot = 0i32;
            for j in 0..QK / 2 {
                dot += (qs[j] & 0x0F) as i32 * xq[j] as i32;
                dot += (qs[j] >> 4) as i32 * xq[j + QK / 2] as i32;
            }
            acc += d * x.d[b] * dot as f32 + m * x.s[b];
        }
        acc
    }

    pub fn q4_0(row: &[u8], x: &Activation) -> f32 {
        let mut acc = 0f32;
        for (b, block) in row.chunks_exact(Format::Q4_0.block_bytes()).enumerate() {
            let blk = BlockQ4_0::read(block);
            let (d, qs) = (blk.d.to_f32(), &blk.qs);
            let xq = &x.q[b * QK..(b + 1) * QK];
            let mut dot = 0i32;
            for j in 0..QK / 2 {
                dot += ((qs[j] & 0x0F) as i32 - 8) * xq[j] as i32;
                dot += ((qs[j] >> 4) as i32 - 8) * xq[j + QK / 2] as i32;
            }
            acc += d * x.d[b] * dot as f32;
        }
        acc
    }

    pub fn q8_0(row: &[u8], x: &Activation) -> f32 {
        let mut acc = 0f32;
        for (b, block) in row.chunks_exact(Format::Q8_0.block_bytes()).enumerate() {
            let blk = BlockQ8_0::read(block);
            let d = blk.d.to_f32();
            let xq = &x.q[b * QK..(b + 1) * QK];
            let dot: i32 = blk
                .qs
                .iter()
                .zip(xq)
                .map(|(&w, &v)| w as i32 * v as i32)
                .sum();
            acc += d * x.d[b] * dot as f32;
        }
        acc
    }
}
// ANCHOR_END: portable
