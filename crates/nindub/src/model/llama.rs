//! A Llama-architecture decoder on candle, open at every step.
//!
//! The model of "The Cantrip and the Ritual": the same network as
//! candle-transformers' `quantized_llama` (which the tests use as the
//! reference), written so that a learner can stop anywhere. A forward pass
//! returns the raw logits (before softmax) of every position asked, and on
//! request the hidden state after every layer and the attention
//! probabilities of one layer. Quantized weights are used as they are stored
//! (candle's `QMatMul` runs GGUF blocks directly).
//!
//! Per layer, with `x` the residual stream:
//!
//! ```text
//! h = x + W_o · attention(rope(W_q · rms(x)), rope(W_k · rms(x)), W_v · rms(x))
//! x' = h + W_down · (silu(W_gate · rms(h)) ⊙ W_up · rms(h))
//! ```
//!
//! RoPE is the interleaved ("normal") form, which is what GGUF's `llama`
//! weights expect (llama.cpp's `LLAMA_ROPE_TYPE_NORM`).

use std::cell::RefCell;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::error::{Error, Result, ctx};
use crate::ggml::format::{self, Format};
use crate::model::arch::{Architecture, Family};
use crate::model::decoder::Decoder;
use crate::model::gguf::GgufFile;
use crate::profile::{Profile, lap};

struct Layer {
    attn_norm: Tensor,
    wq: QMatMul,
    wk: QMatMul,
    wv: QMatMul,
    wo: QMatMul,
    ffn_norm: Tensor,
    w_gate: QMatMul,
    w_up: QMatMul,
    w_down: QMatMul,
    /// Keys and values of every position seen, `[1, kv_heads, pos, head_dim]`.
    cache: Option<(Tensor, Tensor)>,
}

// ANCHOR: forward_options
/// What a forward pass should return besides the last position's logits.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOptions {
    /// Logits for every input position, not only the last.
    pub all_logits: bool,
    /// The hidden state after the embedding and after every layer.
    pub hidden_states: bool,
    /// The attention probabilities of this layer.
    pub attention_of_layer: Option<usize>,
    /// The input of every weight matrix (what calibration measures).
    pub linear_inputs: bool,
}

/// What a forward pass returns.
pub struct ForwardOutput {
    /// `[positions, vocab]` raw logits (one row unless `all_logits`).
    pub logits: Tensor,
    /// `num_layers + 1` tensors of `[positions, hidden]`: the embedding
    /// output, then each layer's output (before the final norm).
    pub hidden_states: Vec<Tensor>,
    /// `[heads, positions, context]` attention probabilities, if asked.
    pub attention: Option<Tensor>,
    /// If asked, per layer the four inputs of its seven matrices, then the
    /// output head's.
    pub linear_inputs: Vec<LinearInput>,
}

/// Activations `[positions, in]` and the weights (GGUF names) that
/// multiply them: Q, K and V share the attention norm's output, gate and
/// up the MLP norm's.
pub struct LinearInput {
    pub weights: Vec<String>,
    pub x: Tensor,
}
// ANCHOR_END: forward_options

/// The token embedding, as the lookup reads it.
enum Embedding {
    /// GGUF blocks (any quantized [`Format`]), one row decoded per token as
    /// llama.cpp does: no f32 copy of the table (for SmolLM2 that copy
    /// would be 113 MB beside 18 MB of blocks). The tensor is shared with
    /// the output head when the two are tied.
    Blocks(std::sync::Arc<QTensor>, Format),
    /// f32 rows: a student's safetensors weights (the table itself, not a
    /// copy), or a GGUF type the block reader does not decode (F16:
    /// dequantized once).
    Dense(Tensor),
}

impl Embedding {
    /// Rows `tokens` of the table, `[tokens, hidden]`.
    fn rows(&self, tokens: &[u32], hidden: usize, device: &Device) -> Result<Tensor> {
        match self {
            Embedding::Dense(t) => {
                let ids = ctx("token ids", Tensor::new(tokens, device))?;
                ctx("embedding lookup", t.index_select(&ids, 0))
            }
            Embedding::Blocks(q, format) => {
                let data = ctx("embedding blocks", q.data())?;
                let row = format.row_bytes(hidden);
                let mut out = vec![0f32; tokens.len() * hidden];
                for (t, o) in tokens.iter().zip(out.chunks_exact_mut(hidden)) {
                    let at = *t as usize * row;
                    let bytes = data.get(at..at + row).ok_or_else(|| {
                        Error::invalid(
                            "embedding lookup",
                            format!("token {t} is outside the table"),
                        )
                    })?;
                    format::dequantize_row(*format, bytes, o);
                }
                ctx(
                    "embedding lookup",
                    Tensor::from_vec(out, (tokens.len(), hidden), device),
                )
            }
        }
    }
}

/// The model, with its KV cache.
pub struct Llama {
    pub arch: Architecture,
    pub device: Device,
    embedding: Embedding,
    layers: Vec<Layer>,
    norm: Tensor,
    output: QMatMul,
    /// Rotary tables for the positions this model can hold ([`Llama::reserve`]).
    cos: Tensor,
    sin: Tensor,
    rope_base: f32,
    eps: f64,
    /// Positions already in the KV cache.
    pos: usize,
    /// Set to `Some` to time every operation of [`Llama::forward`] (one
    /// token at a time: the profile is per forward call).
    pub profile: Option<Profile>,
}

impl Llama {
    /// Loads the weights of a Llama-architecture GGUF onto `device`.
    pub fn from_gguf(file: &GgufFile, device: &Device) -> Result<Self> {
        Self::from_gguf_mapped(file, device, &mut |_, q| {
            ctx("quantized weight", QMatMul::from_qtensor(q))
        })
    }

    /// Loads a GGUF, passing every weight matrix (and the token embedding)
    /// through `map`, which decides how it is held: as stored (a quantized
    /// `QMatMul`), or as an f32 tensor made by another quantizer (the
    /// Alchemy of Compression chapter swaps in its own schemes so).
    pub fn from_gguf_mapped(
        file: &GgufFile,
        device: &Device,
        map: &mut dyn FnMut(&str, QTensor) -> Result<QMatMul>,
    ) -> Result<Self> {
        let arch = file.architecture()?;
        let (eps, freq_base) = norm_eps_and_rope_base(file);
        let eps = eps as f64;
        let reader = File::open(&file.path).map_err(|e| Error::io(&file.path, e))?;
        let reader = RefCell::new(BufReader::new(reader));
        let qtensor = |name: &str| {
            ctx(
                &format!("loading tensor `{name}` from {}", file.path.display()),
                file.content.tensor(&mut *reader.borrow_mut(), name, device),
            )
        };
        Self::build(
            arch,
            eps,
            freq_base,
            device,
            &mut |name| map(name, qtensor(name)?),
            &mut |name| ctx(name, qtensor(name)?.dequantize(device)),
        )
    }

    /// Loads a model saved as `model.safetensors` with GGUF's tensor names
    /// and a Hugging Face style `config.json` in `dir` (the students of "The
    /// Transfer of Wisdom" are saved so). The weights are used as f32.
    pub fn from_safetensors(dir: &Path, device: &Device) -> Result<Self> {
        let config = dir.join("config.json");
        let arch = Architecture::from_config_json(&config)?;
        if arch.family != Family::Llama {
            return Err(Error::Metadata {
                path: config,
                field: "model_type".into(),
                reason: "not a Llama-style decoder".into(),
            });
        }
        #[derive(serde::Deserialize)]
        struct Extra {
            rms_norm_eps: Option<f64>,
            rope_theta: Option<f64>,
        }
        let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
        let extra: Extra = serde_json::from_str(&text).map_err(|source| Error::Json {
            context: format!("{}", config.display()),
            source,
        })?;
        let path = dir.join("model.safetensors");
        let tensors =
            candle_core::safetensors::load(&path, device).map_err(|e| Error::Foreign {
                path: path.clone(),
                expected: "safetensors",
                reason: e.to_string(),
            })?;
        let get = |name: &str| -> Result<Tensor> {
            let t = tensors.get(name).ok_or_else(|| Error::Metadata {
                path: path.clone(),
                field: name.into(),
                reason: "tensor missing".into(),
            })?;
            ctx(name, t.to_dtype(DType::F32))
        };
        Self::build(
            arch,
            extra.rms_norm_eps.unwrap_or(1e-5),
            extra.rope_theta.unwrap_or(10_000.0) as f32,
            device,
            &mut |name| Ok(QMatMul::Tensor(get(name)?)),
            &mut |name| get(name),
        )
    }

    /// Assembles the model from its tensors, by GGUF name: `matrix` gives
    /// the weight matrices (and the token embedding), `vector` the norms.
    /// Every shape is checked against the architecture.
    fn build(
        arch: Architecture,
        eps: f64,
        freq_base: f32,
        device: &Device,
        matrix: &mut dyn FnMut(&str) -> Result<QMatMul>,
        vector: &mut dyn FnMut(&str) -> Result<Tensor>,
    ) -> Result<Self> {
        let (d, f) = (arch.hidden_size as usize, arch.intermediate_size as usize);
        let (q_out, kv_out) = (
            (arch.num_heads * arch.head_dim) as usize,
            (arch.num_kv_heads * arch.head_dim) as usize,
        );
        let mut checked = |name: &str, dims: &[usize]| -> Result<QMatMul> {
            let m = matrix(name)?;
            let actual = match &m {
                QMatMul::QTensor(q) => q.shape().dims().to_vec(),
                QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.dims().to_vec(),
            };
            if actual != dims {
                return Err(Error::Shape {
                    tensor: name.to_string(),
                    expected: dims.to_vec(),
                    actual,
                });
            }
            Ok(m)
        };
        let token_embd = checked("token_embd.weight", &[arch.vocab_size as usize, d])?;
        let embedding = match &token_embd {
            QMatMul::QTensor(q) => match Format::from_ggml(q.dtype()) {
                Some(format) => Embedding::Blocks(q.clone(), format),
                None => Embedding::Dense(ctx(
                    "dequantizing the token embedding",
                    q.dequantize(device),
                )?),
            },
            QMatMul::Tensor(t) | QMatMul::TensorF16(t) => {
                Embedding::Dense(ctx("token embedding", t.to_dtype(DType::F32))?)
            }
        };
        let output = if arch.tied_embeddings {
            token_embd
        } else {
            checked("output.weight", &[arch.vocab_size as usize, d])?
        };
        let norm = vector("output_norm.weight")?;
        let mut layers = Vec::with_capacity(arch.num_layers as usize);
        for l in 0..arch.num_layers {
            let name = |n: &str| format!("blk.{l}.{n}.weight");
            layers.push(Layer {
                attn_norm: vector(&name("attn_norm"))?,
                wq: checked(&name("attn_q"), &[q_out, d])?,
                wk: checked(&name("attn_k"), &[kv_out, d])?,
                wv: checked(&name("attn_v"), &[kv_out, d])?,
                wo: checked(&name("attn_output"), &[d, q_out])?,
                ffn_norm: vector(&name("ffn_norm"))?,
                w_gate: checked(&name("ffn_gate"), &[f, d])?,
                w_up: checked(&name("ffn_up"), &[f, d])?,
                w_down: checked(&name("ffn_down"), &[d, f])?,
                cache: None,
            });
        }
        // The default context, not the file's: `reserve` grows it.
        let (cos, sin) = rope_tables(arch.head_dim as usize, arch.positions(0), freq_base, device)?;
        Ok(Llama {
            arch,
            device: device.clone(),
            embedding,
            layers,
            norm,
            output,
            cos,
            sin,
            rope_base: freq_base,
            eps,
            pos: 0,
            profile: None,
        })
    }

    /// Makes room for `positions` (at most the model's context; 0 keeps the
    /// default): the rotary tables are sized by it, and the KV cache grows
    /// up to it as tokens come.
    pub fn reserve(&mut self, positions: usize) -> Result<()> {
        let positions = self.arch.positions(positions);
        // f32 rotary tables (angles, cos, sin) and, as tokens come, the
        // f32 KV cache: checked against the machine before they are made.
        let a = &self.arch;
        let per_position = 3 * 2 * a.head_dim as u128
            + 2 * 4 * (a.num_layers * a.num_kv_heads * a.head_dim) as u128;
        let bytes = per_position * positions as u128;
        if let Some(memory) = crate::process::physical_memory()
            && bytes > memory as u128
        {
            return Err(Error::invalid(
                "context",
                format!(
                    "{positions} positions need {bytes} bytes of rotary tables and KV cache, \
                     more than this machine's {memory}: ask for fewer (--context)"
                ),
            ));
        }
        if positions != self.capacity() {
            (self.cos, self.sin) = rope_tables(
                self.arch.head_dim as usize,
                positions,
                self.rope_base,
                &self.device,
            )?;
        }
        Ok(())
    }

    /// Positions held in the KV cache.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Forgets every cached key and value: the next forward starts a new sequence.
    pub fn clear_cache(&mut self) {
        for l in &mut self.layers {
            l.cache = None;
        }
        self.pos = 0;
    }

    /// Runs `tokens` through the model after the positions already cached,
    /// and caches their keys and values.
    pub fn forward(&mut self, tokens: &[u32], opts: &ForwardOptions) -> Result<ForwardOutput> {
        self.arch.check_tokens(self.pos, tokens)?;
        if let Some(l) = opts.attention_of_layer.filter(|&l| l >= self.layers.len()) {
            return Err(Error::invalid(
                "forward",
                format!("layer {l} does not exist"),
            ));
        }
        let n = tokens.len();
        let prof = &mut self.profile;
        let mut t = std::time::Instant::now();
        let d = self.arch.hidden_size as usize;
        let mut x = self.embedding.rows(tokens, d, &self.device)?; // [n, d]
        let mut hidden_states = vec![];
        if opts.hidden_states {
            hidden_states.push(x.clone());
        }
        let mask = if n > 1 {
            Some(causal_mask(n, self.pos, &self.device)?)
        } else {
            None
        };
        let mut attention = None;
        let mut linear_inputs = vec![];
        // `layer`'s matrices `names` (the head's, without a layer) read `x`.
        let mut capture = |layer: Option<usize>, names: &[&str], x: &Tensor| {
            if opts.linear_inputs {
                linear_inputs.push(LinearInput {
                    weights: names
                        .iter()
                        .map(|n| match layer {
                            Some(l) => format!("blk.{l}.{n}.weight"),
                            None => n.to_string(),
                        })
                        .collect(),
                    x: x.clone(),
                });
            }
        };
        let (heads, kv_heads, hd) = (
            self.arch.num_heads as usize,
            self.arch.num_kv_heads as usize,
            self.arch.head_dim as usize,
        );
        let cos = ctx("rope", self.cos.narrow(0, self.pos, n))?;
        let sin = ctx("rope", self.sin.narrow(0, self.pos, n))?;
        lap(prof, &mut t, "embedding row");
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let want_attn = opts.attention_of_layer == Some(i);
            let op = |what: &str| format!("layer {i}: {what}");
            // Attention block.
            let h = ctx(
                &op("attention norm"),
                candle_nn::ops::rms_norm(&x, &layer.attn_norm, self.eps as f32),
            )?;
            lap(prof, &mut t, "RMSNorm");
            capture(Some(i), &["attn_q", "attn_k", "attn_v"], &h);
            let split = |t: Tensor, nh: usize| -> candle_core::Result<Tensor> {
                t.reshape((1, n, nh, hd))?.transpose(1, 2)?.contiguous()
            };
            let q = ctx(&op("Q"), layer.wq.forward(&h).and_then(|t| split(t, heads)))?;
            let k = ctx(
                &op("K"),
                layer.wk.forward(&h).and_then(|t| split(t, kv_heads)),
            )?;
            let v = ctx(
                &op("V"),
                layer.wv.forward(&h).and_then(|t| split(t, kv_heads)),
            )?;
            lap(prof, &mut t, "Q, K, V");
            let q = ctx(
                &op("rope(Q)"),
                candle_nn::rotary_emb::rope_i(&q, &cos, &sin),
            )?;
            let k = ctx(
                &op("rope(K)"),
                candle_nn::rotary_emb::rope_i(&k, &cos, &sin),
            )?;
            let (k, v) = match &layer.cache {
                Some((kc, vc)) => (
                    ctx(&op("KV cache"), Tensor::cat(&[kc, &k], 2))?,
                    ctx(&op("KV cache"), Tensor::cat(&[vc, &v], 2))?,
                ),
                None => (k, v),
            };
            layer.cache = Some((k.clone(), v.clone()));
            let group = heads / kv_heads;
            let k = ctx(
                &op("repeat KV"),
                candle_transformers::utils::repeat_kv(k, group),
            )?;
            let v = ctx(
                &op("repeat KV"),
                candle_transformers::utils::repeat_kv(v, group),
            )?;
            // Kᵀ is a strided view: the matmul reads it without a copy.
            let kt = ctx(&op("Kᵀ"), k.t())?;
            let scores = ctx(
                &op("QKᵀ/√d"),
                q.matmul(&kt).and_then(|s| s / (hd as f64).sqrt()),
            )?;
            // A single new token may see every cached position: no mask.
            let scores = match &mask {
                Some(mask) => ctx(&op("mask"), scores.broadcast_add(mask))?,
                None => scores,
            };
            let probs = ctx(&op("softmax"), candle_nn::ops::softmax_last_dim(&scores))?;
            if want_attn {
                attention = Some(ctx(&op("attention"), probs.squeeze(0))?);
            }
            let v = ctx(&op("V"), v.contiguous())?;
            let y = ctx(&op("attention · V"), probs.matmul(&v))?;
            let y = ctx(
                &op("merge heads"),
                y.transpose(1, 2).and_then(|t| t.reshape((n, heads * hd))),
            )?;
            lap(prof, &mut t, "RoPE + attention");
            capture(Some(i), &["attn_output"], &y);
            let y = ctx(&op("O"), layer.wo.forward(&y))?;
            x = ctx(&op("residual"), x + y)?;
            lap(prof, &mut t, "O");
            // MLP block (SwiGLU).
            let h = ctx(
                &op("MLP norm"),
                candle_nn::ops::rms_norm(&x, &layer.ffn_norm, self.eps as f32),
            )?;
            lap(prof, &mut t, "RMSNorm");
            capture(Some(i), &["ffn_gate", "ffn_up"], &h);
            let gate = ctx(
                &op("gate"),
                layer
                    .w_gate
                    .forward(&h)
                    .and_then(|g| candle_nn::ops::silu(&g)),
            )?;
            let up = ctx(&op("up"), layer.w_up.forward(&h))?;
            lap(prof, &mut t, "gate, up");
            let y = ctx(&op("SwiGLU"), gate * up)?;
            lap(prof, &mut t, "SwiGLU");
            capture(Some(i), &["ffn_down"], &y);
            let y = ctx(&op("down"), layer.w_down.forward(&y))?;
            x = ctx(&op("residual"), x + y)?;
            lap(prof, &mut t, "down");
            if opts.hidden_states {
                hidden_states.push(x.clone());
            }
        }
        self.pos += n;
        let x = if opts.all_logits {
            x
        } else {
            ctx("last position", x.narrow(0, n - 1, 1))?
        };
        let x = ctx(
            "final norm",
            candle_nn::ops::rms_norm(&x, &self.norm, self.eps as f32),
        )?;
        capture(
            None,
            &[if self.arch.tied_embeddings {
                "token_embd.weight"
            } else {
                "output.weight"
            }],
            &x,
        );
        let logits = ctx("output head", self.output.forward(&x))?;
        lap(prof, &mut t, "output head");
        if let Some(p) = prof {
            p.tokens += 1;
        }
        Ok(ForwardOutput {
            logits,
            hidden_states,
            attention,
            linear_inputs,
        })
    }

    /// The final norm and output head applied to any hidden state
    /// `[positions, hidden]`: the "logit lens" reads intermediate layers so.
    pub fn lens(&self, hidden: &Tensor) -> Result<Tensor> {
        let x = ctx(
            "final norm",
            candle_nn::ops::rms_norm(hidden, &self.norm, self.eps as f32),
        )?;
        ctx("output head", self.output.forward(&x))
    }
}

/// A GGUF's RMSNorm epsilon and RoPE frequency base (Llama's defaults,
/// 1e-5 and 10 000, when the file does not say).
pub(crate) fn norm_eps_and_rope_base(file: &GgufFile) -> (f32, f32) {
    let meta = &file.content.metadata;
    let prefix = file.metadata_str("general.architecture").unwrap_or("llama");
    let get = |key: &str, default: f32| {
        meta.get(&format!("{prefix}.{key}"))
            .and_then(|v| v.to_f32().ok())
            .unwrap_or(default)
    };
    (
        get("attention.layer_norm_rms_epsilon", 1e-5),
        get("rope.freq_base", 10_000.0),
    )
}

impl Decoder for Llama {
    fn arch(&self) -> &Architecture {
        &self.arch
    }

    fn name(&self) -> &'static str {
        "candle"
    }

    fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let out = Llama::forward(self, tokens, &ForwardOptions::default())?;
        ctx(
            "reading logits",
            out.logits.flatten_all().and_then(|t| t.to_vec1::<f32>()),
        )
    }

    fn reset(&mut self) {
        self.clear_cache();
    }

    fn position(&self) -> usize {
        self.pos
    }

    fn capacity(&self) -> usize {
        self.cos.dims()[0]
    }

    fn profile_mut(&mut self) -> &mut Option<Profile> {
        &mut self.profile
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// cos/sin tables of rotary positions: angle `p · base^(-2i/d)`.
pub(crate) fn rope_tables(
    head_dim: usize,
    max_pos: usize,
    base: f32,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let inv: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
        .collect();
    let mut angles = Vec::with_capacity(max_pos * inv.len());
    for p in 0..max_pos {
        angles.extend(inv.iter().map(|f| p as f32 * f));
    }
    let t = ctx(
        "rope tables",
        Tensor::from_vec(angles, (max_pos, head_dim / 2), device),
    )?;
    Ok((ctx("cos", t.cos())?, ctx("sin", t.sin())?))
}

/// `[n, past + n]` additive mask: 0 where query `i` may see key `j`
/// (`j ≤ past + i`), −∞ elsewhere.
pub(crate) fn causal_mask(n: usize, past: usize, device: &Device) -> Result<Tensor> {
    let mut m = vec![0f32; n * (past + n)];
    for i in 0..n {
        for j in (past + i + 1)..(past + n) {
            m[i * (past + n) + j] = f32::NEG_INFINITY;
        }
    }
    ctx("causal mask", Tensor::from_vec(m, (n, past + n), device))
}
