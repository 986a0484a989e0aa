//! Decoding controls: turning a row of logits into the next token.
//!
//! Each control is a separate [`LogitsProcessor`] that rewrites the logits
//! in place (a token that is ruled out gets −∞); a [`Sampler`] runs a chain
//! of them and then picks: the arg-max when greedy, else a draw from the
//! softmax with a seeded generator, so that a seed reproduces a generation.
//! The chain's order follows Hugging Face's: repetition penalty,
//! temperature, top-k, top-p, min-p.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One step of the chain.
pub trait LogitsProcessor: Send {
    /// Rewrites `logits` given the tokens generated so far (prompt included).
    fn process(&self, logits: &mut [f32], history: &[u32]);
    fn name(&self) -> String;
}

// ANCHOR: softmax
/// Softmax, computed stably: `exp(zᵢ − max z) / Σⱼ exp(zⱼ − max z)`.
/// Tokens at −∞ get probability 0.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return vec![0.0; logits.len()];
    }
    let exps: Vec<f32> = logits.iter().map(|&z| (z - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}
// ANCHOR_END: softmax

/// Shannon entropy of a distribution, in nats.
pub fn entropy(probs: &[f32]) -> f32 {
    probs
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| -p * p.ln())
        .sum()
}

// ANCHOR: prob_and_entropy
/// The probability of `token` and the entropy (nats) of `softmax(logits)`,
/// in one pass and without building the distribution. With `m = max z`,
/// `Z = Σ exp(zᵢ − m)` and `pᵢ = exp(zᵢ − m)/Z`:
/// `H = −Σ pᵢ ln pᵢ = ln Z − Σ pᵢ (zᵢ − m)`.
/// Tokens at −∞ have probability 0 and add nothing.
pub fn prob_and_entropy(logits: &[f32], token: u32) -> (f32, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return (0.0, 0.0);
    }
    let (mut z, mut weighted) = (0f64, 0f64);
    for &l in logits {
        let d = (l - max) as f64;
        let e = d.exp();
        z += e;
        if e > 0.0 {
            weighted += e * d;
        }
    }
    let p = logits
        .get(token as usize)
        .map_or(0.0, |&l| ((l - max) as f64).exp() / z);
    (p as f32, (z.ln() - weighted / z).max(0.0) as f32)
}
// ANCHOR_END: prob_and_entropy

// ANCHOR: temperature
/// Divides every logit by `t`: `t < 1` sharpens the distribution, `t > 1`
/// flattens it.
pub struct Temperature(pub f32);

impl LogitsProcessor for Temperature {
    fn process(&self, logits: &mut [f32], _: &[u32]) {
        logits.iter_mut().for_each(|z| *z /= self.0);
    }
    fn name(&self) -> String {
        format!("temperature {}", self.0)
    }
}
// ANCHOR_END: temperature

/// Keeps the `k` highest logits.
pub struct TopK(pub usize);

impl LogitsProcessor for TopK {
    fn process(&self, logits: &mut [f32], _: &[u32]) {
        if self.0 >= logits.len() {
            return;
        }
        let mut sorted: Vec<f32> = logits.to_vec();
        sorted.sort_unstable_by(|a, b| b.total_cmp(a));
        let threshold = sorted[self.0 - 1];
        // Ties at the threshold are kept beyond k only as far as needed to
        // keep exactly k: the first ones in vocabulary order win.
        let mut above = logits.iter().filter(|&&z| z > threshold).count();
        for z in logits.iter_mut() {
            if *z < threshold {
                *z = f32::NEG_INFINITY;
            } else if *z == threshold {
                if above < self.0 {
                    above += 1;
                } else {
                    *z = f32::NEG_INFINITY;
                }
            }
        }
    }
    fn name(&self) -> String {
        format!("top-k {}", self.0)
    }
}

// ANCHOR: top_p
/// Nucleus sampling: keeps the smallest set of most probable tokens whose
/// probabilities add up to at least `p`.
pub struct TopP(pub f32);

impl LogitsProcessor for TopP {
    fn process(&self, logits: &mut [f32], _: &[u32]) {
        let probs = softmax(logits);
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_unstable_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let mut cumulative = 0.0;
        let mut keep = order.len();
        for (rank, &i) in order.iter().enumerate() {
            cumulative += probs[i];
            if cumulative >= self.0 {
                keep = rank + 1;
                break;
            }
        }
        for &i in &order[keep..] {
            logits[i] = f32::NEG_INFINITY;
        }
    }
    fn name(&self) -> String {
        format!("top-p {}", self.0)
    }
}
// ANCHOR_END: top_p

/// Keeps the tokens whose probability is at least `p` times the most
/// probable token's.
pub struct MinP(pub f32);

impl LogitsProcessor for MinP {
    fn process(&self, logits: &mut [f32], _: &[u32]) {
        let probs = softmax(logits);
        let max = probs.iter().copied().fold(0.0, f32::max);
        for (z, p) in logits.iter_mut().zip(probs) {
            if p < self.0 * max {
                *z = f32::NEG_INFINITY;
            }
        }
    }
    fn name(&self) -> String {
        format!("min-p {}", self.0)
    }
}

// ANCHOR: repetition_penalty
/// The CTRL repetition penalty (Keskar et al., 2019), over the last
/// `window` tokens: a seen token's logit is divided by `penalty` if
/// positive, multiplied by it if negative, so either way it drops.
pub struct RepetitionPenalty {
    pub penalty: f32,
    pub window: usize,
}

impl LogitsProcessor for RepetitionPenalty {
    fn process(&self, logits: &mut [f32], history: &[u32]) {
        let start = history.len().saturating_sub(self.window);
        let mut seen: Vec<u32> = history[start..].to_vec();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            if let Some(z) = logits.get_mut(t as usize) {
                *z = if *z > 0.0 {
                    *z / self.penalty
                } else {
                    *z * self.penalty
                };
            }
        }
    }
    fn name(&self) -> String {
        format!("repetition penalty {} (last {})", self.penalty, self.window)
    }
}
// ANCHOR_END: repetition_penalty

/// The decoding settings, with the defaults the Cantrip uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingConfig {
    /// 0 means greedy (always the most probable token).
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    /// 1 means no penalty.
    pub repeat_penalty: f32,
    pub repeat_window: usize,
    pub seed: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            temperature: 0.7,
            top_k: Some(40),
            top_p: Some(0.9),
            min_p: None,
            // Off unless asked, as in llama.cpp and transformers: at
            // temperature 0 the choice is the argmax.
            repeat_penalty: 1.0,
            repeat_window: 64,
            seed: 299_792_458,
        }
    }
}

impl SamplingConfig {
    /// Greedy decoding, no penalty.
    pub fn greedy() -> Self {
        SamplingConfig {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            min_p: None,
            repeat_penalty: 1.0,
            ..Self::default()
        }
    }

    /// Checks every value's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::invalid("sampling settings", reason));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!(
                "temperature {} must be ≥ 0 (0 = greedy)",
                self.temperature
            ));
        }
        if self.top_k == Some(0) {
            return bad("top-k must be at least 1".into());
        }
        if let Some(p) = self.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            return bad(format!("top-p {p} must be in (0, 1]"));
        }
        if let Some(p) = self.min_p.filter(|p| !(*p >= 0.0 && *p <= 1.0)) {
            return bad(format!("min-p {p} must be in [0, 1]"));
        }
        if !(self.repeat_penalty > 0.0 && self.repeat_penalty.is_finite()) {
            return bad(format!(
                "repetition penalty {} must be > 0 (1 = none)",
                self.repeat_penalty
            ));
        }
        Ok(())
    }
}

/// A chain of processors and a seeded choice.
pub struct Sampler {
    pub processors: Vec<Box<dyn LogitsProcessor>>,
    greedy: bool,
    rng: StdRng,
}

impl Sampler {
    /// The chain a configuration describes.
    pub fn new(cfg: &SamplingConfig) -> Result<Self> {
        cfg.validate()?;
        let mut processors: Vec<Box<dyn LogitsProcessor>> = vec![];
        if cfg.repeat_penalty != 1.0 {
            processors.push(Box::new(RepetitionPenalty {
                penalty: cfg.repeat_penalty,
                window: cfg.repeat_window,
            }));
        }
        let greedy = cfg.temperature == 0.0;
        if !greedy {
            if cfg.temperature != 1.0 {
                processors.push(Box::new(Temperature(cfg.temperature)));
            }
            if let Some(k) = cfg.top_k {
                processors.push(Box::new(TopK(k)));
            }
            if let Some(p) = cfg.top_p.filter(|&p| p < 1.0) {
                processors.push(Box::new(TopP(p)));
            }
            if let Some(p) = cfg.min_p.filter(|&p| p > 0.0) {
                processors.push(Box::new(MinP(p)));
            }
        }
        Ok(Sampler {
            processors,
            greedy,
            rng: StdRng::seed_from_u64(cfg.seed),
        })
    }

    /// Applies the chain to a copy of `logits`.
    pub fn process(&self, logits: &[f32], history: &[u32]) -> Vec<f32> {
        let mut z = logits.to_vec();
        for p in &self.processors {
            p.process(&mut z, history);
        }
        z
    }

    /// The next token.
    pub fn next(&mut self, logits: &[f32], history: &[u32]) -> Result<u32> {
        Ok(self.choose(logits, history)?.0)
    }

    /// The next token, and the distribution it was drawn from: the
    /// softmax of the logits after the whole chain (penalty, temperature,
    /// truncation), so a truncated token has probability 0. When greedy,
    /// the softmax of the penalized logits at temperature 1, whose argmax
    /// is the choice.
    pub fn choose(&mut self, logits: &[f32], history: &[u32]) -> Result<(u32, Vec<f32>)> {
        if logits.is_empty() {
            return Err(Error::invalid("sampling", "empty logits"));
        }
        let z = self.process(logits, history);
        let probs = softmax(&z);
        if self.greedy {
            return Ok((argmax(&z), probs));
        }
        let u: f32 = self.rng.random();
        let mut cumulative = 0.0;
        for (i, p) in probs.iter().enumerate() {
            cumulative += p;
            if u < cumulative {
                return Ok((i as u32, probs));
            }
        }
        // Rounding left `u` above the last sum: the last possible token.
        let last = probs.iter().rposition(|&p| p > 0.0).unwrap_or(0) as u32;
        Ok((last, probs))
    }
}

/// How many tokens a processed row of logits still allows (not −∞).
pub fn kept(logits: &[f32]) -> usize {
    logits.iter().filter(|z| z.is_finite()).count()
}

/// Index of the largest value (the first, on ties).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG: f32 = f32::NEG_INFINITY;

    fn kept(z: &[f32]) -> Vec<usize> {
        z.iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, _)| i)
            .collect()
    }

    /// Logits whose softmax is exactly `[0.5, 0.3, 0.15, 0.05]`.
    fn four() -> Vec<f32> {
        [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect()
    }

    #[test]
    fn prob_and_entropy_agree_with_the_distribution() {
        let z = [2.0f32, -1.0, 0.5, f32::NEG_INFINITY, 3.0];
        let p = softmax(&z);
        let (q, h) = prob_and_entropy(&z, 2);
        assert!((q - p[2]).abs() < 1e-6, "{q} vs {}", p[2]);
        assert!((h - entropy(&p)).abs() < 1e-5, "{h} vs {}", entropy(&p));
        let (_, flat) = prob_and_entropy(&[0.0; 8], 0);
        assert!((flat - 8f32.ln()).abs() < 1e-6, "uniform over 8: ln 8");
        assert_eq!(prob_and_entropy(&z, 99).0, 0.0, "a token out of range");
    }

    #[test]
    fn softmax_is_a_distribution_and_shift_invariant() {
        let p = softmax(&[1.0, 2.0, 3.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let q = softmax(&[1001.0, 1002.0, 1003.0]);
        assert!(
            p.iter().zip(&q).all(|(a, b)| (a - b).abs() < 1e-6),
            "no overflow at large logits"
        );
        assert_eq!(softmax(&[0.0, NEG]), vec![1.0, 0.0]);
    }

    #[test]
    fn temperature_scales_and_changes_entropy() {
        let mut z = vec![2.0, 4.0];
        Temperature(2.0).process(&mut z, &[]);
        assert_eq!(z, vec![1.0, 2.0]);
        let base = entropy(&softmax(&four()));
        let mut hot = four();
        Temperature(2.0).process(&mut hot, &[]);
        let mut cold = four();
        Temperature(0.5).process(&mut cold, &[]);
        assert!(entropy(&softmax(&hot)) > base && base > entropy(&softmax(&cold)));
    }

    #[test]
    fn top_k_keeps_exactly_k() {
        let mut z = vec![1.0, 5.0, 3.0, 5.0, 2.0];
        TopK(2).process(&mut z, &[]);
        assert_eq!(kept(&z), vec![1, 3]);
        let mut ties = vec![1.0, 1.0, 1.0];
        TopK(2).process(&mut ties, &[]);
        assert_eq!(kept(&ties), vec![0, 1], "ties: first in vocabulary order");
        let mut all = vec![1.0, 2.0];
        TopK(10).process(&mut all, &[]);
        assert_eq!(kept(&all), vec![0, 1]);
    }

    #[test]
    fn top_p_keeps_the_smallest_nucleus() {
        let mut z = four();
        TopP(0.8).process(&mut z, &[]);
        assert_eq!(kept(&z), vec![0, 1], "0.5 + 0.3 reaches 0.8");
        let mut z = four();
        TopP(0.81).process(&mut z, &[]);
        assert_eq!(kept(&z), vec![0, 1, 2]);
        let mut z = four();
        TopP(0.1).process(&mut z, &[]);
        assert_eq!(kept(&z), vec![0], "the top token always stays");
    }

    #[test]
    fn min_p_is_relative_to_the_best() {
        let mut z = four();
        MinP(0.25).process(&mut z, &[]);
        assert_eq!(kept(&z), vec![0, 1, 2], "0.15 ≥ 0.25·0.5, 0.05 is not");
    }

    #[test]
    fn kept_counts_what_is_not_ruled_out() {
        let mut z = four();
        assert_eq!(super::kept(&z), 4);
        TopK(2).process(&mut z, &[]);
        assert_eq!(super::kept(&z), 2);
    }

    #[test]
    fn repetition_penalty_lowers_seen_tokens_in_the_window() {
        let mut z = vec![2.0, -2.0, 2.0, 1.0];
        RepetitionPenalty {
            penalty: 2.0,
            window: 2,
        }
        .process(&mut z, &[2, 0, 1, 1]);
        assert_eq!(
            z,
            vec![2.0, -4.0, 2.0, 1.0],
            "only tokens 1 (twice, penalised once) in the last 2"
        );
        let mut z = vec![2.0, -2.0];
        RepetitionPenalty {
            penalty: 2.0,
            window: 8,
        }
        .process(&mut z, &[0, 1]);
        assert_eq!(z, vec![1.0, -4.0]);
    }

    #[test]
    fn temperature_zero_alone_is_the_argmax_even_of_seen_tokens() {
        // The defaults with only the temperature changed: no penalty is on
        // unless asked, so the most probable token wins even when it was
        // already said.
        let mut g = Sampler::new(&SamplingConfig {
            temperature: 0.0,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(g.next(&[0.1, 3.0, 2.9], &[1, 1, 1]).unwrap(), 1);
    }

    #[test]
    fn choose_reports_the_distribution_it_drew_from() {
        let cfg = SamplingConfig {
            temperature: 1.0,
            top_k: Some(2),
            top_p: None,
            repeat_penalty: 4.0,
            ..Default::default()
        };
        let mut s = Sampler::new(&cfg).unwrap();
        // Token 3 was the best before the penalty; seen, it drops out of
        // the top 2, and the reported distribution says so.
        for _ in 0..20 {
            let (token, p) = s.choose(&[1.0, 2.0, 0.5, 3.0], &[3]).unwrap();
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            assert_eq!(p[3], 0.0, "{p:?}");
            assert_eq!(p[2], 0.0, "{p:?}");
            assert!(p[token as usize] > 0.0, "{token} drawn at p = 0");
        }
        // Greedy: the distribution at temperature 1 of the penalized
        // logits, whose argmax is the choice.
        let mut g = Sampler::new(&SamplingConfig {
            temperature: 0.0,
            repeat_penalty: 4.0,
            ..Default::default()
        })
        .unwrap();
        let (token, p) = g.choose(&[1.0, 2.0, 0.5, 3.0], &[3]).unwrap();
        assert_eq!(token, 1);
        assert_eq!(argmax(&p), 1);
    }

    #[test]
    fn greedy_is_argmax_and_seeds_reproduce() {
        let mut g = Sampler::new(&SamplingConfig::greedy()).unwrap();
        assert_eq!(g.next(&[0.1, 3.0, 2.9], &[]).unwrap(), 1);
        let cfg = SamplingConfig {
            temperature: 1.0,
            top_k: None,
            top_p: None,
            repeat_penalty: 1.0,
            ..Default::default()
        };
        let draws = |seed| {
            let mut s = Sampler::new(&SamplingConfig {
                seed,
                ..cfg.clone()
            })
            .unwrap();
            (0..50)
                .map(|_| s.next(&four(), &[]).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
    }

    #[test]
    fn sampling_follows_the_distribution() {
        let cfg = SamplingConfig {
            temperature: 1.0,
            top_k: None,
            top_p: None,
            repeat_penalty: 1.0,
            ..Default::default()
        };
        let mut s = Sampler::new(&cfg).unwrap();
        let n = 20_000;
        let mut counts = [0usize; 4];
        for _ in 0..n {
            counts[s.next(&four(), &[]).unwrap() as usize] += 1;
        }
        for (c, p) in counts.iter().zip([0.5, 0.3, 0.15, 0.05]) {
            let freq = *c as f64 / n as f64;
            // Four standard deviations of a binomial frequency.
            let tol = 4.0 * (p * (1.0 - p) / n as f64).sqrt();
            assert!(
                (freq - p).abs() < tol,
                "frequency {freq} vs probability {p}"
            );
        }
    }

    #[test]
    fn top_k_one_is_greedy_at_any_temperature() {
        let cfg = SamplingConfig {
            temperature: 5.0,
            top_k: Some(1),
            top_p: None,
            repeat_penalty: 1.0,
            ..Default::default()
        };
        let mut s = Sampler::new(&cfg).unwrap();
        assert!((0..100).all(|_| s.next(&four(), &[]).unwrap() == 0));
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        for cfg in [
            SamplingConfig {
                temperature: -1.0,
                ..Default::default()
            },
            SamplingConfig {
                temperature: f32::NAN,
                ..Default::default()
            },
            SamplingConfig {
                top_k: Some(0),
                ..Default::default()
            },
            SamplingConfig {
                top_p: Some(0.0),
                ..Default::default()
            },
            SamplingConfig {
                top_p: Some(1.5),
                ..Default::default()
            },
            SamplingConfig {
                min_p: Some(2.0),
                ..Default::default()
            },
            SamplingConfig {
                repeat_penalty: 0.0,
                ..Default::default()
            },
        ] {
            assert!(Sampler::new(&cfg).is_err(), "{cfg:?}");
        }
        let mut s = Sampler::new(&SamplingConfig::greedy()).unwrap();
        assert!(s.next(&[], &[]).is_err());
    }
}
