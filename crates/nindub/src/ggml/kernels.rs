//! One row of blocks · one quantized activation: the kernels of the
//! products in [`super::matrix`]. [`portable`] is the reference, written
//! for reading; the AVX2 versions (`super::avx2`) compute the same sums and
//! are picked at run time when the CPU has AVX2, FMA and F16C.

use super::activation::Activation;
use super::format::Format;

/// A row's bytes · an activation.
pub(crate) type RowDot = fn(&[u8], &Activation) -> f32;

/// How far ahead of the block being read the AVX2 kernels ask for the
/// weights: 2 KiB, about half a microsecond of one core's reading. On a VM
/// whose hardware prefetcher did not keep up with a stream of rows, one
/// core read a Q4_1 matrix beyond its L2 at 2.1 GB/s without it and 6.4
/// GB/s with it (1 KiB ahead: 5.7, 4 KiB: 5.9); `nindub bench` prints both.
pub const PREFETCH_AHEAD: usize = 2048;

/// Whether a kernel asks for the weights ahead of where it reads them
/// (software prefetch, in the AVX2 kernels). The engine always does;
/// [`Prefetch::Off`] exists to measure what that buys
/// (`nindub::model::fused::kernel_read_rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefetch {
    Ahead,
    Off,
}

/// The row·activation kernel for a format: AVX2 when the CPU has it
/// (checked at run time), portable code otherwise.
pub(crate) fn kernel(format: Format) -> RowDot {
    kernel_with(format, Prefetch::Ahead)
}

/// [`kernel`], with or without software prefetch (the portable kernels
/// have none).
pub(crate) fn kernel_with(format: Format, prefetch: Prefetch) -> RowDot {
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: the AVX2 kernels need AVX2, FMA and F16C, which
        // the CPU was just found to have; they read `row` and `x` within
        // the lengths the caller's QMatrix and Activation guarantee.
        macro_rules! row {
            ($pf:literal) => {
                match format {
                    Format::Q4_0 => |r, x| unsafe { super::avx2::q4_0_tile::<1, $pf>(r, &[x])[0] },
                    Format::Q4_1 => |r, x| unsafe { super::avx2::q4_1_tile::<1, $pf>(r, &[x])[0] },
                    Format::Q5_0 => |r, x| unsafe { super::avx2::q5_0_tile::<1, $pf>(r, &[x])[0] },
                    Format::Q5_1 => |r, x| unsafe { super::avx2::q5_1_tile::<1, $pf>(r, &[x])[0] },
                    Format::Q8_0 => |r, x| unsafe { super::avx2::q8_0_tile::<1, $pf>(r, &[x])[0] },
                    Format::Q4K => |r, x| unsafe { super::avx2::q4_k_tile::<1, $pf>(r, &[x])[0] },
                    Format::Q5K => |r, x| unsafe { super::avx2::q5_k_tile::<1, $pf>(r, &[x])[0] },
                    Format::Q6K => |r, x| unsafe { super::avx2::q6_k_tile::<1, $pf>(r, &[x])[0] },
                }
            };
        }
        return match prefetch {
            Prefetch::Ahead => row!(true),
            Prefetch::Off => row!(false),
        };
    }
    match format {
        Format::Q4_0 => portable::q4_0,
        Format::Q4_1 => portable::q4_1,
        Format::Q5_0 => portable::q5_0,
        Format::Q5_1 => portable::q5_1,
        Format::Q8_0 => portable::q8_0,
        Format::Q4K => portable::q4_k,
        Format::Q5K => portable::q5_k,
        Format::Q6K => portable::q6_k,
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

/// How many activations one tile kernel takes at once in a long product
/// (a prompt); the rest of a product, and a batch of 2 or 3, takes the
/// kernel of its own width.
pub(crate) const TILE: usize = 4;

/// A row's bytes · `N` activations: each weight block read and unpacked
/// once for all of them.
pub(crate) type RowTile<const N: usize> = fn(&[u8], &[&Activation; N]) -> [f32; N];

/// The row·tile kernel of width `N` for a format: AVX2 when the CPU has
/// it, otherwise the portable row kernel once per activation. Either way
/// each of the `N` sums is bit-identical to [`kernel`]'s for that
/// activation.
pub(crate) fn tile_kernel<const N: usize>(format: Format) -> RowTile<N> {
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: as in `kernel`: the CPU has AVX2, FMA and F16C, and each
        // activation is as long as the row.
        return match format {
            Format::Q4_0 => |r, xs| unsafe { super::avx2::q4_0_tile::<N, true>(r, xs) },
            Format::Q4_1 => |r, xs| unsafe { super::avx2::q4_1_tile::<N, true>(r, xs) },
            Format::Q5_0 => |r, xs| unsafe { super::avx2::q5_0_tile::<N, true>(r, xs) },
            Format::Q5_1 => |r, xs| unsafe { super::avx2::q5_1_tile::<N, true>(r, xs) },
            Format::Q8_0 => |r, xs| unsafe { super::avx2::q8_0_tile::<N, true>(r, xs) },
            Format::Q4K => |r, xs| unsafe { super::avx2::q4_k_tile::<N, true>(r, xs) },
            Format::Q5K => |r, xs| unsafe { super::avx2::q5_k_tile::<N, true>(r, xs) },
            Format::Q6K => |r, xs| unsafe { super::avx2::q6_k_tile::<N, true>(r, xs) },
        };
    }
    match format {
        Format::Q4_0 => |r, xs| xs.map(|x| portable::q4_0(r, x)),
        Format::Q4_1 => |r, xs| xs.map(|x| portable::q4_1(r, x)),
        Format::Q5_0 => |r, xs| xs.map(|x| portable::q5_0(r, x)),
        Format::Q5_1 => |r, xs| xs.map(|x| portable::q5_1(r, x)),
        Format::Q8_0 => |r, xs| xs.map(|x| portable::q8_0(r, x)),
        Format::Q4K => |r, xs| xs.map(|x| portable::q4_k(r, x)),
        Format::Q5K => |r, xs| xs.map(|x| portable::q5_k(r, x)),
        Format::Q6K => |r, xs| xs.map(|x| portable::q6_k(r, x)),
    }
}

// ANCHOR: portable
/// The reference kernels: one block at a time, integer products summed
/// exactly, then scaled.
pub mod portable {
    use super::super::activation::Activation;
    use super::super::blocks::{Block, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, QK};
    use super::super::format::Format;
    use super::super::superblocks::{BlockQ4K, BlockQ5K, BlockQ6K, SUB_BLOCKS, ScaleMin};

    /// A row of `format` blocks · `x`, with the portable kernel.
    pub fn row(format: Format, bytes: &[u8], x: &Activation) -> f32 {
        match format {
            Format::Q4_0 => q4_0(bytes, x),
            Format::Q4_1 => q4_1(bytes, x),
            Format::Q5_0 => q5_0(bytes, x),
            Format::Q5_1 => q5_1(bytes, x),
            Format::Q8_0 => q8_0(bytes, x),
            Format::Q4K => q4_k(bytes, x),
            Format::Q5K => q5_k(bytes, x),
            Format::Q6K => q6_k(bytes, x),
        }
    }

    /// The activation's 32 codes of block `b`.
    fn xq(x: &Activation, b: usize) -> &[i8] {
        &x.q[b * QK..(b + 1) * QK]
    }

    /// Σ w·x in integers: exact.
    fn dot<W: Copy + Into<i32>>(w: &[W], x: &[i8]) -> i32 {
        w.iter().zip(x).map(|(&w, &x)| w.into() * x as i32).sum()
    }

    pub fn q4_0(row: &[u8], x: &Activation) -> f32 {
        let mut acc = 0f32;
        for (b, block) in row.chunks_exact(BlockQ4_0::BYTES).enumerate() {
            let blk = BlockQ4_0::read(block);
            let w = blk.codes().map(|q| q as i8 - 8);
            acc += blk.d.to_f32() * x.d[b] * dot(&w, xq(x, b)) as f32;
        }
        acc
    }

    pub fn q4_1(row: &[u8], x: &Activation) -> f32 {
        let mut acc = 0f32;
        for (b, block) in row.chunks_exact(BlockQ4_1::BYTES).enumerate() {
            let blk = BlockQ4_1::read(block);
            let (d, m) = (blk.d.to_f32(), blk.m.to_f32());
            // d·Σq·x + m·Σx: the activation brings Σx along (`s`).
            acc += d * x.d[b] * dot(&blk.codes(), xq(x, b)) as f32 + m * x.s[b];
        }
        acc
    }

    pub fn q5_0(row: &[u8], x: &Activation) -> f32 {
        let mut acc = 0f32;
        for (b, block) in row.chunks_exact(BlockQ5_0::BYTES).enumerate() {
            let blk = BlockQ5_0::read(block);
            let w = blk.codes().map(|q| q as i8 - 16);
            acc += blk.d.to_f32() * x.d[b] * dot(&w, xq(x, b)) as f32;
        }
        acc
    }

    pub fn q5_1(row: &[u8], x: &Activation) -> f32 {
        let mut acc = 0f32;
        for (b, block) in row.chunks_exact(BlockQ5_1::BYTES).enumerate() {
            let blk = BlockQ5_1::read(block);
            let (d, m) = (blk.d.to_f32(), blk.m.to_f32());
            acc += d * x.d[b] * dot(&blk.codes(), xq(x, b)) as f32 + m * x.s[b];
        }
        acc
    }

    pub fn q8_0(row: &[u8], x: &Activation) -> f32 {
        let mut acc = 0f32;
        for (b, block) in row.chunks_exact(BlockQ8_0::BYTES).enumerate() {
            let blk = BlockQ8_0::read(block);
            acc += blk.d.to_f32() * x.d[b] * dot(&blk.qs, xq(x, b)) as f32;
        }
        acc
    }
    // ANCHOR_END: portable

    // ANCHOR: portable_k
    // The K-quants against the same activation: a sub-block of 32 meets
    // one activation block, so sub-block `j` of super-block `s` is
    // activation block `8s + j`, with its own integer scale (and minimum).

    /// Q4_K and Q5_K: a multiplier and an offset per sub-block.
    fn scale_min<B: ScaleMin>(row: &[u8], x: &Activation) -> f32 {
        let mut acc = 0f32;
        for (s, block) in row.chunks_exact(B::BYTES).enumerate() {
            let blk = B::read(block);
            for j in 0..SUB_BLOCKS {
                let b = s * SUB_BLOCKS + j;
                let (scale, offset) = blk.scale_offset(j);
                // (d·sⱼ·q − dmin·mⱼ)·x summed: d·sⱼ·Σq·x − dmin·mⱼ·Σx.
                acc += scale * x.d[b] * dot(&blk.codes(j), xq(x, b)) as f32 - offset * x.s[b];
            }
        }
        acc
    }

    pub fn q4_k(row: &[u8], x: &Activation) -> f32 {
        scale_min::<BlockQ4K>(row, x)
    }

    pub fn q5_k(row: &[u8], x: &Activation) -> f32 {
        scale_min::<BlockQ5K>(row, x)
    }

    pub fn q6_k(row: &[u8], x: &Activation) -> f32 {
        let mut acc = 0f32;
        for (s, block) in row.chunks_exact(BlockQ6K::BYTES).enumerate() {
            let blk = BlockQ6K::read(block);
            let d = blk.d.to_f32();
            for j in 0..SUB_BLOCKS {
                let b = s * SUB_BLOCKS + j;
                let (w, x16) = (blk.codes(j), xq(x, b));
                // Two scales per sub-block, one per 16 weights: still one
                // integer sum, then one float product.
                let sum = blk.scales[2 * j] as i32 * dot(&w[..16], &x16[..16])
                    + blk.scales[2 * j + 1] as i32 * dot(&w[16..], &x16[16..]);
                acc += d * x.d[b] * sum as f32;
            }
        }
        acc
    }
    // ANCHOR_END: portable_k
}
