//! Trials of "The Infrastructure Canon": reference solutions.

/// The floor under every proportion of `psi`.
const PSI_FLOOR: f64 = 1e-4;

/// Trial 1. The population stability index of two histograms of counts.
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    let (e_total, a_total): (f64, f64) = (expected.iter().sum(), actual.iter().sum());
    if expected.len() != actual.len() || e_total == 0.0 || a_total == 0.0 {
        return f64::NAN;
    }
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let e = (e / e_total).max(PSI_FLOOR);
            let a = (a / a_total).max(PSI_FLOOR);
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// Trial 2. Shannon entropy in nats; `p = 0` contributes 0.
pub fn entropy(probs: &[f64]) -> f64 {
    -probs
        .iter()
        .filter(|&&p| p != 0.0)
        .map(|&p| p * p.ln())
        .sum::<f64>()
}

/// Trial 3. The two-sample Kolmogorov–Smirnov statistic.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let sorted = |s: &[f64]| {
        let mut v = s.to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    let (a, b) = (sorted(a), sorted(b));
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    // Once one sample is used up, its function is 1 and the other's only
    // climbs towards it: the largest gap has already been seen.
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] == x {
            i += 1;
        }
        while j < b.len() && b[j] == x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

/// Trial 4. The first evaluation at which `value > threshold` has held for
/// `for_evals` consecutive evaluations.
pub fn first_firing(values: &[f64], threshold: f64, for_evals: usize) -> Option<usize> {
    let needed = for_evals.max(1);
    let mut run = 0;
    for (t, &v) in values.iter().enumerate() {
        // `>` is false for NaN on either side.
        run = if v > threshold { run + 1 } else { 0 };
        if run >= needed {
            return Some(t);
        }
    }
    None
}
