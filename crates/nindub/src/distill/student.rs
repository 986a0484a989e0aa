//! A small Llama-shaped student that can be trained: the language model of
//! "The Transfer of Wisdom".
//!
//! It is the same network as [`crate::model::llama::Llama`] (RMSNorm, interleaved
//! RoPE, grouped-query attention, SwiGLU, tied embeddings), written with
//! operations candle can differentiate (`rms_norm_slow`, `rope_i_slow`, the
//! composed softmax), over a batch of equal-length windows. Its parameters
//! carry GGUF's tensor names (`token_embd.weight`, `blk.0.attn_q.weight`…),
//! so a saved student — `model.safetensors`, a Hugging Face style
//! `config.json` and the teacher's `tokenizer.json` — loads into the
//! Cantrip/Ritual generation path unchanged ([`crate::model::llama::Llama::from_safetensors`]);
//! a test checks that both give the same logits.

use std::path::Path;

use candle_core::{D, DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::distill::train::{self, Params};
use crate::error::{Error, Result, ctx};

// ANCHOR: config
/// The student's shape, stored as a Hugging Face `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: u32,
}
// ANCHOR_END: config

impl StudentConfig {
    /// A student of `hidden` width and `layers` layers for a vocabulary of
    /// `vocab` tokens (the teacher's): heads of 32 dimensions, an MLP
    /// `8/3 · hidden` wide (rounded to 32), as Llama does.
    pub fn small(vocab: usize, hidden: usize, layers: usize, context: usize, eos: u32) -> Self {
        let heads = (hidden / 32).max(1);
        StudentConfig {
            model_type: "llama".into(),
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: (hidden * 8 / 3).div_ceil(32) * 32,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: heads,
            max_position_embeddings: context,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            tie_word_embeddings: true,
            bos_token_id: None,
            eos_token_id: eos,
        }
    }

    fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Refuses shapes the network cannot have.
    pub fn validate(&self) -> Result<()> {
        let bad = |r: String| Err(Error::invalid("student config", r));
        if self.vocab_size == 0 || self.hidden_size == 0 || self.num_hidden_layers == 0 {
            return bad("vocabulary, width and depth must be positive".into());
        }
        let (h, kv) = (self.num_attention_heads, self.num_key_value_heads);
        if h == 0 || kv == 0 || self.hidden_size % h != 0 || h % kv != 0 {
            return bad(format!(
                "{h} heads and {kv} KV heads do not divide a width of {}",
                self.hidden_size
            ));
        }
        if self.head_dim() % 2 != 0 {
            return bad("RoPE needs an even head dimension".into());
        }
        if !self.tie_word_embeddings {
            return bad("the student ties its output head to its embedding".into());
        }
        Ok(())
    }
}

struct Block {
    attn_norm: Tensor,
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    ffn_norm: Tensor,
    w_gate: Tensor,
    w_up: Tensor,
    w_down: Tensor,
}

/// The trainable student.
pub struct Student {
    pub config: StudentConfig,
    pub params: Params,
    embedding: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

impl Student {
    /// A freshly initialised student: weights uniform in `±1/√fan_in`
    /// (PyTorch's default for linear layers), the embedding `N`-like with
    /// scale 0.02 as GPT-2 does, norm gains 1, and the output projections
    /// of each block scaled down by `1/√(2·layers)` (GPT-2's residual
    /// scaling) so the residual stream starts small.
    pub fn new(config: StudentConfig, seed: u64, device: &Device) -> Result<Self> {
        config.validate()?;
        let c = &config;
        let mut rng = train::rng(seed, 0);
        let mut p = Params::new();
        let (d, f) = (c.hidden_size, c.intermediate_size);
        let kv = c.num_key_value_heads * c.head_dim();
        let embedding = p.uniform(
            &mut rng,
            "token_embd.weight",
            (c.vocab_size, d),
            0.035,
            device,
        )?;
        let resid = 1.0 / (2.0 * c.num_hidden_layers as f32).sqrt();
        let mut blocks = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let n = |s: &str| format!("blk.{l}.{s}.weight");
            let inv = |fan_in: usize| 1.0 / (fan_in as f32).sqrt();
            blocks.push(Block {
                attn_norm: p.constant(&n("attn_norm"), d, 1.0, device)?,
                wq: p.uniform(&mut rng, &n("attn_q"), (d, d), inv(d), device)?,
                wk: p.uniform(&mut rng, &n("attn_k"), (kv, d), inv(d), device)?,
                wv: p.uniform(&mut rng, &n("attn_v"), (kv, d), inv(d), device)?,
                wo: p.uniform(&mut rng, &n("attn_output"), (d, d), inv(d) * resid, device)?,
                ffn_norm: p.constant(&n("ffn_norm"), d, 1.0, device)?,
                w_gate: p.uniform(&mut rng, &n("ffn_gate"), (f, d), inv(d), device)?,
                w_up: p.uniform(&mut rng, &n("ffn_up"), (f, d), inv(d), device)?,
                w_down: p.uniform(&mut rng, &n("ffn_down"), (d, f), inv(f) * resid, device)?,
            });
        }
        let norm = p.constant("output_norm.weight", d, 1.0, device)?;
        let (cos, sin) = crate::model::llama::rope_tables(
            c.head_dim(),
            c.max_position_embeddings,
            c.rope_theta as f32,
            device,
        )?;
        Ok(Student {
            config,
            params: p,
            embedding,
            blocks,
            norm,
            cos,
            sin,
            device: device.clone(),
        })
    }

    // ANCHOR: forward
    /// Logits `[batch · len, vocab]` for a batch of token windows
    /// `[batch, len]` (u32); every position sees only those before it.
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (b, n) = ctx("student input", tokens.dims2())?;
        if n == 0 || n > c.max_position_embeddings {
            return Err(Error::invalid(
                "student forward",
                format!(
                    "windows of {n} tokens; the context is {}",
                    c.max_position_embeddings
                ),
            ));
        }
        let (h, kv, hd, d) = (
            c.num_attention_heads,
            c.num_key_value_heads,
            c.head_dim(),
            c.hidden_size,
        );
        let eps = c.rms_norm_eps as f32;
        let cos = ctx("rope", self.cos.narrow(0, 0, n))?;
        let sin = ctx("rope", self.sin.narrow(0, 0, n))?;
        let mask = crate::model::llama::causal_mask(n, 0, &self.device)?;
        let linear = |x: &Tensor, w: &Tensor| x.matmul(&w.t()?);
        let mut x = ctx(
            "embedding",
            tokens
                .flatten_all()
                .and_then(|ids| self.embedding.index_select(&ids, 0)),
        )?;
        for (l, blk) in self.blocks.iter().enumerate() {
            x = ctx(
                &format!("student layer {l}"),
                (|| {
                    let heads = |t: Tensor, nh: usize| {
                        t.reshape((b, n, nh, hd))?.transpose(1, 2)?.contiguous()
                    };
                    let a = candle_nn::ops::rms_norm_slow(&x, &blk.attn_norm, eps)?;
                    let q = heads(linear(&a, &blk.wq)?, h)?;
                    let k = heads(linear(&a, &blk.wk)?, kv)?;
                    let v = heads(linear(&a, &blk.wv)?, kv)?;
                    let q = candle_nn::rotary_emb::rope_i_slow(&q, &cos, &sin)?;
                    let k = candle_nn::rotary_emb::rope_i_slow(&k, &cos, &sin)?;
                    let k = candle_transformers::utils::repeat_kv(k, h / kv)?;
                    let v = candle_transformers::utils::repeat_kv(v, h / kv)?;
                    let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?.broadcast_add(&mask)?;
                    let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
                    let y = probs.matmul(&v.contiguous()?)?;
                    let y = y.transpose(1, 2)?.reshape((b * n, d))?;
                    let x = (&x + linear(&y, &blk.wo)?)?;
                    let m = candle_nn::ops::rms_norm_slow(&x, &blk.ffn_norm, eps)?;
                    let gate = candle_nn::ops::silu(&linear(&m, &blk.w_gate)?)?;
                    let up = linear(&m, &blk.w_up)?;
                    &x + linear(&(gate * up)?, &blk.w_down)?
                })(),
            )?;
        }
        ctx(
            "output head",
            (|| {
                let x = candle_nn::ops::rms_norm_slow(&x, &self.norm, eps)?;
                linear(&x, &self.embedding)
            })(),
        )
    }
    // ANCHOR_END: forward

    /// Writes `model.safetensors` (f32), `config.json` and, when given, the
    /// tokenizer as `tokenizer.json` into `dir`, each atomically.
    pub fn save(&self, dir: &Path, tokenizer: Option<&tokenizers::Tokenizer>) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        train::save_weights(&dir.join("model.safetensors"), &self.params, DType::F32)?;
        let json = serde_json::to_string_pretty(&self.config).map_err(|e| Error::Json {
            context: "student config".into(),
            source: e,
        })?;
        crate::fsx::write_atomic(&dir.join("config.json"), json.as_bytes())?;
        if let Some(tok) = tokenizer {
            let text = tok.to_string(true).map_err(|e| Error::Foreign {
                path: dir.join("tokenizer.json"),
                expected: "tokenizer",
                reason: e.to_string(),
            })?;
            crate::fsx::write_atomic(&dir.join("tokenizer.json"), text.as_bytes())?;
        }
        Ok(())
    }

    /// Reads a student's `config.json`.
    pub fn read_config(dir: &Path) -> Result<StudentConfig> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let config: StudentConfig = serde_json::from_str(&text).map_err(|e| Error::Json {
            context: format!("{} is not a student config", path.display()),
            source: e,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Loads a saved student for further training or evaluation.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let student = Student::new(Self::read_config(dir)?, 0, device)?;
        let path = dir.join("model.safetensors");
        let values = candle_core::safetensors::load(&path, device).map_err(|e| Error::Foreign {
            path: path.clone(),
            expected: "safetensors",
            reason: e.to_string(),
        })?;
        student.params.set_from(&values, &path)?;
        Ok(student)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_causality() {
        let cfg = StudentConfig::small(50, 64, 2, 16, 0);
        let s = Student::new(cfg, 1, &Device::Cpu).unwrap();
        let a = Tensor::new(&[[1u32, 2, 3, 4], [5, 6, 7, 8]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[1u32, 2, 3, 9], [5, 6, 7, 9]], &Device::Cpu).unwrap();
        let la = s.forward(&a).unwrap();
        assert_eq!(la.dims(), &[8, 50]);
        let lb = s.forward(&b).unwrap();
        // Changing the last token changes only the last position's logits.
        let diff = (la - lb).unwrap().abs().unwrap().sum(1).unwrap();
        let diff: Vec<f32> = diff.to_vec1().unwrap();
        assert!(diff[..3].iter().all(|&d| d < 1e-5), "{diff:?}");
        assert!(diff[3] > 1e-4, "{diff:?}");
        assert!(
            s.forward(&Tensor::zeros((1, 17), DType::U32, &Device::Cpu).unwrap())
                .is_err()
        );
    }

    #[test]
    fn configs_are_validated() {
        let mut cfg = StudentConfig::small(50, 64, 2, 16, 0);
        cfg.num_attention_heads = 3;
        assert!(Student::new(cfg, 1, &Device::Cpu).is_err());
    }
}
