//! Knowledge distillation: the loss of "The Transfer of Wisdom".
//!
//! A teacher's logits `v`, softened by a temperature `T`, become the soft
//! targets `q = softmax(v / T)`; the student's logits `z` give
//! `p = softmax(z / T)` at the same temperature and `softmax(z)` at 1. The
//! loss (Hinton, Vinyals & Dean 2015) mixes the two signals:
//!
//! ```text
//! L = α · T² · KL(q ‖ p) + (1 − α) · CE(softmax(z), y)
//! ∂L/∂z_i = α · T · (p_i − q_i) + (1 − α) · (softmax(z)_i − [i = y])
//! ```
//!
//! The soft part's gradient without the `T²` is `(p_i − q_i) / T`; for
//! zero-mean logits and large `T` it is about `(z_i − v_i) / (N · T²)`,
//! which is where the `T²` comes from: it keeps the soft gradients at the
//! same scale as the hard ones whatever the temperature. [`soft_gradient`]
//! writes the exact form; the tests check it against candle's autograd.
//!
//! Two forms of the teacher are accepted: dense logits over every class
//! ([`kd_loss`]; the digits experiment), or the teacher's top-k logits per
//! position ([`kd_loss_topk`]; a language model's 49,152-token vocabulary is
//! cached that way, and the soft targets are the softmax over those k).

use candle_core::{D, DType, Tensor};

use crate::error::{Error, Result, ctx};

// ANCHOR: config
/// The distillation loss's settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KdConfig {
    /// Temperature `T > 0` of the soft targets and of the student's soft
    /// predictions.
    pub temperature: f64,
    /// Weight `α ∈ [0, 1]` of the soft part; `1 − α` goes to the hard labels.
    pub alpha: f64,
    /// Multiply the soft part by `T²` (Hinton's correction); off for the
    /// ablation.
    pub t_squared: bool,
}
// ANCHOR_END: config

impl KdConfig {
    /// A validated configuration: `T` finite and positive, `α` in `[0, 1]`.
    pub fn new(temperature: f64, alpha: f64, t_squared: bool) -> Result<Self> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(Error::invalid(
                "temperature",
                format!("T must be a finite number > 0, got {temperature}"),
            ));
        }
        if !(0.0..=1.0).contains(&alpha) {
            return Err(Error::invalid(
                "alpha",
                format!("α must be in [0, 1], got {alpha}"),
            ));
        }
        Ok(KdConfig {
            temperature,
            alpha,
            t_squared,
        })
    }

    /// Training on the hard labels only (`α = 0`).
    pub fn hard() -> Self {
        KdConfig {
            temperature: 1.0,
            alpha: 0.0,
            t_squared: true,
        }
    }

    /// The factor in front of the KL term: `α · T²` (or `α`).
    pub fn soft_weight(&self) -> f64 {
        if self.t_squared {
            self.alpha * self.temperature * self.temperature
        } else {
            self.alpha
        }
    }
}

/// The parts of a distillation loss, each a scalar tensor (mean over rows).
pub struct KdLoss {
    /// What the optimiser minimises: `soft_weight · soft + (1 − α) · hard`.
    pub total: Tensor,
    /// `KL(q ‖ p)` at temperature `T`, per row, averaged.
    pub soft: Tensor,
    /// Cross-entropy of the hard labels at temperature 1, averaged.
    pub hard: Tensor,
}

fn check_rows(op: &'static str, student: &Tensor, other: &Tensor, what: &str) -> Result<usize> {
    let (n, _) = ctx(op, student.dims2())?;
    let m = ctx(op, other.dims1().or_else(|_| other.dims2().map(|d| d.0)))?;
    if n != m {
        return Err(Error::invalid(
            op,
            format!(
                "student logits have {n} rows but {what} has {m} (shapes {:?} and {:?})",
                student.dims(),
                other.dims()
            ),
        ));
    }
    Ok(n)
}

/// A top-k teacher must have a row per student row and matching index and
/// value tensors `[rows, k]`; returns `k`.
fn check_top_k(
    op: &'static str,
    student: &Tensor,
    top_indices: &Tensor,
    top_values: &Tensor,
) -> Result<usize> {
    check_rows(op, student, top_values, "the teacher's top-k")?;
    if top_indices.dims() != top_values.dims() {
        return Err(Error::invalid(
            op,
            format!(
                "teacher indices {:?} and values {:?} differ",
                top_indices.dims(),
                top_values.dims()
            ),
        ));
    }
    Ok(ctx(op, top_values.dims2())?.1)
}

/// `KL(q ‖ p) = Σ q (ln q − ln p)` per row, averaged over rows, for soft
/// targets `q = softmax(scaled_teacher)` and the student's `log_p` over
/// the same classes.
fn mean_kl(scaled_teacher: &Tensor, log_p: &Tensor) -> candle_core::Result<Tensor> {
    let q = candle_nn::ops::softmax_last_dim(scaled_teacher)?;
    let log_q = candle_nn::ops::log_softmax(scaled_teacher, D::Minus1)?;
    (q * (log_q - log_p)?)?.sum(D::Minus1)?.mean_all()
}

/// Cross-entropy of integer labels `[n]` (u32) under logits `[n, classes]`.
fn hard_part(student: &Tensor, labels: &Tensor) -> Result<Tensor> {
    check_rows("hard-label loss", student, labels, "the labels")?;
    ctx(
        "hard-label loss",
        candle_nn::loss::cross_entropy(student, labels),
    )
}

fn combine(cfg: &KdConfig, soft: Tensor, hard: Tensor) -> Result<KdLoss> {
    let total = ctx(
        "distillation loss",
        soft.affine(cfg.soft_weight(), 0.0)
            .and_then(|s| s + hard.affine(1.0 - cfg.alpha, 0.0)?),
    )?;
    Ok(KdLoss { total, soft, hard })
}

// ANCHOR: kd_loss
/// The distillation loss with a dense teacher: `student` and `teacher`
/// logits `[n, classes]`, `labels` `[n]` (u32). The teacher is a constant
/// (it is detached: no gradient flows into it).
pub fn kd_loss(
    student: &Tensor,
    teacher: &Tensor,
    labels: &Tensor,
    cfg: &KdConfig,
) -> Result<KdLoss> {
    let op = "distillation loss";
    if student.dims() != teacher.dims() {
        return Err(Error::invalid(
            op,
            format!(
                "student logits {:?} and teacher logits {:?} differ: \
                 teacher and student must share their classes (vocabulary)",
                student.dims(),
                teacher.dims()
            ),
        ));
    }
    let t = cfg.temperature;
    let soft = ctx(
        op,
        (|| {
            let log_p = candle_nn::ops::log_softmax(&(student / t)?, D::Minus1)?;
            mean_kl(&(teacher.detach() / t)?, &log_p)
        })(),
    )?;
    let hard = hard_part(student, labels)?;
    combine(cfg, soft, hard)
}
// ANCHOR_END: kd_loss

// ANCHOR: kd_loss_topk
/// The distillation loss with a sparse teacher: its `k` largest logits per
/// row, `top_values` `[n, k]` (f32) at class indices `top_indices` `[n, k]`
/// (u32). The soft targets are the softmax of those `k` logits at `T`
/// (the classes outside the top k get no mass); the student's
/// log-probabilities are over all its classes.
pub fn kd_loss_topk(
    student: &Tensor,
    top_indices: &Tensor,
    top_values: &Tensor,
    labels: &Tensor,
    cfg: &KdConfig,
) -> Result<KdLoss> {
    let op = "top-k distillation loss";
    check_top_k(op, student, top_indices, top_values)?;
    let classes = student.dim(1).unwrap_or(0);
    let max_index = ctx(op, top_indices.max_all().and_then(|m| m.to_scalar::<u32>()))?;
    if max_index as usize >= classes {
        return Err(Error::invalid(
            op,
            format!(
                "the teacher names class {max_index} but the student has {classes}: \
                 teacher and student must share their vocabulary"
            ),
        ));
    }
    let t = cfg.temperature;
    let soft = ctx(
        op,
        (|| {
            let log_p = candle_nn::ops::log_softmax(&(student / t)?, D::Minus1)?;
            let log_p = log_p.gather(&top_indices.contiguous()?, D::Minus1)?;
            mean_kl(&(top_values.detach() / t)?, &log_p)
        })(),
    )?;
    let hard = hard_part(student, labels)?;
    combine(cfg, soft, hard)
}
// ANCHOR_END: kd_loss_topk

// ANCHOR: fused
/// The top-k distillation loss as one candle operation whose backward pass
/// *is* the gradient derived above. Composed from candle's elementary
/// operations, a log-softmax over a 49,152-token vocabulary makes a dozen
/// full-size temporaries forward and as many backward; this op reads the
/// logits twice forward and writes the gradient once:
///
/// ```text
/// forward, per row:  [total, KL(q ‖ p_T), CE(p_1, y)]
/// backward, per row: g_total · (w_s · ∇soft + w_h · ∇hard) + g_soft · ∇soft + g_hard · ∇hard
///   ∇soft_i = (p_T,i − q_i) / T        ∇hard_i = p_1,i − [i = y]
/// ```
///
/// CPU only (the composed [`kd_loss_topk`] runs anywhere); its value and
/// gradient are tested against the composed form.
struct FusedKd {
    rows: usize,
    classes: usize,
    k: usize,
    /// Soft targets `q = softmax(v / T)` over the top k, `[rows · k]`.
    q: Vec<f32>,
    /// Their classes, `[rows · k]`.
    idx: Vec<u32>,
    labels: Vec<u32>,
    t: f32,
    soft_weight: f32,
    hard_weight: f32,
}

/// `ln Σ exp(z_i · s)` with the max taken out.
fn log_sum_exp(z: &[f32], s: f32) -> f32 {
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) * s;
    m + z.iter().map(|&v| (v * s - m).exp()).sum::<f32>().ln()
}

impl FusedKd {
    /// `[total, soft, hard]` of one row.
    fn row_loss(&self, r: usize, z: &[f32]) -> [f32; 3] {
        let inv_t = 1.0 / self.t;
        let lse_t = log_sum_exp(z, inv_t);
        let lse_1 = log_sum_exp(z, 1.0);
        let (q, idx) = (
            &self.q[r * self.k..(r + 1) * self.k],
            &self.idx[r * self.k..(r + 1) * self.k],
        );
        let soft: f32 = q
            .iter()
            .zip(idx)
            .filter(|(q, _)| **q > 0.0)
            .map(|(&q, &i)| q * (q.ln() - (z[i as usize] * inv_t - lse_t)))
            .sum();
        let hard = lse_1 - z[self.labels[r] as usize];
        [
            self.soft_weight * soft + self.hard_weight * hard,
            soft,
            hard,
        ]
    }

    /// The gradient of one row, for upstream gradients `g = [total, soft, hard]`.
    fn row_grad(&self, r: usize, z: &[f32], g: [f32; 3], out: &mut [f32]) {
        let inv_t = 1.0 / self.t;
        let (lse_t, lse_1) = (log_sum_exp(z, inv_t), log_sum_exp(z, 1.0));
        let ws = (g[0] * self.soft_weight + g[1]) * inv_t;
        let wh = g[0] * self.hard_weight + g[2];
        for (o, &v) in out.iter_mut().zip(z) {
            *o = ws * (v * inv_t - lse_t).exp() + wh * (v - lse_1).exp();
        }
        for j in r * self.k..(r + 1) * self.k {
            out[self.idx[j] as usize] -= ws * self.q[j];
        }
        out[self.labels[r] as usize] -= wh;
    }
}

impl candle_core::CustomOp1 for FusedKd {
    fn name(&self) -> &'static str {
        "fused-kd-loss"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let z = match (storage, layout.contiguous_offsets()) {
            (candle_core::CpuStorage::F32(v), Some((a, b))) => &v[a..b],
            _ => candle_core::bail!("fused-kd-loss wants contiguous f32 logits"),
        };
        let out: Vec<f32> = z
            .par_chunks(self.classes)
            .enumerate()
            .flat_map_iter(|(r, row)| self.row_loss(r, row))
            .collect();
        Ok((
            candle_core::CpuStorage::F32(out),
            candle_core::Shape::from((self.rows, 3)),
        ))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        use rayon::prelude::*;
        let z = arg.flatten_all()?.to_vec1::<f32>()?;
        let g = grad_res.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; z.len()];
        out.par_chunks_mut(self.classes)
            .zip(z.par_chunks(self.classes))
            .enumerate()
            .for_each(|(r, (o, row))| {
                self.row_grad(r, row, [g[3 * r], g[3 * r + 1], g[3 * r + 2]], o)
            });
        Ok(Some(Tensor::from_vec(out, arg.shape(), arg.device())?))
    }
}

/// [`kd_loss_topk`] as one fused CPU operation (same arguments, same
/// result); other devices get the composed form.
pub fn kd_loss_topk_fused(
    student: &Tensor,
    top_indices: &Tensor,
    top_values: &Tensor,
    labels: &Tensor,
    cfg: &KdConfig,
) -> Result<KdLoss> {
    if !student.device().is_cpu() {
        return kd_loss_topk(student, top_indices, top_values, labels, cfg);
    }
    let op = "fused distillation loss";
    let (rows, classes) = ctx(op, student.dims2())?;
    let k = check_top_k(op, student, top_indices, top_values)?;
    check_rows(op, student, labels, "the labels")?;
    let q = ctx(
        op,
        (top_values.detach() / cfg.temperature)
            .and_then(|v| candle_nn::ops::softmax_last_dim(&v.to_dtype(DType::F32)?))
            .and_then(|q| q.flatten_all()?.to_vec1::<f32>()),
    )?;
    let idx = ctx(
        op,
        top_indices.flatten_all().and_then(|i| i.to_vec1::<u32>()),
    )?;
    let labels = ctx(op, labels.to_vec1::<u32>())?;
    if let Some(bad) = idx.iter().chain(&labels).find(|&&i| i as usize >= classes) {
        return Err(Error::invalid(
            op,
            format!(
                "class {bad} named by the teacher or the labels, but the student has {classes}: \
                 teacher and student must share their vocabulary"
            ),
        ));
    }
    let fused = FusedKd {
        rows,
        classes,
        k,
        q,
        idx,
        labels,
        t: cfg.temperature as f32,
        soft_weight: cfg.soft_weight() as f32,
        hard_weight: (1.0 - cfg.alpha) as f32,
    };
    let parts = ctx(
        op,
        student
            .to_dtype(DType::F32)
            .and_then(|s| s.contiguous())
            .and_then(|s| s.apply_op1(fused))
            .and_then(|p| p.mean(0)),
    )?;
    let part = |i| ctx(op, parts.get(i));
    Ok(KdLoss {
        total: part(0)?,
        soft: part(1)?,
        hard: part(2)?,
    })
}
// ANCHOR_END: fused

// ANCHOR: soft_gradient
/// The exact gradient of the soft part, `∂/∂z [F · KL(q ‖ p)]`, per row:
/// `F · (p − q) / T` with `F = T²` when `t_squared` (so `T · (p − q)`).
/// Rows of `student` and `teacher` are `[n, classes]`.
pub fn soft_gradient(student: &Tensor, teacher: &Tensor, cfg: &KdConfig) -> Result<Tensor> {
    let t = cfg.temperature;
    let f = if cfg.t_squared { t * t } else { 1.0 };
    ctx(
        "soft gradient",
        (|| {
            let p = candle_nn::ops::softmax_last_dim(&(student / t)?)?;
            let q = candle_nn::ops::softmax_last_dim(&(teacher / t)?)?;
            (p - q)?.affine(f / t, 0.0)
        })(),
    )
}

/// Hinton's high-temperature approximation of the soft gradient without
/// `T²`: `(z_i − v_i) / (N · T²)` after centring each row of logits.
pub fn soft_gradient_high_t(student: &Tensor, teacher: &Tensor, t: f64) -> Result<Tensor> {
    ctx(
        "high-temperature gradient",
        (|| {
            let n = student.dim(D::Minus1)? as f64;
            let z = student.broadcast_sub(&student.mean_keepdim(D::Minus1)?)?;
            let v = teacher.broadcast_sub(&teacher.mean_keepdim(D::Minus1)?)?;
            (z - v)?.affine(1.0 / (n * t * t), 0.0)
        })(),
    )
}
// ANCHOR_END: soft_gradient

/// The `k` largest logits of every row of `[n, classes]` logits, as
/// `(indices [n, k] u32, values [n, k] f32)`, largest first.
pub fn top_k(logits: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
    let op = "teacher top-k";
    let (n, classes) = ctx(op, logits.dims2())?;
    if k == 0 || k > classes {
        return Err(Error::invalid(
            op,
            format!("k must be in 1..={classes}, got {k}"),
        ));
    }
    let rows = ctx(
        op,
        logits.to_dtype(DType::F32).and_then(|l| l.to_vec2::<f32>()),
    )?;
    let mut idx = Vec::with_capacity(n * k);
    let mut val = Vec::with_capacity(n * k);
    for row in rows {
        let mut order: Vec<u32> = (0..classes as u32).collect();
        let key = |i: &u32| row[*i as usize];
        order.select_nth_unstable_by(k - 1, |a, b| key(b).total_cmp(&key(a)));
        order.truncate(k);
        order.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.cmp(b)));
        val.extend(order.iter().map(key));
        idx.extend(order);
    }
    let device = logits.device();
    Ok((
        ctx(op, Tensor::from_vec(idx, (n, k), device))?,
        ctx(op, Tensor::from_vec(val, (n, k), device))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn logits(seed: u64, n: usize, c: usize, scale: f32) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let v: Vec<f32> = (0..n * c)
            .map(|_| rng.random_range(-scale..scale))
            .collect();
        Tensor::from_vec(v, (n, c), &Device::Cpu).unwrap()
    }

    fn max_abs(t: &Tensor) -> f32 {
        t.abs().unwrap().max_all().unwrap().to_scalar().unwrap()
    }

    #[test]
    fn autograd_matches_the_analytic_gradient() {
        let labels = Tensor::new(&[3u32, 0, 9, 5], &Device::Cpu).unwrap();
        for &t in &[1.0, 2.0, 4.0, 20.0] {
            for &t2 in &[true, false] {
                for &alpha in &[0.0, 0.5, 1.0] {
                    let cfg = KdConfig::new(t, alpha, t2).unwrap();
                    let z = Var::from_tensor(&logits(1, 4, 10, 3.0)).unwrap();
                    let v = logits(2, 4, 10, 3.0);
                    let loss = kd_loss(z.as_tensor(), &v, &labels, &cfg).unwrap();
                    let grads = loss.total.backward().unwrap();
                    let g = grads.get(z.as_tensor()).unwrap();
                    // The loss averages over 4 rows: each row's gradient / 4.
                    let soft = soft_gradient(z.as_tensor(), &v, &cfg).unwrap();
                    let hard = {
                        let p = candle_nn::ops::softmax_last_dim(z.as_tensor()).unwrap();
                        let onehot =
                            candle_nn::encoding::one_hot(labels.clone(), 10, 1f32, 0f32).unwrap();
                        (p - onehot).unwrap()
                    };
                    let expect = ((soft.affine(cfg.alpha, 0.0).unwrap()
                        + hard.affine(1.0 - alpha, 0.0).unwrap())
                    .unwrap()
                        / 4.0)
                        .unwrap();
                    let err = max_abs(&(g - &expect).unwrap());
                    assert!(err < 1e-6, "T={t} α={alpha} T²={t2}: error {err}");
                }
            }
        }
    }

    #[test]
    fn high_temperature_approximation_converges() {
        let z = logits(3, 8, 10, 3.0);
        let v = logits(4, 8, 10, 3.0);
        let mut last = f32::INFINITY;
        for &t in &[2.0, 5.0, 20.0, 100.0] {
            let cfg = KdConfig::new(t, 1.0, false).unwrap();
            let exact = soft_gradient(&z, &v, &cfg).unwrap();
            let approx = soft_gradient_high_t(&z, &v, t).unwrap();
            let rel = max_abs(&(&exact - &approx).unwrap()) / max_abs(&exact);
            assert!(rel < last, "T={t}: relative error {rel} did not shrink");
            last = rel;
        }
        assert!(last < 0.02, "relative error at T=100: {last}");
    }

    #[test]
    fn topk_with_every_class_is_the_dense_loss() {
        let z = logits(5, 6, 12, 4.0);
        let v = logits(6, 6, 12, 4.0);
        let labels = Tensor::new(&[1u32, 2, 3, 4, 5, 6], &Device::Cpu).unwrap();
        let cfg = KdConfig::new(3.0, 0.7, true).unwrap();
        let dense = kd_loss(&z, &v, &labels, &cfg).unwrap();
        let (i, val) = top_k(&v, 12).unwrap();
        let sparse = kd_loss_topk(&z, &i, &val, &labels, &cfg).unwrap();
        let d: f32 = dense.total.to_scalar().unwrap();
        let s: f32 = sparse.total.to_scalar().unwrap();
        assert!((d - s).abs() < 1e-5, "{d} vs {s}");
        // Fewer classes: the soft part changes, the hard part does not.
        let (i, val) = top_k(&v, 3).unwrap();
        let few = kd_loss_topk(&z, &i, &val, &labels, &cfg).unwrap();
        let h1: f32 = dense.hard.to_scalar().unwrap();
        let h2: f32 = few.hard.to_scalar().unwrap();
        assert_eq!(h1, h2);
    }

    #[test]
    fn fused_loss_matches_the_composed_one() {
        let dev = Device::Cpu;
        let v = logits(8, 5, 30, 5.0);
        let labels = Tensor::new(&[0u32, 7, 29, 3, 3], &dev).unwrap();
        for &(t, alpha, t2, k) in &[
            (1.0, 0.5, true, 30),
            (4.0, 0.9, true, 5),
            (8.0, 1.0, false, 12),
        ] {
            let cfg = KdConfig::new(t, alpha, t2).unwrap();
            let (i, val) = top_k(&v, k).unwrap();
            let z1 = Var::from_tensor(&logits(9, 5, 30, 5.0)).unwrap();
            let z2 = Var::from_tensor(z1.as_tensor()).unwrap();
            let a = kd_loss_topk(z1.as_tensor(), &i, &val, &labels, &cfg).unwrap();
            let b = kd_loss_topk_fused(z2.as_tensor(), &i, &val, &labels, &cfg).unwrap();
            for (x, y) in [(&a.total, &b.total), (&a.soft, &b.soft), (&a.hard, &b.hard)] {
                let (x, y): (f32, f32) = (x.to_scalar().unwrap(), y.to_scalar().unwrap());
                assert!((x - y).abs() < 1e-5 * x.abs().max(1.0), "{x} vs {y}");
            }
            // Gradients of the total and of a mix of the parts.
            let mix = |l: &KdLoss| {
                (&l.total + (&l.soft * 0.3).unwrap() - (&l.hard * 0.2).unwrap()).unwrap()
            };
            let ga = mix(&a).backward().unwrap();
            let gb = mix(&b).backward().unwrap();
            let d = max_abs(
                &(ga.get(z1.as_tensor()).unwrap() - gb.get(z2.as_tensor()).unwrap()).unwrap(),
            );
            assert!(d < 1e-6, "T={t} k={k}: gradients differ by {d}");
        }
    }

    #[test]
    fn bad_inputs_are_named() {
        assert!(KdConfig::new(0.0, 0.5, true).is_err());
        assert!(KdConfig::new(-1.0, 0.5, true).is_err());
        assert!(KdConfig::new(f64::NAN, 0.5, true).is_err());
        assert!(KdConfig::new(2.0, 1.5, true).is_err());
        let cfg = KdConfig::new(2.0, 0.5, true).unwrap();
        let labels = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
        let e = kd_loss(
            &logits(1, 2, 10, 1.0),
            &logits(1, 2, 11, 1.0),
            &labels,
            &cfg,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("share their classes"), "{e}");
        let i = Tensor::new(&[[15u32, 0], [1, 2]], &Device::Cpu).unwrap();
        let v = logits(1, 2, 2, 1.0);
        let e = kd_loss_topk(&logits(1, 2, 10, 1.0), &i, &v, &labels, &cfg)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("vocabulary"), "{e}");
        let e = kd_loss(
            &logits(1, 2, 10, 1.0),
            &logits(1, 2, 10, 1.0),
            &Tensor::new(&[0u32], &Device::Cpu).unwrap(),
            &cfg,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("rows"), "{e}");
    }
}
