//! Trials of "The Transfer of Wisdom": reference solutions.

use ndarray::{Array1, ArrayView1};

/// Trial 1. Log-softmax at temperature `t > 0`, shifted by the max.
pub fn log_softmax_t(logits: ArrayView1<f32>, t: f32) -> Array1<f32> {
    let scaled = logits.mapv(|z| z / t);
    let max = scaled.fold(f32::NEG_INFINITY, |m, &s| m.max(s));
    let shifted = scaled.mapv(|s| s - max);
    let log_sum = shifted.mapv(f32::exp).sum().ln();
    shifted.mapv(|s| s - log_sum)
}

/// `F`: the factor of the soft term.
fn soft_factor(t: f32, t_squared: bool) -> f32 {
    if t_squared { t * t } else { 1.0 }
}

/// Trial 2. The distillation loss `α · F · KL(q ‖ p) + (1 − α) · CE`.
pub fn kd_loss(
    student: ArrayView1<f32>,
    teacher: ArrayView1<f32>,
    label: usize,
    t: f32,
    alpha: f32,
    t_squared: bool,
) -> f32 {
    let log_q = log_softmax_t(teacher, t);
    let log_p = log_softmax_t(student, t);
    let kl: f32 = log_q
        .iter()
        .zip(&log_p)
        .map(|(&lq, &lp)| {
            let q = lq.exp();
            if q == 0.0 { 0.0 } else { q * (lq - lp) }
        })
        .sum();
    let ce = -log_softmax_t(student, 1.0)[label];
    alpha * soft_factor(t, t_squared) * kl + (1.0 - alpha) * ce
}

/// Trial 3. The gradient of [`kd_loss`] with respect to the student's logits.
pub fn kd_gradient(
    student: ArrayView1<f32>,
    teacher: ArrayView1<f32>,
    label: usize,
    t: f32,
    alpha: f32,
    t_squared: bool,
) -> Array1<f32> {
    let p = log_softmax_t(student, t).mapv(f32::exp);
    let q = log_softmax_t(teacher, t).mapv(f32::exp);
    let mut hard = log_softmax_t(student, 1.0).mapv(f32::exp);
    hard[label] -= 1.0;
    (p - q) * (alpha * soft_factor(t, t_squared) / t) + hard * (1.0 - alpha)
}

/// Trial 4. Hinton's high-temperature approximation of the soft gradient.
pub fn high_t_gradient(student: ArrayView1<f32>, teacher: ArrayView1<f32>, t: f32) -> Array1<f32> {
    let centred = |x: ArrayView1<f32>| {
        let mean = x.mean().unwrap_or(0.0);
        x.mapv(|v| v - mean)
    };
    let n = student.len() as f32;
    (centred(student) - centred(teacher)) / (n * t * t)
}

/// Trial 5. The least-squares slope of `ln(magnitude)` against `ln(t)`.
pub fn loglog_slope(ts: &[f32], magnitudes: &[f32]) -> f32 {
    assert_eq!(ts.len(), magnitudes.len(), "one magnitude per temperature");
    // f64 sums: the logarithms of many points, added and subtracted.
    let xs: Vec<f64> = ts.iter().map(|&t| f64::from(t).ln()).collect();
    let ys: Vec<f64> = magnitudes.iter().map(|&m| f64::from(m).ln()).collect();
    let n = xs.len() as f64;
    let x_mean = xs.iter().sum::<f64>() / n;
    let y_mean = ys.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in xs.iter().zip(&ys) {
        sxy += (x - x_mean) * (y - y_mean);
        sxx += (x - x_mean) * (x - x_mean);
    }
    (sxy / sxx) as f32
}
