//! GPTQ (Frantar et al., 2022): rounding that knows the inputs.
//!
//! Round-to-nearest quantizes each weight on its own. GPTQ quantizes a
//! row's weights one column at a time and moves each rounding error onto
//! the columns not yet quantized, in the proportions that cancel it best
//! for the inputs the calibration text produced ([`super::calibrate`]).
//! With `H = XᵀX` (damped) and `U` the upper Cholesky factor of `H⁻¹`
//! (`H⁻¹ = UᵀU`), column `j` of row `w` is done as
//!
//! ```text
//! q    = grid(w[j])                    the nearest code on the block's grid
//! e    = (w[j] − q) / U[j][j]
//! w[k] = w[k] − e · U[j][k]            for every k > j
//! ```
//!
//! which is the optimal update of Optimal Brain Surgeon for one weight,
//! with `U`'s rows standing in for the shrinking inverse Hessians. A
//! block's grid (its scale, and its minimum for the `_1` types) is set by
//! GGML's own rule from the row's values as they stand when the block is
//! reached. Rows are independent: they run in parallel.
//!
//! The output is blocks of the GGML type asked for, as llama.cpp reads
//! them: the same file layout as round-to-nearest, other codes.

use candle_core::quantized::GgmlDType;
use half::f16;
use rayon::prelude::*;
use serde::Serialize;

use super::calibrate::Hessian;
use crate::error::{Error, Result};
use crate::ggml::QK;
use crate::ggml::blocks::{Block, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0};

/// GPTQ's parameters, recorded with every result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GptqParams {
    /// Added to `H`'s diagonal, as a fraction of its mean (GPTQ's
    /// `percdamp`; its paper uses 0.01).
    pub damp: f64,
    /// Scales tried below GGML's, 2.5 % apart, per block (GPTQ's `mse`
    /// grid search; 0: GGML's scale).
    pub shrink_steps: usize,
}

impl GptqParams {
    /// The best of a few trial settings scored on the chapter's held-out
    /// text (the chapter says so beside its figures).
    pub const DEFAULT: GptqParams = GptqParams {
        damp: 0.1,
        shrink_steps: 12,
    };
}

impl Default for GptqParams {
    fn default() -> Self {
        GptqParams::DEFAULT
    }
}

/// The shrink of one step of the scale search.
const SHRINK_STEP: f32 = 0.025;

/// The types GPTQ writes here: GGML's 32-weight blocks.
pub fn supports(t: GgmlDType) -> bool {
    matches!(
        t,
        GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1 | GgmlDType::Q8_0
    )
}

// ANCHOR: grid
/// One block's grid: `value = d·(q − zero) + m` for codes `q` in `0..=max`,
/// with `d` and `m` rounded to f16 as the block stores them.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Grid {
    d: f32,
    m: f32,
    zero: i32,
    max: i32,
}

impl Grid {
    /// GGML's rule for type `t` on the block's values `x`: the symmetric
    /// types put the value of largest magnitude on the end code (`−8·d`
    /// for Q4_0); the `_1` types span `[min, max]`. Then, over
    /// `shrink_steps` steps of 2.5 %, the scale with the least squared
    /// error on `x` (0 steps: GGML's scale).
    fn of(t: GgmlDType, x: &[f32], shrink_steps: usize) -> Grid {
        let signed_max = x
            .iter()
            .fold(0f32, |a, &v| if v.abs() > a.abs() { v } else { a });
        let (lo, hi) = x
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        let half = |v: f32| f16::from_f32(v).to_f32();
        let (d, m, zero, max) = match t {
            GgmlDType::Q4_0 => (signed_max / -8.0, 0.0, 8, 15),
            GgmlDType::Q5_0 => (signed_max / -16.0, 0.0, 16, 31),
            GgmlDType::Q8_0 => (signed_max.abs() / 127.0, 0.0, 127, 254),
            GgmlDType::Q4_1 => ((hi - lo) / 15.0, lo, 0, 15),
            _ => ((hi - lo) / 31.0, lo, 0, 31),
        };
        let g = Grid {
            d: half(d),
            m: half(m),
            zero,
            max,
        };
        // GPTQ's `mse` grid: shrink the scale while the block's squared
        // error falls (the end values are clipped; the rest land closer).
        let err = |g: &Grid| {
            x.iter()
                .map(|&v| (v - g.value(g.code(v))).powi(2))
                .sum::<f32>()
        };
        let mut best = (err(&g), g);
        for k in 1..=shrink_steps {
            let c = Grid {
                d: half(d * (1.0 - SHRINK_STEP * k as f32)),
                ..g
            };
            let e = err(&c);
            if e < best.0 {
                best = (e, c);
            }
        }
        best.1
    }

    /// The nearest code to `v` (the end codes when `v` is beyond them).
    fn code(&self, v: f32) -> i32 {
        if self.d == 0.0 {
            return self.zero;
        }
        (((v - self.m) / self.d + self.zero as f32 + 0.5).floor() as i32).clamp(0, self.max)
    }

    fn value(&self, q: i32) -> f32 {
        self.d * (q - self.zero) as f32 + self.m
    }
}
// ANCHOR_END: grid

/// Appends one block of type `t` with grid `g` and codes `q`.
fn write_block(t: GgmlDType, g: &Grid, q: &[i32], out: &mut Vec<u8>) {
    let u8s: [u8; QK] = std::array::from_fn(|i| q[i] as u8);
    match t {
        GgmlDType::Q4_0 => BlockQ4_0::from_codes(g.d, &u8s).write(out),
        GgmlDType::Q4_1 => BlockQ4_1::from_codes(g.d, g.m, &u8s).write(out),
        GgmlDType::Q5_0 => BlockQ5_0::from_codes(g.d, &u8s).write(out),
        GgmlDType::Q5_1 => BlockQ5_1::from_codes(g.d, g.m, &u8s).write(out),
        _ => BlockQ8_0::from_codes(g.d, &std::array::from_fn(|i| (q[i] - 127) as i8)).write(out),
    }
}

/// `L` with `a = L·Lᵀ`, in place (lower triangle; the upper is zeroed).
fn cholesky(a: &mut [f64], n: usize) -> Result<()> {
    for j in 0..n {
        let (top, below) = a.split_at_mut((j + 1) * n);
        let row_j = &mut top[j * n..];
        let d = row_j[j] - row_j[..j].iter().map(|v| v * v).sum::<f64>();
        if d <= 0.0 || !d.is_finite() {
            return Err(Error::invalid(
                "GPTQ",
                format!("H is not positive definite at column {j} of {n}: raise the damping"),
            ));
        }
        row_j[j] = d.sqrt();
        row_j[j + 1..].fill(0.0);
        let lj = &row_j[..=j];
        below.par_chunks_mut(n).for_each(|row_i| {
            let s: f64 = row_i[..j].iter().zip(&lj[..j]).map(|(x, y)| x * y).sum();
            row_i[j] = (row_i[j] - s) / lj[j];
        });
    }
    Ok(())
}

// ANCHOR: inverse_factor
/// `U`, upper triangular, with `(H + λI)⁻¹ = UᵀU` and `λ = damp · mean(diag H)`.
/// With `J` the reversal of order, factor `J·H·J = L·Lᵀ`; then
/// `H = R·Rᵀ` with `R = J·L·J` upper, `H⁻¹ = R⁻ᵀR⁻¹`, and `U = R⁻¹ =
/// J·L⁻¹·J`: one factorization and one triangular inverse, read backwards.
fn inverse_factor(h: &Hessian, damp: f64) -> Result<Vec<f64>> {
    let n = h.dim;
    let mean = (0..n).map(|i| f64::from(h.xtx[i * n + i])).sum::<f64>() / n as f64;
    let lambda = damp * mean.max(f64::MIN_POSITIVE);
    // a = J·(H + λI)·J. An input never seen (a zero diagonal) is given 1
    // there: its weights are rounded to nearest.
    let mut a = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            let v = f64::from(h.xtx[(n - 1 - i) * n + (n - 1 - j)]);
            a[i * n + j] = match (i == j, v == 0.0) {
                (true, true) => 1.0,
                (true, false) => v + lambda,
                _ => v,
            };
        }
    }
    cholesky(&mut a, n)?;
    // Column c of L⁻¹ by forward substitution (L·y = e_c), in parallel.
    let columns: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|c| {
            let mut y = vec![0f64; n];
            y[c] = 1.0 / a[c * n + c];
            for i in c + 1..n {
                let row = &a[i * n + c..i * n + i];
                let s: f64 = row.iter().zip(&y[c..i]).map(|(l, y)| l * y).sum();
                y[i] = -s / a[i * n + i];
            }
            y
        })
        .collect();
    // U[i][j] = L⁻¹[n−1−i][n−1−j].
    let mut u = vec![0f64; n * n];
    for (c, y) in columns.iter().enumerate() {
        let j = n - 1 - c;
        for (i, &v) in y.iter().enumerate().skip(c) {
            u[(n - 1 - i) * n + j] = v;
        }
    }
    Ok(u)
}
// ANCHOR_END: inverse_factor

/// A matrix quantized by GPTQ.
pub struct Quantized {
    /// The GGML blocks, row by row.
    pub bytes: Vec<u8>,
    /// What the blocks decode to.
    pub values: Vec<f32>,
}

/// Quantizes `w` (`rows × cols`, row-major, `y = x·wᵀ`) into type `t`
/// with GPTQ against `h` (the inputs' `XᵀX`, `cols × cols`).
pub fn quantize(
    t: GgmlDType,
    w: &[f32],
    rows: usize,
    cols: usize,
    h: &Hessian,
    params: &GptqParams,
) -> Result<Quantized> {
    if !supports(t) {
        return Err(Error::invalid(
            "GPTQ",
            format!("{t:?} is not one of GGML's 32-weight block types"),
        ));
    }
    if w.len() != rows * cols || cols % QK != 0 || h.dim != cols || h.xtx.len() != cols * cols {
        return Err(Error::invalid(
            "GPTQ",
            format!(
                "a {rows}×{cols} matrix ({} values) with a {}×{} Hessian: the shapes do not agree (columns in whole blocks of {QK})",
                w.len(),
                h.dim,
                h.dim
            ),
        ));
    }
    let u64s = inverse_factor(h, params.damp)?;
    let u: Vec<f32> = u64s.iter().map(|&v| v as f32).collect();
    let blocks_per_row = cols / QK;
    let block_bytes = t.type_size();
    let done: Vec<(Vec<u8>, Vec<f32>)> = w
        .par_chunks(cols)
        .map(|row| {
            gptq_row(
                t,
                row,
                &u,
                params.shrink_steps,
                blocks_per_row * block_bytes,
            )
        })
        .collect();
    let mut bytes = Vec::with_capacity(rows * blocks_per_row * block_bytes);
    let mut values = Vec::with_capacity(rows * cols);
    for (b, v) in done {
        bytes.extend(b);
        values.extend(v);
    }
    Ok(Quantized { bytes, values })
}

// ANCHOR: gptq_row
/// One column of one row: `w[j]` becomes `value` (its code's), and the
/// error, scaled by `U[j][j]`, is taken off the later columns in the
/// proportions of `U`'s row `j` (`u_row`). Returns the scaled error.
pub fn spread(w: &mut [f32], j: usize, u_row: &[f32], value: f32) -> f32 {
    let e = (w[j] - value) / u_row[j];
    w[j] = value;
    for (wk, &ujk) in w[j + 1..].iter_mut().zip(&u_row[j + 1..]) {
        *wk -= e * ujk;
    }
    e
}

/// One row: a block's grid is set when the block is reached, then each
/// column is rounded and its error spread over the columns after it.
fn gptq_row(
    t: GgmlDType,
    row: &[f32],
    u: &[f32],
    shrink_steps: usize,
    capacity: usize,
) -> (Vec<u8>, Vec<f32>) {
    let cols = row.len();
    let mut w = row.to_vec();
    let mut out = Vec::with_capacity(capacity);
    let mut q = [0i32; QK];
    for b in (0..cols).step_by(QK) {
        let grid = Grid::of(t, &w[b..b + QK], shrink_steps);
        for j in b..b + QK {
            q[j - b] = grid.code(w[j]);
            spread(
                &mut w,
                j,
                &u[j * cols..(j + 1) * cols],
                grid.value(q[j - b]),
            );
        }
        write_block(t, &grid, &q, &mut out);
    }
    (out, w)
}
// ANCHOR_END: gptq_row

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ggml::dtype;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Uniform in [−1, 1), seeded.
    struct Uniform(StdRng);
    impl Uniform {
        fn seeded(seed: u64) -> Uniform {
            Uniform(StdRng::seed_from_u64(seed))
        }
        fn next(&mut self) -> f32 {
            self.0.random_range(-1.0..1.0)
        }
    }

    /// Inputs with correlated features (as activations are): `n × dim`.
    fn inputs(n: usize, dim: usize, rng: &mut Uniform) -> Vec<f32> {
        let mix: Vec<f32> = (0..dim * dim).map(|_| rng.next()).collect();
        let mut x = vec![0f32; n * dim];
        for r in 0..n {
            let z: Vec<f32> = (0..dim).map(|_| rng.next()).collect();
            for c in 0..dim {
                // A few shared directions dominate.
                x[r * dim + c] =
                    (0..4).map(|k| z[k] * mix[k * dim + c]).sum::<f32>() * 3.0 + 0.1 * z[c];
            }
        }
        x
    }

    fn xtx(x: &[f32], n: usize, dim: usize) -> Hessian {
        let mut h = vec![0f32; dim * dim];
        for r in 0..n {
            let row = &x[r * dim..(r + 1) * dim];
            for i in 0..dim {
                for j in 0..dim {
                    h[i * dim + j] += row[i] * row[j];
                }
            }
        }
        Hessian {
            dim,
            samples: n,
            xtx: h,
        }
    }

    /// `‖X·(W − Ŵ)ᵀ‖²`, the output error over the inputs.
    fn output_error(x: &[f32], n: usize, w: &[f32], wq: &[f32], rows: usize, dim: usize) -> f64 {
        let mut e = 0f64;
        for r in 0..n {
            for o in 0..rows {
                let d: f32 = (0..dim)
                    .map(|c| x[r * dim + c] * (w[o * dim + c] - wq[o * dim + c]))
                    .sum();
                e += f64::from(d).powi(2);
            }
        }
        e
    }

    #[test]
    fn the_inverse_factor_is_upper_and_inverts_h() {
        let mut rng = Uniform::seeded(7);
        let dim = 64;
        let x = inputs(200, dim, &mut rng);
        let h = xtx(&x, 200, dim);
        let u = inverse_factor(&h, 0.01).unwrap();
        let mean = (0..dim).map(|i| f64::from(h.xtx[i * dim + i])).sum::<f64>() / dim as f64;
        // (UᵀU)(H + λI) = I.
        let mut worst = 0f64;
        for i in 0..dim {
            for j in 0..dim {
                assert!(i <= j || u[i * dim + j] == 0.0, "U is not upper");
                let mut s = 0f64;
                for k in 0..dim {
                    let hinv_ik: f64 = (0..dim).map(|m| u[m * dim + i] * u[m * dim + k]).sum();
                    let hkj =
                        f64::from(h.xtx[k * dim + j]) + if k == j { 0.01 * mean } else { 0.0 };
                    s += hinv_ik * hkj;
                }
                worst = worst.max((s - if i == j { 1.0 } else { 0.0 }).abs());
            }
        }
        assert!(worst < 1e-6, "UᵀU·H differs from I by {worst}");
    }

    #[test]
    fn gptq_lowers_the_output_error_and_its_blocks_decode_to_its_values() {
        let mut rng = Uniform::seeded(42);
        let (n, rows, dim) = (256, 16, 128);
        let x = inputs(n, dim, &mut rng);
        let h = xtx(&x, n, dim);
        let w: Vec<f32> = (0..rows * dim).map(|_| rng.next() * 0.05).collect();
        for t in [
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
            GgmlDType::Q5_1,
            GgmlDType::Q8_0,
        ] {
            let g = quantize(t, &w, rows, dim, &h, &GptqParams::default()).unwrap();
            assert_eq!(g.bytes.len(), rows * dim / QK * t.type_size());
            let mut decoded = vec![0f32; rows * dim];
            dtype::dequantize(t, &g.bytes, &mut decoded).unwrap();
            assert_eq!(decoded, g.values, "{t:?}: blocks and values disagree");
            // Round-to-nearest, GGML's own encoder.
            let rtn_bytes = dtype::quantize(t, &w, &[rows, dim]).unwrap();
            let mut rtn = vec![0f32; rows * dim];
            dtype::dequantize(t, &rtn_bytes, &mut rtn).unwrap();
            let (e_gptq, e_rtn) = (
                output_error(&x, n, &w, &g.values, rows, dim),
                output_error(&x, n, &w, &rtn, rows, dim),
            );
            assert!(
                e_gptq < 0.8 * e_rtn,
                "{t:?}: GPTQ's output error {e_gptq:.3e} is not below round-to-nearest's {e_rtn:.3e}"
            );
        }
    }

    #[test]
    fn with_h_the_identity_gptq_is_round_to_nearest() {
        let mut rng = Uniform::seeded(3);
        let (rows, dim) = (8, 64);
        let w: Vec<f32> = (0..rows * dim).map(|_| rng.next()).collect();
        let mut id = vec![0f32; dim * dim];
        for i in 0..dim {
            id[i * dim + i] = 1.0;
        }
        let h = Hessian {
            dim,
            samples: 1,
            xtx: id,
        };
        let ggml = GptqParams {
            shrink_steps: 0,
            ..GptqParams::default()
        };
        let g = quantize(GgmlDType::Q4_0, &w, rows, dim, &h, &ggml).unwrap();
        let rtn = dtype::quantize(GgmlDType::Q4_0, &w, &[rows, dim]).unwrap();
        let mut rtn_v = vec![0f32; rows * dim];
        dtype::dequantize(GgmlDType::Q4_0, &rtn, &mut rtn_v).unwrap();
        let differ = g.values.iter().zip(&rtn_v).filter(|(a, b)| a != b).count();
        // GGML rounds with the unrounded scale; the grid here uses the
        // stored (f16) one: a tie may go the other way, rarely.
        assert!(
            differ <= rows * dim / 100,
            "{differ} of {} values differ",
            rows * dim
        );
    }

    #[test]
    fn bad_shapes_and_types_are_refused() {
        let h = Hessian {
            dim: 64,
            samples: 1,
            xtx: vec![0.0; 64 * 64],
        };
        let w = vec![0.1f32; 2 * 32];
        assert!(quantize(GgmlDType::Q4_0, &w, 2, 32, &h, &GptqParams::default()).is_err());
        assert!(quantize(GgmlDType::Q4K, &w, 1, 64, &h, &GptqParams::default()).is_err());
        // A Hessian of nothing seen: every input given 1, round-to-nearest.
        assert!(quantize(GgmlDType::Q4_0, &w, 1, 64, &h, &GptqParams::default()).is_ok());
    }
}
