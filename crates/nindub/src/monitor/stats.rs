//! The statistics of the Infrastructure Canon: how surprised a model is,
//! and how far one sample of a signal has moved from another.
//!
//! | function | compares | reads |
//! |---|---|---|
//! | [`psi`] | two histograms (counts) | population stability index: < 0.1 stable, 0.1–0.25 moving, > 0.25 shifted |
//! | [`ks_statistic`] | two samples | largest gap between their empirical CDFs, 0 … 1 |
//! | [`js_divergence`] | two distributions | Jensen–Shannon divergence in bits, 0 … 1 |
//!
//! The entropy of a distribution lives with the distribution, in
//! [`crate::model::sample`] (`entropy`, and `prob_and_entropy` straight
//! from the logits). The learners write PSI, the KS statistic and the
//! entropy themselves (the Engineer trials); the trials' checks hold them
//! to these.

/// A proportion below this counts as this in [`psi`] (an empty bin would
/// make `ln(a/e)` infinite).
pub const PSI_FLOOR: f64 = 1e-4;

// ANCHOR: psi
/// Population stability index of two histograms given as counts over the
/// same bins: with proportions `eᵢ` (expected, the reference) and `aᵢ`
/// (actual, the live window), each floored at [`PSI_FLOOR`],
/// `PSI = Σ (aᵢ − eᵢ) ln(aᵢ / eᵢ)`. Every term is ≥ 0 (both factors share
/// a sign), so PSI is 0 only for equal histograms. `None` when the bins
/// differ in number or either histogram is empty.
pub fn psi(expected: &[f64], actual: &[f64]) -> Option<f64> {
    if expected.len() != actual.len() {
        return None;
    }
    let (te, ta): (f64, f64) = (expected.iter().sum(), actual.iter().sum());
    if te <= 0.0 || ta <= 0.0 {
        return None;
    }
    Some(
        expected
            .iter()
            .zip(actual)
            .map(|(&e, &a)| {
                let (e, a) = ((e / te).max(PSI_FLOOR), (a / ta).max(PSI_FLOOR));
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}
// ANCHOR_END: psi

// ANCHOR: ks
/// The two-sample Kolmogorov–Smirnov statistic: the largest distance
/// `sup_x |F_a(x) − F_b(x)|` between the empirical CDFs. Both samples are
/// walked in order; at a value both share, every copy is passed before the
/// CDFs are compared (ties would otherwise open a false gap). NaNs are
/// left out; `None` when a sample has nothing else.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> Option<f64> {
    let sorted = |s: &[f64]| {
        let mut v: Vec<f64> = s.iter().copied().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (a, b) = (sorted(a), sorted(b));
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / na - j as f64 / nb).abs());
    }
    Some(d)
}
// ANCHOR_END: ks

/// The KS statistic above which two samples of sizes `n` and `m` differ at
/// significance `alpha` (the large-sample approximation
/// `c(α)·√((n + m)/(n·m))`, `c(α) = √(−ln(α/2)/2)`).
pub fn ks_critical(n: usize, m: usize, alpha: f64) -> f64 {
    let (n, m) = (n.max(1) as f64, m.max(1) as f64);
    (-(alpha / 2.0).ln() / 2.0).sqrt() * ((n + m) / (n * m)).sqrt()
}

// ANCHOR: js
/// Jensen–Shannon divergence, in bits, of two histograms over the same
/// bins (counts or proportions: each is normalised):
/// `JS = ½ KL(p ‖ m) + ½ KL(q ‖ m)` with `m = (p + q)/2`. Symmetric,
/// finite where KL is not (`m` is never 0 where `p` or `q` is not), and
/// between 0 and 1. `None` for mismatched or empty histograms.
pub fn js_divergence(p: &[f64], q: &[f64]) -> Option<f64> {
    if p.len() != q.len() {
        return None;
    }
    let (tp, tq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if tp <= 0.0 || tq <= 0.0 {
        return None;
    }
    let mut js = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        let (a, b) = (a / tp, b / tq);
        let m = (a + b) / 2.0;
        if a > 0.0 {
            js += 0.5 * a * (a / m).log2();
        }
        if b > 0.0 {
            js += 0.5 * b * (b / m).log2();
        }
    }
    Some(js.clamp(0.0, 1.0))
}
// ANCHOR_END: js

/// Bin edges at the reference sample's quantiles (`bins` bins, each
/// holding about as much of the reference): the usual binning for PSI.
/// Repeated edges (a sample with many equal values) are merged, so there
/// may be fewer bins. The outer bins are open: `(−∞, e₁)`, …, `[e_k, ∞)`.
pub fn quantile_edges(reference: &[f64], bins: usize) -> Vec<f64> {
    let mut v: Vec<f64> = reference.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() || bins < 2 {
        return vec![];
    }
    v.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..bins)
        .map(|k| v[(k * v.len() / bins).min(v.len() - 1)])
        .collect();
    edges.dedup();
    edges
}

/// Counts of `values` in the bins the `edges` cut (`edges.len() + 1`
/// bins; a value equal to an edge goes to the bin above it).
pub fn bin_counts(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let mut counts = vec![0.0; edges.len() + 1];
    for &x in values.iter().filter(|x| !x.is_nan()) {
        counts[edges.partition_point(|&e| e <= x)] += 1.0;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_by_hand() {
        // e = (0.5, 0.5), a = (0.8, 0.2):
        // (0.8 − 0.5)·ln(1.6) + (0.2 − 0.5)·ln(0.4) = 0.141 + 0.275 = 0.4159
        let v = psi(&[50.0, 50.0], &[8.0, 2.0]).unwrap();
        assert!((v - (0.3 * 1.6f64.ln() - 0.3 * 0.4f64.ln())).abs() < 1e-12);
        assert_eq!(psi(&[3.0, 1.0], &[6.0, 2.0]), Some(0.0), "same proportions");
        assert!(
            psi(&[1.0, 0.0], &[0.0, 1.0]).unwrap() > 10.0,
            "the floor keeps it finite"
        );
        assert_eq!(psi(&[1.0], &[1.0, 2.0]), None);
        assert_eq!(psi(&[0.0, 0.0], &[1.0, 2.0]), None);
    }

    #[test]
    fn ks_with_ties_and_extremes() {
        assert_eq!(ks_statistic(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), Some(0.0));
        assert_eq!(ks_statistic(&[1.0, 2.0], &[3.0, 4.0]), Some(1.0));
        // a = {1,1,2}, b = {1,2,2}: after 1, F_a = 2/3, F_b = 1/3 → 1/3.
        let d = ks_statistic(&[1.0, 1.0, 2.0], &[1.0, 2.0, 2.0]).unwrap();
        assert!((d - 1.0 / 3.0).abs() < 1e-12, "{d}");
        assert_eq!(ks_statistic(&[], &[1.0]), None);
        assert_eq!(ks_statistic(&[f64::NAN], &[1.0]), None);
    }

    #[test]
    fn js_bounds() {
        assert_eq!(js_divergence(&[1.0, 2.0], &[2.0, 4.0]), Some(0.0));
        assert!((js_divergence(&[1.0, 0.0], &[0.0, 1.0]).unwrap() - 1.0).abs() < 1e-12);
        let a = js_divergence(&[1.0, 3.0, 0.0], &[2.0, 1.0, 1.0]).unwrap();
        let b = js_divergence(&[2.0, 1.0, 1.0], &[1.0, 3.0, 0.0]).unwrap();
        assert!((a - b).abs() < 1e-12 && a > 0.0 && a < 1.0);
    }

    #[test]
    fn quantile_bins_split_the_reference_evenly() {
        let r: Vec<f64> = (0..100).map(f64::from).collect();
        let e = quantile_edges(&r, 4);
        assert_eq!(e, vec![25.0, 50.0, 75.0]);
        assert_eq!(bin_counts(&r, &e), vec![25.0; 4]);
        assert_eq!(quantile_edges(&[1.0; 10], 10), vec![1.0], "ties merge");
        // A critical value shrinks with the samples.
        assert!(ks_critical(1000, 1000, 0.01) < ks_critical(100, 100, 0.01));
    }
}
