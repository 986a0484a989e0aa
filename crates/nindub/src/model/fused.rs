//! The fused decode path: one token's forward pass on the CPU as a few
//! loops over the GGUF's own blocks and buffers allocated once.
//!
//! Generating one token of a small model costs little arithmetic; what it
//! costs is reading every weight once (the memory-bandwidth floor) and,
//! in a general tensor library, the overhead of a few hundred small
//! operations (allocations, dispatch, thread wake-ups). Here a token is:
//! the embedding row, then per layer RMSNorm → one 8-bit quantization of
//! the activation → Q, K, V (matrix-vector products straight from the
//! Q4_0/Q4_1/Q8_0 blocks, rows split across threads) → RoPE → attention
//! over the KV cache → O → residual → RMSNorm → gate, up → SwiGLU → down →
//! residual; then the final norm and the output head. The candle path
//! ([`crate::model::llama`]) stays the reference, and serves prompts, training
//! and GPUs.

use candle_core::Device;
use rayon::prelude::*;

use crate::error::{Error, Result, ctx};
use crate::ggml::{Activation, Format, QMatrix};
use crate::model::arch::{Architecture, Family};
use crate::model::decoder::Decoder;
use crate::model::gguf::GgufFile;
use crate::profile::{Profile, lap};
use crate::stream::placement::{self, PREFILL_CHUNK, Placement, demand, tensor_ranges};
use crate::stream::source::{ModelSource, Range};
use crate::stream::streamer::{
    MATRICES, StreamOptions, StreamStats, StreamedLayer, Streamer, Weights,
};

struct Layer {
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    /// `None`: streamed from the file for every token.
    weights: Option<Weights>,
    /// Where each matrix's blocks lie in the model's files.
    ranges: [Range; 7],
    /// Keys and values of every cached position, `[pos][kv_heads·head_dim]`.
    k_cache: Vec<f32>,
    v_cache: Vec<f32>,
}

/// Buffers for one token, allocated once.
struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    o: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    scores: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    act_d: Activation,
    act_f: Activation,
    logits: Vec<f32>,
}

/// A Llama GGUF, held for the fused decode path.
pub struct FusedLlama {
    pub arch: Architecture,
    embedding: QMatrix,
    /// `None` when the output head is the embedding (tied).
    output: Option<QMatrix>,
    norm: Vec<f32>,
    layers: Vec<Layer>,
    eps: f32,
    /// RoPE's frequencies `base^(-2i/d)`: position `p` turns pair `i` by
    /// `p · inv_freq[i]`.
    inv_freq: Vec<f32>,
    pos: usize,
    /// Positions the KV cache may hold: what the budget reserved, or the
    /// model's context without one.
    capacity: usize,
    s: Scratch,
    /// The staging buffers of the streamed layers and their reader.
    streamer: Option<Streamer>,
    /// Forward passes run (prompts and tokens).
    passes: usize,
    /// Where the weights are held.
    pub placement: Placement,
    /// Set to `Some` to time every operation of [`FusedLlama::step`].
    pub profile: Option<Profile>,
    /// Called after every layer of every pass (progress, timelines).
    pub observer: Option<Observer>,
}

/// Sees every layer of every pass.
pub type Observer = Box<dyn FnMut(&LayerEvent) + Send>;

/// What the engine reports after each layer.
#[derive(Debug, Clone, Copy)]
pub struct LayerEvent {
    /// The forward pass (0 = the first prompt or token).
    pub pass: usize,
    pub layer: usize,
    pub layers: usize,
    /// Read from storage for this pass (rather than resident).
    pub streamed: bool,
    /// Streaming so far.
    pub stats: StreamStats,
}

impl FusedLlama {
    /// Reads a Llama-architecture GGUF whose matrices are Q4_0, Q4_1 or
    /// Q8_0 (the norms are read as f32), every layer resident.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        Self::with_budget(file, None, 0)
    }

    /// The same, within `budget` bytes (KV cache for `context` positions
    /// and activations included) when one is given: the layers that do
    /// not fit are streamed from the file for every token ([`placement`]),
    /// with prefetch.
    pub fn with_budget(file: &GgufFile, budget: Option<u64>, context: usize) -> Result<Self> {
        let source = ModelSource::from_files(file.path.clone(), vec![GgufFile::open(&file.path)?])?;
        let opts = StreamOptions {
            budget,
            context,
            ..Default::default()
        };
        Self::open(&source, &opts)
    }

    // ANCHOR: open
    /// Opens a model (one GGUF or a shard directory) within the budget of
    /// `opts`: places the layers, loads the resident ones, allocates the
    /// staging buffers of the streamed ones and starts their reader.
    pub fn open(source: &ModelSource, opts: &StreamOptions) -> Result<Self> {
        let arch = source.architecture()?;
        let (eps, base) = crate::model::llama::norm_eps_and_rope_base(source.base());
        // A budget reserves exactly the positions asked for; without one,
        // the context is bounded too (never the file's word alone).
        let context = match opts.budget {
            Some(_) => opts.context,
            None => arch.positions(opts.context),
        };
        let demand = demand(source, context)?;
        let buffers = if opts.prefetch { 2 } else { 1 };
        let budget = match opts.budget {
            Some(b) => b,
            None => placement::machine_budget(&demand, context)?,
        };
        let placement = placement::plan(&demand, budget, buffers)?;
        // ANCHOR_END: open
        let (d, f) = (arch.hidden_size as usize, arch.intermediate_size as usize);
        let hd = arch.head_dim as usize;
        let (q_out, kv_out) = (
            arch.num_heads as usize * hd,
            arch.num_kv_heads as usize * hd,
        );
        let matrix = |name: &str, rows: usize, cols: usize| -> Result<QMatrix> {
            let (dtype, dims, blocks) = source.read(name)?;
            let m = QMatrix::from_blocks(name, dtype, &dims, blocks)?;
            if (m.rows, m.cols) != (rows, cols) {
                return Err(Error::Shape {
                    tensor: name.to_string(),
                    expected: vec![rows, cols],
                    actual: vec![m.rows, m.cols],
                });
            }
            Ok(m)
        };
        let vector = |name: &str| -> Result<Vec<f32>> {
            ctx(
                name,
                source
                    .qtensor(name)?
                    .dequantize(&Device::Cpu)
                    .and_then(|t| t.flatten_all()?.to_vec1::<f32>()),
            )
        };
        let load = |l: u64| -> Result<Weights> {
            let name = |n: &str| format!("blk.{l}.{n}.weight");
            Ok(Weights {
                wq: matrix(&name("attn_q"), q_out, d)?,
                wk: matrix(&name("attn_k"), kv_out, d)?,
                wv: matrix(&name("attn_v"), kv_out, d)?,
                wo: matrix(&name("attn_output"), d, q_out)?,
                w_gate: matrix(&name("ffn_gate"), f, d)?,
                w_up: matrix(&name("ffn_up"), f, d)?,
                w_down: matrix(&name("ffn_down"), d, f)?,
            })
        };
        let mut layers = Vec::with_capacity(arch.num_layers as usize);
        let mut order = vec![];
        for l in 0..arch.num_layers {
            let name = |n: &str| format!("blk.{l}.{n}.weight");
            let resident = placement.resident.contains(&(l as usize));
            let ranges = tensor_ranges(source, l)?;
            if !resident {
                order.push(StreamedLayer {
                    layer: l as usize,
                    ranges,
                });
            }
            layers.push(Layer {
                attn_norm: vector(&name("attn_norm"))?,
                ffn_norm: vector(&name("ffn_norm"))?,
                weights: if resident { Some(load(l)?) } else { None },
                ranges,
                // Within the demand checked above.
                k_cache: Vec::with_capacity(context * kv_out),
                v_cache: Vec::with_capacity(context * kv_out),
            });
        }
        // The first streamed layer gives the staging buffers their shapes.
        let streamer = match order.first() {
            Some(first) => {
                let buffers = (0..buffers)
                    .map(|_| load(first.layer as u64))
                    .collect::<Result<Vec<_>>>()?;
                let paths = source.files.iter().map(|f| f.path.clone()).collect();
                Some(Streamer::new(paths, order, buffers, opts.cold))
            }
            None => None,
        };
        let embedding = matrix("token_embd.weight", arch.vocab_size as usize, d)?;
        let output = if arch.tied_embeddings {
            None
        } else {
            Some(matrix("output.weight", arch.vocab_size as usize, d)?)
        };
        let inv_freq = (0..hd)
            .step_by(2)
            .map(|i| 1.0 / base.powf(i as f32 / hd as f32))
            .collect();
        let s = Scratch {
            x: vec![0.0; d],
            h: vec![0.0; d],
            q: vec![0.0; q_out],
            k: vec![0.0; kv_out],
            v: vec![0.0; kv_out],
            attn: vec![0.0; q_out],
            o: vec![0.0; d],
            gate: vec![0.0; f],
            up: vec![0.0; f],
            scores: vec![],
            cos: vec![0.0; hd / 2],
            sin: vec![0.0; hd / 2],
            act_d: Activation::new(d.max(q_out)),
            act_f: Activation::new(f),
            logits: vec![0.0; arch.vocab_size as usize],
        };
        let capacity = context;
        Ok(FusedLlama {
            norm: vector("output_norm.weight")?,
            arch,
            embedding,
            output,
            layers,
            eps,
            inv_freq,
            pos: 0,
            capacity,
            s,
            streamer,
            passes: 0,
            placement,
            profile: None,
            observer: None,
        })
    }

    /// What streaming has cost so far (zeros when every layer is resident).
    pub fn stream_stats(&self) -> StreamStats {
        self.streamer.as_ref().map(|s| s.stats).unwrap_or_default()
    }

    /// Bytes of weights read per token (resident or streamed).
    pub fn bytes_per_token(&self) -> usize {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| l.ranges.iter().map(|r| r.bytes).sum::<usize>())
            .sum();
        layers + self.output.as_ref().unwrap_or(&self.embedding).bytes()
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    /// Forgets every cached position.
    pub fn clear_cache(&mut self) {
        for l in &mut self.layers {
            l.k_cache.clear();
            l.v_cache.clear();
        }
        self.pos = 0;
    }

    /// Refuses tokens the model cannot take, or that would grow the KV
    /// cache past what the budget reserved (a growing `Vec` would double its
    /// allocation, and the budget with it).
    fn check(&self, tokens: &[u32]) -> Result<()> {
        self.arch.check_tokens(self.pos, tokens)?;
        if self.pos + tokens.len() > self.capacity {
            return Err(Error::invalid(
                "context",
                format!(
                    "{} positions after {} cached exceed the {} the budget reserved the KV cache for",
                    tokens.len(),
                    self.pos,
                    self.capacity
                ),
            ));
        }
        Ok(())
    }

    /// A prompt, in chunks of at most [`PREFILL_CHUNK`] tokens (so that its
    /// working buffers are bounded, and accounted in the budget); then the
    /// logits after the last token.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        self.check(tokens)?;
        if let [one] = tokens {
            return self.step(*one);
        }
        for chunk in tokens.chunks(PREFILL_CHUNK) {
            self.prefill(chunk)?;
        }
        Ok(&self.s.logits)
    }

    // ANCHOR: prefill
    /// Tokens of a prompt: each matrix is read once for all of them (a
    /// matrix-matrix product), then the logits after the last one.
    fn prefill(&mut self, tokens: &[u32]) -> Result<()> {
        let n = tokens.len();
        let (d, f) = (
            self.arch.hidden_size as usize,
            self.arch.intermediate_size as usize,
        );
        let (heads, kv_heads, hd) = (
            self.arch.num_heads as usize,
            self.arch.num_kv_heads as usize,
            self.arch.head_dim as usize,
        );
        let (q_out, kv_out) = (heads * hd, kv_heads * hd);
        let (pos, eps) = (self.pos, self.eps);
        let mut x = vec![0f32; n * d];
        for (t, row) in tokens.iter().zip(x.chunks_exact_mut(d)) {
            self.embedding.dequantize_row(*t as usize, row);
        }
        let (mut h, mut o) = (vec![0f32; n * d], vec![0f32; n * d]);
        let (mut q, mut attn) = (vec![0f32; n * q_out], vec![0f32; n * q_out]);
        let (mut k, mut v) = (vec![0f32; n * kv_out], vec![0f32; n * kv_out]);
        let (mut gate, mut up) = (vec![0f32; n * f], vec![0f32; n * f]);
        let mut acts: Vec<Activation> = (0..n).map(|_| Activation::new(d.max(q_out))).collect();
        let mut acts_f: Vec<Activation> = (0..n).map(|_| Activation::new(f)).collect();
        let (mut cos, mut sin) = (vec![0f32; hd / 2], vec![0f32; hd / 2]);
        let mut scores = vec![];
        for i in 0..self.layers.len() {
            let l = &mut self.layers[i];
            let mut held = None;
            let w = match &l.weights {
                Some(w) => w,
                None => &*held.insert(take(&mut self.streamer, i)?),
            };
            for ((x, h), a) in x.chunks_exact(d).zip(h.chunks_exact_mut(d)).zip(&mut acts) {
                rms_norm(x, &l.attn_norm, eps, h);
                a.quantize(h);
            }
            w.wq.matmul(&acts, &mut q);
            w.wk.matmul(&acts, &mut k);
            w.wv.matmul(&acts, &mut v);
            for (t, (q, k)) in q
                .chunks_exact_mut(q_out)
                .zip(k.chunks_exact_mut(kv_out))
                .enumerate()
            {
                angles(&self.inv_freq, pos + t, &mut cos, &mut sin);
                rope(q, hd, &cos, &sin);
                rope(k, hd, &cos, &sin);
            }
            l.k_cache.extend_from_slice(&k);
            l.v_cache.extend_from_slice(&v);
            for (t, (q, out)) in q
                .chunks_exact(q_out)
                .zip(attn.chunks_exact_mut(q_out))
                .enumerate()
            {
                // Token t sees the cache up to its own position.
                let seen = (pos + t + 1) * kv_out;
                let dims = (heads, kv_heads, hd);
                attention(
                    q,
                    &l.k_cache[..seen],
                    &l.v_cache[..seen],
                    dims,
                    &mut scores,
                    out,
                );
            }
            for (a, attn) in acts.iter_mut().zip(attn.chunks_exact(q_out)) {
                a.quantize(attn);
            }
            w.wo.matmul(&acts, &mut o);
            add(&mut x, &o);
            for ((x, h), a) in x.chunks_exact(d).zip(h.chunks_exact_mut(d)).zip(&mut acts) {
                rms_norm(x, &l.ffn_norm, eps, h);
                a.quantize(h);
            }
            w.w_gate.matmul(&acts, &mut gate);
            w.w_up.matmul(&acts, &mut up);
            for (g, u) in gate.iter_mut().zip(&up) {
                *g = silu(*g) * u;
            }
            for (a, g) in acts_f.iter_mut().zip(gate.chunks_exact(f)) {
                a.quantize(g);
            }
            w.w_down.matmul(&acts_f, &mut o);
            add(&mut x, &o);
            let at = (self.passes, i, self.layers.len());
            done(&mut self.streamer, &mut self.observer, held, at);
        }
        self.pos += n;
        self.passes += 1;
        let s = &mut self.s;
        rms_norm(&x[(n - 1) * d..], &self.norm, eps, &mut s.h);
        s.act_d.quantize(&s.h);
        self.output
            .as_ref()
            .unwrap_or(&self.embedding)
            .matvec(&s.act_d, &mut s.logits);
        Ok(())
    }
    // ANCHOR_END: prefill

    // ANCHOR: step
    /// One token through the model; the next position's logits.
    pub fn step(&mut self, token: u32) -> Result<&[f32]> {
        self.check(&[token])?;
        let (heads, kv_heads, hd) = (
            self.arch.num_heads as usize,
            self.arch.num_kv_heads as usize,
            self.arch.head_dim as usize,
        );
        let (pos, eps) = (self.pos, self.eps);
        let s = &mut self.s;
        let prof = &mut self.profile;
        let mut t = std::time::Instant::now();
        self.embedding.dequantize_row(token as usize, &mut s.x);
        angles(&self.inv_freq, pos, &mut s.cos, &mut s.sin);
        lap(prof, &mut t, "embedding row");
        let n_layers = self.layers.len();
        for (i, l) in self.layers.iter_mut().enumerate() {
            let mut held = None;
            let w = match &l.weights {
                Some(w) => w,
                None => &*held.insert(take(&mut self.streamer, i)?),
            };
            lap(prof, &mut t, "streaming layers in");
            // Attention.
            rms_norm(&s.x, &l.attn_norm, eps, &mut s.h);
            s.act_d.quantize(&s.h);
            lap(prof, &mut t, "RMSNorm + quantize");
            // The three products in one parallel region (no thread waits
            // for the smaller K and V alone).
            let a = &s.act_d;
            rayon::join(
                || w.wq.matvec(a, &mut s.q),
                || rayon::join(|| w.wk.matvec(a, &mut s.k), || w.wv.matvec(a, &mut s.v)),
            );
            lap(prof, &mut t, "Q, K, V");
            rope(&mut s.q, hd, &s.cos, &s.sin);
            rope(&mut s.k, hd, &s.cos, &s.sin);
            l.k_cache.extend_from_slice(&s.k);
            l.v_cache.extend_from_slice(&s.v);
            attention(
                &s.q,
                &l.k_cache,
                &l.v_cache,
                (heads, kv_heads, hd),
                &mut s.scores,
                &mut s.attn,
            );
            s.act_d.quantize(&s.attn);
            lap(prof, &mut t, "RoPE + attention");
            w.wo.matvec(&s.act_d, &mut s.o);
            add(&mut s.x, &s.o);
            lap(prof, &mut t, "O");
            // MLP (SwiGLU).
            rms_norm(&s.x, &l.ffn_norm, eps, &mut s.h);
            s.act_d.quantize(&s.h);
            lap(prof, &mut t, "RMSNorm + quantize");
            let a = &s.act_d;
            rayon::join(
                || w.w_gate.matvec(a, &mut s.gate),
                || w.w_up.matvec(a, &mut s.up),
            );
            lap(prof, &mut t, "gate, up");
            for (g, u) in s.gate.iter_mut().zip(&s.up) {
                *g = silu(*g) * u;
            }
            s.act_f.quantize(&s.gate);
            lap(prof, &mut t, "SwiGLU + quantize");
            w.w_down.matvec(&s.act_f, &mut s.o);
            add(&mut s.x, &s.o);
            lap(prof, &mut t, "down");
            let at = (self.passes, i, n_layers);
            done(&mut self.streamer, &mut self.observer, held, at);
        }
        rms_norm(&s.x, &self.norm, eps, &mut s.h);
        s.act_d.quantize(&s.h);
        self.output
            .as_ref()
            .unwrap_or(&self.embedding)
            .matvec(&s.act_d, &mut s.logits);
        lap(prof, &mut t, "output head");
        if let Some(p) = prof {
            p.tokens += 1;
        }
        self.pos += 1;
        self.passes += 1;
        Ok(&s.logits)
    }
    // ANCHOR_END: step
}

impl Decoder for FusedLlama {
    fn arch(&self) -> &Architecture {
        &self.arch
    }

    fn name(&self) -> &'static str {
        "fused"
    }

    fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        Ok(FusedLlama::forward(self, tokens)?.to_vec())
    }

    fn step(&mut self, token: u32) -> Result<Vec<f32>> {
        Ok(FusedLlama::step(self, token)?.to_vec())
    }

    fn reset(&mut self) {
        self.clear_cache();
    }

    fn position(&self) -> usize {
        self.pos
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn placement(&self) -> Option<&Placement> {
        Some(&self.placement)
    }

    fn profile_mut(&mut self) -> &mut Option<Profile> {
        &mut self.profile
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// Whether the fused engine reads `source`, from its headers alone: a
/// Llama-style decoder whose matrices are all Q4_0, Q4_1 or Q8_0. The
/// reason when it does not (candle reads every GGML type).
pub fn reads(source: &ModelSource) -> std::result::Result<(), String> {
    let arch = source.architecture().map_err(|e| e.to_string())?;
    if arch.family != Family::Llama {
        return Err(format!("{} is not a Llama-style decoder", arch.name));
    }
    let mut names = vec!["token_embd.weight".to_string()];
    if !arch.tied_embeddings {
        names.push("output.weight".into());
    }
    for l in 0..arch.num_layers {
        names.extend(MATRICES.iter().map(|m| format!("blk.{l}.{m}.weight")));
    }
    for name in names {
        let dtype = source.dtype(&name).map_err(|e| e.to_string())?;
        if Format::from_ggml(dtype).is_none() {
            return Err(format!(
                "`{name}` is {dtype:?}; the fused engine reads Q4_0, Q4_1 and Q8_0"
            ));
        }
    }
    Ok(())
}

/// Layer `layer`'s weights from the streamer.
fn take(streamer: &mut Option<Streamer>, layer: usize) -> Result<Weights> {
    match streamer {
        Some(s) => s.take(layer),
        None => Err(Error::invalid(
            "fused decode path",
            format!("layer {layer} is streamed but there is no streamer"),
        )),
    }
}

/// Gives a streamed layer's buffer back and reports the layer done.
fn done(
    streamer: &mut Option<Streamer>,
    observer: &mut Option<Observer>,
    held: Option<Weights>,
    (pass, layer, layers): (usize, usize, usize),
) {
    let streamed = held.is_some();
    if let (Some(w), Some(s)) = (held, streamer.as_mut()) {
        s.give_back(w);
    }
    if let Some(o) = observer {
        o(&LayerEvent {
            pass,
            layer,
            layers,
            streamed,
            stats: streamer.as_ref().map(|s| s.stats).unwrap_or_default(),
        });
    }
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (ms + eps).sqrt();
    for ((o, v), w) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * w;
    }
}

fn silu(g: f32) -> f32 {
    g / (1.0 + (-g).exp())
}

/// RoPE's angles at position `pos`.
fn angles(inv_freq: &[f32], pos: usize, cos: &mut [f32], sin: &mut [f32]) {
    for ((c, s), f) in cos.iter_mut().zip(sin.iter_mut()).zip(inv_freq) {
        (*s, *c) = (pos as f32 * f).sin_cos();
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Rotates each head's pairs `(x[2i], x[2i+1])` by the position's angle
/// (GGUF's Llama layout, candle's `rope_i`).
fn rope(x: &mut [f32], hd: usize, cos: &[f32], sin: &[f32]) {
    for head in x.chunks_exact_mut(hd) {
        for (i, pair) in head.chunks_exact_mut(2).enumerate() {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * cos[i] - b * sin[i];
            pair[1] = a * sin[i] + b * cos[i];
        }
    }
}

/// Softmax(q·kᵀ/√d)·v for every head over every cached position, heads in
/// parallel; heads share a K/V head in groups (grouped-query attention).
/// `scores` is a buffer of `heads × positions`, grown as the cache grows.
fn attention(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    (heads, kv_heads, hd): (usize, usize, usize),
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let kv_dim = kv_heads * hd;
    let n = k_cache.len() / kv_dim;
    let group = heads / kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    scores.resize(heads * n, 0.0);
    out.par_chunks_mut(hd)
        .zip(scores.par_chunks_mut(n))
        .enumerate()
        .for_each(|(h, (oh, scores))| {
            let kvh = h / group;
            let qh = &q[h * hd..(h + 1) * hd];
            for (t, s) in scores.iter_mut().enumerate() {
                let k = &k_cache[t * kv_dim + kvh * hd..t * kv_dim + (kvh + 1) * hd];
                *s = dot(qh, k) * scale;
            }
            let max = scores.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let mut sum = 0.0;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            oh.fill(0.0);
            for (t, s) in scores.iter().enumerate() {
                let v = &v_cache[t * kv_dim + kvh * hd..t * kv_dim + (kvh + 1) * hd];
                let w = s / sum;
                for (o, v) in oh.iter_mut().zip(v) {
                    *o += w * v;
                }
            }
        });
}

/// A dot product in eight independent lanes, which the compiler can keep
/// in vector registers (a single running sum would serialise every add).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

// ANCHOR: floor
/// The machine's read bandwidth, in bytes per second: the best of `runs`
/// parallel passes summing a buffer of `bytes` (larger than the caches, as
/// a model's weights are). A token cannot be generated faster than its
/// weights can be read: `bandwidth / bytes_per_token` is the floor.
pub fn read_bandwidth(bytes: usize, runs: usize) -> f64 {
    let words = vec![1u64; bytes / 8];
    let mut best = f64::MAX;
    for _ in 0..runs.max(1) {
        let started = std::time::Instant::now();
        let sum: u64 = words
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold(0u64, |a, &w| a.wrapping_add(w)))
            .sum();
        best = best.min(started.elapsed().as_secs_f64());
        std::hint::black_box(sum);
    }
    (words.len() * 8) as f64 / best
}
// ANCHOR_END: floor
