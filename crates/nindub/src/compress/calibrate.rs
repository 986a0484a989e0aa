//! What calibration measures: for every weight matrix `W` (`y = x·Wᵀ`),
//! the second moment of its inputs over a calibration text,
//! `H = Σₜ xₜ xₜᵀ` (`XᵀX`, `in × in`).
//!
//! The error a quantized matrix adds to its outputs over those inputs is
//! `‖X·(W − Ŵ)ᵀ‖² = Σᵣ (wᵣ − ŵᵣ)ᵀ H (wᵣ − ŵᵣ)`, summed over rows `r`: `H`
//! is all a rounding method needs to know of the text ([`super::gptq`]).
//! Round-to-nearest minimizes `‖wᵣ − ŵᵣ‖²` instead, as if `H` were `I`.
//!
//! The inputs come from the f32 model in one pass ([`ForwardOptions`]'s
//! `linear_inputs`), every layer seeing the f32 model's activations.

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::{DType, Tensor};
use serde::Serialize;

use crate::error::{Error, Result, ctx};
use crate::model::llama::{ForwardOptions, Llama};

/// `H = XᵀX` for one group of matrices that share their input.
pub struct Hessian {
    /// `in`: the matrices' columns.
    pub dim: usize,
    /// Rows of `X` summed (calibration tokens).
    pub samples: usize,
    /// Row-major `dim × dim`.
    pub xtx: Vec<f32>,
}

/// Where the calibration came from, as the results record it.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationText {
    /// A name for the text (a file name).
    pub name: String,
    /// Windows of `ctx` tokens, taken from token `start` on.
    pub start: usize,
    pub windows: usize,
    pub ctx: usize,
}

impl CalibrationText {
    /// Refuses windows that an empty or too short text cannot fill.
    fn check(&self, tokens: usize) -> Result<()> {
        let (start, ctx_len, windows) = (self.start, self.ctx, self.windows);
        let end = start + windows * ctx_len;
        if windows == 0 || ctx_len < 2 || end > tokens {
            return Err(Error::invalid(
                "calibration",
                format!(
                    "{windows} windows of {ctx_len} tokens from token {start} need {end} tokens; `{}` has {tokens}",
                    self.name
                ),
            ));
        }
        Ok(())
    }
}

/// `H` for every weight matrix of a model, by GGUF tensor name.
pub struct Calibration {
    pub text: CalibrationText,
    hessians: BTreeMap<String, Arc<Hessian>>,
}

impl Calibration {
    /// `H` of the inputs of `weight` (a GGUF tensor name), if measured.
    pub fn hessian(&self, weight: &str) -> Option<&Hessian> {
        self.hessians.get(weight).map(|h| h.as_ref())
    }

    /// Keeps the matrices `keep` accepts (the others are rounded to
    /// nearest).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.hessians.retain(|name, _| keep(name));
    }

    /// The matrices calibrated.
    pub fn len(&self) -> usize {
        self.hessians.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hessians.is_empty()
    }
}

// ANCHOR: calibrate
/// Runs `windows` windows of `ctx` tokens of `tokens` (from `text.start`
/// on, each window from an empty cache) through `model` and sums `XᵀX` of
/// every weight matrix's input. `on_window` sees each window done.
pub fn calibrate(
    model: &mut Llama,
    tokens: &[u32],
    text: CalibrationText,
    mut on_window: impl FnMut(usize),
) -> Result<Calibration> {
    text.check(tokens.len())?;
    let (start, ctx_len, windows) = (text.start, text.ctx, text.windows);
    let opts = ForwardOptions {
        linear_inputs: true,
        all_logits: true,
        ..Default::default()
    };
    let mut sums: BTreeMap<String, (Vec<String>, Tensor)> = BTreeMap::new();
    for w in 0..windows {
        let window = &tokens[start + w * ctx_len..start + (w + 1) * ctx_len];
        model.clear_cache();
        let out = model.forward(window, &opts)?;
        for input in out.linear_inputs {
            let x = ctx("calibration", input.x.to_dtype(DType::F32))?;
            let xtx = ctx("calibration XᵀX", x.t().and_then(|t| t.matmul(&x)))?;
            let key = input.weights.join(",");
            match sums.get_mut(&key) {
                Some((_, acc)) => *acc = ctx("calibration XᵀX", &*acc + xtx)?,
                None => {
                    sums.insert(key, (input.weights, xtx));
                }
            }
        }
        on_window(w);
    }
    model.clear_cache();
    let samples = windows * ctx_len;
    let mut hessians = BTreeMap::new();
    for (_, (weights, acc)) in sums {
        let dim = acc
            .dim(0)
            .map_err(|e| Error::invalid("calibration", e.to_string()))?;
        let xtx = ctx(
            "calibration XᵀX",
            acc.flatten_all().and_then(|t| t.to_vec1()),
        )?;
        let h = Arc::new(Hessian { dim, samples, xtx });
        for w in weights {
            hessians.insert(w, h.clone());
        }
    }
    Ok(Calibration { text, hessians })
}
// ANCHOR_END: calibrate

/// [`calibrate`] for a GGUF model on a text file: the model's weights
/// dequantized to f32, the text tokenized by the model's own tokenizer.
pub fn calibrate_file(
    model: &std::path::Path,
    text: &std::path::Path,
    windows: usize,
    ctx_len: usize,
    start: usize,
    progress: bool,
) -> Result<Calibration> {
    let file = crate::model::gguf::GgufFile::open(model)?;
    let tokenizer = crate::model::tokenizer::GgufTokenizer::from_gguf(&file)?;
    let tokens = tokenizer.encode(&crate::corpus::read(text)?)?;
    let span = CalibrationText {
        name: text.file_name().map_or_else(
            || text.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        start,
        windows,
        ctx: ctx_len,
    };
    // Before the model is loaded: a text too short is refused at once.
    span.check(tokens.len())?;
    let (mut llama, _) =
        super::qmodel::load_llama(model, None, &candle_core::Device::Cpu, &mut |_| {})?;
    let bar = crate::progress::progress_bar(windows as u64, progress, "calibrate", "windows");
    let c = calibrate(&mut llama, &tokens, span, |_| bar.inc(1))?;
    bar.finish_and_clear();
    Ok(c)
}
