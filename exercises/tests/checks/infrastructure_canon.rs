use super::Lcg;
use exercises::engineer::infrastructure_canon as ic;
use std::f64::consts::LN_2;

/// Equal within 1e-12 absolute plus 1e-9 relative (NaN never passes). Loose
/// enough for any order of summation, tight enough to tell a renormalised
/// floor, a log in bits or a missed tie from the right answer.
fn near(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 + 1e-9 * b.abs()
}

/// Uniform integer in `0..n`.
fn below(rng: &mut Lcg, n: usize) -> usize {
    ((rng.unit() * n as f64) as usize).min(n - 1)
}

/// A Fisher–Yates shuffle driven by the checks' generator.
fn shuffle<T>(items: &mut [T], rng: &mut Lcg) {
    for i in (1..items.len()).rev() {
        items.swap(i, below(rng, i + 1));
    }
}

// === Trial 1: the population stability index ===

/// The engine's PSI: what the server exports as `nindub_drift_score{test="psi"}`.
fn ref_psi(expected: &[f64], actual: &[f64]) -> f64 {
    nindub::monitor::stats::psi(expected, actual).unwrap_or(f64::NAN)
}

/// `bins` counts, about a third of them 0, the rest 1 to 1000.
fn counts(rng: &mut Lcg, bins: usize) -> Vec<f64> {
    (0..bins)
        .map(|_| {
            if rng.unit() < 0.3 {
                0.0
            } else {
                (1 + below(rng, 1000)) as f64
            }
        })
        .collect()
}

pub fn psi() {
    // e = [0.5, 0.5], a = [0.9, 0.1]:
    // 0.4 · ln(0.9 / 0.5) + (−0.4) · ln(0.1 / 0.5) = 0.4 · (ln 1.8 − ln 0.2)
    // = 0.4 · ln 9 ≈ 0.878890.
    let got = ic::psi(&[50.0, 50.0], &[90.0, 10.0]);
    assert!(near(got, 0.4 * 9f64.ln()), "[50, 50] → [90, 10]: {got}");

    // e = [0.25, 0.25, 0.5], a = [0.5, 0.25, 0.25]:
    // 0.25 · ln 2 + 0 · ln 1 + (−0.25) · ln 0.5 = 0.5 · ln 2 ≈ 0.346574.
    let got = ic::psi(&[25.0, 25.0, 50.0], &[50.0, 25.0, 25.0]);
    assert!(near(got, 0.5 * LN_2), "three bins: {got}");

    // The floor, without renormalising: e = [1, max(0, 1e-4)] = [1, 1e-4],
    // a = [0.5, 0.5]:
    // (0.5 − 1) · ln 0.5 + (0.5 − 1e-4) · ln(0.5 / 1e-4)
    // = 0.5 · ln 2 + 0.4999 · ln 5000 ≈ 4.604319.
    // (Renormalising e to [1/1.0001, 1e-4/1.0001] gives ≈ 4.604249; flooring
    // the count instead, e₂ = 1e-4 / 100.0001, gives ≈ 6.907741; both wrong.)
    let got = ic::psi(&[100.0, 0.0], &[50.0, 50.0]);
    assert!(
        near(got, 0.5 * LN_2 + 0.4999 * 5000f64.ln()),
        "an empty bin is floored at 1e-4 as a proportion, not renormalised: {got}"
    );

    // A bin empty in both: 1e-4 against 1e-4 contributes 0. The others,
    // e = [·, 0.75, 0.25], a = [·, 0.25, 0.75]:
    // (−0.5) · ln(1/3) + 0.5 · ln 3 = ln 3 ≈ 1.098612.
    let got = ic::psi(&[0.0, 30.0, 10.0], &[0.0, 10.0, 30.0]);
    assert!(near(got, 3f64.ln()), "a bin empty in both: {got}");

    // Proportions, not counts: the same shape at any scale is no shift.
    let got = ic::psi(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]);
    assert!(got.abs() <= 1e-12, "[1, 2, 3] against [10, 20, 30]: {got}");
    let got = ic::psi(&[7.0], &[1.0]);
    assert!(
        got.abs() <= 1e-12,
        "one bin is always the same shape: {got}"
    );

    // Nothing to compare: NaN, never a panic.
    for (e, a, why) in [
        (&[1.0, 2.0][..], &[1.0, 2.0, 3.0][..], "different lengths"),
        (&[][..], &[][..], "no bins at all"),
        (&[0.0, 0.0][..], &[1.0, 1.0][..], "an empty reference"),
        (
            &[1.0, 1.0][..],
            &[0.0, 0.0][..],
            "an empty current histogram",
        ),
    ] {
        let got = ic::psi(e, a);
        assert!(got.is_nan(), "{why} ({e:?}, {a:?}): NaN, not {got}");
    }

    // Properties on pseudo-random histograms: PSI of a histogram with
    // itself is 0, PSI ≥ 0, swapping the two changes nothing (each term is
    // (a − e) · ln(a / e), the same with a and e exchanged), and scaling the
    // counts changes nothing.
    let mut rng = Lcg(31);
    for _ in 0..300 {
        let bins = 1 + below(&mut rng, 12);
        let (e, a) = (counts(&mut rng, bins), counts(&mut rng, bins));
        if e.iter().sum::<f64>() == 0.0 || a.iter().sum::<f64>() == 0.0 {
            continue;
        }
        let got = ic::psi(&e, &a);
        assert!(near(got, ref_psi(&e, &a)), "{e:?} → {a:?}: {got}");
        assert!(got >= 0.0, "PSI is never negative: {e:?} → {a:?}: {got}");
        let swapped = ic::psi(&a, &e);
        assert!(
            near(swapped, got),
            "swapped: {swapped}, not {got} ({e:?}, {a:?})"
        );
        let same = ic::psi(&e, &e);
        assert!(same.abs() <= 1e-12, "{e:?} against itself: {same}");
        let scaled: Vec<f64> = a.iter().map(|c| c * 7.0).collect();
        let got_scaled = ic::psi(&e, &scaled);
        assert!(
            near(got_scaled, got),
            "seven times the counts: {got_scaled}, not {got}"
        );
    }
}

// === Trial 2: entropy ===

pub fn entropy() {
    // The engine's entropy (in f32, what the server exports) is the same function.
    let probs = [0.1f32, 0.2, 0.3, 0.4];
    let wide: Vec<f64> = probs.iter().map(|&p| f64::from(p)).collect();
    let engine = f64::from(nindub::model::sample::entropy(&probs));
    assert!(
        (ic::entropy(&wide) - engine).abs() < 1e-6,
        "nindub's {engine}"
    );
    // −(0.5 · ln 0.5 + 0.5 · ln 0.5) = ln 2 ≈ 0.693147 nats (1 bit).
    let got = ic::entropy(&[0.5, 0.5]);
    assert!(near(got, LN_2), "[0.5, 0.5]: ln 2 nats, not 1 bit: {got}");
    // −(0.25 · ln 0.25 · 2 + 0.5 · ln 0.5) = 0.5 · ln 4 + 0.5 · ln 2
    // = 1.5 · ln 2 ≈ 1.039721.
    let got = ic::entropy(&[0.25, 0.25, 0.5]);
    assert!(near(got, 1.5 * LN_2), "[0.25, 0.25, 0.5]: {got}");
    // −(0.1 · ln 0.1 + 0.9 · ln 0.9) = 0.1 · ln 10 + 0.9 · ln(10/9) ≈ 0.325083.
    let got = ic::entropy(&[0.1, 0.9]);
    assert!(
        near(got, 0.1 * 10f64.ln() + 0.9 * (10.0f64 / 9.0).ln()),
        "[0.1, 0.9]: {got}"
    );
    // 0 · ln 0 is 0 here (its limit), not 0 · −∞ = NaN.
    for probs in [&[1.0, 0.0, 0.0][..], &[0.0, 1.0], &[1.0]] {
        let got = ic::entropy(probs);
        assert!(got == 0.0, "{probs:?}: a certain outcome, 0, not {got}");
    }
    let got = ic::entropy(&[0.5, 0.0, 0.5]);
    assert!(near(got, LN_2), "a zero among them changes nothing: {got}");
    let got = ic::entropy(&[]);
    assert!(got == 0.0, "no outcomes: 0, not {got}");
    let got = ic::entropy(&[5e-324, 1.0]);
    assert!(
        got.is_finite() && got.abs() <= 1e-300,
        "a subnormal probability is tiny, not NaN: {got}"
    );

    // The uniform distribution over k outcomes: ln k.
    for k in 1..=64 {
        let uniform = vec![1.0 / k as f64; k];
        let got = ic::entropy(&uniform);
        assert!(near(got, (k as f64).ln()), "uniform over {k}: {got}");
    }

    // Random distributions: 0 ≤ H ≤ ln(outcomes), whatever the order, and
    // outcomes of probability 0 change nothing.
    let mut rng = Lcg(7);
    for _ in 0..300 {
        let k = 1 + below(&mut rng, 20);
        let weights: Vec<f64> = (0..k)
            .map(|_| if rng.unit() < 0.2 { 0.0 } else { rng.unit() })
            .collect();
        let total: f64 = weights.iter().sum();
        if total == 0.0 {
            continue;
        }
        let mut probs: Vec<f64> = weights.iter().map(|w| w / total).collect();
        let expected: f64 = -probs
            .iter()
            .filter(|&&p| p > 0.0)
            .map(|&p| p * p.ln())
            .sum::<f64>();
        let got = ic::entropy(&probs);
        assert!(near(got, expected), "{probs:?}: {got}");
        assert!(
            got >= -1e-15 && got <= (k as f64).ln() + 1e-12,
            "between 0 and ln {k}: {got} ({probs:?})"
        );
        shuffle(&mut probs, &mut rng);
        let shuffled = ic::entropy(&probs);
        assert!(near(shuffled, got), "order does not matter: {shuffled}");
        probs.extend([0.0, 0.0]);
        let padded = ic::entropy(&probs);
        assert!(near(padded, got), "two outcomes at 0 added: {padded}");
    }
}

// === Trial 3: the Kolmogorov–Smirnov statistic ===

/// By brute force: both empirical functions at every value of either sample
/// (`F(x)` = the fraction ≤ x), the largest gap.
fn ref_ks(a: &[f64], b: &[f64]) -> f64 {
    let cdf = |s: &[f64], x: f64| s.iter().filter(|&&v| v <= x).count() as f64 / s.len() as f64;
    a.iter()
        .chain(b)
        .map(|&x| (cdf(a, x) - cdf(b, x)).abs())
        .fold(0.0, f64::max)
}

/// A sample of `n` values: small integers (many ties) or continuous ones.
fn sample(rng: &mut Lcg, n: usize, ties: bool) -> Vec<f64> {
    (0..n)
        .map(|_| {
            if ties {
                below(rng, 6) as f64
            } else {
                rng.unit() * 10.0 - 5.0
            }
        })
        .collect()
}

pub fn ks_statistic() {
    // [1, 2, 3, 4] against [3, 4, 5, 6], F_a − F_b at each value:
    // x=1: 1/4 − 0 = 0.25; x=2: 2/4 − 0 = 0.5; x=3: 3/4 − 1/4 = 0.5;
    // x=4: 1 − 2/4 = 0.5; x=5: 1 − 3/4 = 0.25; x=6: 0. Largest: 0.5.
    let got = ic::ks_statistic(&[1.0, 2.0, 3.0, 4.0], &[3.0, 4.0, 5.0, 6.0]);
    assert!(near(got, 0.5), "[1, 2, 3, 4] against [3, 4, 5, 6]: {got}");
    // The same samples out of order: sort them first.
    let got = ic::ks_statistic(&[4.0, 1.0, 3.0, 2.0], &[6.0, 3.0, 5.0, 4.0]);
    assert!(near(got, 0.5), "unsorted samples: {got}");
    // Ties across the samples: x=1: 1/2 − 1/2; x=2: 1 − 1. Comparing after
    // taking only a's 1 would see 1/2 − 0.
    let got = ic::ks_statistic(&[1.0, 2.0], &[1.0, 2.0]);
    assert!(got == 0.0, "[1, 2] against itself: 0, not {got}");
    // Ties within and across: x=1: 2/3 − 1/3 = 1/3; x=2: 1 − 1 = 0. Taking
    // the 1s one at a time would see 2/3 − 0 on the way.
    let got = ic::ks_statistic(&[1.0, 1.0, 2.0], &[1.0, 2.0, 2.0]);
    assert!(near(got, 1.0 / 3.0), "[1, 1, 2] against [1, 2, 2]: {got}");
    let got = ic::ks_statistic(&[1.0, 1.0, 1.0], &[1.0]);
    assert!(got == 0.0, "all one value, sizes 3 and 1: {got}");
    // Different sizes: x=0: 0 − 1/3; x=0.5: 1 − 1/3 = 2/3; x=1: 1 − 2/3;
    // x=2: 0. Largest: 2/3.
    let got = ic::ks_statistic(&[0.5], &[0.0, 1.0, 2.0]);
    assert!(near(got, 2.0 / 3.0), "[0.5] against [0, 1, 2]: {got}");
    // Disjoint samples: at the largest value of the lower one, 1 − 0.
    let got = ic::ks_statistic(&[1.0, 2.0, 3.0], &[10.0, 11.0]);
    assert!(got == 1.0, "disjoint: 1, not {got}");
    let got = ic::ks_statistic(&[10.0, 11.0], &[3.0, 2.0, 1.0]);
    assert!(got == 1.0, "disjoint, the other way round: 1, not {got}");
    let got = ic::ks_statistic(&[-1e300], &[1e300]);
    assert!(got == 1.0, "one value each, far apart: {got}");
    for (a, b, why) in [
        (&[][..], &[1.0][..], "a empty"),
        (&[1.0][..], &[][..], "b empty"),
        (&[][..], &[][..], "both empty"),
    ] {
        let got = ic::ks_statistic(a, b);
        assert!(got.is_nan(), "{why}: NaN, not {got}");
    }

    // Against the brute force, with and without ties: the same number,
    // symmetric, in [0, 1], unchanged by shuffling; a sample against a
    // shuffled copy of itself is 0, against itself shifted past its range 1.
    let mut rng = Lcg(1789);
    for round in 0..300 {
        let ties = round % 2 == 0;
        let (n, m) = (1 + below(&mut rng, 30), 1 + below(&mut rng, 30));
        let (mut a, b) = (sample(&mut rng, n, ties), sample(&mut rng, m, ties));
        let got = ic::ks_statistic(&a, &b);
        let expected = ref_ks(&a, &b);
        // The brute force and the engine's own walk agree.
        let engine = nindub::monitor::stats::ks_statistic(&a, &b).unwrap();
        assert!(near(engine, expected), "nindub's KS {engine} vs {expected}");
        assert!(
            near(got, expected),
            "{a:?} against {b:?}: {got}, not {expected}"
        );
        assert!((0.0..=1.0).contains(&got), "D is in [0, 1]: {got}");
        let swapped = ic::ks_statistic(&b, &a);
        assert!(near(swapped, got), "swapped: {swapped}, not {got}");
        let original = a.clone();
        shuffle(&mut a, &mut rng);
        let shuffled = ic::ks_statistic(&a, &b);
        assert!(near(shuffled, got), "shuffled: {shuffled}, not {got}");
        let itself = ic::ks_statistic(&a, &original);
        assert!(itself == 0.0, "{original:?} against itself: {itself}");
        let shifted: Vec<f64> = original.iter().map(|v| v + 100.0).collect();
        let apart = ic::ks_statistic(&original, &shifted);
        assert!(apart == 1.0, "{original:?} shifted by 100: {apart}");
    }
}

// === Trial 4: an alert rule with `for` ===

/// By brute force: the first `t` whose last `max(for_evals, 1)` values are
/// all above the threshold.
fn ref_first_firing(values: &[f64], threshold: f64, for_evals: usize) -> Option<usize> {
    let k = for_evals.max(1);
    (0..values.len()).find(|&t| t + 1 >= k && values[t + 1 - k..=t].iter().all(|&v| v > threshold))
}

/// (values, threshold, for_evals, the answer, why).
type AlertCase<'a> = (&'a [f64], f64, usize, Option<usize>, &'a str);

pub fn first_firing() {
    let nan = f64::NAN;
    let cases: &[AlertCase] = &[
        // true, true, FALSE, true, true, true: the false at 2 resets the
        // count, so the third true in a row is at 5 (a count that never
        // resets reaches 3 at index 3).
        (
            &[5.0, 5.0, 0.0, 5.0, 5.0, 5.0],
            1.0,
            3,
            Some(5),
            "a false resets the count",
        ),
        // false, true, true, true: the window 1..=3 holds first at 3.
        (
            &[0.0, 5.0, 5.0, 5.0, 0.0],
            1.0,
            3,
            Some(3),
            "fires when the window completes",
        ),
        (
            &[5.0, 5.0, 5.0, 5.0],
            1.0,
            2,
            Some(1),
            "the first index only",
        ),
        (
            &[0.0, 2.0, 2.0],
            1.0,
            1,
            Some(1),
            "for_evals 1: the first true",
        ),
        (&[0.0, 2.0, 2.0], 1.0, 0, Some(1), "for_evals 0: the same"),
        (&[2.0], 1.0, 1, Some(0), "the first evaluation"),
        (&[1.0, 1.0, 1.0], 1.0, 1, None, "equal is not above"),
        (&[5.0, 5.0], 1.0, 3, None, "not enough evaluations yet"),
        (
            &[5.0, 5.0],
            1.0,
            usize::MAX,
            None,
            "a `for` longer than time",
        ),
        (&[], 1.0, 0, None, "no evaluations"),
        (&[], 1.0, 2, None, "no evaluations"),
        (&[nan, nan, 5.0], 1.0, 1, Some(2), "NaN is not above"),
        (&[nan; 4], 0.0, 1, None, "NaN never satisfies the condition"),
        // true, NaN, true, NaN: NaN is a false evaluation, so no two trues
        // in a row (`!(v <= threshold)` would take NaN for true and fire at 1).
        (&[5.0, nan, 5.0, nan], 1.0, 2, None, "NaN breaks the run"),
        (&[1.0, 2.0, 3.0], nan, 1, None, "a NaN threshold: never"),
        (
            &[-1e300, 0.0],
            f64::NEG_INFINITY,
            2,
            Some(1),
            "everything is above −∞",
        ),
        (&[f64::INFINITY], f64::INFINITY, 1, None, "∞ is not above ∞"),
        // A latency rule, one evaluation a minute: p99 above 0.5 s for 3
        // evaluations. A blip at 1, a run of
        // two at 3–4 broken at 5, then three in a row at 6, 7, 8.
        (
            &[0.2, 0.9, 0.3, 0.6, 0.7, 0.4, 0.8, 0.9, 1.2, 0.3],
            0.5,
            3,
            Some(8),
            "blips do not page",
        ),
    ];
    for &(values, threshold, for_evals, expected, why) in cases {
        assert_eq!(
            ic::first_firing(values, threshold, for_evals),
            expected,
            "{values:?} > {threshold} for {for_evals}: {why}"
        );
    }

    // Against the brute force on random series around the threshold.
    let mut rng = Lcg(99);
    for _ in 0..500 {
        let n = below(&mut rng, 25);
        let values: Vec<f64> = (0..n)
            .map(|_| match below(&mut rng, 10) {
                0 => nan,
                1 => 0.5,
                _ => rng.unit(),
            })
            .collect();
        let for_evals = below(&mut rng, 6);
        assert_eq!(
            ic::first_firing(&values, 0.5, for_evals),
            ref_first_firing(&values, 0.5, for_evals),
            "{values:?} > 0.5 for {for_evals}"
        );
    }
}
