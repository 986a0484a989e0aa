//! The shape of a model: what the memory arithmetic needs to know.
//!
//! An [`Architecture`] is read from a real model file (a GGUF's metadata, or
//! a Hugging Face `config.json`) or taken from a preset written from a
//! published configuration. From it, [`Architecture::tensors`] lists every
//! weight tensor the model has, with its shape, named as in GGUF
//! (`blk.3.attn_q.weight`) or in the Hugging Face BERT checkpoints
//! (`encoder.layer.3.attention.self.query.weight`). Counting parameters is
//! then a sum, and a test checks that sum against the real files.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The positions reserved when a caller does not say how many: enough for
/// every chapter's prompts and answers, and a bound on what a file's
/// declared context can make the engines allocate.
pub const DEFAULT_CONTEXT: usize = 4096;

/// The two families of transformer the Codex meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    /// Decoder-only with RMSNorm, rotary positions, grouped-query attention
    /// and a SwiGLU MLP: Llama, Mistral, Qwen2, Phi-3, SmolLM2.
    Llama,
    /// Encoder-only with LayerNorm, learned positions and a GELU MLP: BERT,
    /// MiniLM. It has no KV cache: it reads a whole sequence at once.
    Bert,
}

/// The hyper-parameters that decide a transformer's memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Architecture {
    pub name: String,
    pub family: Family,
    pub vocab_size: u64,
    /// Width of the residual stream, `d_model`.
    pub hidden_size: u64,
    /// Width of the MLP's inner layer.
    pub intermediate_size: u64,
    pub num_layers: u64,
    /// Query heads.
    pub num_heads: u64,
    /// Key/value heads (fewer than query heads under grouped-query attention).
    pub num_kv_heads: u64,
    pub head_dim: u64,
    /// The output head reuses the token embedding matrix.
    pub tied_embeddings: bool,
    /// Q, K and V projections carry biases (Qwen2; BERT always does).
    pub attention_bias: bool,
    /// The longest context the model was trained for.
    pub max_context: u64,
    /// BERT's segment-embedding rows (0 for decoders).
    pub type_vocab_size: u64,
}

/// One weight tensor: its name, its shape (outermost first, so a linear
/// layer's weight is `[out_features, in_features]`), and the layer it
/// belongs to (`None` for embeddings, final norm and output head).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorShape {
    pub name: String,
    pub dims: Vec<u64>,
    pub layer: Option<u64>,
}

impl TensorShape {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.dims.iter().product()
    }
}

impl Architecture {
    /// Refuses `tokens` that do not exist in the vocabulary or do not fit
    /// after `cached` positions.
    pub fn check_tokens(&self, cached: usize, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(Error::invalid("forward", "no tokens to run"));
        }
        let max = self.max_context as usize;
        if cached + tokens.len() > max {
            return Err(Error::invalid(
                "forward",
                format!(
                    "{cached} cached + {} new tokens exceed the context of {max}",
                    tokens.len()
                ),
            ));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as u64 >= self.vocab_size) {
            return Err(Error::invalid(
                "forward",
                format!("token id {bad} is outside the vocabulary"),
            ));
        }
        Ok(())
    }

    /// Every weight tensor of the model, in file order.
    pub fn tensors(&self) -> Vec<TensorShape> {
        match self.family {
            Family::Llama => self.llama_tensors(),
            Family::Bert => self.bert_tensors(),
        }
    }

    /// Total number of parameters.
    pub fn param_count(&self) -> u64 {
        self.tensors().iter().map(TensorShape::numel).sum()
    }

    fn llama_tensors(&self) -> Vec<TensorShape> {
        let (h, i, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let q = self.num_heads * self.head_dim;
        let kv = self.num_kv_heads * self.head_dim;
        let mut out = vec![shape("token_embd.weight", &[v, h], None)];
        for l in 0..self.num_layers {
            let t = |n: &str, d: &[u64]| shape(&format!("blk.{l}.{n}"), d, Some(l));
            out.push(t("attn_norm.weight", &[h]));
            out.push(t("attn_q.weight", &[q, h]));
            out.push(t("attn_k.weight", &[kv, h]));
            out.push(t("attn_v.weight", &[kv, h]));
            if self.attention_bias {
                out.push(t("attn_q.bias", &[q]));
                out.push(t("attn_k.bias", &[kv]));
                out.push(t("attn_v.bias", &[kv]));
            }
            out.push(t("attn_output.weight", &[h, q]));
            out.push(t("ffn_norm.weight", &[h]));
            out.push(t("ffn_gate.weight", &[i, h]));
            out.push(t("ffn_up.weight", &[i, h]));
            out.push(t("ffn_down.weight", &[h, i]));
        }
        out.push(shape("output_norm.weight", &[h], None));
        if !self.tied_embeddings {
            out.push(shape("output.weight", &[v, h], None));
        }
        out
    }

    fn bert_tensors(&self) -> Vec<TensorShape> {
        let (h, i) = (self.hidden_size, self.intermediate_size);
        let mut out = vec![
            shape(
                "embeddings.word_embeddings.weight",
                &[self.vocab_size, h],
                None,
            ),
            shape(
                "embeddings.position_embeddings.weight",
                &[self.max_context, h],
                None,
            ),
            shape(
                "embeddings.token_type_embeddings.weight",
                &[self.type_vocab_size, h],
                None,
            ),
            shape("embeddings.LayerNorm.weight", &[h], None),
            shape("embeddings.LayerNorm.bias", &[h], None),
        ];
        for l in 0..self.num_layers {
            let t = |n: &str, d: &[u64]| shape(&format!("encoder.layer.{l}.{n}"), d, Some(l));
            for proj in [
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
            ] {
                out.push(t(&format!("{proj}.weight"), &[h, h]));
                out.push(t(&format!("{proj}.bias"), &[h]));
            }
            out.push(t("attention.output.dense.weight", &[h, h]));
            out.push(t("attention.output.dense.bias", &[h]));
            out.push(t("attention.output.LayerNorm.weight", &[h]));
            out.push(t("attention.output.LayerNorm.bias", &[h]));
            out.push(t("intermediate.dense.weight", &[i, h]));
            out.push(t("intermediate.dense.bias", &[i]));
            out.push(t("output.dense.weight", &[h, i]));
            out.push(t("output.dense.bias", &[h]));
            out.push(t("output.LayerNorm.weight", &[h]));
            out.push(t("output.LayerNorm.bias", &[h]));
        }
        out.push(shape("pooler.dense.weight", &[h, h], None));
        out.push(shape("pooler.dense.bias", &[h], None));
        out
    }

    /// Checks that the numbers describe a buildable model.
    /// The positions a run reserves when it asks for `requested` (0: not
    /// said): never more than the model's context, and [`DEFAULT_CONTEXT`]
    /// at most when nobody asked. A file may declare a context of 2^31
    /// positions; nothing is sized by that number alone.
    pub fn positions(&self, requested: usize) -> usize {
        let max = usize::try_from(self.max_context).unwrap_or(usize::MAX);
        match requested {
            0 => max.min(DEFAULT_CONTEXT),
            n => n.min(max),
        }
    }

    /// The positions a prompt of `prompt` tokens and `max_tokens` new ones
    /// need, refused (naming `max_tokens`) when the model's context cannot
    /// hold them: a run is sized by what it asked for, never by an
    /// unchecked flag.
    pub fn context_for(&self, prompt: usize, max_tokens: usize) -> Result<usize> {
        let need = prompt.saturating_add(max_tokens).saturating_add(1);
        if need as u64 > self.max_context {
            return Err(Error::invalid(
                "max_tokens",
                format!(
                    "{prompt} prompt tokens and {max_tokens} new ones need {need} positions; \
                     `{}` holds {}",
                    self.name, self.max_context
                ),
            ));
        }
        Ok(need)
    }

    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("num_kv_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("max_context", self.max_context),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(Error::invalid(
                    "architecture",
                    format!("{field} of `{}` is 0", self.name),
                ));
            }
        }
        // Ceilings far above every published model (the largest decoders
        // have ~130 layers, 16,384 hidden features and a 256k vocabulary),
        // so that no product of these sizes overflows and no table sized by
        // them is allocated before the file's tensors confirm them. The
        // context has none: nothing is sized by it alone (`positions`).
        let ceilings = [
            ("vocab_size", self.vocab_size, 1 << 24),
            ("hidden_size", self.hidden_size, 1 << 20),
            ("intermediate_size", self.intermediate_size, 1 << 22),
            ("num_layers", self.num_layers, 1 << 12),
            ("num_heads", self.num_heads, 1 << 12),
            ("num_kv_heads", self.num_kv_heads, 1 << 12),
            ("head_dim", self.head_dim, 1 << 12),
        ];
        for (field, value, ceiling) in ceilings {
            if value > ceiling {
                return Err(Error::invalid(
                    "architecture",
                    format!(
                        "{field} of `{}` is {value}, beyond the {ceiling} this reader accepts",
                        self.name
                    ),
                ));
            }
        }
        if self.num_heads % self.num_kv_heads != 0 {
            return Err(Error::invalid(
                "architecture",
                format!(
                    "`{}`: {} query heads cannot be shared among {} key/value heads",
                    self.name, self.num_heads, self.num_kv_heads
                ),
            ));
        }
        Ok(())
    }

    /// Reads a Hugging Face `config.json` (Llama-style decoders and BERT).
    pub fn from_config_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let raw: HfConfig = serde_json::from_str(&text).map_err(|source| Error::Json {
            context: format!("{} is not a Hugging Face config.json", path.display()),
            source,
        })?;
        let name = raw.name_or_path.clone().unwrap_or_else(|| {
            path.parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        });
        raw.into_architecture(name, path)
    }

    /// The presets of the seed's Table 2, written from the models' published
    /// `config.json` files, plus the Codex's own small models.
    pub fn preset(name: &str) -> Result<Self> {
        let key = name.to_ascii_lowercase();
        PRESETS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, f)| f())
            .ok_or_else(|| {
                let known: Vec<_> = PRESETS.iter().map(|(k, _)| *k).collect();
                Error::UnknownPreset(name.to_string(), known.join(", "))
            })
    }

    /// Names accepted by [`Architecture::preset`].
    pub fn preset_names() -> Vec<&'static str> {
        PRESETS.iter().map(|(k, _)| *k).collect()
    }
}

fn shape(name: &str, dims: &[u64], layer: Option<u64>) -> TensorShape {
    TensorShape {
        name: name.to_string(),
        dims: dims.to_vec(),
        layer,
    }
}

type PresetFn = fn() -> Architecture;

// ANCHOR: presets
/// Published configurations (`config.json` of each model's release).
const PRESETS: &[(&str, PresetFn)] = &[
    ("llama-3-8b", || Architecture {
        name: "Llama-3-8B".into(),
        family: Family::Llama,
        vocab_size: 128_256,
        hidden_size: 4096,
        intermediate_size: 14_336,
        num_layers: 32,
        num_heads: 32,
        num_kv_heads: 8,
        head_dim: 128,
        tied_embeddings: false,
        attention_bias: false,
        max_context: 8192,
        type_vocab_size: 0,
    }),
    ("phi-3-mini", || Architecture {
        name: "Phi-3-mini-4k".into(),
        family: Family::Llama,
        vocab_size: 32_064,
        hidden_size: 3072,
        intermediate_size: 8192,
        num_layers: 32,
        num_heads: 32,
        num_kv_heads: 32,
        head_dim: 96,
        tied_embeddings: false,
        attention_bias: false,
        max_context: 4096,
        type_vocab_size: 0,
    }),
    ("qwen-2.5-32b", || Architecture {
        name: "Qwen-2.5-32B".into(),
        family: Family::Llama,
        vocab_size: 152_064,
        hidden_size: 5120,
        intermediate_size: 27_648,
        num_layers: 64,
        num_heads: 40,
        num_kv_heads: 8,
        head_dim: 128,
        tied_embeddings: false,
        attention_bias: true,
        max_context: 32_768,
        type_vocab_size: 0,
    }),
    ("smollm2-135m", || Architecture {
        name: "SmolLM2-135M".into(),
        family: Family::Llama,
        vocab_size: 49_152,
        hidden_size: 576,
        intermediate_size: 1536,
        num_layers: 30,
        num_heads: 9,
        num_kv_heads: 3,
        head_dim: 64,
        tied_embeddings: true,
        attention_bias: false,
        max_context: 8192,
        type_vocab_size: 0,
    }),
];
// ANCHOR_END: presets

/// The fields of a Hugging Face `config.json` the estimator needs.
#[derive(Debug, Deserialize)]
struct HfConfig {
    #[serde(rename = "_name_or_path")]
    name_or_path: Option<String>,
    model_type: Option<String>,
    vocab_size: Option<u64>,
    hidden_size: Option<u64>,
    intermediate_size: Option<u64>,
    num_hidden_layers: Option<u64>,
    num_attention_heads: Option<u64>,
    num_key_value_heads: Option<u64>,
    head_dim: Option<u64>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    max_position_embeddings: Option<u64>,
    type_vocab_size: Option<u64>,
}

impl HfConfig {
    fn into_architecture(self, name: String, path: &Path) -> Result<Architecture> {
        let need = |field: &str, v: Option<u64>| {
            v.ok_or_else(|| Error::Metadata {
                path: path.to_path_buf(),
                field: field.to_string(),
                reason: "absent".into(),
            })
        };
        let model_type = self.model_type.clone().unwrap_or_default();
        let family = match model_type.as_str() {
            "bert" => Family::Bert,
            "llama" | "mistral" | "qwen2" | "phi3" | "gemma" | "smollm" => Family::Llama,
            other => {
                return Err(Error::Metadata {
                    path: path.to_path_buf(),
                    field: "model_type".into(),
                    reason: format!("`{other}` is neither a Llama-style decoder nor BERT"),
                });
            }
        };
        let hidden = need("hidden_size", self.hidden_size)?;
        let heads = need("num_attention_heads", self.num_attention_heads)?;
        let arch = Architecture {
            name,
            family,
            vocab_size: need("vocab_size", self.vocab_size)?,
            hidden_size: hidden,
            intermediate_size: need("intermediate_size", self.intermediate_size)?,
            num_layers: need("num_hidden_layers", self.num_hidden_layers)?,
            num_heads: heads,
            num_kv_heads: self.num_key_value_heads.unwrap_or(heads),
            head_dim: self.head_dim.unwrap_or(hidden / heads.max(1)),
            tied_embeddings: self.tie_word_embeddings.unwrap_or(family == Family::Bert),
            attention_bias: self.attention_bias.unwrap_or(model_type == "qwen2"),
            max_context: need("max_position_embeddings", self.max_position_embeddings)?,
            type_vocab_size: if family == Family::Bert {
                self.type_vocab_size.unwrap_or(2)
            } else {
                0
            },
        };
        arch.validate()?;
        Ok(arch)
    }
}

/// Counts the parameters in a safetensors file by reading its JSON header
/// only. Integer tensors are buffers, not parameters (BERT checkpoints
/// store `position_ids`), so only floating-point tensors count.
pub fn safetensors_param_count(path: impl AsRef<Path>) -> Result<u64> {
    use std::io::Read;
    let path = path.as_ref();
    let foreign = |reason: String| Error::Foreign {
        path: path.to_path_buf(),
        expected: "safetensors",
        reason,
    };
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| Error::io(path, e))?;
    let n = u64::from_le_bytes(len);
    if n > file_len.saturating_sub(8) || n > 100 << 20 {
        return Err(foreign(format!(
            "header length {n} does not fit a {file_len}-byte file"
        )));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| foreign(format!("header is not JSON: {e}")))?;
    let tensors = json
        .as_object()
        .ok_or_else(|| foreign("header is not a JSON object".into()))?;
    let mut total = 0;
    for (name, t) in tensors {
        if name == "__metadata__"
            || !matches!(t["dtype"].as_str(), Some("F32" | "F16" | "BF16" | "F64"))
        {
            continue;
        }
        let shape = t["shape"]
            .as_array()
            .ok_or_else(|| foreign(format!("tensor {name} has no shape")))?;
        total += shape
            .iter()
            .map(|d| d.as_u64().unwrap_or(0))
            .product::<u64>();
    }
    Ok(total)
}
