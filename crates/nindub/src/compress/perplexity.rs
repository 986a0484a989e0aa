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

/// Perplexity of `model` on `tokens` under the protocol above; `on_chunk`
/// is called after each window (for a progress bar).
pub fn perplexity(
    model: &mut Llama,
    tokens: &[u32],
    ctx: usize,
    chunks: usize,
    mut on_chunk: impl FnMut(usize),
) -> Result<Perplexity> {
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
    let (mut total, mut count) = (0f64, 0usize);
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
            total += nll(row, window[i + 1] as usize);
            count += 1;
        }
        on_chunk(c);
    }
    let mean_nll = total / count as f64;
    Ok(Perplexity {
        ppl: mean_nll.exp(),
        mean_nll,
        predictions: count,
    })
}

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
}
