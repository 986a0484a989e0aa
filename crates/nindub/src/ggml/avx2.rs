//! The kernels of [`super::kernels::portable`] in AVX2, x86-64 only. Block
//! strides and field offsets come from the block types themselves
//! ([`super::blocks`]), so a layout is written in one place.
//!
//! Every function is `unsafe`: it must only be called on a CPU with AVX2,
//! FMA and F16C ([`super::kernels`] checks at run time), with `row` a whole
//! number of blocks and `x` holding at least as many values.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::activation::Activation;
use super::blocks::{BlockQ4_0, BlockQ4_1, BlockQ8_0, QK};

// ANCHOR: avx2
// The same kernels in AVX2: a block's 32 weights against the activation's
// 32 bytes in one `maddubs` (unsigned × signed bytes, pairs summed), then
// one fused multiply-add of the block's scales.

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

#[inline(always)]
unsafe fn f16(p: *const u8) -> f32 {
    // SAFETY: only called from the kernels below (AVX2/F16C present),
    // with pointers to as many readable bytes as the load takes.
    unsafe {
        let bits = std::ptr::read_unaligned(p as *const u16);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }
}

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

/// Σ w·x over 32 signed bytes, as 8 float lanes.
#[inline(always)]
unsafe fn dot_signed(w: __m256i, x: __m256i) -> __m256 {
    // SAFETY: only called from the kernels below (AVX2/F16C present),
    // with pointers to as many readable bytes as the load takes.
    unsafe {
        // maddubs wants an unsigned left side: |w| · (x with w's sign).
        let p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
        _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)))
    }
}

// One row · one activation: the tile kernels below with a tile of one,
// so that the sums of a sequence alone and in a batch come from one loop.

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_1(row: &[u8], x: &Activation) -> f32 {
    // SAFETY: the caller's guarantees, passed on.
    unsafe { q4_1_tile::<1>(row, &[x])[0] }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_0(row: &[u8], x: &Activation) -> f32 {
    // SAFETY: the caller's guarantees, passed on.
    unsafe { q4_0_tile::<1>(row, &[x])[0] }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8_0(row: &[u8], x: &Activation) -> f32 {
    // SAFETY: the caller's guarantees, passed on.
    unsafe { q8_0_tile::<1>(row, &[x])[0] }
}
// ANCHOR_END: avx2

// ANCHOR: tile
// The same kernels over a tile of N activations (a prompt's tokens, a
// batch's sequences): each block of the row is unpacked once and multiplied
// into N accumulators, where N single dot products would unpack it N times.
// Each accumulator sees the operations a single activation would, in the
// same order: the one-activation kernels above are these with N = 1.

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_1_tile<const N: usize>(row: &[u8], xs: &[&Activation; N]) -> [f32; N] {
    // SAFETY: as in `q4_1`, for each of the N activations.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); N];
        let mut offsets = [0f32; N];
        const BYTES: usize = size_of::<BlockQ4_1>();
        for b in 0..row.len() / BYTES {
            let p = row.as_ptr().add(b * BYTES);
            let (d, m) = (
                f16(p.add(offset_of!(BlockQ4_1, d))),
                f16(p.add(offset_of!(BlockQ4_1, m))),
            );
            let w = nibbles(p.add(offset_of!(BlockQ4_1, qs)));
            for t in 0..N {
                let x = xs[t];
                let xv = _mm256_loadu_si256(x.q.as_ptr().add(b * QK) as *const __m256i);
                let p16 = _mm256_maddubs_epi16(w, xv);
                let pf = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
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

/// The tile loop of the symmetric formats (Q4_0, Q8_0): blocks of `BYTES`
/// bytes with an f16 scale at `d_at`, and `weights` giving a block's 32
/// signed weights from its start.
#[inline(always)]
unsafe fn signed_tile<const N: usize, const BYTES: usize>(
    row: &[u8],
    xs: &[&Activation; N],
    d_at: usize,
    weights: impl Fn(*const u8) -> __m256i,
) -> [f32; N] {
    // SAFETY: as in `q4_0` and `q8_0`, for each of the N activations.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); N];
        for b in 0..row.len() / BYTES {
            let p = row.as_ptr().add(b * BYTES);
            let w = weights(p);
            let wd = f16(p.add(d_at));
            for t in 0..N {
                let x = xs[t];
                let xv = _mm256_loadu_si256(x.q.as_ptr().add(b * QK) as *const __m256i);
                let d = wd * *x.d.get_unchecked(b);
                acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), dot_signed(w, xv), acc[t]);
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
pub unsafe fn q4_0_tile<const N: usize>(row: &[u8], xs: &[&Activation; N]) -> [f32; N] {
    // SAFETY: the weights are the block's 16 bytes of nibbles, less 8.
    unsafe {
        signed_tile::<N, { size_of::<BlockQ4_0>() }>(row, xs, offset_of!(BlockQ4_0, d), |p| {
            _mm256_sub_epi8(
                nibbles(p.add(offset_of!(BlockQ4_0, qs))),
                _mm256_set1_epi8(8),
            )
        })
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8_0_tile<const N: usize>(row: &[u8], xs: &[&Activation; N]) -> [f32; N] {
    // SAFETY: the weights are the block's 32 signed bytes.
    unsafe {
        signed_tile::<N, { size_of::<BlockQ8_0>() }>(row, xs, offset_of!(BlockQ8_0, d), |p| {
            _mm256_loadu_si256(p.add(offset_of!(BlockQ8_0, qs)) as *const __m256i)
        })
    }
}
// ANCHOR_END: tile
