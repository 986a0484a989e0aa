//! Quantized linear layers: `y = x·Wᵀ + b` with `W` stored as a [`crate::compress::quant::QTensor`].
//!
//! The weight `W` has shape `[out, in]`: one row per output, and each row
//! is cut into blocks along the input dimension that share one scale `S`
//! and zero-point `Z` (the whole row for per-tensor and per-channel
//! schemes, `g` consecutive values for per-group ones). A weight is
//! `S·(q − Z)` for its integer code `q`. There are two ways to multiply.
//!
//! **Path A, dequantize on the fly** ([`QLinear::forward`]), the path of
//! token-by-token generation. The f32 weight matrix is never built: codes
//! are turned into floats in registers, as they are read, and thrown away.
//! Inside one block the scale and zero-point are the same for every term,
//! so they come out of the sum:
//!
//! ```text
//! Σ_j S·(q_j − Z)·x_j  =  S·( Σ_j q_j·x_j  −  Z·Σ_j x_j )
//! ```
//!
//! The inner loop is then a plain dot product of codes with activations,
//! one multiplication by `S` per block, not per weight, and the sum of the
//! activations over each block, `Σ_j x_j`, is computed once per token and
//! shared by all the output rows. When the layer is memory-bound (one
//! token at a time) the time goes into reading the codes, so fewer bytes
//! per weight is the whole gain: 1 byte for INT8, half a byte for INT4,
//! against 4 for f32. For several tokens at once (a prompt), each group of
//! rows is decoded once into a small f32 buffer and applied to every token.
//!
//! **Path B, int8 × int8** ([`QLinear::forward_int8`]). The activations are
//! quantized too, each token row with its own symmetric scale
//! `S_x = max|x| / 127`, and the dot products run on integers, accumulated
//! in `i32`: `Σ_j (q_j − Z)·p_j = Σ_j q_j·p_j − Z·Σ_j p_j` for activation
//! codes `p_j`. The float scales come back once per block, `S·S_x`. Integer
//! multiply-adds are cheaper than float ones, but the result now carries
//! the rounding error of the activations as well as that of the weights.
//!
//! [`QLinear::reference`] dequantizes the weight and does the plain f32
//! product: the oracle the two paths are tested against.
//!
//! The kernels are written as fixed-width loops over small arrays, which
//! the compiler turns into SIMD instructions without any intrinsics, and
//! output rows are split across cores with rayon. On x86-64 they are
//! compiled twice, for the baseline (SSE2) and with AVX2 and FMA enabled,
//! and the wide version is chosen at run time when the CPU has them (set
//! `NINDUB_SIMD=portable` to force the baseline). The exact shapes of the
//! loops were chosen by measurement: the auto-vectorizer is fragile, and
//! an innocent-looking change (indexing an accumulator array with a loop
//! variable, an accumulator of arrays of arrays of f32) made some of these
//! kernels fall back to scalar code, five to ten times slower.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::compress::quant::{Granularity, QParams, QTensor, Scheme, quantize};
use crate::error::{Error, Result};

/// A linear layer whose weight is quantized.
#[derive(Debug, Clone)]
pub struct QLinear {
    /// Shape `[out, in]`, per-tensor, per-channel along axis 0, or per-group.
    pub weight: QTensor,
    /// One value per output, added after the product.
    pub bias: Option<Vec<f32>>,
}

/// Where the blocks of a validated weight lie.
#[derive(Debug, Clone, Copy)]
struct Layout {
    out: usize,
    inp: usize,
    /// Values per block along the input dimension.
    block: usize,
    /// Blocks per row.
    bpr: usize,
    /// One `(S, Z)` for the whole tensor.
    per_tensor: bool,
    int4: bool,
    signed: bool,
    /// INT4 with every row and block starting on a byte.
    aligned: bool,
    /// Some zero-point is not 0.
    affine: bool,
}

impl Layout {
    fn of(w: &QTensor) -> Result<Layout> {
        let [out, inp] = w.shape[..] else {
            return Err(Error::invalid(
                "quantized linear weight",
                format!("shape {:?} is not 2-D [out, in]", w.shape),
            ));
        };
        if out == 0 || inp == 0 {
            return Err(Error::invalid(
                "quantized linear weight",
                format!("shape {:?} is empty", w.shape),
            ));
        }
        let (block, blocks, per_tensor) = match w.scheme.granularity {
            Granularity::PerTensor => (inp, 1, true),
            Granularity::PerChannel { axis: 0 } => (inp, out, false),
            Granularity::PerChannel { axis } => {
                return Err(Error::invalid(
                    "quantized linear weight",
                    format!(
                        "per-channel along axis {axis} of {:?}: a linear layer needs one (S, Z) \
                         per output row (axis 0)",
                        w.shape
                    ),
                ));
            }
            Granularity::PerGroup { size } => {
                if size == 0 || inp % size != 0 {
                    return Err(Error::invalid(
                        "quantized linear weight",
                        format!(
                            "groups of {size} do not divide the input dimension of {:?}",
                            w.shape
                        ),
                    ));
                }
                (size, out * (inp / size), false)
            }
        };
        if w.params.len() != blocks {
            return Err(Error::invalid(
                "quantized linear weight",
                format!(
                    "{} (S, Z) pairs for a {} weight of shape {:?} ({blocks} expected)",
                    w.params.len(),
                    w.scheme.name(),
                    w.shape
                ),
            ));
        }
        let f = w.scheme.format;
        let len = out.checked_mul(inp).ok_or_else(|| {
            Error::invalid(
                "quantized linear weight",
                format!("shape {:?} is too large", w.shape),
            )
        })?;
        let bytes = match f.bits {
            8 => len,
            4 => len.div_ceil(2),
            b => {
                return Err(Error::invalid(
                    "quantized linear weight",
                    format!("{b}-bit codes (only 8 and 4 are supported)"),
                ));
            }
        };
        if w.data.len() != bytes {
            return Err(Error::invalid(
                "quantized linear weight",
                format!(
                    "{} bytes of codes for shape {:?} at {} bits ({bytes} expected)",
                    w.data.len(),
                    w.shape,
                    f.bits
                ),
            ));
        }
        Ok(Layout {
            out,
            inp,
            block,
            bpr: inp / block,
            per_tensor,
            int4: f.bits == 4,
            signed: f.signed,
            aligned: inp % 2 == 0 && block % 2 == 0,
            affine: w.params.iter().any(|p| p.zero != 0),
        })
    }

    /// The `(S, Z)` of each block of row `r`.
    fn row_params<'a>(&self, params: &'a [QParams], r: usize) -> &'a [QParams] {
        if self.per_tensor {
            &params[..1]
        } else {
            &params[r * self.bpr..(r + 1) * self.bpr]
        }
    }
}

impl QLinear {
    /// A layer from a quantized weight `[out, in]` and an optional bias of
    /// `out` values.
    pub fn new(weight: QTensor, bias: Option<Vec<f32>>) -> Result<Self> {
        let lay = Layout::of(&weight)?;
        if let Some(b) = &bias {
            if b.len() != lay.out {
                return Err(Error::invalid(
                    "quantized linear bias",
                    format!(
                        "{} values for a weight of shape {:?} ({} expected)",
                        b.len(),
                        weight.shape,
                        lay.out
                    ),
                ));
            }
        }
        Ok(QLinear { weight, bias })
    }

    /// Quantizes f32 weights `[out, in]` (row-major) with `scheme`.
    pub fn from_f32(
        weights: &[f32],
        out: usize,
        inp: usize,
        scheme: &Scheme,
        bias: Option<Vec<f32>>,
    ) -> Result<Self> {
        QLinear::new(quantize(weights, &[out, inp], scheme)?, bias)
    }

    /// The input dimension.
    pub fn in_features(&self) -> usize {
        self.weight.shape.get(1).copied().unwrap_or(0)
    }

    /// The output dimension.
    pub fn out_features(&self) -> usize {
        self.weight.shape.first().copied().unwrap_or(0)
    }

    /// Validates the layer (its fields are public) and `x` of shape `[n, in]`.
    fn check(&self, x: &[f32], n: usize) -> Result<Layout> {
        let lay = Layout::of(&self.weight)?;
        if let Some(b) = &self.bias {
            if b.len() != lay.out {
                return Err(Error::invalid(
                    "quantized linear bias",
                    format!("{} values for {} outputs", b.len(), lay.out),
                ));
            }
        }
        if n.checked_mul(lay.inp) != Some(x.len()) {
            return Err(Error::invalid(
                "quantized linear input",
                format!(
                    "{} values for x of shape [n, in] = [{n}, {}] (weight {:?})",
                    x.len(),
                    lay.inp,
                    self.weight.shape
                ),
            ));
        }
        Ok(lay)
    }

    /// Path A: `x` `[n, in]` → `[n, out]`, decoding the codes on the fly.
    pub fn forward(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let lay = self.check(x, n)?;
        if n == 0 {
            return Ok(vec![]);
        }
        let xsum = block_sums(x, n, &lay);
        // INT4 on bytes: activations split into even and odd positions, so
        // that the low and high nibbles of a byte meet contiguous slices.
        let (xe, xo) = if lay.int4 && lay.aligned && n == 1 {
            (
                x.iter().step_by(2).copied().collect(),
                x.iter().skip(1).step_by(2).copied().collect(),
            )
        } else {
            (vec![], vec![])
        };
        let ctx = CtxA {
            w: &self.weight,
            lay,
            x,
            xsum: &xsum,
            xe: &xe,
            xo: &xo,
            n,
        };
        let rows = rows_per_task(lay.out, if n == 1 { 1 } else { TILE });
        let mut yt = vec![0f32; lay.out * n];
        yt.par_chunks_mut(rows * n)
            .enumerate()
            .for_each_init(Vec::new, |scratch, (t, ys)| {
                if n == 1 {
                    matvec_rows(&ctx, t * rows, ys, scratch);
                } else {
                    matmul_rows(&ctx, t * rows, ys, scratch);
                }
            });
        Ok(self.finish(yt, n, lay.out))
    }

    /// Path B: quantizes each row of `x` to int8 (symmetric, `max|x|/127`,
    /// round half to even) and accumulates `Σ q_w·q_x` in `i32`.
    pub fn forward_int8(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let lay = self.check(x, n)?;
        if n == 0 {
            return Ok(vec![]);
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "quantized linear input",
                format!("x[{i}] is {} (int8 activations need finite values)", x[i]),
            ));
        }
        let (qx, sx) = quantize_rows(x, n, lay.inp);
        let qsum = block_sums_i8(&qx, n, &lay);
        let (pe, po): (Vec<i8>, Vec<i8>) = if lay.int4 && lay.aligned {
            (
                qx.iter().step_by(2).copied().collect(),
                qx.iter().skip(1).step_by(2).copied().collect(),
            )
        } else {
            (vec![], vec![])
        };
        let ctx = CtxB {
            w: &self.weight,
            lay,
            qx: &qx,
            pe: &pe,
            po: &po,
            sx: &sx,
            qsum: &qsum,
            n,
        };
        let rows = rows_per_task(lay.out, 1);
        let mut yt = vec![0f32; lay.out * n];
        yt.par_chunks_mut(rows * n)
            .enumerate()
            .for_each_init(Vec::new, |scratch, (t, ys)| {
                int8_rows(&ctx, t * rows, ys, scratch);
            });
        Ok(self.finish(yt, n, lay.out))
    }

    /// The oracle: the weight fully dequantized, the product in f64.
    pub fn reference(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let lay = self.check(x, n)?;
        let w = self.weight.dequantize();
        let mut y = vec![0f32; n * lay.out];
        for (xi, yi) in x.chunks_exact(lay.inp).zip(y.chunks_exact_mut(lay.out)) {
            for (r, (wr, yr)) in w.chunks_exact(lay.inp).zip(yi.iter_mut()).enumerate() {
                let dot: f64 = wr.iter().zip(xi).map(|(&a, &b)| a as f64 * b as f64).sum();
                let b = self.bias.as_ref().map_or(0.0, |b| b[r] as f64);
                *yr = (dot + b) as f32;
            }
        }
        Ok(y)
    }

    /// `[out, n]` → `[n, out]`, plus the bias.
    fn finish(&self, yt: Vec<f32>, n: usize, out: usize) -> Vec<f32> {
        let mut y = if n == 1 {
            yt
        } else {
            let mut y = vec![0f32; n * out];
            for (r, col) in yt.chunks_exact(n).enumerate() {
                for (i, &v) in col.iter().enumerate() {
                    y[i * out + r] = v;
                }
            }
            y
        };
        if let Some(b) = &self.bias {
            for yi in y.chunks_exact_mut(out) {
                yi.iter_mut().zip(b).for_each(|(v, b)| *v += b);
            }
        }
        y
    }
}

/// Which kernels run: `"avx2+fma"` or `"portable"` (the baseline target).
pub fn simd_level() -> &'static str {
    if wide_simd() { "avx2+fma" } else { "portable" }
}

fn wide_simd() -> bool {
    static WIDE: OnceLock<bool> = OnceLock::new();
    *WIDE.get_or_init(|| {
        let forced = std::env::var("NINDUB_SIMD").is_ok_and(|v| v == "portable");
        #[cfg(target_arch = "x86_64")]
        {
            !forced && std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = forced;
            false
        }
    })
}

/// Defines `$name(args)`, which runs `$body(args)` compiled for AVX2+FMA
/// when the CPU has them, and for the baseline target otherwise. `$body`
/// must be `#[inline(always)]` so that it is compiled inside each version.
macro_rules! simd_dispatch {
    ($name:ident => $body:ident ( $($arg:ident : $ty:ty),* $(,)? )) => {
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if wide_simd() {
                    // SAFETY: `wide` needs AVX2 and FMA, which the CPU has.
                    unsafe { wide($($arg),*) };
                    return;
                }
            }
            $body($($arg),*)
        }
    };
}

/// Rows per rayon task: several tasks per thread, a multiple of `multiple`.
fn rows_per_task(out: usize, multiple: usize) -> usize {
    let tasks = rayon::current_num_threads() * 8;
    out.div_ceil(tasks).next_multiple_of(multiple).max(multiple)
}

/// `Σ_j x_j` over each block of each token row: `[n, blocks per row]`.
fn block_sums(x: &[f32], n: usize, lay: &Layout) -> Vec<f32> {
    let mut s = Vec::with_capacity(n * lay.bpr);
    for xi in x.chunks_exact(lay.inp).take(n) {
        s.extend(xi.chunks_exact(lay.block).map(|b| b.iter().sum::<f32>()));
    }
    s
}

/// `Σ_j p_j` of the int8 activation codes over each block.
fn block_sums_i8(qx: &[i8], n: usize, lay: &Layout) -> Vec<i64> {
    let mut s = Vec::with_capacity(n * lay.bpr);
    for xi in qx.chunks_exact(lay.inp).take(n) {
        s.extend(
            xi.chunks_exact(lay.block)
                .map(|b| b.iter().map(|&v| v as i64).sum::<i64>()),
        );
    }
    s
}

/// Symmetric int8 codes of each row, scale `max|x| / 127` (1 for a row of
/// zeros), rounded half to even.
fn quantize_rows(x: &[f32], n: usize, inp: usize) -> (Vec<i8>, Vec<f32>) {
    let mut q = vec![0i8; n * inp];
    let mut scales = Vec::with_capacity(n);
    for (xi, qi) in x.chunks_exact(inp).zip(q.chunks_exact_mut(inp)) {
        let amax = xi.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s = if amax > 0.0 { amax / 127.0 } else { 1.0 };
        for (d, &v) in qi.iter_mut().zip(xi) {
            *d = round_half_even((v / s).clamp(-127.0, 127.0)) as i8;
        }
        scales.push(s);
    }
    (q, scales)
}

/// `v.round_ties_even()` for `|v| ≤ 2²²`, without a call to `rintf` on
/// targets that lack a rounding instruction: adding `1.5·2²³` leaves no
/// fraction bits, so the addition itself rounds, to nearest even.
#[inline(always)]
fn round_half_even(v: f32) -> f32 {
    const M: f32 = 12_582_912.0;
    (v + M) - M
}

/// The 4-bit codes of elements `start..start + dst.len()` as bytes holding
/// `i8` values (a signed nibble sign-extended, an unsigned one as is).
#[inline(always)]
fn decode_int4(data: &[u8], start: usize, signed: bool, dst: &mut [u8]) {
    // Sign extension of a 4-bit two's-complement value: (v ^ 8) − 8.
    let s = if signed { 8u8 } else { 0 };
    let nib = |v: u8| (v ^ s).wrapping_sub(s);
    if start % 2 == 0 {
        let src = &data[start / 2..];
        let done = dst.len() / 32 * 32;
        let mut dc = dst.chunks_exact_mut(32);
        let mut sc = src.chunks_exact(16);
        for (d, b) in (&mut dc).zip(&mut sc) {
            let (d, b): (&mut [u8; 32], &[u8; 16]) = (d.try_into().unwrap(), b.try_into().unwrap());
            for k in 0..16 {
                d[2 * k] = nib(b[k] & 0x0f);
                d[2 * k + 1] = nib(b[k] >> 4);
            }
        }
        for (k, d) in dc.into_remainder().iter_mut().enumerate() {
            let e = done + k;
            let b = src[e / 2];
            *d = nib(if e % 2 == 0 { b & 0x0f } else { b >> 4 });
        }
    } else {
        for (k, d) in dst.iter_mut().enumerate() {
            let e = start + k;
            let b = data[e / 2];
            *d = nib(if e % 2 == 0 { b & 0x0f } else { b >> 4 });
        }
    }
}

// ---------------------------------------------------------------- path A

/// Output rows decoded together by path A's matrix-matrix kernel.
const TILE: usize = 4;

struct CtxA<'a> {
    w: &'a QTensor,
    lay: Layout,
    x: &'a [f32],
    xsum: &'a [f32],
    xe: &'a [f32],
    xo: &'a [f32],
    n: usize,
}

/// The value of an INT8 code byte: `i8` for signed formats, `u8` otherwise.
#[inline(always)]
fn code<const SIGNED: bool>(b: u8) -> f32 {
    if SIGNED { b as i8 as f32 } else { b as f32 }
}

// ANCHOR: dequant_matvec
/// One output of path A for INT8 codes:
/// `Σ_b S_b·(Σ_{j∈b} q_j·x_j − Z_b·Σ_{j∈b} x_j)`, with `xsum[b] = Σ_{j∈b} x_j`.
#[inline(always)]
fn dot_int8<const SIGNED: bool>(
    codes: &[u8],
    x: &[f32],
    xsum: &[f32],
    params: &[QParams],
    block: usize,
) -> f32 {
    let mut acc = [0f32; 8];
    let mut tail = 0f32; // the ends of blocks that are not whole steps, and Z·Σx
    let blocks = codes.chunks_exact(block).zip(x.chunks_exact(block));
    for ((q, xb), (p, &sx)) in blocks.zip(params.iter().zip(xsum)) {
        // Σ q·x over the block, 32 values a step, in four 8-lane sums.
        let mut part = [[0f32; 8]; 4];
        let (mut qc, mut xc) = (q.chunks_exact(32), xb.chunks_exact(32));
        for (qs, xs) in (&mut qc).zip(&mut xc) {
            for (u, pu) in part.iter_mut().enumerate() {
                let qs: &[u8; 8] = qs[8 * u..8 * u + 8].try_into().unwrap();
                let xs: &[f32; 8] = xs[8 * u..8 * u + 8].try_into().unwrap();
                for k in 0..8 {
                    pu[k] += code::<SIGNED>(qs[k]) * xs[k];
                }
            }
        }
        let rest = qc.remainder().iter().zip(xc.remainder());
        let rest: f32 = rest.map(|(&qv, &xv)| code::<SIGNED>(qv) * xv).sum();
        for k in 0..8 {
            let s = (part[0][k] + part[1][k]) + (part[2][k] + part[3][k]);
            acc[k] += p.scale * s; // S once per block, not once per weight
        }
        tail += p.scale * (rest - p.zero as f32 * sx);
    }
    acc.iter().sum::<f32>() + tail
}
// ANCHOR_END: dequant_matvec

/// One output of path A for INT4 codes on whole bytes: byte `k` of a block
/// holds codes `2k` and `2k + 1`, which meet `xe[k] = x[2k]` and
/// `xo[k] = x[2k + 1]`, so that both nibbles are used where they are read.
/// A signed nibble `c` is read as the unsigned `u = c + 8` (flipping its
/// top bit, `b ^ 0x88` for both nibbles of a byte), which moves the
/// zero-point to `Z + 8`: `c − Z = u − (Z + 8)`.
#[inline(always)]
fn dot_int4<const SIGNED: bool>(
    bytes: &[u8],
    xe: &[f32],
    xo: &[f32],
    xsum: &[f32],
    params: &[QParams],
    block: usize,
) -> f32 {
    // 16 bytes (32 codes) per step, into four 8-lane accumulators: low
    // nibbles of bytes 0..8 and 8..16, high nibbles of the same.
    let (flip, shift) = if SIGNED { (0x88u8, 8.0) } else { (0, 0.0) };
    let half = block / 2;
    let mut acc = [0f32; 8];
    let mut rest = 0f32; // the ends of blocks that are not whole steps, and Z·Σx
    let blocks = bytes.chunks_exact(half).zip(xe.chunks_exact(half));
    let blocks = blocks
        .zip(xo.chunks_exact(half))
        .zip(params.iter().zip(xsum));
    for (((q, e), o), (p, &sx)) in blocks {
        let (mut l0, mut l1, mut h0, mut h1) = ([0f32; 8], [0f32; 8], [0f32; 8], [0f32; 8]);
        let (mut qc, mut ec, mut oc) = (q.chunks_exact(16), e.chunks_exact(16), o.chunks_exact(16));
        for ((qs, es), os) in (&mut qc).zip(&mut ec).zip(&mut oc) {
            let qs: &[u8; 16] = qs.try_into().unwrap();
            let (es, os): (&[f32; 16], &[f32; 16]) =
                (es.try_into().unwrap(), os.try_into().unwrap());
            for k in 0..8 {
                let (b0, b1) = (qs[k] ^ flip, qs[k + 8] ^ flip);
                l0[k] += (b0 & 0x0f) as f32 * es[k];
                l1[k] += (b1 & 0x0f) as f32 * es[k + 8];
                h0[k] += (b0 >> 4) as f32 * os[k];
                h1[k] += (b1 >> 4) as f32 * os[k + 8];
            }
        }
        let r = qc
            .remainder()
            .iter()
            .zip(ec.remainder())
            .zip(oc.remainder());
        let r: f32 = r
            .map(|((&b, &ev), &ov)| ((b ^ flip) & 0x0f) as f32 * ev + ((b ^ flip) >> 4) as f32 * ov)
            .sum();
        for k in 0..8 {
            acc[k] += p.scale * ((l0[k] + l1[k]) + (h0[k] + h1[k]));
        }
        rest += p.scale * (r - (p.zero as f32 + shift) * sx);
    }
    acc.iter().sum::<f32>() + rest
}

/// Path A, one token: outputs `r0..r0 + ys.len()`. Plain loops, so that
/// everything inlines into the AVX2 copy made by `simd_dispatch!`.
#[inline(always)]
fn matvec_rows_body(c: &CtxA<'_>, r0: usize, ys: &mut [f32], scratch: &mut Vec<u8>) {
    let (lay, data) = (&c.lay, &c.w.data[..]);
    let (inp, block) = (lay.inp, lay.block);
    for (k, y) in ys.iter_mut().enumerate() {
        let r = r0 + k;
        let params = lay.row_params(&c.w.params, r);
        *y = match (lay.int4, lay.signed) {
            (false, true) => dot_int8::<true>(&data[r * inp..][..inp], c.x, c.xsum, params, block),
            (false, false) => {
                dot_int8::<false>(&data[r * inp..][..inp], c.x, c.xsum, params, block)
            }
            (true, true) if lay.aligned => {
                let q = &data[r * inp / 2..][..inp / 2];
                dot_int4::<true>(q, c.xe, c.xo, c.xsum, params, block)
            }
            (true, false) if lay.aligned => {
                let q = &data[r * inp / 2..][..inp / 2];
                dot_int4::<false>(q, c.xe, c.xo, c.xsum, params, block)
            }
            (true, signed) => {
                // Rows or blocks that start mid-byte: decode the row first.
                scratch.resize(inp, 0);
                decode_int4(data, r * inp, signed, scratch);
                dot_int8::<true>(scratch, c.x, c.xsum, params, block)
            }
        };
    }
}
simd_dispatch!(matvec_rows => matvec_rows_body(c: &CtxA<'_>, r0: usize, ys: &mut [f32], scratch: &mut Vec<u8>));

/// Writes `S_b·q_j` for row `r` into `dst` (`in` values).
#[inline(always)]
fn decode_row_scaled(c: &CtxA<'_>, r: usize, dst: &mut [f32], bytes: &mut Vec<u8>) {
    let (lay, data) = (&c.lay, &c.w.data[..]);
    let (inp, block) = (lay.inp, lay.block);
    let params = lay.row_params(&c.w.params, r);
    let codes: &[u8] = if lay.int4 {
        bytes.resize(inp, 0);
        decode_int4(data, r * inp, lay.signed, bytes);
        bytes
    } else {
        &data[r * inp..(r + 1) * inp]
    };
    // Decoded INT4 bytes hold i8 values, whatever the format's sign.
    let signed = lay.signed || lay.int4;
    for ((d, q), p) in dst
        .chunks_exact_mut(block)
        .zip(codes.chunks_exact(block))
        .zip(params)
    {
        if signed {
            d.iter_mut()
                .zip(q)
                .for_each(|(d, &q)| *d = p.scale * code::<true>(q));
        } else {
            d.iter_mut()
                .zip(q)
                .for_each(|(d, &q)| *d = p.scale * code::<false>(q));
        }
    }
}

/// `Σ_j w_j·x_j` in f32, 32 lanes a step. (Written as one flat 32-lane
/// array: this is the shape the compiler reliably turns into four 8-wide
/// vector multiply-adds.)
#[inline(always)]
fn dot_f32(w: &[f32], x: &[f32]) -> f32 {
    let mut acc = [0f32; 32];
    let (mut wc, mut xc) = (w.chunks_exact(32), x.chunks_exact(32));
    for (ws, xs) in (&mut wc).zip(&mut xc) {
        let (ws, xs): (&[f32; 32], &[f32; 32]) = (ws.try_into().unwrap(), xs.try_into().unwrap());
        for k in 0..32 {
            acc[k] += ws[k] * xs[k];
        }
    }
    let rest: f32 = wc
        .remainder()
        .iter()
        .zip(xc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    acc.iter().sum::<f32>() + rest
}

/// Path A, several tokens: each tile of `TILE` rows is decoded once into
/// f32 (`S·q`, a few KiB that stay in the L1 cache) and applied to every
/// token; the zero-points come back through the block sums of `x`.
/// `ys` is `[rows, n]`.
#[inline(always)]
fn matmul_rows_body(c: &CtxA<'_>, r0: usize, ys: &mut [f32], scratch: &mut Vec<u8>) {
    let (lay, n) = (&c.lay, c.n);
    let inp = lay.inp;
    let bpr = lay.bpr;
    let mut w = vec![0f32; TILE * inp];
    let mut sz = vec![0f32; TILE * bpr]; // S_b·Z_b of each block of each row
    for (tile, yt) in ys.chunks_mut(TILE * n).enumerate() {
        let rows = yt.len() / n;
        let r = r0 + tile * TILE;
        for (k, wk) in w.chunks_exact_mut(inp).take(rows).enumerate() {
            decode_row_scaled(c, r + k, wk, scratch);
            let ps = lay.row_params(&c.w.params, r + k);
            for (z, p) in sz[k * bpr..(k + 1) * bpr].iter_mut().zip(ps) {
                *z = p.scale * p.zero as f32;
            }
        }
        for (i, xi) in c.x.chunks_exact(inp).enumerate() {
            let xsum = &c.xsum[i * bpr..(i + 1) * bpr];
            let rows_w = w.chunks_exact(inp).zip(sz.chunks_exact(bpr)).take(rows);
            for (k, (wk, szk)) in rows_w.enumerate() {
                let zero_term = if lay.affine { dot_f32(szk, xsum) } else { 0.0 };
                yt[k * n + i] = dot_f32(wk, xi) - zero_term;
            }
        }
    }
}
simd_dispatch!(matmul_rows => matmul_rows_body(c: &CtxA<'_>, r0: usize, ys: &mut [f32], scratch: &mut Vec<u8>));

// ---------------------------------------------------------------- path B

/// Longest run summed in `i32`: 65 536 products of at most 255·127 fit.
const I32_RUN: usize = 1 << 16;

struct CtxB<'a> {
    w: &'a QTensor,
    lay: Layout,
    qx: &'a [i8],
    /// For INT4 on bytes: the even and odd activation codes of each token.
    pe: &'a [i8],
    po: &'a [i8],
    sx: &'a [f32],
    qsum: &'a [i64],
    n: usize,
}

// ANCHOR: int8_matvec
/// `Σ_j q_j·p_j` in `i32`: weight codes (`i8`, or `u8` when unsigned) times
/// activation codes `p` (`i8`). Each product fits in 16 bits, which lets
/// the compiler use the CPU's multiply-pairs-and-add instruction (`pmaddwd`).
#[inline(always)]
fn idot<const SIGNED: bool>(w: &[u8], p: &[i8]) -> i32 {
    let code = |q: u8| if SIGNED { q as i8 as i16 } else { q as i16 };
    w.iter()
        .zip(p)
        .map(|(&q, &v)| code(q) as i32 * v as i32)
        .sum()
}

/// One output of path B before `S_x`: `Σ_b S_b·(Σ_{j∈b} q_j·p_j − Z_b·Σ_{j∈b} p_j)`,
/// with `psum[b] = Σ_{j∈b} p_j`.
#[inline(always)]
fn dot_int8_int8<const SIGNED: bool>(
    codes: &[u8],
    p: &[i8],
    psum: &[i64],
    params: &[QParams],
    block: usize,
) -> f32 {
    let mut acc = 0f32;
    let blocks = codes.chunks_exact(block).zip(p.chunks_exact(block));
    for ((q, pb), (w, &s)) in blocks.zip(params.iter().zip(psum)) {
        let mut dot = 0i64; // i32 runs of at most I32_RUN products
        for (qr, pr) in q.chunks(I32_RUN).zip(pb.chunks(I32_RUN)) {
            dot += idot::<SIGNED>(qr, pr) as i64;
        }
        acc += w.scale * (dot - w.zero as i64 * s) as f32;
    }
    acc
}
// ANCHOR_END: int8_matvec

/// `Σ_k lo(b_k)·pe_k + hi(b_k)·po_k` for INT4 bytes against the even and odd
/// activation codes, nibbles read unsigned (a signed one shifted by 8).
#[inline(always)]
fn idot_int4<const SIGNED: bool>(bytes: &[u8], pe: &[i8], po: &[i8]) -> i32 {
    let flip = if SIGNED { 0x88u8 } else { 0 };
    let nib = |b: u8| ((b & 0x0f) as i16, (b >> 4) as i16);
    bytes
        .iter()
        .zip(pe)
        .zip(po)
        .map(|((&b, &e), &o)| {
            let (lo, hi) = nib(b ^ flip);
            lo as i32 * e as i32 + hi as i32 * o as i32
        })
        .sum()
}

/// Path B for INT4 codes on whole bytes (see [`dot_int4`] for the layout
/// and the shift of signed nibbles).
#[inline(always)]
fn dot_int4_int8<const SIGNED: bool>(
    bytes: &[u8],
    pe: &[i8],
    po: &[i8],
    psum: &[i64],
    params: &[QParams],
    block: usize,
) -> f32 {
    let shift = if SIGNED { 8 } else { 0 };
    let half = block / 2;
    let mut acc = 0f32;
    let blocks = bytes.chunks_exact(half).zip(pe.chunks_exact(half));
    for (((q, e), o), (w, &s)) in blocks
        .zip(po.chunks_exact(half))
        .zip(params.iter().zip(psum))
    {
        let mut dot = 0i64;
        for ((qr, er), or) in q
            .chunks(I32_RUN)
            .zip(e.chunks(I32_RUN))
            .zip(o.chunks(I32_RUN))
        {
            dot += idot_int4::<SIGNED>(qr, er, or) as i64;
        }
        acc += w.scale * (dot - (w.zero as i64 + shift) * s) as f32;
    }
    acc
}

/// Path B: outputs `r0..` for all tokens (`ys` is `[rows, n]`); each
/// weight row is applied to every token while it is in cache.
#[inline(always)]
fn int8_rows_body(c: &CtxB<'_>, r0: usize, ys: &mut [f32], scratch: &mut Vec<u8>) {
    let (lay, data, n) = (&c.lay, &c.w.data[..], c.n);
    let (inp, block, bpr) = (lay.inp, lay.block, lay.bpr);
    let half = inp / 2;
    for (k, yr) in ys.chunks_mut(n).enumerate() {
        let r = r0 + k;
        let params = lay.row_params(&c.w.params, r);
        if lay.int4 && lay.aligned {
            let q = &data[r * half..(r + 1) * half];
            for (i, y) in yr.iter_mut().enumerate() {
                let (pe, po) = (
                    &c.pe[i * half..(i + 1) * half],
                    &c.po[i * half..(i + 1) * half],
                );
                let psum = &c.qsum[i * bpr..(i + 1) * bpr];
                let d = if lay.signed {
                    dot_int4_int8::<true>(q, pe, po, psum, params, block)
                } else {
                    dot_int4_int8::<false>(q, pe, po, psum, params, block)
                };
                *y = c.sx[i] * d;
            }
            continue;
        }
        let (codes, signed): (&[u8], bool) = if lay.int4 {
            // Rows or blocks that start mid-byte: decode the row to i8.
            scratch.resize(inp, 0);
            decode_int4(data, r * inp, lay.signed, scratch);
            (scratch, true)
        } else {
            (&data[r * inp..(r + 1) * inp], lay.signed)
        };
        for (i, y) in yr.iter_mut().enumerate() {
            let (p, psum) = (
                &c.qx[i * inp..(i + 1) * inp],
                &c.qsum[i * bpr..(i + 1) * bpr],
            );
            let d = if signed {
                dot_int8_int8::<true>(codes, p, psum, params, block)
            } else {
                dot_int8_int8::<false>(codes, p, psum, params, block)
            };
            *y = c.sx[i] * d;
        }
    }
}
simd_dispatch!(int8_rows => int8_rows_body(c: &CtxB<'_>, r0: usize, ys: &mut [f32], scratch: &mut Vec<u8>));
