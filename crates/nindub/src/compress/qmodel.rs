//! Whole models through a quantization scheme, then through inference.
//!
//! Every weight matrix of SmolLM2 (from its GGUF, whose dequantized values
//! are the f32 reference) or of all-MiniLM-L6-v2 (f32 safetensors) is
//! quantized with a [`Scheme`] and dequantized back ("fake quantization"):
//! the model then computes with exactly the values the quantized file would
//! hold, in f32, through the same inference code as the reference. This
//! measures what the *storage* format costs in quality; the kernels that
//! compute straight from the codes (`qlinear`) are tested to agree with
//! that dequantized product.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use serde::Serialize;

use crate::compress::quant::{self, Scheme};
use crate::error::{Error, Result, ctx};
use crate::model::gguf::GgufFile;
use crate::model::llama::Llama;

/// What quantization did to one tensor.
#[derive(Debug, Clone, Serialize)]
pub struct TensorReport {
    pub name: String,
    /// The transformer layer it belongs to, if any.
    pub layer: Option<usize>,
    pub numel: usize,
    /// Bytes as stored after quantization (codes + scales + zero-points);
    /// f32 bytes for tensors left unquantized.
    pub bytes: usize,
    /// Σx² and Σ(x − x̂)², to aggregate SQNR over any set of tensors.
    pub signal: f64,
    pub noise: f64,
}

/// What quantization did to a model.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ModelReport {
    pub scheme: Option<String>,
    pub tensors: Vec<TensorReport>,
}

impl ModelReport {
    pub fn bytes(&self) -> usize {
        self.tensors.iter().map(|t| t.bytes).sum()
    }

    pub fn numel(&self) -> usize {
        self.tensors.iter().map(|t| t.numel).sum()
    }

    /// Storage bits per parameter, over every tensor.
    pub fn bits_per_weight(&self) -> f64 {
        8.0 * self.bytes() as f64 / self.numel().max(1) as f64
    }

    /// SQNR (dB) over all quantized tensors together.
    pub fn sqnr_db(&self) -> f64 {
        sqnr(self.tensors.iter())
    }

    /// SQNR (dB) per layer, in layer order.
    pub fn sqnr_by_layer(&self) -> Vec<(usize, f64)> {
        let layers = self.tensors.iter().filter_map(|t| t.layer).max();
        (0..layers.map_or(0, |l| l + 1))
            .map(|l| (l, sqnr(self.tensors.iter().filter(|t| t.layer == Some(l)))))
            .collect()
    }
}

fn sqnr<'a>(tensors: impl Iterator<Item = &'a TensorReport>) -> f64 {
    let (s, n) = tensors.fold((0.0, 0.0), |(s, n), t| (s + t.signal, n + t.noise));
    if n == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (s / n).log10()
    }
}

/// The layer index in a tensor name (`blk.3.` in GGUF, `layer.3.` in BERT).
fn layer_of(name: &str) -> Option<usize> {
    let mut parts = name.split('.');
    while let Some(p) = parts.next() {
        if p == "blk" || p == "layer" {
            return parts.next()?.parse().ok();
        }
    }
    None
}

/// Who quantizes: the Codex's own schemes, or GGML's block formats as
/// candle implements them (the same algorithm as llama.cpp's reference
/// quantizer: Q8_0 symmetric, Q4_1 with a per-block minimum, Q4_0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantizer {
    Ours(Scheme),
    Ggml(GgmlDType),
}

impl Quantizer {
    /// `int4-g32`, … or a GGML type: `ggml-q8_0`, `ggml-q4_1`, `ggml-q4_k`, …
    /// (the names [`crate::compress::export::Target`] reads).
    pub fn parse(name: &str) -> Result<Self> {
        use crate::compress::export::Target;
        match Target::parse(name)? {
            Target::Type(t) => Ok(Quantizer::Ggml(t)),
            Target::Scheme(s) => Ok(Quantizer::Ours(s)),
            Target::Recipe(_) => Err(Error::invalid(
                "quantization scheme",
                format!("`{name}` is a recipe: it is written to a GGUF"),
            )),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Quantizer::Ours(s) => s.name(),
            Quantizer::Ggml(t) => format!("ggml-{}", crate::ggml::dtype::name(*t)),
        }
    }
}

/// Round trip through a GGML block type, as the exporter writes it (with
/// llama.cpp's fallback for rows that are not whole super-blocks):
/// (values, stored bytes).
fn ggml_roundtrip(values: &[f32], dims: &[usize], dtype: GgmlDType) -> Result<(Vec<f32>, usize)> {
    let t = crate::compress::export::fallback(dtype, dims.last().copied().unwrap_or(0));
    let bytes = crate::ggml::dtype::quantize(t, values, dims)?;
    let mut back = vec![0f32; values.len()];
    crate::ggml::dtype::dequantize(t, &bytes, &mut back)?;
    Ok((back, bytes.len()))
}

// ANCHOR: fake_quant
/// Quantizes and dequantizes one tensor (2-D weights only; others stay
/// f32), recording what it cost.
pub fn fake_quantize(
    name: &str,
    t: &Tensor,
    quantizer: Option<&Quantizer>,
    report: &mut ModelReport,
) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let numel = t.elem_count();
    let Some(quantizer) = quantizer.filter(|_| dims.len() == 2) else {
        report.tensors.push(TensorReport {
            name: name.to_string(),
            layer: layer_of(name),
            numel,
            bytes: numel * 4,
            signal: 0.0,
            noise: 0.0,
        });
        return Ok(t.clone());
    };
    let values = ctx(name, t.flatten_all().and_then(|v| v.to_vec1::<f32>()))?;
    let (back, bytes) = match quantizer {
        Quantizer::Ours(scheme) => {
            let q = quant::quantize(&values, &dims, scheme)
                .map_err(|e| Error::invalid("quantizing a model", format!("{name}: {e}")))?;
            (q.dequantize(), q.storage_bytes())
        }
        Quantizer::Ggml(dtype) => ggml_roundtrip(&values, &dims, *dtype)
            .map_err(|e| Error::invalid("quantizing a model", format!("{name}: {e}")))?,
    };
    let (mut signal, mut noise) = (0f64, 0f64);
    for (&x, &y) in values.iter().zip(&back) {
        signal += (x as f64).powi(2);
        noise += ((x - y) as f64).powi(2);
    }
    report.tensors.push(TensorReport {
        name: name.to_string(),
        layer: layer_of(name),
        numel,
        bytes,
        signal,
        noise,
    });
    ctx(name, Tensor::from_vec(back, dims, t.device()))
}
// ANCHOR_END: fake_quant

/// SmolLM2 (any Llama GGUF) with every weight dequantized to f32 and, when
/// a quantizer is given, passed through it. `on_tensor` sees each name (for a
/// progress bar).
pub fn load_llama(
    path: &Path,
    quantizer: Option<&Quantizer>,
    device: &Device,
    on_tensor: &mut dyn FnMut(&str),
) -> Result<(Llama, ModelReport)> {
    let file = GgufFile::open(path)?;
    let mut report = ModelReport {
        scheme: quantizer.map(|q| q.name()),
        ..Default::default()
    };
    let model = Llama::from_gguf_mapped(&file, device, &mut |name, q| {
        on_tensor(name);
        let t = ctx(name, q.dequantize(device))?;
        Ok(QMatMul::Tensor(fake_quantize(
            name,
            &t,
            quantizer,
            &mut report,
        )?))
    })?;
    Ok((model, report))
}

/// all-MiniLM-L6-v2 as a sentence embedder (mean pooling, unit length).
pub struct MiniLm {
    model: BertModel,
    tokenizer: tokenizers::Tokenizer,
    device: Device,
}

impl MiniLm {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from
    /// `dir`, passing every 2-D weight through `quantizer` when given.
    pub fn load(
        dir: &Path,
        quantizer: Option<&Quantizer>,
        device: &Device,
    ) -> Result<(Self, ModelReport)> {
        let weights = dir.join("model.safetensors");
        let tensors = ctx(
            &format!("reading {}", weights.display()),
            candle_core::safetensors::load(&weights, device),
        )?;
        let mut report = ModelReport {
            scheme: quantizer.map(|q| q.name()),
            ..Default::default()
        };
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        let mut out = HashMap::new();
        for name in names {
            let t = &tensors[name];
            let t = if t.dtype() == DType::F32 {
                fake_quantize(name, t, quantizer, &mut report)?
            } else {
                t.clone() // integer buffers (position ids)
            };
            out.insert(name.clone(), t);
        }
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config: BertConfig = serde_json::from_str(&text).map_err(|source| Error::Json {
            context: format!("reading {}", config_path.display()),
            source,
        })?;
        let vb = VarBuilder::from_tensors(out, DType::F32, device);
        let model = ctx("building BERT", BertModel::load(vb, &config))?;
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| Error::Foreign {
                path: tok_path.clone(),
                expected: "a tokenizers JSON file",
                reason: e.to_string(),
            })?;
        // The file pads every sentence to 128 tokens; one sentence at a time
        // needs no padding (mean pooling would average the pads in).
        tokenizer.with_padding(None);
        Ok((
            MiniLm {
                model,
                tokenizer,
                device: device.clone(),
            },
            report,
        ))
    }

    /// The sentence's embedding: token vectors averaged, scaled to length 1.
    pub fn embed(&self, sentence: &str) -> Result<Vec<f32>> {
        let enc = self
            .tokenizer
            .encode(sentence, true)
            .map_err(|e| Error::invalid("sentence", e.to_string()))?;
        let ids = ctx(
            "token ids",
            Tensor::new(enc.get_ids(), &self.device).and_then(|t| t.unsqueeze(0)),
        )?;
        let types = ctx("token types", ids.zeros_like())?;
        let hidden = ctx("BERT forward", self.model.forward(&ids, &types, None))?;
        let mean = ctx("mean pooling", hidden.mean(1).and_then(|m| m.squeeze(0)))?;
        let norm = ctx(
            "normalising",
            mean.sqr()
                .and_then(|s| s.sum(D::Minus1))
                .and_then(|s| s.sqrt())
                .and_then(|n| n.to_scalar::<f32>()),
        )?;
        let v = ctx("embedding", mean.to_vec1::<f32>())?;
        Ok(v.into_iter().map(|x| x / norm.max(1e-12)).collect())
    }
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64) * (*y as f64))
        .sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_read_from_names() {
        assert_eq!(layer_of("blk.12.attn_q.weight"), Some(12));
        assert_eq!(layer_of("encoder.layer.3.output.dense.weight"), Some(3));
        assert_eq!(layer_of("token_embd.weight"), None);
    }

    #[test]
    fn cosine_of_parallel_and_orthogonal() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-12);
    }
}
