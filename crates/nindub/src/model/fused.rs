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

mod ops;
mod roofline;

use crate::error::{Error, Result, ctx};
use crate::ggml::{Activation, Format, QMatrix};
use crate::model::arch::{Architecture, Family};
use crate::model::decoder::Decoder;
use crate::model::gguf::GgufFile;
use crate::model::kv_cache::KvCache;
use crate::profile::{Profile, lap};
use crate::stream::placement::{self, PREFILL_CHUNK, Placement, demand, tensor_ranges};
use crate::stream::source::{ModelSource, Range};
use crate::stream::streamer::{
    MATRICES, StreamOptions, StreamStats, StreamedLayer, Streamer, Weights,
};
use ops::{ROWS_PER_TASK, add, angles, attention, head, norm_rows, rms_norm, rope, silu};
pub use roofline::{compute_bound_batch, kernel_read_rate, read_bandwidth};

struct Layer {
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    /// `None`: streamed from the file for every token.
    weights: Option<Weights>,
    /// Where each matrix's blocks lie in the model's files.
    ranges: [Range; 7],
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
    /// `[items][vocab]` after a batched pass.
    batch_logits: Vec<f32>,
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
    /// The engine's own sequence (the [`Decoder`] interface): positions
    /// reserved by the budget, or the model's context without one. A batch
    /// ([`FusedLlama::forward_batch`]) brings its sequences' own caches.
    cache: KvCache,
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

/// One sequence's share of a batched pass ([`FusedLlama::forward_batch`]):
/// its own KV cache and the tokens it adds after the cached positions.
pub struct BatchItem<'a> {
    pub cache: &'a mut KvCache,
    pub tokens: &'a [u32],
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
            batch_logits: vec![],
        };
        // Within the demand checked above.
        let cache = KvCache::new(&arch, context);
        Ok(FusedLlama {
            norm: vector("output_norm.weight")?,
            arch,
            embedding,
            output,
            layers,
            eps,
            inv_freq,
            cache,
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
        self.cache.position()
    }

    /// Forgets every cached position.
    pub fn clear_cache(&mut self) {
        self.cache.clear();
    }

    /// A KV cache for one sequence of a batch, reserved for `positions`.
    pub fn new_cache(&self, positions: usize) -> KvCache {
        KvCache::new(&self.arch, positions)
    }

    /// Refuses tokens the model cannot take, or that would grow `cache`
    /// past what it was reserved for.
    fn check(&self, cache: &KvCache, tokens: &[u32]) -> Result<()> {
        self.arch.check_tokens(cache.position(), tokens)?;
        cache.check_room(tokens.len())
    }

    /// A prompt, in chunks of at most [`PREFILL_CHUNK`] tokens (so that its
    /// working buffers are bounded, and accounted in the budget); then the
    /// logits after the last token.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        let mut cache = std::mem::take(&mut self.cache);
        let done = self.forward_in(&mut cache, tokens);
        self.cache = cache;
        done?;
        Ok(&self.s.logits)
    }

    /// One token through the model on the engine's own sequence; the next
    /// position's logits.
    pub fn step(&mut self, token: u32) -> Result<&[f32]> {
        let mut cache = std::mem::take(&mut self.cache);
        let done = on_pool(|| self.step_in(&mut cache, token));
        self.cache = cache;
        done?;
        Ok(&self.s.logits)
    }

    /// `tokens` after the positions of `cache`; the logits after the last
    /// one are left in the scratch buffer.
    fn forward_in(&mut self, cache: &mut KvCache, tokens: &[u32]) -> Result<()> {
        self.check(cache, tokens)?;
        if let [one] = tokens {
            return on_pool(|| self.step_in(cache, *one));
        }
        let mut logits = std::mem::take(&mut self.s.logits);
        let mut done = Ok(());
        for chunk in tokens.chunks(PREFILL_CHUNK) {
            done = on_pool(|| {
                self.pass(
                    &mut [BatchItem {
                        cache,
                        tokens: chunk,
                    }],
                    &mut logits,
                )
            });
            if done.is_err() {
                break;
            }
        }
        self.s.logits = logits;
        done
    }

    // ANCHOR: forward_batch
    /// Several sequences in one pass over the weights (continuous
    /// batching): each item's tokens (one while it decodes, a chunk of its
    /// prompt while it prefills) run after its own cached positions, and
    /// every matrix is read once for all the rows. Returns the logits after
    /// each item's last token, `[items][vocab]`. At most [`PREFILL_CHUNK`]
    /// rows in all: the activations the budget reserved.
    pub fn forward_batch(&mut self, items: &mut [BatchItem<'_>]) -> Result<&[f32]> {
        let rows: usize = items.iter().map(|i| i.tokens.len()).sum();
        if items.is_empty() || rows > PREFILL_CHUNK {
            return Err(Error::invalid(
                "batch",
                format!(
                    "{} sequences with {rows} tokens in all; a pass takes 1 to {PREFILL_CHUNK} tokens",
                    items.len()
                ),
            ));
        }
        for it in items.iter() {
            self.check(it.cache, it.tokens)?;
        }
        // One sequence decoding: the matrix-vector path (the same sums).
        if let [one] = items
            && let [t] = one.tokens
        {
            on_pool(|| self.step_in(one.cache, *t))?;
            return Ok(&self.s.logits);
        }
        let mut logits = std::mem::take(&mut self.s.batch_logits);
        let done = on_pool(|| self.pass(items, &mut logits));
        self.s.batch_logits = logits;
        done?;
        Ok(&self.s.batch_logits)
    }
    // ANCHOR_END: forward_batch

    // ANCHOR: prefill
    /// The rows of every item through the model: each matrix is read once
    /// for all of them (a matrix-matrix product); row `r` of an item sits at
    /// its cache's position + `r` and attends over that cache alone. Then
    /// the logits after each item's last row, `[items][vocab]`, in `logits`.
    fn pass(&mut self, items: &mut [BatchItem<'_>], logits: &mut Vec<f32>) -> Result<()> {
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
        let eps = self.eps;
        // Row → (item, position).
        let rows: Vec<(usize, usize)> = items
            .iter()
            .enumerate()
            .flat_map(|(i, it)| (0..it.tokens.len()).map(move |t| (i, it.cache.position() + t)))
            .collect();
        let n = rows.len();
        let mut x = vec![0f32; n * d];
        let tokens = items.iter().flat_map(|it| it.tokens.iter());
        for (t, row) in tokens.zip(x.chunks_exact_mut(d)) {
            self.embedding.dequantize_row(*t as usize, row);
        }
        let (mut h, mut o) = (vec![0f32; n * d], vec![0f32; n * d]);
        let (mut q, mut attn) = (vec![0f32; n * q_out], vec![0f32; n * q_out]);
        let (mut k, mut v) = (vec![0f32; n * kv_out], vec![0f32; n * kv_out]);
        let (mut gate, mut up) = (vec![0f32; n * f], vec![0f32; n * f]);
        let mut acts: Vec<Activation> = (0..n).map(|_| Activation::new(d.max(q_out))).collect();
        let mut acts_f: Vec<Activation> = (0..n).map(|_| Activation::new(f)).collect();
        for i in 0..self.layers.len() {
            let l = &self.layers[i];
            let mut held = None;
            let w = match &l.weights {
                Some(w) => w,
                None => &*held.insert(take(&mut self.streamer, i)?),
            };
            norm_rows(&x, &l.attn_norm, eps, &mut h, &mut acts);
            w.wq.matmul(&acts, &mut q);
            w.wk.matmul(&acts, &mut k);
            w.wv.matmul(&acts, &mut v);
            let inv_freq = &self.inv_freq;
            q.par_chunks_exact_mut(q_out)
                .zip(k.par_chunks_exact_mut(kv_out))
                .zip(&rows)
                .with_min_len(ROWS_PER_TASK)
                .for_each_init(
                    || (vec![0f32; hd / 2], vec![0f32; hd / 2]),
                    |(cos, sin), ((q, k), &(_, p))| {
                        angles(inv_freq, p, cos, sin);
                        rope(q, hd, cos, sin);
                        rope(k, hd, cos, sin);
                    },
                );
            // Each item's new keys and values go to its own cache.
            let mut first = 0;
            for it in items.iter_mut() {
                let span = first * kv_out..(first + it.tokens.len()) * kv_out;
                it.cache.k[i].extend_from_slice(&k[span.clone()]);
                it.cache.v[i].extend_from_slice(&v[span]);
                first += it.tokens.len();
            }
            // Every (row, head) pair in parallel: a row sees its own
            // sequence up to its own position.
            let seqs = &*items;
            q.par_chunks_exact(hd)
                .zip(attn.par_chunks_exact_mut(hd))
                .enumerate()
                .for_each_init(Vec::new, |scores, (at, (qh, oh))| {
                    let (item, p) = rows[at / heads];
                    let seen = (p + 1) * kv_out;
                    let c = &seqs[item].cache;
                    scores.resize(p + 1, 0.0);
                    let kvh = (at % heads) / (heads / kv_heads);
                    let (k, v) = (&c.k[i][..seen], &c.v[i][..seen]);
                    head(qh, k, v, kvh, (kv_heads, hd), scores, oh);
                });
            acts.par_iter_mut()
                .zip(attn.par_chunks_exact(q_out))
                .with_min_len(ROWS_PER_TASK)
                .for_each(|(a, attn)| a.quantize(attn));
            w.wo.matmul(&acts, &mut o);
            add(&mut x, &o);
            norm_rows(&x, &l.ffn_norm, eps, &mut h, &mut acts);
            w.w_gate.matmul(&acts, &mut gate);
            w.w_up.matmul(&acts, &mut up);
            acts_f
                .par_iter_mut()
                .zip(gate.par_chunks_exact_mut(f).zip(up.par_chunks_exact(f)))
                .with_min_len(ROWS_PER_TASK)
                .for_each(|(a, (g, u))| {
                    for (g, u) in g.iter_mut().zip(u) {
                        *g = silu(*g) * u;
                    }
                    a.quantize(g);
                });
            w.w_down.matmul(&acts_f, &mut o);
            add(&mut x, &o);
            let at = (self.passes, i, self.layers.len());
            done(&mut self.streamer, &mut self.observer, held, at);
        }
        for it in items.iter_mut() {
            it.cache.advance(it.tokens.len());
        }
        self.passes += 1;
        // The head, for each item's last row only.
        let mut last = 0;
        for (it, a) in items.iter().zip(&mut acts) {
            last += it.tokens.len();
            rms_norm(&x[(last - 1) * d..last * d], &self.norm, eps, &mut h[..d]);
            a.quantize(&h[..d]);
        }
        logits.resize(items.len() * self.arch.vocab_size as usize, 0.0);
        self.output
            .as_ref()
            .unwrap_or(&self.embedding)
            .matmul(&acts[..items.len()], logits);
        Ok(())
    }
    // ANCHOR_END: prefill

    // ANCHOR: step
    /// One token through the model after the positions of `cache`; the
    /// next position's logits in the scratch buffer.
    fn step_in(&mut self, cache: &mut KvCache, token: u32) -> Result<()> {
        self.check(cache, &[token])?;
        let (heads, kv_heads, hd) = (
            self.arch.num_heads as usize,
            self.arch.num_kv_heads as usize,
            self.arch.head_dim as usize,
        );
        let (pos, eps) = (cache.position(), self.eps);
        let s = &mut self.s;
        let prof = &mut self.profile;
        let mut t = std::time::Instant::now();
        self.embedding.dequantize_row(token as usize, &mut s.x);
        angles(&self.inv_freq, pos, &mut s.cos, &mut s.sin);
        lap(prof, &mut t, "embedding row");
        let n_layers = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
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
            cache.k[i].extend_from_slice(&s.k);
            cache.v[i].extend_from_slice(&s.v);
            attention(
                &s.q,
                &cache.k[i],
                &cache.v[i],
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
        cache.advance(1);
        self.passes += 1;
        Ok(())
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
        self.cache.position()
    }

    fn capacity(&self) -> usize {
        self.cache.capacity()
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

// ANCHOR: on_pool
/// Runs a token or a pass on one of rayon's own threads. Its parallel
/// loops (a matrix's rows, attention's heads, about five a layer) are then
/// that thread's forks, which the other thread steals while it is still
/// looking for work; called from outside the pool, each loop was a job
/// sent to the pool while the caller slept until it finished, a sleep and a
/// wake-up of two threads, 150 times a token.
fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}
// ANCHOR_END: on_pool

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
                "`{name}` is {dtype:?}; the fused engine reads {}",
                Format::names()
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
