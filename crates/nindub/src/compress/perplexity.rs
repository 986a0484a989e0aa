//! Perplexity: how surprised a language model is by real text.
//!
//! For tokens `t₁ … t_N` and the model's next-token distribution `p`,
//!
//! ```text
//! PPL = exp( −(1/N) Σᵢ log p(tᵢ₊₁ | t₁ … tᵢ) )
//! ```
//!
//! the exponential of the mean negative log-likelihood: a model that spread
//! its bets uniformly over `k` tokens at every step has perplexity `k`. It is
//! the standard measure of what quantization costs a language model
//! (llama.cpp's perplexity tables are made so).
//!
//! The protocol here is fixed so that the llama.cpp fixture
//! (`tests/fixtures/record_llama_cpp_quant.py`) computes the same number:
//! `chunks` consecutive windows of `ctx` tokens from the start of the text,
//! each evaluated from an empty cache, every position but the last
//! predicting the next token (`chunks × (ctx − 1)` predictions).

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::llama::{ForwardOptions, Llama};

/// The fixed protocol: 8 windows of 256 tokens.
pub const CTX: usize = 256;
pub const CHUNKS: usize = 8;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Perplexity {
    pub ppl: f64,
    pub mean_nll: f64,
    pub predictions: usize,
}

// ANCHOR: nll
/// `−log softmax(logits)[target]`, in f64 with the max subtracted.
pub fn nll(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&z| (z as f64 - max).exp()).sum();
    max + sum.ln() - logits[target] as f64
}
// ANCHOR_END: nll

/// Runs the protocol's windows through `model` and hands every
/// prediction to `each(index, logits, target)`; `on_chunk` after each window.
fn predictions(
    model: &mut Llama,
    tokens: &[u32],
    ctx: usize,
    chunks: usize,
    mut each: impl FnMut(usize, &[f32], usize),
    mut on_chunk: impl FnMut(usize),
) -> Result<usize> {
    if ctx < 2 || chunks == 0 {
        return Err(Error::invalid(
            "perplexity",
            format!("windows of {ctx} tokens × {chunks}: need at least 2 tokens and 1 window"),
        ));
    }
    if tokens.len() < ctx * chunks {
        return Err(Error::invalid(
            "perplexity",
            format!(
                "the text has {} tokens, {} are needed ({chunks} × {ctx})",
                tokens.len(),
                ctx * chunks
            ),
        ));
    }
    let mut count = 0usize;
    for c in 0..chunks {
        let window = &tokens[c * ctx..(c + 1) * ctx];
        model.clear_cache();
        let out = model.forward(
            window,
            &ForwardOptions {
                all_logits: true,
                ..Default::default()
            },
        );
        model.clear_cache();
        let rows = crate::error::ctx("reading logits", out?.logits.to_vec2::<f32>())?;
        for (i, row) in rows.iter().enumerate().take(ctx - 1) {
            each(count, row, window[i + 1] as usize);
            count += 1;
        }
        on_chunk(c);
    }
    Ok(count)
}

/// Perplexity of `model` on `tokens` under the protocol above; `on_chunk`
/// is called after each window (for a progress bar).
pub fn perplexity(
    model: &mut Llama,
    tokens: &[u32],
    ctx: usize,
    chunks: usize,
    on_chunk: impl FnMut(usize),
) -> Result<Perplexity> {
    let mut total = 0f64;
    let count = predictions(
        model,
        tokens,
        ctx,
        chunks,
        |_, row, target| total += nll(row, target),
        on_chunk,
    )?;
    let mean_nll = total / count as f64;
    Ok(Perplexity {
        ppl: mean_nll.exp(),
        mean_nll,
        predictions: count,
    })
}

/// `log softmax(logits)`, in f64 with the max subtracted.
fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max
        + logits
            .iter()
            .map(|&z| (z as f64 - max).exp())
            .sum::<f64>()
            .ln();
    logits.iter().map(|&z| z as f64 - lse).collect()
}

/// A reference model's next-token distributions at every prediction of
/// the protocol (log-probabilities in f32: predictions × vocabulary).
pub struct Reference {
    log_probs: Vec<Vec<f32>>,
    argmax: Vec<usize>,
}

/// How far a model's next-token distributions are from a reference's.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Divergence {
    pub perplexity: Perplexity,
    /// Mean KL(reference ‖ model) over the predictions, in nats.
    pub kl: f64,
    /// Fraction of predictions where both rank the same token first.
    pub top1: f64,
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

/// The reference's distributions, to compare models with ([`divergence`]).
pub fn reference(
    model: &mut Llama,
    tokens: &[u32],
    ctx: usize,
    chunks: usize,
) -> Result<Reference> {
    let (mut log_probs, mut top) = (vec![], vec![]);
    predictions(
        model,
        tokens,
        ctx,
        chunks,
        |_, row, _| {
            log_probs.push(log_softmax(row).into_iter().map(|v| v as f32).collect());
            top.push(argmax(row));
        },
        |_| {},
    )?;
    Ok(Reference {
        log_probs,
        argmax: top,
    })
}

// ANCHOR: divergence
/// Perplexity, and the KL divergence and top-1 agreement of `model`'s
/// next-token distributions to the reference's, on the same predictions:
/// `KL(p ‖ q) = Σᵥ p(v) · (log p(v) − log q(v))`.
pub fn divergence(
    model: &mut Llama,
    reference: &Reference,
    tokens: &[u32],
    ctx: usize,
    chunks: usize,
) -> Result<Divergence> {
    let (mut total, mut kl, mut same) = (0f64, 0f64, 0usize);
    let mut mismatch = None;
    let count = predictions(
        model,
        tokens,
        ctx,
        chunks,
        |i, row, target| {
            total += nll(row, target);
            let Some(p) = reference.log_probs.get(i) else {
                mismatch = Some(i);
                return;
            };
            if p.len() != row.len() {
                mismatch = Some(i);
                return;
            }
            let q = log_softmax(row);
            kl += p
                .iter()
                .zip(&q)
                .map(|(&lp, &lq)| (lp as f64).exp() * (lp as f64 - lq))
                .sum::<f64>();
            same += usize::from(argmax(row) == reference.argmax[i]);
        },
        |_| {},
    )?;
    if let Some(i) = mismatch.or((count != reference.log_probs.len()).then_some(count)) {
        return Err(Error::invalid(
            "divergence",
            format!("prediction {i} has no counterpart of the same vocabulary in the reference"),
        ));
    }
    let mean_nll = total / count as f64;
    Ok(Divergence {
        perplexity: Perplexity {
            ppl: mean_nll.exp(),
            mean_nll,
            predictions: count,
        },
        // KL is never negative; a model that is the reference can sum to
        // a hair below 0 through the f32 rounding of the stored
        // log-probabilities.
        kl: (kl / count as f64).max(0.0),
        top1: same as f64 / count as f64,
    })
}
// ANCHOR_END: divergence

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_is_minus_log_softmax() {
        let z = [1.0f32, 2.0, 3.0];
        let p3 = (3f64).exp() / (1f64.exp() + 2f64.exp() + 3f64.exp());
        assert!((nll(&z, 2) + p3.ln()).abs() < 1e-12);
        // Uniform over k tokens: perplexity k.
        let u = [0.5f32; 7];
        assert!((nll(&u, 3).exp() - 7.0).abs() < 1e-9);
        // Large logits do not overflow.
        assert!(nll(&[1000.0, 0.0], 0) < 1e-9);
    }

    #[test]
    fn log_softmax_sums_to_one_and_argmax_takes_the_first_maximum() {
        let l = log_softmax(&[1.0, 2.0, 3.0, 3.0]);
        assert!((l.iter().map(|v| v.exp()).sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
    }
}
