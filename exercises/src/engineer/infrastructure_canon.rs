//! Trials of "The Infrastructure Canon": uptime is not quality.
//!
//! The canon's first law is that a served model can be up and wrong: every
//! request answered `200 OK`, every latency within its objective, every
//! probe green, while the prompts drift away from anything it was trained
//! on and its answers rot in silence. Prometheus scrapes what the server
//! exposes, but it only watches what you measure, so the quality of a
//! model has to become numbers as plain as a request count: how far this
//! week's inputs have moved from the reference week's (the population
//! stability index of two histograms, trial 1), how sure the model is of
//! its next token (the entropy of its distribution, trial 2), how far two
//! samples of a score lie apart (the Kolmogorov–Smirnov statistic, trial
//! 3), and when such a number should wake someone, neither at the first
//! blip nor never (an alert rule with `for`, trial 4).
// The stubs do not use their arguments yet: that is your job.
#![allow(unused_variables)]

/// Trial 1. The population stability index (PSI) between a reference
/// histogram `expected` and a current one `actual`, both given as bin
/// *counts* over the same bins.
///
/// Turn each into proportions, `eᵢ = expectedᵢ / Σ expected` and
/// `aᵢ = actualᵢ / Σ actual`, then floor every proportion at `1e-4`
/// (`max(p, 1e-4)`, and *no* renormalisation afterwards: an empty bin
/// would otherwise make `ln(a / e)` infinite), and sum over the bins:
///
/// `PSI = Σ (aᵢ − eᵢ) · ln(aᵢ / eᵢ)`
///
/// Every term is ≥ 0 (the two factors always share their sign), so PSI is
/// ≥ 0, is 0 for histograms of the same shape, and does not change when
/// the two are swapped. The usual reading: below 0.1 stable, 0.1 to 0.25
/// worth a look, above 0.25 the inputs have moved.
///
/// Never panic: histograms of different lengths, or one whose counts add up
/// to 0 (an empty one included), give `f64::NAN`.
///
/// Example: `expected = [50, 50]`, `actual = [90, 10]` →
/// `0.4 · ln 1.8 − 0.4 · ln 0.2 = 0.4 · ln 9 ≈ 0.878890`.
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    todo!("proportions, floored at 1e-4, then the sum of (a − e) · ln(a / e)")
}

/// Trial 2. The Shannon entropy of a probability distribution `probs`, in
/// nats (natural logarithm): `H = −Σ pᵢ · ln pᵢ`.
///
/// A term with `pᵢ = 0` contributes 0 (the limit of `p ln p`), not NaN.
/// The probabilities are taken as given, not renormalised; no
/// probabilities at all give 0.
///
/// Examples: `[0.5, 0.5]` → `ln 2 ≈ 0.693147`; `[1, 0, 0]` → `0`; the
/// uniform distribution over `k` outcomes → `ln k`, the most any
/// distribution over `k` outcomes can have.
pub fn entropy(probs: &[f64]) -> f64 {
    todo!("−Σ p · ln p, skipping p = 0")
}

/// Trial 3. The two-sample Kolmogorov–Smirnov statistic: the largest gap
/// between the empirical distribution functions of the samples `a` and `b`,
/// `D = sup_x |F_a(x) − F_b(x)|`, where `F_a(x)` is the fraction of `a`
/// that is `≤ x`.
///
/// The samples come in any order, may have different sizes and may repeat
/// values (they hold no NaN). The supremum is reached at one of the sample
/// values, and at a value present several times (in one sample or in both)
/// both functions must have taken *every* copy before they are compared.
/// An empty sample gives `f64::NAN`.
///
/// Examples: `[1, 2, 3, 4]` against `[3, 4, 5, 6]` → `0.5` (at `x = 2`:
/// `2/4 − 0/4`); `[1, 2]` against `[1, 2]` → `0`; any two samples where
/// every value of one is below every value of the other → `1`.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    todo!("sort both, walk them together past equal values, keep the largest gap")
}

/// Trial 4. When an alert rule `value > threshold` with a `for` clause first
/// fires, given the values of its expression at successive evaluations.
///
/// The rule is evaluated at every index. It fires at the first index `t`
/// where the condition held at every one of the `for_evals` evaluations
/// `t − for_evals + 1 ..= t`: one false evaluation (the alert goes back to
/// inactive) starts the count again. `for_evals` of 0 or 1 both mean it
/// fires at the first true evaluation. A NaN value never satisfies the
/// condition (nor does any value when `threshold` is NaN), and a value equal
/// to the threshold is not above it. `None` if it never fires.
///
/// (Prometheus counts `for` in time since the first true evaluation: with
/// evaluations every 15 s, `for: 1m` fires at the fifth consecutive true
/// one, which is `for_evals = 5` here, and `for: 0s` is `for_evals = 1`.)
///
/// Example: `[5, 5, 0, 5, 5, 5]` over 1 with `for_evals = 3` → `Some(5)`:
/// the false at index 2 resets the count, so index 3 is not the third true.
pub fn first_firing(values: &[f64], threshold: f64, for_evals: usize) -> Option<usize> {
    todo!("count consecutive true evaluations, reset on a false")
}
