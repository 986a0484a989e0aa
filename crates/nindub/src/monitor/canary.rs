//! Canaries: prompts whose answers are known, scored on a schedule.
//!
//! The answers are the approved model's own: [`record`] runs each prompt
//! greedily once, at release, and keeps the tokens. [`score`] later feeds
//! prompt and recorded answer to the live model in one pass (teacher
//! forcing: the model is shown each answer token, whatever it would have
//! written) and counts the answer tokens it still ranks first. The
//! approved model scores 1.0 by construction; a model whose weights went
//! wrong scores less, long before a user complains, and with no user
//! traffic at all.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::generate::{GenerateConfig, Generator};
use crate::model::sample::{SamplingConfig, argmax, prob_and_entropy};

/// One canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Canary {
    pub prompt: String,
    /// The answer's text, for people.
    pub answer: String,
    /// The answer as the approved model wrote it, token by token.
    pub answer_tokens: Vec<u32>,
}

/// A canary set, as `nindub monitor canary` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanarySet {
    /// The model the answers came from (its file name).
    pub model: String,
    pub canaries: Vec<Canary>,
}

/// How the live model did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CanaryScore {
    /// Answer tokens the model ranks first, over all answer tokens.
    pub accuracy: f64,
    /// Mean natural log-probability of an answer token.
    pub logprob_mean: f64,
    pub tokens: usize,
    /// Canaries answered entirely as recorded.
    pub exact: usize,
    pub canaries: usize,
}

impl CanarySet {
    /// Reads a set, refusing an empty one or an empty answer (a canary
    /// that cannot fail).
    pub fn load(path: &Path) -> Result<CanarySet> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        let set: CanarySet = serde_path_to_error::deserialize(de).map_err(|e| {
            Error::invalid(
                "canary set",
                format!("{}: at {}: {}", path.display(), e.path(), e.inner()),
            )
        })?;
        if set.canaries.is_empty() {
            return Err(Error::invalid(
                "canary set",
                format!("{}: holds no canary", path.display()),
            ));
        }
        if let Some(i) = set.canaries.iter().position(|c| c.answer_tokens.is_empty()) {
            return Err(Error::invalid(
                "canary set",
                format!(
                    "{}: canary {i} has no answer tokens, so it cannot fail",
                    path.display()
                ),
            ));
        }
        Ok(set)
    }
}

/// Records the approved model's greedy answers (`max_tokens` each) to
/// `prompts`. A prompt the model answers with nothing is left out.
pub fn record(
    g: &mut Generator,
    model: &str,
    prompts: &[String],
    max_tokens: usize,
) -> Result<CanarySet> {
    let cfg = GenerateConfig {
        sampling: SamplingConfig::greedy(),
        max_tokens,
        top_n: 0,
        ..GenerateConfig::default()
    };
    let mut canaries = vec![];
    for prompt in prompts {
        let ids = g.tokenizer.encode(prompt)?;
        let out = g.generate(&ids, &cfg, |_| true)?;
        if !out.tokens.is_empty() {
            canaries.push(Canary {
                prompt: prompt.clone(),
                answer: out.text,
                answer_tokens: out.tokens,
            });
        }
    }
    Ok(CanarySet {
        model: model.to_string(),
        canaries,
    })
}

// ANCHOR: score
/// Scores the live model on the set by teacher forcing.
pub fn score(g: &mut Generator, set: &CanarySet) -> Result<CanaryScore> {
    let (mut right, mut tokens, mut exact, mut logprob) = (0usize, 0usize, 0usize, 0f64);
    for c in &set.canaries {
        let prompt = g.tokenizer.encode(&c.prompt)?;
        let needed = prompt.len() + c.answer_tokens.len();
        if prompt.is_empty() || needed > g.decoder.capacity() {
            return Err(Error::invalid(
                "canary",
                format!(
                    "{needed} tokens of prompt and answer do not fit a context of {}",
                    g.decoder.capacity()
                ),
            ));
        }
        g.decoder.reset();
        let mut logits = g.decoder.forward(&prompt)?;
        let mut all = true;
        for (i, &t) in c.answer_tokens.iter().enumerate() {
            let (p, _) = prob_and_entropy(&logits, t);
            logprob += f64::from(p.max(f32::MIN_POSITIVE).ln());
            let first = argmax(&logits) == t;
            right += usize::from(first);
            all &= first;
            if i + 1 < c.answer_tokens.len() {
                logits = g.decoder.forward(&[t])?;
            }
        }
        tokens += c.answer_tokens.len();
        exact += usize::from(all);
    }
    Ok(CanaryScore {
        accuracy: right as f64 / tokens.max(1) as f64,
        logprob_mean: logprob / tokens.max(1) as f64,
        tokens,
        exact,
        canaries: set.canaries.len(),
    })
}
// ANCHOR_END: score
