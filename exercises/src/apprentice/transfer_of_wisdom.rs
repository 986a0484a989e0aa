//! Trials of "The Transfer of Wisdom": knowledge distillation, by hand.
//!
//! A small **student** learns from a large **teacher** (Hinton, Vinyals &
//! Dean, "Distilling the Knowledge in a Neural Network", 2015). Besides the
//! true label, the student is trained to match the teacher's **soft
//! targets**: the teacher's probabilities at a high temperature `t`, which
//! say not only which class is right but how the wrong ones rank (a 2 that
//! looks a little like a 3, and not at all like a 7).
//!
//! Notation, for `N` classes, student logits `z`, teacher logits `v`:
//!
//! ```text
//! p = softmax(z / t)      q = softmax(v / t)      (soft: student, teacher)
//! s = softmax(z)                                  (the student at t = 1)
//! ```
//!
//! The checks compare your answers with a reference written in f64 in
//! `exercises/tests/checks/transfer_of_wisdom.rs`, and your gradient with
//! central finite differences of that reference loss.
// The stubs do not use their arguments yet: that is your job.
#![allow(unused_variables)]

use ndarray::{Array1, ArrayView1};

/// Trial 1. Log-softmax at temperature `t > 0`:
/// `ℓᵢ = zᵢ/t − ln Σⱼ exp(zⱼ/t)`, the logarithm of `softmax(z / t)`.
///
/// Never take `ln` of a softmax: a probability that underflows to 0 gives
/// −∞ (in f32, softmax of `[0, −200]` is `[1, 0]`, but its log-softmax is
/// `[0, −200]`). With `sᵢ = zᵢ/t` and `m = maxⱼ sⱼ`, compute instead
///
/// ```text
/// ℓᵢ = (sᵢ − m) − ln Σⱼ exp(sⱼ − m)
/// ```
///
/// Every exponent is ≤ 0 and the largest is exactly 0, so the sum lies in
/// `[1, N]`: no overflow (logits of 1000 are fine) and no `ln 0`. A logit
/// at −∞ gets −∞.
///
/// Example: `[1, 2, 3]` at `t = 1` → `[−2.4076, −1.4076, −0.4076]`;
/// `[2, 4, 6]` at `t = 2` gives the same.
pub fn log_softmax_t(logits: ArrayView1<f32>, t: f32) -> Array1<f32> {
    todo!("scale by 1/t, shift by the max, subtract the log of the sum of exponentials")
}

/// Trial 2. The distillation loss of Hinton et al. (2015):
///
/// ```text
/// L  = α · F · KL(q ‖ p) + (1 − α) · CE
/// KL(q ‖ p) = Σᵢ qᵢ (ln qᵢ − ln pᵢ)       (a term with qᵢ = 0 counts 0)
/// CE = −ln s[label]                         (the hard label, at t = 1)
/// F  = t² if t_squared, else 1
/// ```
///
/// Take every `ln` from a log-softmax (trial 1): `ln qᵢ` and `ln pᵢ`
/// directly, and `qᵢ = exp(ln qᵢ)`. A teacher logit at −∞ gives `qᵢ = 0`
/// and `ln qᵢ = −∞`: skip that term, or `0 · ∞` makes the loss NaN.
/// KL is ≥ 0, and 0 exactly when `p = q`. Why `F = t²`: see trial 5.
///
/// Example: student `z = [0, 0]`, teacher `v = [2 ln 3, 0] ≈ [2.1972, 0]`,
/// label 0, `t = 2`, `α = 0.5`, `t_squared`. Then
/// `q = softmax([ln 3, 0]) = [0.75, 0.25]` and `p = s = [0.5, 0.5]`;
/// `KL = 0.75 ln 1.5 + 0.25 ln 0.5 = 0.130812`, `CE = ln 2 = 0.693147`, and
/// `L = 0.5 · 4 · 0.130812 + 0.5 · 0.693147 = 0.608198`.
pub fn kd_loss(
    student: ArrayView1<f32>,
    teacher: ArrayView1<f32>,
    label: usize,
    t: f32,
    alpha: f32,
    t_squared: bool,
) -> f32 {
    todo!("α · F · KL(q ‖ p) + (1 − α) · CE, every ln from a log-softmax")
}

/// Trial 3. The exact gradient of [`kd_loss`] with respect to the
/// student's logits `z`:
///
/// ```text
/// ∂L/∂zᵢ = α · F · (pᵢ − qᵢ) / t + (1 − α) · (sᵢ − [i = label])
/// ```
///
/// Derivation. Split `KL(q ‖ p) = Σⱼ qⱼ ln qⱼ − Σⱼ qⱼ ln pⱼ`: the first sum
/// (minus the entropy of q) does not depend on `z`. For the second,
/// `ln pⱼ = zⱼ/t − ln Σₖ exp(zₖ/t)`, so
///
/// ```text
/// ∂ ln pⱼ / ∂zᵢ      = ([i = j] − pᵢ) / t
/// ∂/∂zᵢ (−Σⱼ qⱼ ln pⱼ) = −(qᵢ − pᵢ Σⱼ qⱼ) / t = (pᵢ − qᵢ) / t     (Σⱼ qⱼ = 1)
/// ```
///
/// CE is the same thing at `t = 1` with `q` the one-hot label:
/// `sᵢ − [i = label]`. Mind the `1/t`: the soft gradient shrinks as the
/// temperature grows (trials 4 and 5).
///
/// Example (the one of trial 2): `α · F / t = 0.5 · 4 / 2 = 1` and
/// `p − q = [−0.25, 0.25]`; `(1 − α)(s − onehot) = 0.5 · [−0.5, 0.5]`; the
/// gradient is `[−0.5, 0.5]`. Its entries always add up to 0.
pub fn kd_gradient(
    student: ArrayView1<f32>,
    teacher: ArrayView1<f32>,
    label: usize,
    t: f32,
    alpha: f32,
    t_squared: bool,
) -> Array1<f32> {
    todo!("α · F · (p − q) / t + (1 − α) · (s − onehot(label))")
}

/// Trial 4. Hinton's high-temperature approximation of the soft gradient
/// `(pᵢ − qᵢ) / t` (trial 3 with `α = 1` and no `t²`).
///
/// For a large `t` every `zᵢ/t` is small, and `exp(x) ≈ 1 + x`:
///
/// ```text
/// pᵢ = exp(zᵢ/t) / Σⱼ exp(zⱼ/t) ≈ (1 + zᵢ/t) / (N + Σⱼ zⱼ/t)
/// ```
///
/// If the logits have zero mean (`Σⱼ zⱼ = 0`, and the same for `v`), the
/// denominator is `N`, the number of classes, and
///
/// ```text
/// pᵢ − qᵢ ≈ (zᵢ − vᵢ) / (N t)          (pᵢ − qᵢ) / t ≈ (zᵢ − vᵢ) / (N t²)
/// ```
///
/// So first subtract from each vector its own mean (a softmax does not
/// change when every logit moves by the same amount: nothing is lost), then
/// apply the formula. In this limit distillation is logit matching: this is
/// the gradient of `Σᵢ (zᵢ − vᵢ)² / (2 N t²)`.
///
/// Example: `z = [3, 1]`, `v = [2, −2]`, `t = 10`. Centred, `z = [1, −1]`
/// and `v = [2, −2]`; `(z − v) / (N t²) = [−1, 1] / 200 = [−0.005, 0.005]`.
/// The exact gradient is `[−0.004885, 0.004885]`, 2.3 % smaller.
pub fn high_t_gradient(student: ArrayView1<f32>, teacher: ArrayView1<f32>, t: f32) -> Array1<f32> {
    todo!("centre both vectors on their mean, then (z − v) / (N t²)")
}

/// Trial 5. The least-squares slope of `ln(magnitude)` against `ln(t)`:
///
/// ```text
/// xₖ = ln tₖ     yₖ = ln mₖ     slope = Σₖ (xₖ − x̄)(yₖ − ȳ) / Σₖ (xₖ − x̄)²
/// ```
///
/// A power law `m = c · tᵃ` is a straight line on log-log axes,
/// `ln m = ln c + a ln t`: its slope is the exponent `a`. Trial 4 says the
/// soft gradient is about `(z − v) / (N t²)`: its size falls like `t⁻²`, a
/// slope of −2. That is why the loss multiplies its soft term by `F = t²`:
/// without it, raising the temperature would turn the teacher's voice down
/// by `t²` against the hard label's, and `α` would no longer mean what it
/// says. With it, the soft gradient keeps its size (slope 0).
///
/// `ts` and `magnitudes` have the same length, every value is `> 0`, and at
/// least two `t` differ. Use every point, not only the two ends.
///
/// Example: `ts = [1, 2, 4]`, `magnitudes = [3, 0.75, 0.1875]`
/// (`m = 3 t⁻²`) → −2.
pub fn loglog_slope(ts: &[f32], magnitudes: &[f32]) -> f32 {
    todo!("fit a line through (ln t, ln m) by least squares; return its slope")
}
