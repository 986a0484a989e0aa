//! The Mana Crystal's arithmetic: how many bytes a model needs, and whether
//! they fit.
//!
//! A model in memory is four things: its **weights** (parameters × bits per
//! weight), its **KV cache** (two vectors per layer, per key/value head, per
//! token of context), the **activations** of the forward pass in flight, and
//! the **runtime's** own overhead. [`estimate`] adds them up; [`verdict`]
//! says what a device with a given budget can do with the total: hold it,
//! hold part of it and offload the rest to host memory, or only stream it
//! layer by layer.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::arch::{Architecture, Family, TensorShape};

/// How the weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Precision {
    F32,
    F16,
    BF16,
    /// `bits`-bit integers with one f16 scale per group of `group` weights
    /// along a row (`None`: one scale per row, i.e. per output channel), and,
    /// when `affine`, one f16 zero-point (or minimum) per group as well.
    Int {
        bits: u8,
        group: Option<u64>,
        affine: bool,
    },
}

impl Precision {
    /// Per-channel symmetric INT8, the usual 8-bit weight format.
    pub const INT8: Precision = Precision::Int {
        bits: 8,
        group: None,
        affine: false,
    };
    /// Affine INT4 in groups of 32 with an f16 scale and minimum per group:
    /// the layout of llama.cpp's Q4_1, 5.0 bits per weight.
    pub const INT4: Precision = Precision::Int {
        bits: 4,
        group: Some(32),
        affine: true,
    };

    /// Parses `f32`, `f16`, `bf16`, `int8`, `int4`, or the explicit
    /// `int<bits>[-g<group>|-channel][-sym|-affine]` (e.g. `int4-g128-sym`;
    /// `-channel` or no `-g`: one scale per row; without a mode, affine
    /// below 8 bits), and the llama.cpp names `q8_0`, `q4_0`, `q4_1`. These
    /// are the names The Alchemy of Compression's schemes
    /// ([`crate::compress::quant::Scheme`]) use, for the same layouts.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        let fixed = match s.as_str() {
            "f32" | "fp32" => Some(Precision::F32),
            "f16" | "fp16" => Some(Precision::F16),
            "bf16" => Some(Precision::BF16),
            "int8" => Some(Precision::INT8),
            "int4" => Some(Precision::INT4),
            "q8_0" => Some(Precision::Int {
                bits: 8,
                group: Some(32),
                affine: false,
            }),
            "q4_0" => Some(Precision::Int {
                bits: 4,
                group: Some(32),
                affine: false,
            }),
            "q4_1" => Some(Precision::INT4),
            _ => None,
        };
        if let Some(p) = fixed {
            return Ok(p);
        }
        let bad = || {
            Error::invalid(
                "precision",
                format!(
                    "`{s}` (expected f32, f16, bf16, int8, int4, int<bits>[-g<group>|-channel][-sym|-affine], q8_0, q4_0 or q4_1)"
                ),
            )
        };
        let mut parts = s.split('-');
        let bits: u8 = parts
            .next()
            .and_then(|p| p.strip_prefix("int"))
            .and_then(|b| b.parse().ok())
            .filter(|b| (1..=8).contains(b))
            .ok_or_else(bad)?;
        let (mut group, mut affine) = (None, bits < 8);
        for part in parts {
            match part {
                "sym" => affine = false,
                "affine" | "asym" => affine = true,
                "channel" => group = None,
                g => {
                    let n: u64 = g
                        .strip_prefix('g')
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(bad)?;
                    if n == 0 {
                        return Err(bad());
                    }
                    group = Some(n);
                }
            }
        }
        Ok(Precision::Int {
            bits,
            group,
            affine,
        })
    }

    /// A short name, the inverse of [`Precision::parse`].
    pub fn name(&self) -> String {
        match *self {
            Precision::F32 => "f32".into(),
            Precision::F16 => "f16".into(),
            Precision::BF16 => "bf16".into(),
            Precision::Int {
                bits,
                group,
                affine,
            } => {
                // Spelled as the quantization schemes spell them: the mode
                // only where it is not the default (affine below 8 bits).
                let g = group.map_or("-channel".to_string(), |g| format!("-g{g}"));
                let mode = match (affine, bits < 8) {
                    (true, false) => "-affine",
                    (false, true) => "-sym",
                    _ => "",
                };
                format!("int{bits}{g}{mode}")
            }
        }
    }

    // ANCHOR: tensor_bytes
    /// Bytes to store a matrix of `rows × cols` weights, scales included.
    /// Groups run along a row (the input dimension), as in every
    /// GPU and llama.cpp kernel; a partial last group still has its scale.
    pub fn matrix_bytes(&self, rows: u64, cols: u64) -> u64 {
        match *self {
            Precision::F32 => rows * cols * 4,
            Precision::F16 | Precision::BF16 => rows * cols * 2,
            Precision::Int {
                bits,
                group,
                affine,
            } => {
                let packed_row = (cols * bits as u64).div_ceil(8);
                let groups_per_row = group.map_or(1, |g| cols.div_ceil(g));
                let per_group = if affine { 4 } else { 2 }; // f16 scale (+ f16 zero)
                rows * (packed_row + groups_per_row * per_group)
            }
        }
    }
    // ANCHOR_END: tensor_bytes

    /// Bits per weight for a row of `cols` weights (for a group size that
    /// divides the row, `bits + 16·(1 + affine)/group`).
    pub fn bits_per_weight(&self, cols: u64) -> f64 {
        self.matrix_bytes(1, cols) as f64 * 8.0 / cols as f64
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Bytes one tensor takes at a precision. Vectors (norm weights, biases)
/// stay in f32 whatever the precision of the matrices, as in every
/// quantized format: they are tiny and precision-sensitive.
pub fn tensor_bytes(t: &TensorShape, precision: Precision) -> u64 {
    match t.dims.as_slice() {
        [n] => n * 4,
        [rows, cols] => precision.matrix_bytes(*rows, *cols),
        dims => {
            // Higher-rank tensors are stored as matrices over their last axis.
            let cols = *dims.last().unwrap_or(&1);
            precision.matrix_bytes(t.numel() / cols.max(1), cols)
        }
    }
}

/// What the model will be asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Workload {
    /// Tokens of context kept (prompt plus generated): sizes the KV cache.
    pub context: u64,
    /// Sequences processed together.
    pub batch: u64,
    /// Bytes per element of the KV cache (2 for f16, the usual).
    pub kv_bytes: u64,
    /// Tokens of the prompt pushed through at once (llama.cpp's default
    /// micro-batch is 512): sizes the activations.
    pub chunk: u64,
    /// Fixed cost of the runtime: CUDA context, kernels, allocator slack.
    pub overhead: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            context: 4096,
            batch: 1,
            kv_bytes: 2,
            chunk: 512,
            overhead: DEFAULT_OVERHEAD,
        }
    }
}

/// The runtime's own share of a GPU, an assumption (a CUDA context and
/// cuBLAS workspaces typically take 300–500 MiB): see the chapter's Question.
pub const DEFAULT_OVERHEAD: u64 = 400 * MIB;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// The memory of one model under one workload, by component.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub model: String,
    pub params: u64,
    pub precision: String,
    pub workload: Workload,
    /// All weights.
    pub weights: u64,
    /// The largest single layer's weights.
    pub max_layer: u64,
    /// Weights outside the layers: embeddings, output head, final norm.
    pub non_layer: u64,
    /// KV cache for the whole context, all layers.
    pub kv_cache: u64,
    /// Peak activations of one forward step.
    pub activations: u64,
    pub overhead: u64,
    pub total: u64,
}

// ANCHOR: kv_cache
/// KV cache bytes: for every layer, a key and a value vector of
/// `kv_heads × head_dim` numbers per token of context, per sequence.
pub fn kv_cache_bytes(arch: &Architecture, w: &Workload) -> u64 {
    match arch.family {
        // An encoder reads the whole sequence at once and keeps nothing.
        Family::Bert => 0,
        Family::Llama => {
            2 * arch.num_layers
                * arch.num_kv_heads
                * arch.head_dim
                * w.context
                * w.batch
                * w.kv_bytes
        }
    }
}
// ANCHOR_END: kv_cache

// ANCHOR: activations
/// Peak activation bytes of one forward step over a chunk of `n` tokens
/// attending to `ctx` positions, in f32. Live at the peak: the residual
/// stream, plus the larger of the attention block (normed input, Q/K/V,
/// the `heads × n × ctx` score matrix, the attention output) and the MLP
/// block (normed input, gate, up, their product); plus one row of logits.
pub fn activation_bytes(arch: &Architecture, w: &Workload) -> u64 {
    let n = w.chunk.min(w.context).max(1) * w.batch;
    let ctx = w.context.max(1);
    let (h, i, hd) = (arch.hidden_size, arch.intermediate_size, arch.head_dim);
    let qkv = n * (arch.num_heads + 2 * arch.num_kv_heads) * hd;
    let scores = arch.num_heads * n * ctx;
    let attention = n * h + qkv + scores + n * arch.num_heads * hd;
    let mlp = n * h + 3 * n * i;
    // A decoder's head scores the vocabulary; an encoder has no such head.
    let logits = match arch.family {
        Family::Llama => w.batch * arch.vocab_size,
        Family::Bert => 0,
    };
    4 * (n * h + attention.max(mlp) + logits)
}
// ANCHOR_END: activations

/// The largest byte count an estimate works with: 64 PiB. The sizes of a
/// validated architecture are bounded; a workload's context and batch come
/// from flags, and their products are checked against this before the
/// estimate's u64 arithmetic runs.
const MAX_ESTIMATE_BYTES: u128 = 1 << 56;

fn check_workload(arch: &Architecture, w: &Workload) -> Result<()> {
    let product =
        |xs: &[u64]| -> u128 { xs.iter().fold(1u128, |p, &x| p.saturating_mul(x as u128)) };
    let n = w.chunk.min(w.context).max(1);
    let kv = [2, arch.num_layers, arch.num_kv_heads, arch.head_dim];
    let largest = [
        (
            "context × batch × kv_bytes (the KV cache)",
            product(&kv).saturating_mul(product(&[w.context, w.batch, w.kv_bytes])),
        ),
        (
            "chunk × batch × context (the attention scores)",
            product(&[4, arch.num_heads, n, w.batch, w.context]),
        ),
        (
            "chunk × batch (the MLP activations)",
            product(&[16, n, w.batch, arch.intermediate_size]),
        ),
        (
            "batch (the logits)",
            product(&[4, w.batch, arch.vocab_size]),
        ),
        ("overhead", w.overhead as u128),
    ];
    for (what, bytes) in largest {
        if bytes > MAX_ESTIMATE_BYTES {
            return Err(Error::invalid(
                "workload",
                format!(
                    "{what} comes to {bytes} bytes or more, beyond the {MAX_ESTIMATE_BYTES} an estimate accepts"
                ),
            ));
        }
    }
    Ok(())
}

/// Estimates the memory of `arch` stored at `precision` under `workload`.
pub fn estimate(
    arch: &Architecture,
    precision: Precision,
    workload: &Workload,
) -> Result<Estimate> {
    arch.validate()?;
    if workload.context == 0 || workload.batch == 0 || workload.kv_bytes == 0 {
        return Err(Error::invalid(
            "workload",
            "context, batch and kv_bytes must be at least 1",
        ));
    }
    check_workload(arch, workload)?;
    let tensors = arch.tensors();
    let mut per_layer = vec![0u64; arch.num_layers as usize];
    let mut non_layer = 0;
    for t in &tensors {
        let b = tensor_bytes(t, precision);
        match t.layer {
            Some(l) => per_layer[l as usize] += b,
            None => non_layer += b,
        }
    }
    let weights = non_layer + per_layer.iter().sum::<u64>();
    let kv_cache = kv_cache_bytes(arch, workload);
    let activations = activation_bytes(arch, workload);
    Ok(Estimate {
        model: arch.name.clone(),
        params: tensors.iter().map(TensorShape::numel).sum(),
        precision: precision.name(),
        workload: *workload,
        weights,
        max_layer: per_layer.iter().copied().max().unwrap_or(0),
        non_layer,
        kv_cache,
        activations,
        overhead: workload.overhead,
        total: weights + kv_cache + activations + workload.overhead,
    })
}

/// A machine: the device's memory and the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Machine {
    /// Device (GPU) memory.
    pub device: u64,
    /// Host RAM the model may use for offloaded layers (total minus what the
    /// operating system and the rest of the program keep).
    pub host: u64,
}

impl Machine {
    /// The Codex's reference laptop: a 4 GiB GPU (the Mana Crystal) and
    /// 16 GiB of RAM of which 12 GiB are free for offloaded layers.
    pub const MANA_CRYSTAL: Machine = Machine {
        device: 4 * GIB,
        host: 12 * GIB,
    };
}

// ANCHOR: verdict
/// What a machine can do with a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Everything resident on the device, with `headroom` bytes to spare.
    Fits { headroom: u64 },
    /// `on_device` of `layers` layers on the device, the rest in host RAM
    /// and computed there (llama.cpp's `-ngl`, Accelerate's CPU offload).
    PartialOffload { on_device: u64, layers: u64 },
    /// Too big even for device + host: layers are streamed from disk one at
    /// a time through a device that holds `needed` bytes (AirLLM, NINDUB).
    LayerStreaming { needed: u64 },
    /// Not even one layer and its working set fit: `needed` bytes minimum.
    Impossible { needed: u64 },
}

/// Judges an estimate on a machine, for running *with* the device (whether
/// a model could run on the CPU alone is not this function's question).
/// The device always holds the fixed costs (runtime, activations,
/// embeddings and output head); what is left takes whole layers, each with
/// its share of the KV cache.
pub fn verdict(e: &Estimate, arch: &Architecture, m: &Machine) -> Verdict {
    if e.total <= m.device {
        return Verdict::Fits {
            headroom: m.device - e.total,
        };
    }
    let layers = arch.num_layers.max(1);
    let fixed = e.overhead + e.activations + e.non_layer;
    let per_layer = e.max_layer + e.kv_cache / layers;
    let on_device = m.device.saturating_sub(fixed) / per_layer.max(1);
    let host_needed = (layers - on_device.min(layers)) * per_layer;
    if on_device > 0 && host_needed <= m.host {
        return Verdict::PartialOffload { on_device, layers };
    }
    // Streaming keeps the fixed costs, the KV cache and one layer resident.
    let needed = fixed + e.kv_cache + e.max_layer;
    if needed <= m.device {
        Verdict::LayerStreaming { needed }
    } else {
        Verdict::Impossible { needed }
    }
}
// ANCHOR_END: verdict

impl Verdict {
    /// A one-line reading, in the seed's vocabulary.
    pub fn describe(&self) -> String {
        match *self {
            Verdict::Fits { headroom } => format!("fits ({} to spare)", human(headroom)),
            Verdict::PartialOffload { on_device, layers } => {
                format!("partial offload ({on_device}/{layers} layers on device)")
            }
            Verdict::LayerStreaming { needed } => {
                format!("layer streaming only ({} resident)", human(needed))
            }
            Verdict::Impossible { needed } => {
                format!("impossible (needs {} even streamed)", human(needed))
            }
        }
    }
}

/// The longest context whose full estimate still fits on `device` bytes,
/// up to the model's trained maximum; `None` if not even one token fits.
pub fn max_context(
    arch: &Architecture,
    precision: Precision,
    w: &Workload,
    device: u64,
) -> Result<Option<u64>> {
    let total = |ctx: u64| -> Result<u64> {
        let w = Workload { context: ctx, ..*w };
        Ok(estimate(arch, precision, &w)?.total)
    };
    if total(1)? > device {
        return Ok(None);
    }
    // The total grows with the context: bisect.
    let (mut lo, mut hi) = (1, arch.max_context);
    if total(hi)? <= device {
        return Ok(Some(hi));
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if total(mid)? <= device {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Some(lo))
}

/// Bytes as a human reads them, in binary units (`3.75 GiB`).
pub fn human(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

/// Parses a budget such as `4GiB`, `3.5 GB`, `512MiB` or a plain byte count.
pub fn parse_bytes(s: &str) -> Result<u64> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| Error::invalid("byte size", format!("`{s}`: {e}")))
}

/// A GGUF file measured against the estimator.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub file_size: u64,
    /// Sum of the tensors' stored bytes.
    pub tensor_bytes: u64,
    /// The estimator's bytes for the architecture read from the file, each
    /// tensor at the precision the file stores it in.
    pub estimated_bytes: u64,
    /// (type, tensors, bytes) per GGUF tensor type.
    pub by_type: Vec<(String, usize, u64)>,
}

/// Compares a GGUF file's real tensor bytes with the estimator's.
pub fn measure_gguf(path: &std::path::Path) -> Result<Measured> {
    let file = crate::model::gguf::GgufFile::open(path)?;
    let arch = file.architecture()?;
    let stored = file.tensors();
    let mut by_type: Vec<(String, usize, u64)> = vec![];
    for t in &stored {
        match by_type.iter_mut().find(|(d, _, _)| *d == t.dtype) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += t.bytes;
            }
            None => by_type.push((t.dtype.clone(), 1, t.bytes)),
        }
    }
    let mut estimated = 0;
    for t in arch.tensors() {
        let s = stored
            .iter()
            .find(|s| s.name == t.name)
            .ok_or_else(|| Error::Metadata {
                path: path.to_path_buf(),
                field: t.name.clone(),
                reason: "the architecture has this tensor but the file does not".into(),
            })?;
        estimated += tensor_bytes(&t, gguf_precision(&s.dtype)?);
    }
    Ok(Measured {
        file_size: file.file_size,
        tensor_bytes: stored.iter().map(|t| t.bytes).sum(),
        estimated_bytes: estimated,
        by_type,
    })
}

/// The estimator's precision for a GGUF type, where it has one.
pub fn gguf_precision(dtype: &str) -> Result<Precision> {
    match dtype {
        "F32" => Ok(Precision::F32),
        "F16" => Ok(Precision::F16),
        "BF16" => Ok(Precision::BF16),
        "Q8_0" | "Q4_0" | "Q4_1" => Precision::parse(dtype),
        other => Err(Error::invalid(
            "GGUF type",
            format!("{other} has no simple affine layout in the estimator"),
        )),
    }
}
