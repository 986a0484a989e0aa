//! The kernels of [`super::kernels::portable`] in AVX2, x86-64 only. Block
//! strides and field offsets come from the block types themselves
//! ([`super::blocks`], [`super::superblocks`]), so a layout is written in
//! one place.
//!
//! Every function is `unsafe`: it must only be called on a CPU with AVX2,
//! FMA and F16C ([`super::kernels`] checks at run time), with `row` a whole
//! number of blocks and `x` holding at least as many values.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::activation::Activation;
use super::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, QK};
use super::kernels::PREFETCH_AHEAD;
use super::superblocks::{BlockQ4K, BlockQ5K, BlockQ6K, K_SCALE_SIZE, SUB_BLOCKS, scale_min_k4};

// ANCHOR: avx2
// The same kernels in AVX2: a block's 32 weights against the activation's
// 32 bytes in one `maddubs` (unsigned × signed bytes, pairs summed), then
// one fused multiply-add of the block's scales.

// ANCHOR: prefetch
/// Asks for the cache line `PREFETCH_AHEAD` bytes past `p` when `PF`
/// (the kernels without it exist to measure what it buys). Past the end of
/// a row this is the next row's bytes, which the same task reads next;
/// past the end of the matrix it asks for nothing useful, and a prefetch
/// never faults.
#[inline(always)]
unsafe fn prefetch<const PF: bool>(p: *const u8) {
    if PF {
        // SAFETY: a prefetch is a hint; it reads nothing into the program
        // and cannot fault, whatever the address (`wrapping_add` computes
        // it without claiming it is in bounds).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH_AHEAD) as *const i8) }
    }
}
// ANCHOR_END: prefetch

#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: only called from the kernels below (AVX2/F16C present),
    // with pointers to as many readable bytes as the load takes.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

/// The f16 at `p` as f32 (the K-quants' `d` at the end of a Q6_K
/// super-block, where [`f16_pair`]'s four bytes would run past it).
#[inline(always)]
unsafe fn f16(p: *const u8) -> f32 {
    // SAFETY: only called from the kernels below (AVX2/F16C present),
    // with pointers to as many readable bytes as the load takes.
    unsafe {
        let bits = std::ptr::read_unaligned(p as *const u16);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }
}

// ANCHOR: f16_pair
/// The two f16 at `p` and `p + 2` (a block's scale and offset, or a scale
/// and the block's next two bytes) as f32, from one 4-byte load that
/// clears the rest of the register. Two 2-byte loads compiled to inserts
/// into a register the compiler chose, and it chose the running sum of the
/// offsets: each block's conversion waited for the previous block's
/// addition, a chain of dependent instructions through the whole row.
/// With this load the blocks overlap (`nindub bench` prints the kernel's
/// rate).
#[inline(always)]
unsafe fn f16_pair(p: *const u8) -> (f32, f32) {
    // SAFETY: only called from the kernels below (AVX2/F16C present),
    // with `p` at least 4 bytes before the end of its block.
    unsafe {
        let v = _mm_cvtph_ps(_mm_castps_si128(_mm_load_ss(p as *const f32)));
        (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
    }
}
// ANCHOR_END: f16_pair

/// 16 bytes of nibbles → 32 unsigned bytes: low nibbles first.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: only called from the kernels below (AVX2/F16C present),
    // with pointers to as many readable bytes as the load takes.
    unsafe {
        let qs = _mm_loadu_si128(p as *const __m128i);
        let m = _mm_set1_epi8(0x0F);
        let lo = _mm_and_si128(qs, m);
        let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), m);
        _mm256_set_m128i(hi, lo)
    }
}

/// The 32 bits at `p` → 32 bytes, 0xFF where the bit is set (bit `j`
/// for byte `j`; llama.cpp's `bytes_from_bits_32`).
#[inline(always)]
unsafe fn bits(p: *const u8) -> __m256i {
    // SAFETY: only called from the kernels below (AVX2/F16C present),
    // with pointers to as many readable bytes as the load takes.
    unsafe {
        let x = std::ptr::read_unaligned(p as *const u32);
        // Byte j of the result takes byte j / 8 of `x`...
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(x as i32),
            _mm256_set_epi64x(
                0x0303030303030303,
                0x0202020202020202,
                0x0101010101010101,
                0,
            ),
        );
        // ...and is all ones iff its bit j % 8 is: every other bit is set.
        let others = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);
        _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi64x(-1))
    }
}

/// Σ w·x over 32 signed bytes, as 16 sums of neighbouring pairs (i16).
#[inline(always)]
unsafe fn pairs_signed(w: __m256i, x: __m256i) -> __m256i {
    // SAFETY: only called from the kernels below (AVX2/F16C present).
    // maddubs wants an unsigned left side: |w| · (x with w's sign).
    unsafe { _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)) }
}

/// 16 pair sums (i16), each times its lane of `by`, summed into 8 floats.
#[inline(always)]
unsafe fn to_floats(pairs: __m256i, by: __m256i) -> __m256 {
    // SAFETY: only called from the kernels below (AVX2/F16C present).
    unsafe { _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, by)) }
}

/// Σ w·x over 32 signed bytes, as 8 float lanes.
#[inline(always)]
unsafe fn dot_signed(w: __m256i, x: __m256i) -> __m256 {
    // SAFETY: only called from the kernels below (AVX2/F16C present).
    unsafe { to_floats(pairs_signed(w, x), _mm256_set1_epi16(1)) }
}

/// Σ w·x over 32 unsigned (w < 128) × signed bytes, as 8 float lanes.
#[inline(always)]
unsafe fn dot_unsigned(w: __m256i, x: __m256i) -> __m256 {
    // SAFETY: only called from the kernels below (AVX2/F16C present).
    unsafe { to_floats(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)) }
}

/// The activation's 32 codes of block `b`.
#[inline(always)]
unsafe fn xq(x: &Activation, b: usize) -> __m256i {
    // SAFETY: only called from the kernels below (AVX2 present), with
    // `b` a block of the row, which the activation is as long as.
    unsafe { _mm256_loadu_si256(x.q.as_ptr().add(b * QK) as *const __m256i) }
}

// The one-activation kernels are the tile kernels below with N = 1
// (`super::kernels::kernel`), so that the sums of a sequence alone and in
// a batch come from one loop.
// ANCHOR_END: avx2

// ANCHOR: tile
// The same kernels over a tile of N activations (a prompt's tokens, a
// batch's sequences): each block of the row is unpacked once and multiplied
// into N accumulators, where N single dot products would unpack it N times.
// Each accumulator sees the operations a single activation would, in the
// same order: the one-activation kernels above are these with N = 1.

/// The tile loop of the formats with an offset (Q4_1, Q5_1): blocks of
/// `BYTES` bytes with f16 scale and offset at `d_at` and `d_at + 2`, and
/// `codes` giving a block's 32 unsigned codes from its start.
#[inline(always)]
unsafe fn offset_tile<const N: usize, const PF: bool, const BYTES: usize>(
    row: &[u8],
    xs: &[&Activation; N],
    d_at: usize,
    codes: impl Fn(*const u8) -> __m256i,
) -> [f32; N] {
    // SAFETY: as in the module's contract, for each of the N activations.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); N];
        let mut offsets = [0f32; N];
        for b in 0..row.len() / BYTES {
            let p = row.as_ptr().add(b * BYTES);
            prefetch::<PF>(p);
            let (d, m) = f16_pair(p.add(d_at));
            let w = codes(p);
            for t in 0..N {
                let x = xs[t];
                let pf = dot_unsigned(w, xq(x, b));
                acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * *x.d.get_unchecked(b)), pf, acc[t]);
                offsets[t] += m * *x.s.get_unchecked(b);
            }
        }
        let mut out = [0f32; N];
        for t in 0..N {
            out[t] = hsum(acc[t]) + offsets[t];
        }
        out
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_1_tile<const N: usize, const PF: bool>(
    row: &[u8],
    xs: &[&Activation; N],
) -> [f32; N] {
    // SAFETY: the codes are the block's 16 bytes of nibbles.
    unsafe {
        const { assert!(offset_of!(BlockQ4_1, m) == offset_of!(BlockQ4_1, d) + 2) };
        let at = offset_of!(BlockQ4_1, d);
        offset_tile::<N, PF, { size_of::<BlockQ4_1>() }>(row, xs, at, |p| {
            nibbles(p.add(offset_of!(BlockQ4_1, qs)))
        })
    }
}

/// The tile loop of the symmetric formats (Q4_0, Q8_0): blocks of `BYTES`
/// bytes with an f16 scale at `d_at`, and `weights` giving a block's 32
/// signed weights from its start.
#[inline(always)]
unsafe fn signed_tile<const N: usize, const PF: bool, const BYTES: usize>(
    row: &[u8],
    xs: &[&Activation; N],
    d_at: usize,
    weights: impl Fn(*const u8) -> __m256i,
) -> [f32; N] {
    // SAFETY: as in the module's contract, for each of the N activations.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); N];
        for b in 0..row.len() / BYTES {
            let p = row.as_ptr().add(b * BYTES);
            prefetch::<PF>(p);
            let w = weights(p);
            // The scale and the block's next two bytes (each of these
            // blocks holds more after its scale); the second is not used.
            let wd = f16_pair(p.add(d_at)).0;
            for t in 0..N {
                let x = xs[t];
                let d = wd * *x.d.get_unchecked(b);
                acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), dot_signed(w, xq(x, b)), acc[t]);
            }
        }
        let mut out = [0f32; N];
        for t in 0..N {
            out[t] = hsum(acc[t]);
        }
        out
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_0_tile<const N: usize, const PF: bool>(
    row: &[u8],
    xs: &[&Activation; N],
) -> [f32; N] {
    // SAFETY: the weights are the block's 16 bytes of nibbles, less 8.
    unsafe {
        signed_tile::<N, PF, { size_of::<BlockQ4_0>() }>(row, xs, offset_of!(BlockQ4_0, d), |p| {
            _mm256_sub_epi8(
                nibbles(p.add(offset_of!(BlockQ4_0, qs))),
                _mm256_set1_epi8(8),
            )
        })
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8_0_tile<const N: usize, const PF: bool>(
    row: &[u8],
    xs: &[&Activation; N],
) -> [f32; N] {
    // SAFETY: the weights are the block's 32 signed bytes.
    unsafe {
        signed_tile::<N, PF, { size_of::<BlockQ8_0>() }>(row, xs, offset_of!(BlockQ8_0, d), |p| {
            _mm256_loadu_si256(p.add(offset_of!(BlockQ8_0, qs)) as *const __m256i)
        })
    }
}

// ANCHOR_END: tile

// The Q5 blocks: the Q4 loops, with a fifth bit per weight.

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q5_1_tile<const N: usize, const PF: bool>(
    row: &[u8],
    xs: &[&Activation; N],
) -> [f32; N] {
    // SAFETY: the codes are the nibbles, with 16 added where the fifth bit is set.
    unsafe {
        const { assert!(offset_of!(BlockQ5_1, m) == offset_of!(BlockQ5_1, d) + 2) };
        let at = offset_of!(BlockQ5_1, d);
        offset_tile::<N, PF, { size_of::<BlockQ5_1>() }>(row, xs, at, |p| {
            let high =
                _mm256_and_si256(bits(p.add(offset_of!(BlockQ5_1, qh))), _mm256_set1_epi8(16));
            _mm256_or_si256(nibbles(p.add(offset_of!(BlockQ5_1, qs))), high)
        })
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q5_0_tile<const N: usize, const PF: bool>(
    row: &[u8],
    xs: &[&Activation; N],
) -> [f32; N] {
    // SAFETY: the weights are the nibbles less 16 where the fifth bit is
    // clear: OR-ing 0xF0 into a nibble n gives the byte n − 16.
    unsafe {
        signed_tile::<N, PF, { size_of::<BlockQ5_0>() }>(row, xs, offset_of!(BlockQ5_0, d), |p| {
            let clear = _mm256_andnot_si256(
                bits(p.add(offset_of!(BlockQ5_0, qh))),
                _mm256_set1_epi8(0xF0u8 as i8),
            );
            _mm256_or_si256(nibbles(p.add(offset_of!(BlockQ5_0, qs))), clear)
        })
    }
}

// ANCHOR: tile_k
// The K-quants: a super-block is 8 sub-blocks of 32, each met by one
// activation block. Its integer scale (and minimum) joins the float
// product per sub-block, so the inner loop is the blocks of 32's.

/// The tile loop of Q4_K and Q5_K (a scale and a minimum per sub-block):
/// super-blocks of `BYTES` bytes with the f16 `d` at `d_at` (`dmin` right
/// after it) and 12 bytes of 6-bit scales at `scales_at`, and
/// `codes(p, j)` giving sub-block `j`'s 32 unsigned codes from the
/// super-block's start.
#[inline(always)]
unsafe fn min_tile<const N: usize, const PF: bool, const BYTES: usize>(
    row: &[u8],
    xs: &[&Activation; N],
    (d_at, scales_at): (usize, usize),
    codes: impl Fn(*const u8, usize) -> __m256i,
) -> [f32; N] {
    // SAFETY: as in the module's contract, for each of the N activations.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); N];
        let mut offsets = [0f32; N];
        for s in 0..row.len() / BYTES {
            let p = row.as_ptr().add(s * BYTES);
            let (d, min) = f16_pair(p.add(d_at));
            let scales = &*(p.add(scales_at) as *const [u8; K_SCALE_SIZE]);
            for j in 0..SUB_BLOCKS {
                let b = s * SUB_BLOCKS + j;
                prefetch::<PF>(p.add(j * BYTES / SUB_BLOCKS));
                let (sc, m) = scale_min_k4(j, scales);
                let (scale, offset) = (d * sc as f32, min * m as f32);
                let w = codes(p, j);
                for t in 0..N {
                    let x = xs[t];
                    let pf = dot_unsigned(w, xq(x, b));
                    let f = _mm256_set1_ps(scale * *x.d.get_unchecked(b));
                    acc[t] = _mm256_fmadd_ps(f, pf, acc[t]);
                    offsets[t] += offset * *x.s.get_unchecked(b);
                }
            }
        }
        let mut out = [0f32; N];
        for t in 0..N {
            out[t] = hsum(acc[t]) - offsets[t];
        }
        out
    }
}

/// Sub-block `j`'s nibbles from a K-quant's 128 bytes at `qs`: run `j / 2`
/// of 32 bytes, low nibbles for even `j`, high for odd.
#[inline(always)]
unsafe fn run_nibbles(qs: *const u8, j: usize) -> __m256i {
    // SAFETY: only called from the kernels below (AVX2 present), with
    // `qs` the start of a super-block's 128 bytes of nibbles and j < 8.
    unsafe {
        let run = _mm256_loadu_si256(qs.add(32 * (j / 2)) as *const __m256i);
        let run = if j % 2 == 0 {
            run
        } else {
            _mm256_srli_epi16(run, 4)
        };
        _mm256_and_si256(run, _mm256_set1_epi8(0x0F))
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_k_tile<const N: usize, const PF: bool>(
    row: &[u8],
    xs: &[&Activation; N],
) -> [f32; N] {
    // SAFETY: the codes are sub-block j's nibbles.
    unsafe {
        const { assert!(offset_of!(BlockQ4K, dmin) == offset_of!(BlockQ4K, d) + 2) };
        let at = (offset_of!(BlockQ4K, d), offset_of!(BlockQ4K, scales));
        min_tile::<N, PF, { size_of::<BlockQ4K>() }>(row, xs, at, |p, j| {
            run_nibbles(p.add(offset_of!(BlockQ4K, qs)), j)
        })
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q5_k_tile<const N: usize, const PF: bool>(
    row: &[u8],
    xs: &[&Activation; N],
) -> [f32; N] {
    // SAFETY: the codes are sub-block j's nibbles, with 16 added where bit
    // j of the weight's `qh` byte is set.
    unsafe {
        const { assert!(offset_of!(BlockQ5K, dmin) == offset_of!(BlockQ5K, d) + 2) };
        let at = (offset_of!(BlockQ5K, d), offset_of!(BlockQ5K, scales));
        min_tile::<N, PF, { size_of::<BlockQ5K>() }>(row, xs, at, |p, j| {
            let qh = _mm256_loadu_si256(p.add(offset_of!(BlockQ5K, qh)) as *const __m256i);
            let bit = _mm256_set1_epi8((1u8 << j) as i8);
            let set = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit);
            let high = _mm256_and_si256(set, _mm256_set1_epi8(16));
            _mm256_or_si256(run_nibbles(p.add(offset_of!(BlockQ5K, qs)), j), high)
        })
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q6_k_tile<const N: usize, const PF: bool>(
    row: &[u8],
    xs: &[&Activation; N],
) -> [f32; N] {
    // SAFETY: as in the module's contract, for each of the N activations;
    // every load is inside the super-block (ql: 128 bytes, qh: 64).
    unsafe {
        const BYTES: usize = size_of::<BlockQ6K>();
        let mut acc = [_mm256_setzero_ps(); N];
        for s in 0..row.len() / BYTES {
            let p = row.as_ptr().add(s * BYTES);
            let d = f16(p.add(offset_of!(BlockQ6K, d)));
            let scales = p.add(offset_of!(BlockQ6K, scales)) as *const i8;
            for j in 0..SUB_BLOCKS {
                prefetch::<PF>(p.add(j * BYTES / SUB_BLOCKS));
                let (half, k) = (j / 4, j % 4);
                // Low nibbles (k < 2) or high ones of 32 bytes of `ql`...
                let ql = p.add(offset_of!(BlockQ6K, ql) + 64 * half + 32 * (k % 2));
                let ql = _mm256_loadu_si256(ql as *const __m256i);
                let ql = if k < 2 { ql } else { _mm256_srli_epi16(ql, 4) };
                let lo = _mm256_and_si256(ql, _mm256_set1_epi8(0x0F));
                // ...and bits 2k, 2k + 1 of 32 bytes of `qh`, as bits 4 and 5.
                let qh = p.add(offset_of!(BlockQ6K, qh) + 32 * half);
                let qh = _mm256_loadu_si256(qh as *const __m256i);
                let qh = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k as i32));
                let hi = _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(3)), 4);
                let w = _mm256_sub_epi8(_mm256_or_si256(lo, hi), _mm256_set1_epi8(32));
                // Weights 0–15 are the low 128-bit lane (pair sums 0–7),
                // 16–31 the high one: each lane takes its own scale.
                let by = _mm256_set_m128i(
                    _mm_set1_epi16(*scales.add(2 * j + 1) as i16),
                    _mm_set1_epi16(*scales.add(2 * j) as i16),
                );
                let b = s * SUB_BLOCKS + j;
                for t in 0..N {
                    let x = xs[t];
                    let pf = to_floats(pairs_signed(w, xq(x, b)), by);
                    let f = _mm256_set1_ps(d * *x.d.get_unchecked(b));
                    acc[t] = _mm256_fmadd_ps(f, pf, acc[t]);
                }
            }
        }
        let mut out = [0f32; N];
        for t in 0..N {
            out[t] = hsum(acc[t]);
        }
        out
    }
}
// ANCHOR_END: tile_k
