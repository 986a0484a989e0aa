//! Synthetic Llama-shaped models: random quantized weights in the shard
//! format ([`crate::stream::shard`]), so that the streaming engine can be tried on
//! an 8B-parameter shape without downloading one.
//!
//! The weights are generated block by block directly as GGUF bytes (never
//! as a whole f32 matrix), at most two layers in memory (one written while
//! the next is built), from a seeded generator: the same [`SynthSpec`]
//! always gives the same files. Their magnitude is sensible (each matrix's
//! weights have a standard deviation of about `1/sqrt(cols)`), the norms
//! are all ones, so activations neither vanish nor explode; the text such a
//! model writes is noise, its speed is that of the real shape.

use std::path::Path;

use candle_core::Device;
use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result, ctx};
use crate::model::gguf::GgufFile;
use crate::stream::manifest::Manifest;
use crate::stream::shard;

/// The shape and weights' format of a synthetic Llama.
///
/// The embeddings are tied (no `output.weight`, like SmolLM2), and
/// `token_embd.weight` is stored in `dtype` like the layers' matrices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SynthSpec {
    pub name: String,
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub vocab: usize,
    pub context: usize,
    /// `Q4_0`, `Q4_1` or `Q8_0`.
    #[serde(serialize_with = "serialize_dtype")]
    pub dtype: GgmlDType,
    pub seed: u64,
}

fn serialize_dtype<S: serde::Serializer>(
    d: &GgmlDType,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(crate::model::gguf::dtype_name(*d))
}

/// The names [`SynthSpec::preset`] knows.
pub const PRESETS: &[&str] = &["smollm2-135m", "llama-3.2-1b", "llama-3.2-3b", "llama-3-8b"];

/// The tensors of one decoder layer: name suffix, rows, cols (`0` cols: a
/// norm, f32 of `hidden`).
fn layer_tensors(s: &SynthSpec) -> [(&'static str, usize, usize); 9] {
    let (h, kv, f) = (s.hidden, s.kv_dim(), s.intermediate);
    [
        ("attn_norm", h, 0),
        ("attn_q", h, h),
        ("attn_k", kv, h),
        ("attn_v", kv, h),
        ("attn_output", h, h),
        ("ffn_norm", h, 0),
        ("ffn_gate", f, h),
        ("ffn_up", f, h),
        ("ffn_down", h, f),
    ]
}

impl SynthSpec {
    /// A known shape, quantized `Q4_0`, seed 0. Every preset has SmolLM2's
    /// vocabulary size (49152), whatever the real model's, so that
    /// SmolLM2's tokenizer can be copied in ([`write()`]'s `tokenizer_from`)
    /// and the model fed real text.
    ///
    /// | preset | hidden | ffn | layers | heads | kv heads | context |
    /// |---|---|---|---|---|---|---|
    /// | `smollm2-135m` | 576 | 1536 | 30 | 9 | 3 | 8192 |
    /// | `llama-3.2-1b` | 2048 | 8192 | 16 | 32 | 8 | 131072 |
    /// | `llama-3.2-3b` | 3072 | 8192 | 28 | 24 | 8 | 131072 |
    /// | `llama-3-8b` | 4096 | 14336 | 32 | 32 | 8 | 8192 |
    pub fn preset(name: &str) -> Result<Self> {
        let (hidden, intermediate, layers, heads, kv_heads, context) = match name {
            "smollm2-135m" => (576, 1536, 30, 9, 3, 8192),
            "llama-3.2-1b" => (2048, 8192, 16, 32, 8, 131072),
            "llama-3.2-3b" => (3072, 8192, 28, 24, 8, 131072),
            "llama-3-8b" => (4096, 14336, 32, 32, 8, 8192),
            _ => return Err(Error::UnknownPreset(name.to_string(), PRESETS.join(", "))),
        };
        Ok(SynthSpec {
            name: name.to_string(),
            hidden,
            intermediate,
            layers,
            heads,
            kv_heads,
            vocab: 49152,
            context,
            dtype: GgmlDType::Q4_0,
            seed: 0,
        })
    }

    /// A real model's shape (from [`crate::Architecture::preset`] or a
    /// GGUF header) stored as `dtype`, seed 0. A synthetic model always ties
    /// its embeddings and has no attention biases, whatever `arch` says: an
    /// untied model's output head (another `vocab × hidden` matrix) is not
    /// in [`SynthSpec::bytes`]; count it from `arch.tied_embeddings`.
    pub fn from_architecture(arch: &crate::Architecture, dtype: GgmlDType) -> Result<Self> {
        if arch.family != crate::Family::Llama {
            return Err(Error::invalid(
                "synthetic model spec",
                format!("{} is not a Llama-style decoder", arch.name),
            ));
        }
        let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let spec = SynthSpec {
            name: arch.name.clone(),
            hidden: n(arch.hidden_size),
            intermediate: n(arch.intermediate_size),
            layers: n(arch.num_layers),
            heads: n(arch.num_heads),
            kv_heads: n(arch.num_kv_heads),
            vocab: n(arch.vocab_size),
            context: n(arch.max_context),
            dtype,
            seed: 0,
        };
        if spec.heads == 0 || spec.head_dim() as u64 != arch.head_dim {
            return Err(Error::invalid(
                "synthetic model spec",
                format!(
                    "{}: head_dim {} is not hidden / heads ({} / {})",
                    arch.name, arch.head_dim, arch.hidden_size, arch.num_heads
                ),
            ));
        }
        spec.validate()?;
        Ok(spec)
    }

    /// The same shape with `n` layers.
    pub fn with_layers(mut self, n: usize) -> Self {
        self.layers = n;
        self
    }

    /// The same shape stored as `dtype` (`Q4_0`, `Q4_1` or `Q8_0`).
    pub fn with_dtype(mut self, dtype: GgmlDType) -> Self {
        self.dtype = dtype;
        self
    }

    /// The same shape with other random weights.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads.max(1)
    }

    /// Width of K and V: `kv_heads × head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim()
    }

    /// RoPE's base: Llama 3's 500000 for the `llama-3*` names, else 10000.
    pub fn rope_freq_base(&self) -> f32 {
        if self.name.starts_with("llama-3") {
            500_000.0
        } else {
            10_000.0
        }
    }

    /// Refuses shapes the format or a Llama cannot hold.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::invalid("synthetic model spec", reason));
        if !matches!(
            self.dtype,
            GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q8_0
        ) {
            return bad(format!(
                "dtype {} (Q4_0, Q4_1 or Q8_0 only)",
                crate::model::gguf::dtype_name(self.dtype)
            ));
        }
        let dims = [
            ("hidden", self.hidden),
            ("intermediate", self.intermediate),
            ("layers", self.layers),
            ("heads", self.heads),
            ("kv_heads", self.kv_heads),
            ("vocab", self.vocab),
            ("context", self.context),
        ];
        if let Some((what, _)) = dims.iter().find(|(_, v)| *v == 0) {
            return bad(format!("{what} is 0"));
        }
        let block = self.dtype.block_size();
        if self.hidden % block != 0 || self.intermediate % block != 0 {
            return bad(format!(
                "hidden ({}) and intermediate ({}) must be multiples of the block size {block}",
                self.hidden, self.intermediate
            ));
        }
        if self.hidden % self.heads != 0 || self.head_dim() % 2 != 0 {
            return bad(format!(
                "hidden ({}) must be an even head dimension times heads ({})",
                self.hidden, self.heads
            ));
        }
        if self.heads % self.kv_heads != 0 {
            return bad(format!(
                "heads ({}) must be a multiple of kv_heads ({})",
                self.heads, self.kv_heads
            ));
        }
        if u32::try_from(self.vocab.max(self.context).max(self.intermediate)).is_err() {
            return bad("a dimension does not fit GGUF's u32 metadata".into());
        }
        Ok(())
    }

    fn matrix_bytes(&self, rows: usize, cols: usize) -> u64 {
        (rows * cols / self.dtype.block_size() * self.dtype.type_size()) as u64
    }

    /// Parameters of one decoder layer.
    pub fn layer_params(&self) -> u64 {
        layer_tensors(self)
            .iter()
            .map(|&(_, r, c)| (r * c.max(1)) as u64)
            .sum()
    }

    /// Bytes of one decoder layer's tensors (norms in f32), without the GGUF
    /// header and padding.
    pub fn layer_bytes(&self) -> u64 {
        layer_tensors(self)
            .iter()
            .map(|&(_, r, c)| {
                if c == 0 {
                    (r * 4) as u64
                } else {
                    self.matrix_bytes(r, c)
                }
            })
            .sum()
    }

    /// Bytes of all the weights: the embedding, the final norm and the
    /// layers (the files add headers, metadata and padding).
    pub fn bytes(&self) -> u64 {
        self.matrix_bytes(self.vocab, self.hidden)
            + (self.hidden * 4) as u64
            + self.layers as u64 * self.layer_bytes()
    }

    /// What the fused engine must place to run this shape with a KV cache
    /// of `context` positions ([`crate::stream::placement::demand`] reads the same from
    /// a file). `tied`: one matrix serves as embedding and output head, as
    /// in every synthetic model; `false` for shapes such as Qwen-2.5-32B.
    pub fn demand(&self, context: u64, tied: bool) -> crate::stream::placement::Demand {
        let embedding = self.matrix_bytes(self.vocab, self.hidden);
        crate::stream::placement::Demand {
            fixed: embedding * if tied { 1 } else { 2 },
            layers: vec![self.layer_bytes(); self.layers],
            kv_cache: context.saturating_mul(self.layers as u64 * 2 * self.kv_dim() as u64 * 4),
            activations: crate::stream::placement::activation_bytes(
                (
                    self.hidden as u64,
                    self.intermediate as u64,
                    (self.heads * self.head_dim()) as u64,
                    self.kv_dim() as u64,
                ),
                self.heads as u64,
                self.vocab as u64,
                context,
            )
            .unwrap_or(u64::MAX),
        }
    }

    /// Parameters, embeddings counted once (they are tied).
    pub fn params(&self) -> u64 {
        (self.vocab * self.hidden + self.hidden) as u64 + self.layers as u64 * self.layer_params()
    }

    /// The GGUF metadata (without a tokenizer).
    fn metadata(&self) -> Vec<(String, Value)> {
        let u = |v: usize| Value::U32(v as u32);
        let file_type = match self.dtype {
            GgmlDType::Q4_1 => 3,
            GgmlDType::Q8_0 => 7,
            _ => 2,
        };
        let mut m = vec![
            ("general.architecture", Value::String("llama".into())),
            (
                "general.name",
                Value::String(format!("{} (synthetic)", self.name)),
            ),
            ("general.file_type", Value::U32(file_type)),
            ("llama.vocab_size", u(self.vocab)),
            ("llama.context_length", u(self.context)),
            ("llama.embedding_length", u(self.hidden)),
            ("llama.feed_forward_length", u(self.intermediate)),
            ("llama.block_count", u(self.layers)),
            ("llama.attention.head_count", u(self.heads)),
            ("llama.attention.head_count_kv", u(self.kv_heads)),
            ("llama.rope.dimension_count", u(self.head_dim())),
            ("llama.rope.freq_base", Value::F32(self.rope_freq_base())),
            ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
            ("nindub.synth.seed", Value::U64(self.seed)),
        ];
        m.sort_by_key(|(k, _)| *k);
        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// A random matrix `[rows, cols]` in `self.dtype`, seeded by the spec's
    /// seed and the tensor's name.
    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<QTensor> {
        let n_blocks = rows * cols / self.dtype.block_size();
        let seed = mix(self.seed ^ fnv1a(name.as_bytes()));
        let bytes = random_blocks(self.dtype, n_blocks, 1.0 / (cols as f32).sqrt(), seed)?;
        ctx(
            &format!("building synthetic tensor `{name}`"),
            qtensor_from_ggml(self.dtype, &bytes, vec![rows, cols], &Device::Cpu),
        )
    }

    /// Layer `l`'s nine tensors.
    fn layer(&self, l: usize) -> Result<Vec<(String, QTensor)>> {
        layer_tensors(self)
            .iter()
            .map(|&(suffix, rows, cols)| {
                let name = format!("blk.{l}.{suffix}.weight");
                let t = if cols == 0 {
                    ones(&name, rows)?
                } else {
                    self.matrix(&name, rows, cols)?
                };
                Ok((name, t))
            })
            .collect()
    }
}

/// An f32 vector of ones (a norm's weight).
fn ones(name: &str, n: usize) -> Result<QTensor> {
    let bytes: Vec<u8> = std::iter::repeat_n(1f32.to_le_bytes(), n)
        .flatten()
        .collect();
    ctx(
        &format!("building synthetic tensor `{name}`"),
        qtensor_from_ggml(GgmlDType::F32, &bytes, vec![n], &Device::Cpu),
    )
}

/// Writes the synthetic model `spec` as a shard directory `out` (which must
/// not exist or be empty), copying the `tokenizer.*` metadata of
/// `tokenizer_from` when given (its vocabulary must have `spec.vocab`
/// tokens).
pub fn write(
    spec: &SynthSpec,
    tokenizer_from: Option<&GgufFile>,
    out: &Path,
    progress: bool,
) -> Result<Manifest> {
    spec.validate()?;
    let mut metadata = spec.metadata();
    if let Some(t) = tokenizer_from {
        let n = match t.content.metadata.get("tokenizer.ggml.tokens") {
            Some(Value::Array(tokens)) => tokens.len(),
            _ => {
                return Err(Error::Metadata {
                    path: t.path.clone(),
                    field: "tokenizer.ggml.tokens".into(),
                    reason: "absent: the file has no tokenizer to copy".into(),
                });
            }
        };
        if n != spec.vocab {
            return Err(Error::invalid(
                "synthetic model spec",
                format!(
                    "the tokenizer of {} has {n} tokens, but the spec's vocab is {}",
                    t.path.display(),
                    spec.vocab
                ),
            ));
        }
        let mut keys: Vec<_> = t
            .content
            .metadata
            .iter()
            .filter(|(k, _)| k.starts_with("tokenizer."))
            .collect();
        keys.sort_by_key(|(k, _)| k.as_str());
        metadata.extend(keys.into_iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let refs: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let base = vec![
        (
            "token_embd.weight".to_string(),
            spec.matrix("token_embd.weight", spec.vocab, spec.hidden)?,
        ),
        (
            "output_norm.weight".to_string(),
            ones("output_norm.weight", spec.hidden)?,
        ),
    ];
    let layers = (0..spec.layers).map(|l| spec.layer(l));
    shard::write_shards(out, "synthetic", &refs, &base, layers, progress)
}

/// Blocks per independently seeded chunk: the bytes do not depend on how
/// many threads generate them.
const CHUNK_BLOCKS: usize = 4096;

/// `n_blocks` random blocks of `dtype` whose weights have a root mean
/// square of about `std`.
///
/// Q4_0: `(q − 8)·d`, `q` uniform in 0..16 (rms `d·√21.5`); Q4_1: `q·d + m`
/// with `m = −7.5·d` (centred, rms `d·√21.25`); Q8_0: `q·d`, `q` uniform
/// int8 (rms `d·√5461.5`). Each block's `d` is one of 16 values spread over
/// ±25% of the mean, as real scales vary.
fn random_blocks(dtype: GgmlDType, n_blocks: usize, std: f32, seed: u64) -> Result<Vec<u8>> {
    // A block's header is what comes before its codes (`qs`), as the block
    // types define it.
    use crate::ggml::blocks::{BlockQ4_0, BlockQ4_1, BlockQ8_0};
    use std::mem::offset_of;
    let (unit_rms, header) = match dtype {
        GgmlDType::Q4_0 => (21.5f32.sqrt(), offset_of!(BlockQ4_0, qs)),
        GgmlDType::Q4_1 => (21.25f32.sqrt(), offset_of!(BlockQ4_1, qs)),
        GgmlDType::Q8_0 => (5461.5f32.sqrt(), offset_of!(BlockQ8_0, qs)),
        other => {
            return Err(Error::invalid(
                "synthetic dtype",
                format!(
                    "{} (Q4_0, Q4_1 or Q8_0 only)",
                    crate::model::gguf::dtype_name(other)
                ),
            ));
        }
    };
    let factors: Vec<f32> = (0..16).map(|i| 0.75 + 0.5 * i as f32 / 15.0).collect();
    let mean_sq = factors.iter().map(|f| f * f).sum::<f32>() / 16.0;
    let heads: Vec<[u8; 4]> = factors
        .iter()
        .map(|f| {
            let d = half::f16::from_f32(std / unit_rms * f / mean_sq.sqrt());
            let m = half::f16::from_f32(-7.5 * d.to_f32());
            let (d, m) = (d.to_le_bytes(), m.to_le_bytes());
            [d[0], d[1], m[0], m[1]]
        })
        .collect();
    let ts = dtype.type_size();
    let mut out = vec![0u8; n_blocks * ts];
    out.par_chunks_mut(CHUNK_BLOCKS * ts)
        .enumerate()
        .for_each(|(c, chunk)| {
            let mut rng = SplitMix64(mix(seed.wrapping_add((c as u64).wrapping_mul(GOLDEN_2))));
            for block in chunk.chunks_exact_mut(ts) {
                let (h, qs) = block.split_at_mut(header);
                h.copy_from_slice(&heads[(rng.next() & 15) as usize][..header]);
                // Every body (16 or 32 bytes) is a whole number of u64s.
                for q in qs.chunks_exact_mut(8) {
                    q.copy_from_slice(&rng.next().to_le_bytes());
                }
            }
        });
    Ok(out)
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
const GOLDEN_2: u64 = 0xD1B5_4A32_D192_ED03;

/// SplitMix64's finalizer: a 64-bit mixing function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and defined here so
/// the bytes never change with a dependency's version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }
}

/// FNV-1a, to seed each tensor by its name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}
