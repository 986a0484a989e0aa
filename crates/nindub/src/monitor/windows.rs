//! A reference window and a live one, per signal, and the drift between
//! them.
//!
//! The first `reference` observations after the server starts (the model
//! as it was approved, under the traffic it was approved for) are kept and
//! frozen. The last `live` observations slide. Once both are full, every
//! observation updates the drift scores: PSI over the reference's quantile
//! bins and the KS statistic for the numeric signals (the chosen token's
//! probability, the entropy, the prompts' embedding norms), and the
//! Jensen–Shannon divergence for the categorical ones (which tokens the
//! prompts hold, which the model writes), over the reference's most
//! frequent tokens and one bin for all the rest.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use super::stats;

/// Window sizes, in tokens.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WindowConfig {
    /// Observations frozen as the reference.
    pub reference: usize,
    /// Observations in the sliding live window.
    pub live: usize,
    /// Quantile bins for PSI.
    pub bins: usize,
    /// Tokens the categorical histograms keep apart (the rest share a bin).
    pub top_tokens: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            reference: 400,
            live: 160,
            bins: 10,
            top_tokens: 31,
        }
    }
}

/// What is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Signal {
    /// The chosen token's probability in the model's own distribution.
    TokenProbability,
    /// The entropy of that distribution (nats).
    TokenEntropy,
    /// Which tokens the model writes.
    OutputTokens,
    /// Which tokens the prompts hold.
    InputTokens,
    /// The L2 norm of each prompt token's embedding row.
    InputEmbeddingNorm,
}

impl Signal {
    pub const ALL: [Signal; 5] = [
        Signal::TokenProbability,
        Signal::TokenEntropy,
        Signal::OutputTokens,
        Signal::InputTokens,
        Signal::InputEmbeddingNorm,
    ];

    /// The signal a `signal` label names.
    pub fn from_name(name: &str) -> Option<Signal> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The `signal` label of the exported series.
    pub fn name(self) -> &'static str {
        match self {
            Signal::TokenProbability => "token_probability",
            Signal::TokenEntropy => "token_entropy",
            Signal::OutputTokens => "output_tokens",
            Signal::InputTokens => "input_tokens",
            Signal::InputEmbeddingNorm => "input_embedding_norm",
        }
    }
}

/// A drift test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Test {
    Psi,
    Ks,
    Js,
}

impl Test {
    pub const ALL: [Test; 3] = [Test::Psi, Test::Ks, Test::Js];

    /// The test a `test` label names.
    pub fn from_name(name: &str) -> Option<Test> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The `test` label of the exported series.
    pub fn name(self) -> &'static str {
        match self {
            Test::Psi => "psi",
            Test::Ks => "ks",
            Test::Js => "js",
        }
    }
}

/// A frozen reference and a sliding live window of numbers.
#[derive(Debug, Clone)]
pub struct Numeric {
    reference: Vec<f64>,
    live: VecDeque<f64>,
    edges: Vec<f64>,
    cfg: WindowConfig,
}

impl Numeric {
    pub fn new(cfg: WindowConfig) -> Self {
        Numeric {
            reference: Vec::with_capacity(cfg.reference),
            live: VecDeque::with_capacity(cfg.live + 1),
            edges: vec![],
            cfg,
        }
    }

    pub fn push(&mut self, x: f64) {
        if x.is_nan() {
            return;
        }
        if self.reference.len() < self.cfg.reference {
            self.reference.push(x);
            if self.reference.len() == self.cfg.reference {
                self.edges = stats::quantile_edges(&self.reference, self.cfg.bins);
            }
        } else {
            self.live.push_back(x);
            if self.live.len() > self.cfg.live {
                self.live.pop_front();
            }
        }
    }

    /// Both windows full: the scores mean something.
    pub fn ready(&self) -> bool {
        self.reference.len() == self.cfg.reference && self.live.len() == self.cfg.live
    }

    pub fn lens(&self) -> (usize, usize) {
        (self.reference.len(), self.live.len())
    }

    /// Means of the reference and of the live window (NaN when empty).
    pub fn means(&self) -> (f64, f64) {
        let mean = |s: &mut dyn Iterator<Item = f64>, n: usize| {
            if n == 0 {
                f64::NAN
            } else {
                s.sum::<f64>() / n as f64
            }
        };
        (
            mean(&mut self.reference.iter().copied(), self.reference.len()),
            mean(&mut self.live.iter().copied(), self.live.len()),
        )
    }

    /// PSI over the reference's quantile bins, once both windows are full.
    pub fn psi(&self) -> Option<f64> {
        if !self.ready() {
            return None;
        }
        let live: Vec<f64> = self.live.iter().copied().collect();
        stats::psi(
            &stats::bin_counts(&self.reference, &self.edges),
            &stats::bin_counts(&live, &self.edges),
        )
    }

    /// The KS statistic, once both windows are full.
    pub fn ks(&self) -> Option<f64> {
        if !self.ready() {
            return None;
        }
        let live: Vec<f64> = self.live.iter().copied().collect();
        stats::ks_statistic(&self.reference, &live)
    }
}

/// A frozen reference and a sliding live window of token ids.
#[derive(Debug, Clone)]
pub struct Categorical {
    reference: Vec<u32>,
    live: VecDeque<u32>,
    /// Bin of each of the reference's most frequent tokens (the rest: the last bin).
    bins: HashMap<u32, usize>,
    cfg: WindowConfig,
}

impl Categorical {
    pub fn new(cfg: WindowConfig) -> Self {
        Categorical {
            reference: Vec::with_capacity(cfg.reference),
            live: VecDeque::with_capacity(cfg.live + 1),
            bins: HashMap::new(),
            cfg,
        }
    }

    pub fn push(&mut self, token: u32) {
        if self.reference.len() < self.cfg.reference {
            self.reference.push(token);
            if self.reference.len() == self.cfg.reference {
                let mut counts: HashMap<u32, usize> = HashMap::new();
                for &t in &self.reference {
                    *counts.entry(t).or_default() += 1;
                }
                let mut by_count: Vec<(u32, usize)> = counts.into_iter().collect();
                // Most frequent first; ties by id, so the bins never depend
                // on a hash map's order.
                by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                self.bins = by_count
                    .into_iter()
                    .take(self.cfg.top_tokens)
                    .enumerate()
                    .map(|(i, (t, _))| (t, i))
                    .collect();
            }
        } else {
            self.live.push_back(token);
            if self.live.len() > self.cfg.live {
                self.live.pop_front();
            }
        }
    }

    pub fn ready(&self) -> bool {
        self.reference.len() == self.cfg.reference && self.live.len() == self.cfg.live
    }

    fn histogram(&self, tokens: impl Iterator<Item = u32>) -> Vec<f64> {
        let other = self.bins.len();
        let mut h = vec![0.0; other + 1];
        for t in tokens {
            h[self.bins.get(&t).copied().unwrap_or(other)] += 1.0;
        }
        h
    }

    /// Jensen–Shannon divergence (bits), once both windows are full.
    pub fn js(&self) -> Option<f64> {
        if !self.ready() {
            return None;
        }
        stats::js_divergence(
            &self.histogram(self.reference.iter().copied()),
            &self.histogram(self.live.iter().copied()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> WindowConfig {
        WindowConfig {
            reference: 100,
            live: 50,
            bins: 5,
            top_tokens: 3,
        }
    }

    #[test]
    fn numeric_windows_fill_then_slide() {
        let mut w = Numeric::new(small());
        for i in 0..100 {
            w.push(f64::from(i % 10));
        }
        assert_eq!(w.lens(), (100, 0));
        assert_eq!(w.psi(), None, "no live window yet");
        for i in 0..200 {
            w.push(f64::from(i % 10));
        }
        assert_eq!(w.lens(), (100, 50));
        assert!(w.psi().unwrap() < 1e-9, "the same distribution");
        assert_eq!(w.ks(), Some(0.0));
        for _ in 0..50 {
            w.push(100.0);
        }
        assert!(w.psi().unwrap() > 1.0, "everything moved to the top bin");
        assert_eq!(w.ks(), Some(1.0));
        assert_eq!(w.means(), (4.5, 100.0));
    }

    #[test]
    fn labels_read_back() {
        for s in Signal::ALL {
            assert_eq!(Signal::from_name(s.name()), Some(s));
        }
        for t in Test::ALL {
            assert_eq!(Test::from_name(t.name()), Some(t));
        }
        assert_eq!(Test::from_name("chi2"), None);
    }

    #[test]
    fn categorical_js_sees_new_tokens() {
        let mut w = Categorical::new(small());
        for i in 0..150u32 {
            w.push(i % 4);
        }
        // 50 live tokens hold 13, 13, 12, 12 of each: nearly the reference's quarters.
        assert!(w.js().unwrap() < 1e-3, "{:?}", w.js());
        for _ in 0..50 {
            w.push(999);
        }
        // every live token falls in the shared bin, which held a quarter
        // of the reference: JS((¼,¼,¼,¼), (0,0,0,1)) > 0.5 bit.
        assert!(w.js().unwrap() > 0.5, "{:?}", w.js());
    }
}
