use super::Lcg;
use exercises::apprentice::transfer_of_wisdom as tw;
use ndarray::{Array1, arr1};

const NEG: f32 = f32::NEG_INFINITY;
const TEMPERATURES: [f32; 4] = [1.0, 2.0, 5.0, 20.0];
const ALPHAS: [f32; 3] = [0.0, 0.5, 1.0];

/// Uniform in `[-1, 1)` (24 bits).
fn signed(rng: &mut Lcg) -> f64 {
    (rng.step() >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0
}

/// `n` logits uniform in `[-scale, scale)`.
fn logits(rng: &mut Lcg, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (signed(rng) * scale) as f32).collect()
}

/// The same logits, less their mean.
fn centred(z: &[f32]) -> Vec<f32> {
    let mean = z.iter().map(|&v| f64::from(v)).sum::<f64>() / z.len() as f64;
    z.iter().map(|&v| (f64::from(v) - mean) as f32).collect()
}

// The reference, in f64 on exactly the learner's (f32) inputs.

fn wide(z: &[f32]) -> Vec<f64> {
    z.iter().map(|&v| f64::from(v)).collect()
}

fn ref_log_softmax(z: &[f64], t: f64) -> Vec<f64> {
    let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v / t));
    let sum: f64 = z.iter().map(|&v| (v / t - max).exp()).sum();
    z.iter().map(|&v| v / t - max - sum.ln()).collect()
}

fn ref_softmax(z: &[f64], t: f64) -> Vec<f64> {
    ref_log_softmax(z, t).iter().map(|l| l.exp()).collect()
}

fn ref_kd_loss(z: &[f64], v: &[f64], label: usize, t: f64, alpha: f64, t_squared: bool) -> f64 {
    let (log_q, log_p) = (ref_log_softmax(v, t), ref_log_softmax(z, t));
    let kl: f64 = log_q
        .iter()
        .zip(&log_p)
        .filter(|(lq, _)| lq.exp() > 0.0)
        .map(|(lq, lp)| lq.exp() * (lq - lp))
        .sum();
    let ce = -ref_log_softmax(z, 1.0)[label];
    let f = if t_squared { t * t } else { 1.0 };
    alpha * f * kl + (1.0 - alpha) * ce
}

/// The gradient of the reference loss by central finite differences: no
/// formula involved, so it also checks the derivation of trial 3.
fn fd_gradient(
    z: &[f64],
    v: &[f64],
    label: usize,
    t: f64,
    alpha: f64,
    t_squared: bool,
) -> Vec<f64> {
    let h = 1e-4;
    (0..z.len())
        .map(|i| {
            let (mut up, mut down) = (z.to_vec(), z.to_vec());
            up[i] += h;
            down[i] -= h;
            (ref_kd_loss(&up, v, label, t, alpha, t_squared)
                - ref_kd_loss(&down, v, label, t, alpha, t_squared))
                / (2.0 * h)
        })
        .collect()
}

/// The exact soft gradient `(p − q) / t`.
fn ref_soft_gradient(z: &[f64], v: &[f64], t: f64) -> Vec<f64> {
    let (p, q) = (ref_softmax(z, t), ref_softmax(v, t));
    p.iter().zip(&q).map(|(p, q)| (p - q) / t).collect()
}

fn ref_slope(ts: &[f64], ms: &[f64]) -> f64 {
    let xs: Vec<f64> = ts.iter().map(|t| t.ln()).collect();
    let ys: Vec<f64> = ms.iter().map(|m| m.ln()).collect();
    let n = xs.len() as f64;
    let (xm, ym) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - xm) * (y - ym)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - xm) * (x - xm)).sum();
    sxy / sxx
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// `a` is within `tol · max(1, |b|)` of `b` (and ±∞ equals itself).
fn close(a: f32, b: f64, tol: f64) -> bool {
    let a = f64::from(a);
    a == b || (a - b).abs() <= tol * b.abs().max(1.0)
}

/// The first entry where `mine` and `expected` differ by more than
/// `tol · max(1, max|expected|)` (over the finite entries), if any.
fn first_difference(mine: &Array1<f32>, expected: &[f64], tol: f64) -> Option<String> {
    if mine.len() != expected.len() {
        return Some(format!(
            "{} entries, expected {}",
            mine.len(),
            expected.len()
        ));
    }
    let scale = expected
        .iter()
        .filter(|v| v.is_finite())
        .fold(1.0f64, |m, v| m.max(v.abs()));
    // Written so that a NaN never matches.
    let matches = |a: f32, b: f64| f64::from(a) == b || (f64::from(a) - b).abs() <= tol * scale;
    mine.iter()
        .zip(expected)
        .position(|(&a, &b)| !matches(a, b))
        .map(|i| format!("entry {i}: expected {}, got {}", expected[i], mine[i]))
}

pub fn log_softmax_t() {
    let l = tw::log_softmax_t(arr1(&[1.0, 2.0, 3.0]).view(), 1.0);
    let expected = [-2.407_606, -1.407_606, -0.407_606];
    assert!(
        first_difference(&l, &expected, 1e-5).is_none(),
        "[1, 2, 3] at t = 1: expected {expected:?}, got {l}"
    );
    let l = tw::log_softmax_t(arr1(&[2.0, 4.0, 6.0]).view(), 2.0);
    assert!(
        first_difference(&l, &expected, 1e-5).is_none(),
        "[2, 4, 6] at t = 2 is [1, 2, 3] at t = 1: expected {expected:?}, got {l}"
    );
    let l = tw::log_softmax_t(arr1(&[0.0, -200.0]).view(), 1.0);
    assert!(
        first_difference(&l, &[0.0, -200.0], 1e-6).is_none(),
        "[0, −200]: expected [0, −200], got {l} (ln of a softmax that underflowed to 0 gives −∞: shift by the max and subtract ln Σ exp instead)"
    );
    let l = tw::log_softmax_t(arr1(&[1000.0, 1001.0, 1002.0]).view(), 1.0);
    assert!(
        first_difference(&l, &expected, 1e-5).is_none(),
        "[1000, 1001, 1002] must give the answer of [1, 2, 3], {expected:?}; got {l} (subtract the max before exp, or exp(1000) overflows)"
    );
    let l = tw::log_softmax_t(arr1(&[1000.0, -1000.0]).view(), 1.0);
    assert!(
        first_difference(&l, &[0.0, -2000.0], 1e-6).is_none(),
        "[1000, −1000]: expected [0, −2000], got {l}"
    );
    let l = tw::log_softmax_t(arr1(&[0.5, NEG, -0.5]).view(), 1.0);
    assert!(
        l[1] == NEG && l[0].is_finite() && l[2].is_finite(),
        "[0.5, −∞, −0.5]: a logit at −∞ gets −∞, the others stay finite; got {l}"
    );

    let mut rng = Lcg(11);
    for (i, n) in [2, 5, 10, 32, 100].into_iter().enumerate() {
        let z = logits(&mut rng, n, 2.0 + 3.0 * i as f64);
        for t in [0.5, 1.0, 2.0, 5.0, 20.0] {
            let mine = tw::log_softmax_t(arr1(&z).view(), t);
            let expected = ref_log_softmax(&wide(&z), f64::from(t));
            if let Some(d) = first_difference(&mine, &expected, 1e-5) {
                panic!("{n} random logits at t = {t}: {d}");
            }
            let total: f32 = mine.iter().map(|l| l.exp()).sum();
            assert!(
                (total - 1.0).abs() < 1e-5,
                "{n} random logits at t = {t}: the exponentials must add up to 1, got {total}"
            );
        }
    }
}

/// Student and teacher logits, and a label, for the random cases.
fn random_cases() -> Vec<(Vec<f32>, Vec<f32>, usize)> {
    let mut rng = Lcg(2015);
    [2, 5, 10, 32]
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let student = logits(&mut rng, n, 3.0);
            let teacher = logits(&mut rng, n, 6.0);
            (student, teacher, (7 * i + 1) % n)
        })
        .collect()
}

/// Cases at the edge: huge logits, and a teacher that rules a class out.
fn extreme_cases() -> Vec<(Vec<f32>, Vec<f32>, usize, &'static str)> {
    vec![
        (
            vec![1000.0, 999.0, 990.0, 1003.0],
            vec![1001.0, 1000.0, 980.0, 1000.0],
            3,
            "logits near 1000",
        ),
        (
            vec![-1000.0, 0.0, 1000.0],
            vec![-900.0, 100.0, 950.0],
            1,
            "logits from −1000 to 1000",
        ),
        (
            vec![0.5, 1.0, -0.5],
            vec![2.0, NEG, 0.0],
            0,
            "a teacher logit at −∞ (qᵢ = 0: its KL term counts 0)",
        ),
    ]
}

pub fn kd_loss() {
    let (z, v) = (arr1(&[0.0, 0.0]), arr1(&[2.0 * 3f32.ln(), 0.0]));
    let l = tw::kd_loss(z.view(), v.view(), 0, 2.0, 0.5, true);
    assert!(
        close(l, 0.608_198, 1e-5),
        "the worked example (z = [0, 0], v = [2 ln 3, 0], label 0, t = 2, α = 0.5, F = t²): expected 0.5 · 4 · 0.130812 + 0.5 · 0.693147 = 0.608198, got {l}"
    );
    let l = tw::kd_loss(z.view(), v.view(), 0, 2.0, 0.5, false);
    assert!(
        close(l, 0.411_979, 1e-5),
        "the worked example without t²: expected 0.5 · 0.130812 + 0.5 · 0.693147 = 0.411979, got {l}"
    );
    let same = arr1(&[1.0, -2.0, 0.5]);
    let l = tw::kd_loss(same.view(), same.view(), 2, 5.0, 1.0, true);
    assert!(
        l.abs() < 1e-5,
        "student = teacher, α = 1: KL(q ‖ q) = 0, got {l}"
    );
    let (z, v) = (arr1(&[1.0, 2.0, 3.0]), arr1(&[-4.0, 0.0, 4.0]));
    let l = tw::kd_loss(z.view(), v.view(), 0, 5.0, 0.0, true);
    assert!(
        close(l, 2.407_606, 1e-5),
        "α = 0 leaves only CE = −ln softmax(z)[label] at t = 1, whatever t and the teacher: expected 2.407606, got {l}"
    );

    for (z, v, label) in random_cases() {
        let (zw, vw) = (wide(&z), wide(&v));
        for t in TEMPERATURES {
            for alpha in ALPHAS {
                for t_squared in [false, true] {
                    let mine =
                        tw::kd_loss(arr1(&z).view(), arr1(&v).view(), label, t, alpha, t_squared);
                    let expected =
                        ref_kd_loss(&zw, &vw, label, f64::from(t), f64::from(alpha), t_squared);
                    assert!(
                        close(mine, expected, 1e-4),
                        "{} classes, label {label}, t = {t}, α = {alpha}, t_squared = {t_squared}: expected {expected}, got {mine}",
                        z.len()
                    );
                }
            }
        }
    }
    for (z, v, label, what) in extreme_cases() {
        for t in TEMPERATURES {
            let mine = tw::kd_loss(arr1(&z).view(), arr1(&v).view(), label, t, 0.5, true);
            let expected = ref_kd_loss(&wide(&z), &wide(&v), label, f64::from(t), 0.5, true);
            assert!(
                mine.is_finite() && close(mine, expected, 1e-4),
                "{what}, t = {t}, α = 0.5: expected {expected}, got {mine}"
            );
        }
    }
}

pub fn kd_gradient() {
    let (z, v) = (arr1(&[0.0, 0.0]), arr1(&[2.0 * 3f32.ln(), 0.0]));
    let g = tw::kd_gradient(z.view(), v.view(), 0, 2.0, 0.5, true);
    assert!(
        first_difference(&g, &[-0.5, 0.5], 1e-5).is_none(),
        "the worked example (z = [0, 0], v = [2 ln 3, 0], label 0, t = 2, α = 0.5, F = t²): expected 1 · (p − q) + 0.5 · (s − onehot) = [−0.5, 0.5], got {g}"
    );
    let g = tw::kd_gradient(z.view(), v.view(), 0, 2.0, 1.0, false);
    assert!(
        first_difference(&g, &[-0.125, 0.125], 1e-5).is_none(),
        "the worked example's soft term alone (α = 1, no t²): (p − q) / t = [−0.25, 0.25] / 2, got {g} (forgot the 1/t?)"
    );

    let cases = random_cases()
        .into_iter()
        .map(|(z, v, label)| (z, v, label, "random logits"))
        .chain(extreme_cases());
    for (z, v, label, what) in cases {
        let (zw, vw) = (wide(&z), wide(&v));
        for t in TEMPERATURES {
            for alpha in ALPHAS {
                for t_squared in [false, true] {
                    let mine = tw::kd_gradient(
                        arr1(&z).view(),
                        arr1(&v).view(),
                        label,
                        t,
                        alpha,
                        t_squared,
                    );
                    let expected =
                        fd_gradient(&zw, &vw, label, f64::from(t), f64::from(alpha), t_squared);
                    if let Some(d) = first_difference(&mine, &expected, 1e-4) {
                        panic!(
                            "{what}, {} classes, label {label}, t = {t}, α = {alpha}, t_squared = {t_squared}: {d} (the expected values are finite differences of the loss)",
                            z.len()
                        );
                    }
                    let total: f32 = mine.sum();
                    assert!(
                        total.abs() < 1e-4 * (t * t).max(1.0),
                        "{what}, t = {t}, α = {alpha}: the entries of a softmax gradient add up to 0, got {total}"
                    );
                }
            }
        }
    }
}

pub fn high_t_gradient() {
    let g = tw::high_t_gradient(arr1(&[3.0, 1.0]).view(), arr1(&[2.0, -2.0]).view(), 10.0);
    assert!(
        first_difference(&g, &[-0.005, 0.005], 1e-6).is_none(),
        "the worked example (z = [3, 1], v = [2, −2], t = 10): centred, z = [1, −1]; expected [−1, 1] / (2 · 100) = [−0.005, 0.005], got {g} (subtract each vector's own mean, then divide by N t²)"
    );

    // The formula, on logits whose means are far from 0.
    let mut rng = Lcg(7);
    for (i, n) in [2, 5, 10, 32].into_iter().enumerate() {
        let shift = 5.0 * i as f32 - 4.0;
        let z: Vec<f32> = logits(&mut rng, n, 3.0).iter().map(|x| x + shift).collect();
        let v: Vec<f32> = logits(&mut rng, n, 3.0)
            .iter()
            .map(|x| x - 2.0 * shift)
            .collect();
        let (zc, vc) = (wide(&centred(&z)), wide(&centred(&v)));
        for t in TEMPERATURES {
            let mine = tw::high_t_gradient(arr1(&z).view(), arr1(&v).view(), t);
            let t = f64::from(t);
            let expected: Vec<f64> = zc
                .iter()
                .zip(&vc)
                .map(|(a, b)| (a - b) / (n as f64 * t * t))
                .collect();
            if let Some(d) = first_difference(&mine, &expected, 1e-4) {
                panic!(
                    "{n} logits with means {shift} and {}, t = {t}: {d} (centre each vector on its own mean, then (z − v) / (N t²))",
                    -2.0 * shift
                );
            }
        }
    }

    // The approximation approaches the exact soft gradient (p − q) / t as
    // t grows: zero-mean logits uniform in [−2, 2], 32 classes.
    let mut rng = Lcg(2);
    for _ in 0..3 {
        let z = centred(&logits(&mut rng, 32, 2.0));
        let v = centred(&logits(&mut rng, 32, 2.0));
        let mut errors = vec![];
        for t in [1.0, 2.0, 5.0, 20.0, 100.0] {
            let mine = tw::high_t_gradient(arr1(&z).view(), arr1(&v).view(), t);
            let exact = ref_soft_gradient(&wide(&z), &wide(&v), f64::from(t));
            let diff: Vec<f64> = mine
                .iter()
                .zip(&exact)
                .map(|(&a, b)| f64::from(a) - b)
                .collect();
            errors.push((t, norm(&diff) / norm(&exact)));
        }
        assert!(
            errors.windows(2).all(|w| w[1].1 < w[0].1),
            "the relative error must shrink as t grows: {errors:?}"
        );
        let at_20 = errors[3].1;
        assert!(
            at_20 < 0.05,
            "at t = 20 the approximation must be within 5 % of the exact gradient, it is {:.1} % off",
            100.0 * at_20
        );
    }
}

pub fn loglog_slope() {
    let s = tw::loglog_slope(&[1.0, 2.0, 4.0], &[3.0, 0.75, 0.1875]);
    assert!(
        (s + 2.0).abs() < 1e-4,
        "the worked example (m = 3 t⁻² at t = 1, 2, 4): expected −2, got {s}"
    );
    let s = tw::loglog_slope(&[2.0, 8.0], &[5.0, 10.0]);
    assert!(
        (s - 0.5).abs() < 1e-4,
        "two points (2, 5) and (8, 10): ln 2 / ln 4 = 0.5, got {s}"
    );
    let grids: [&[f32]; 2] = [
        &[1.0, 2.0, 4.0, 8.0, 16.0],
        &[1.5, 3.0, 10.0, 42.0, 64.0, 100.0],
    ];
    for ts in grids {
        for (c, a) in [
            (3.0, -2.0),
            (0.5, 1.5),
            (7.0, 0.0),
            (1e-3, -1.0),
            (20.0, -3.0),
        ] {
            let ms: Vec<f32> = ts.iter().map(|&t| c * t.powf(a)).collect();
            let s = tw::loglog_slope(ts, &ms);
            assert!(
                (s - a).abs() < 1e-4,
                "m = {c} · t^{a} at t = {ts:?}: the slope is the exponent {a}, got {s}"
            );
        }
    }
    // Scattered points: a least-squares fit over all of them.
    let ts = [1.0f32, 2.0, 3.0, 5.0, 8.0, 13.0];
    let noise = [1.3f32, 0.8, 1.1, 0.7, 1.2, 1.25];
    let ms: Vec<f32> = ts.iter().zip(&noise).map(|(t, e)| e / t).collect();
    let s = tw::loglog_slope(&ts, &ms);
    let expected = ref_slope(&wide(&ts), &wide(&ms));
    assert!(
        close(s, expected, 1e-4),
        "scattered points around m = 1/t: the least-squares slope over all six is {expected}, got {s} (not only the two end points)"
    );

    // The lesson: the soft gradient's size falls like t⁻², and with F = t²
    // it no longer changes.
    let ts = [4.0f32, 8.0, 16.0, 32.0, 64.0];
    let mut rng = Lcg(3);
    for _ in 0..3 {
        let z = wide(&centred(&logits(&mut rng, 32, 2.0)));
        let v = wide(&centred(&logits(&mut rng, 32, 2.0)));
        let sizes: Vec<f64> = ts
            .iter()
            .map(|&t| norm(&ref_soft_gradient(&z, &v, f64::from(t))))
            .collect();
        let plain: Vec<f32> = sizes.iter().map(|&m| m as f32).collect();
        let s = tw::loglog_slope(&ts, &plain);
        let expected = ref_slope(&wide(&ts), &sizes);
        assert!(
            close(s, expected, 1e-4) && (s + 2.0).abs() < 0.05,
            "the soft gradient's size at t = {ts:?} is {plain:?}: expected a slope of {expected:.4} (≈ −2), got {s}"
        );
        let scaled: Vec<f32> = sizes
            .iter()
            .zip(&ts)
            .map(|(&m, &t)| (m * f64::from(t * t)) as f32)
            .collect();
        let s = tw::loglog_slope(&ts, &scaled);
        assert!(
            s.abs() < 0.05,
            "the soft gradient times t² at t = {ts:?} is {scaled:?}: expected a slope ≈ 0, got {s}"
        );
    }
}
