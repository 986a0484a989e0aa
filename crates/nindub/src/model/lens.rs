//! Looking inside a forward pass: the size of the hidden state after every
//! layer, and the "logit lens" (nostalgebraist, 2020), which reads each
//! layer's hidden state through the model's own final norm and output head,
//! as if the network stopped there: which token would it predict already?

use candle_core::{D, Tensor};
use serde::Serialize;

use crate::error::{Error, Result, ctx};
use crate::model::llama::{ForwardOptions, Llama};
use crate::model::sample::softmax;
use crate::model::tokenizer::GgufTokenizer;

/// The hidden states of one fresh forward pass over `tokens`: the embedding
/// output, then each layer's output, each `[positions, hidden]`.
pub fn hidden_states(model: &mut Llama, tokens: &[u32]) -> Result<Vec<Tensor>> {
    model.clear_cache();
    let out = model.forward(
        tokens,
        &ForwardOptions {
            hidden_states: true,
            ..Default::default()
        },
    );
    model.clear_cache();
    Ok(out?.hidden_states)
}

// ANCHOR: hidden_norms
/// The L2 norm of the residual stream at every position after every layer:
/// `norms[l][i] = ‖h_l[i]‖₂`, with `l = 0` the embedding.
pub fn hidden_norms(model: &mut Llama, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
    hidden_states(model, tokens)?
        .iter()
        .map(|h| {
            ctx(
                "hidden-state norms",
                h.sqr()
                    .and_then(|s| s.sum(D::Minus1))
                    .and_then(|s| s.sqrt())
                    .and_then(|s| s.to_vec1::<f32>()),
            )
        })
        .collect()
}
// ANCHOR_END: hidden_norms

/// What one layer predicts at one position.
#[derive(Debug, Clone, Serialize)]
pub struct LensCell {
    pub token: u32,
    pub text: String,
    pub prob: f32,
}

/// The logit lens over a prompt.
#[derive(Debug, Clone, Serialize)]
pub struct LogitLens {
    /// The input tokens' texts.
    pub inputs: Vec<String>,
    /// `cells[l][i]`: the top prediction of layer `l` (0 = embedding) at position `i`.
    pub cells: Vec<Vec<LensCell>>,
    /// The model's final prediction at the last position…
    pub answer: LensCell,
    /// …its probability under each layer's lens…
    pub answer_prob: Vec<f32>,
    /// …and its rank there (0 = top).
    pub answer_rank: Vec<usize>,
}

// ANCHOR: logit_lens
/// Runs `tokens` once and reads every layer's hidden state through the
/// final RMSNorm and the output head.
pub fn logit_lens(model: &mut Llama, tok: &GgufTokenizer, tokens: &[u32]) -> Result<LogitLens> {
    let mut probs_by_layer = vec![]; // [layer][position][vocab]
    for h in hidden_states(model, tokens)? {
        let logits = ctx("lens logits", model.lens(&h)?.to_vec2::<f32>())?;
        probs_by_layer.push(logits.iter().map(|z| softmax(z)).collect::<Vec<_>>());
    }
    // ANCHOR_END: logit_lens
    let top = |p: &[f32]| {
        let id = crate::model::sample::argmax(p);
        LensCell {
            token: id,
            text: tok.piece(id),
            prob: p[id as usize],
        }
    };
    let cells: Vec<Vec<LensCell>> = probs_by_layer
        .iter()
        .map(|rows| rows.iter().map(|p| top(p)).collect())
        .collect();
    let last = |rows: &Vec<Vec<f32>>| rows.last().cloned().unwrap_or_default();
    let answer = cells
        .last()
        .and_then(|row| row.last())
        .cloned()
        .ok_or_else(|| Error::invalid("logit lens", "no tokens"))?;
    let a = answer.token as usize;
    let answer_prob = probs_by_layer.iter().map(|rows| last(rows)[a]).collect();
    let answer_rank = probs_by_layer
        .iter()
        .map(|rows| {
            let p = last(rows);
            p.iter().filter(|&&q| q > p[a]).count()
        })
        .collect();
    Ok(LogitLens {
        inputs: tokens.iter().map(|&t| tok.piece(t)).collect(),
        cells,
        answer,
        answer_prob,
        answer_rank,
    })
}
