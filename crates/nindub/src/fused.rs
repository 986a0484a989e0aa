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
//! ([`crate::llama`]) stays the reference, and serves prompts, training
//! and GPUs.

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor};
use rayon::prelude::*;

use crate::arch::Architecture;
use crate::error::{Error, Result, ctx};
use crate::gguf::GgufFile;
use crate::placement::{self, Demand, Placement};
pub use crate::profile::Profile;
use crate::profile::lap;
use crate::source::{ModelSource, Range};
use crate::stream::{StreamOptions, StreamStats, StreamedLayer, Streamer};

/// Values per quantization block (all three formats).
pub const QK: usize = 32;

/// The block formats the fused path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `d: f16, qs: [u8; 16]`: `x = d·(q − 8)`.
    Q4_0,
    /// `d: f16, m: f16, qs: [u8; 16]`: `x = d·q + m`.
    Q4_1,
    /// `d: f16, qs: [i8; 32]`: `x = d·q`.
    Q8_0,
}

impl Format {
    /// Bytes of one block of 32 values.
    pub fn block_bytes(self) -> usize {
        match self {
            Format::Q4_0 => 18,
            Format::Q4_1 => 20,
            Format::Q8_0 => 34,
        }
    }
}

/// A weight matrix held as its GGUF blocks: `rows` outputs × `cols` inputs.
pub struct QMatrix {
    pub format: Format,
    pub rows: usize,
    pub cols: usize,
    pub(crate) data: Vec<u8>,
}

impl QMatrix {
    /// Takes a GGUF tensor's blocks as they are.
    pub fn from_qtensor(name: &str, q: &QTensor) -> Result<Self> {
        let data = ctx(&format!("reading the blocks of `{name}`"), q.data())?.into_owned();
        Self::from_blocks(name, q.dtype(), q.shape().dims(), data)
    }

    /// Takes blocks read straight from a file (no copy).
    pub fn from_blocks(
        name: &str,
        dtype: GgmlDType,
        dims: &[usize],
        data: Vec<u8>,
    ) -> Result<Self> {
        let format = match dtype {
            GgmlDType::Q4_0 => Format::Q4_0,
            GgmlDType::Q4_1 => Format::Q4_1,
            GgmlDType::Q8_0 => Format::Q8_0,
            other => {
                return Err(Error::invalid(
                    "fused decode path",
                    format!("`{name}` is {other:?}; the fused path reads Q4_0, Q4_1 and Q8_0"),
                ));
            }
        };
        let (rows, cols) = match dims {
            &[r, c] => (r, c),
            d => {
                return Err(Error::invalid(
                    "fused decode path",
                    format!("`{name}` has shape {d:?}, not a matrix"),
                ));
            }
        };
        if cols % QK != 0 || data.len() != rows * cols / QK * format.block_bytes() {
            return Err(Error::invalid(
                "fused decode path",
                format!(
                    "`{name}`: {} bytes do not hold {rows} × {cols} values in {format:?} blocks",
                    data.len()
                ),
            ));
        }
        Ok(QMatrix {
            format,
            rows,
            cols,
            data,
        })
    }

    /// Bytes read per use (the weights cross memory once per token).
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    fn row_bytes(&self) -> usize {
        self.cols / QK * self.format.block_bytes()
    }

    /// Row `r` as floats (the embedding lookup).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let bb = self.format.block_bytes();
        let row = &self.data[r * self.row_bytes()..(r + 1) * self.row_bytes()];
        for (block, out) in row.chunks_exact(bb).zip(out.chunks_exact_mut(QK)) {
            let d = f16_at(block, 0);
            match self.format {
                Format::Q8_0 => {
                    for (o, &q) in out.iter_mut().zip(&block[2..34]) {
                        *o = d * (q as i8) as f32;
                    }
                }
                Format::Q4_0 | Format::Q4_1 => {
                    let (m, qs) = if self.format == Format::Q4_1 {
                        (f16_at(block, 2), &block[4..20])
                    } else {
                        (-8.0 * d, &block[2..18])
                    };
                    for j in 0..QK / 2 {
                        out[j] = d * (qs[j] & 0x0F) as f32 + m;
                        out[j + QK / 2] = d * (qs[j] >> 4) as f32 + m;
                    }
                }
            }
        }
    }

    // ANCHOR: matvec
    /// `out = W · x`, for an activation quantized once ([`Activation`]),
    /// rows split across the rayon pool in chunks.
    pub fn matvec(&self, x: &Activation, out: &mut [f32]) {
        const ROWS_PER_TASK: usize = 16;
        let rb = self.row_bytes();
        let dot = kernel(self.format);
        out.par_chunks_mut(ROWS_PER_TASK)
            .zip(self.data.par_chunks(rb * ROWS_PER_TASK))
            .for_each(|(out, rows)| {
                for (o, row) in out.iter_mut().zip(rows.chunks_exact(rb)) {
                    *o = dot(row, x);
                }
            });
    }
    // ANCHOR_END: matvec

    /// `out[t] = W · xs[t]` for several activations at once (a prompt):
    /// each row's blocks are read from memory once and stay in cache for
    /// every token, which makes the prompt compute-bound, not
    /// bandwidth-bound. `out` is `[xs.len()][rows]`.
    pub fn matmul(&self, xs: &[Activation], out: &mut [f32]) {
        const ROWS_PER_TASK: usize = 16;
        let (n, rb) = (xs.len(), self.row_bytes());
        let dot = kernel(self.format);
        // Row-major [rows][n] first (each task owns whole rows), then the
        // transpose into [n][rows].
        let mut by_row = vec![0f32; self.rows * n];
        by_row
            .par_chunks_mut(ROWS_PER_TASK * n)
            .zip(self.data.par_chunks(rb * ROWS_PER_TASK))
            .for_each(|(out, rows)| {
                for (o, row) in out.chunks_exact_mut(n).zip(rows.chunks_exact(rb)) {
                    for (o, x) in o.iter_mut().zip(xs) {
                        *o = dot(row, x);
                    }
                }
            });
        for (r, vals) in by_row.chunks_exact(n).enumerate() {
            for (t, v) in vals.iter().enumerate() {
                out[t * self.rows + r] = *v;
            }
        }
    }
}

/// An activation vector quantized once per use, in blocks of 32: scale
/// `d`, the scaled sum `s = d·Σq` (for Q4_1's offsets), and 8-bit values
/// (llama.cpp's Q8_1).
#[derive(Debug, Clone, Default)]
pub struct Activation {
    d: Vec<f32>,
    s: Vec<f32>,
    q: Vec<i8>,
}

impl Activation {
    pub fn new(len: usize) -> Self {
        Activation {
            d: vec![0.0; len / QK],
            s: vec![0.0; len / QK],
            q: vec![0; len],
        }
    }

    /// Quantizes `x` (a multiple of 32 long) into this buffer.
    pub fn quantize(&mut self, x: &[f32]) {
        for (b, chunk) in x.chunks_exact(QK).enumerate() {
            let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for (q, v) in self.q[b * QK..(b + 1) * QK].iter_mut().zip(chunk) {
                *q = (v * inv).round() as i8;
                sum += *q as i32;
            }
            // Stored as f16, as ggml's Q8_0/Q8_1 blocks do (and so candle's
            // and llama.cpp's kernels): the same rounding, the same sums.
            self.d[b] = half::f16::from_f32(d).to_f32();
            self.s[b] = half::f16::from_f32(d * sum as f32).to_f32();
        }
    }
}

fn f16_at(block: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32()
}

type RowDot = fn(&[u8], &Activation) -> f32;

/// The row·activation kernel for a format: AVX2 when the CPU has it
/// (checked at run time), portable code otherwise.
fn kernel(format: Format) -> RowDot {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
    {
        return match format {
            Format::Q4_0 => |r, x| unsafe { avx2::q4_0(r, x) },
            Format::Q4_1 => |r, x| unsafe { avx2::q4_1(r, x) },
            Format::Q8_0 => |r, x| unsafe { avx2::q8_0(r, x) },
        };
    }
    match format {
        Format::Q4_0 => portable::q4_0,
        Format::Q4_1 => portable::q4_1,
        Format::Q8_0 => portable::q8_0,
    }
}

// ANCHOR: portable
/// The reference kernels: one block at a time, integer products summed
/// exactly, then scaled.
pub mod portable {
    use super::{Activation, Format, QK, QMatrix, f16_at};

    /// Row `r` of `m` · `x`, with the portable kernel of `m`'s format.
    pub fn row(m: &QMatrix, r: usize, x: &Activation) -> f32 {
        let rb = m.row_bytes();
        let bytes = &m.data[r * rb..(r + 1) * rb];
        match m.format {
            Format::Q4_0 => q4_0(bytes, x),
            Format::Q4_1 => q4_1(bytes, x),
            Format::Q8_0 => q8_0(bytes, x),
        }
    }

    pub fn q4_1(row: &[u8], x: &Activation) -> f32 {
        let mut acc = 0f32;
        for (b, block) in row.chunks_exact(20).enumerate() {
            let (d, m, qs) = (f16_at(block, 0), f16_at(block, 2), &block[4..20]);
            let xq = &x.q[b * QK..(b + 1) * QK];
            let mut dot = 0i32;
            for j in 0..QK / 2 {
                dot += (qs[j] & 0x0F) as i32 * xq[j] as i32;
                dot += (qs[j] >> 4) as i32 * xq[j + QK / 2] as i32;
            }
            acc += d * x.d[b] * dot as f32 + m * x.s[b];
        }
        acc
    }

    pub fn q4_0(row: &[u8], x: &Activation) -> f32 {
        let mut acc = 0f32;
        for (b, block) in row.chunks_exact(18).enumerate() {
            let (d, qs) = (f16_at(block, 0), &block[2..18]);
            let xq = &x.q[b * QK..(b + 1) * QK];
            let mut dot = 0i32;
            for j in 0..QK / 2 {
                dot += ((qs[j] & 0x0F) as i32 - 8) * xq[j] as i32;
                dot += ((qs[j] >> 4) as i32 - 8) * xq[j + QK / 2] as i32;
            }
            acc += d * x.d[b] * dot as f32;
        }
        acc
    }

    pub fn q8_0(row: &[u8], x: &Activation) -> f32 {
        let mut acc = 0f32;
        for (b, block) in row.chunks_exact(34).enumerate() {
            let d = f16_at(block, 0);
            let xq = &x.q[b * QK..(b + 1) * QK];
            let dot: i32 = block[2..34]
                .iter()
                .zip(xq)
                .map(|(&w, &v)| (w as i8) as i32 * v as i32)
                .sum();
            acc += d * x.d[b] * dot as f32;
        }
        acc
    }
}
// ANCHOR_END: portable

// ANCHOR: avx2
/// The same kernels in AVX2: a block's 32 weights against the activation's
/// 32 bytes in one `maddubs` (unsigned × signed bytes, pairs summed), then
/// one fused multiply-add of the block's scales.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Activation, QK};
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }
    }

    #[inline(always)]
    unsafe fn f16(p: *const u8) -> f32 {
        unsafe {
            let bits = std::ptr::read_unaligned(p as *const u16);
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
        }
    }

    /// 16 bytes of nibbles → 32 unsigned bytes: low nibbles first.
    #[inline(always)]
    unsafe fn nibbles(p: *const u8) -> __m256i {
        unsafe {
            let qs = _mm_loadu_si128(p as *const __m128i);
            let m = _mm_set1_epi8(0x0F);
            let lo = _mm_and_si128(qs, m);
            let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), m);
            _mm256_set_m128i(hi, lo)
        }
    }

    /// Σ w·x over 32 signed bytes, as 8 float lanes.
    #[inline(always)]
    unsafe fn dot_signed(w: __m256i, x: __m256i) -> __m256 {
        unsafe {
            // maddubs wants an unsigned left side: |w| · (x with w's sign).
            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
            _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)))
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q4_1(row: &[u8], x: &Activation) -> f32 {
        unsafe {
            let mut acc = _mm256_setzero_ps();
            let mut offsets = 0f32;
            for b in 0..row.len() / 20 {
                let p = row.as_ptr().add(b * 20);
                let (d, m) = (f16(p), f16(p.add(2)));
                let w = nibbles(p.add(4));
                let xv = _mm256_loadu_si256(x.q.as_ptr().add(b * QK) as *const __m256i);
                let p16 = _mm256_maddubs_epi16(w, xv);
                let pf = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * *x.d.get_unchecked(b)), pf, acc);
                offsets += m * *x.s.get_unchecked(b);
            }
            hsum(acc) + offsets
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q4_0(row: &[u8], x: &Activation) -> f32 {
        unsafe {
            let mut acc = _mm256_setzero_ps();
            for b in 0..row.len() / 18 {
                let p = row.as_ptr().add(b * 18);
                let w = _mm256_sub_epi8(nibbles(p.add(2)), _mm256_set1_epi8(8));
                let xv = _mm256_loadu_si256(x.q.as_ptr().add(b * QK) as *const __m256i);
                let d = f16(p) * *x.d.get_unchecked(b);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d), dot_signed(w, xv), acc);
            }
            hsum(acc)
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q8_0(row: &[u8], x: &Activation) -> f32 {
        unsafe {
            let mut acc = _mm256_setzero_ps();
            for b in 0..row.len() / 34 {
                let p = row.as_ptr().add(b * 34);
                let w = _mm256_loadu_si256(p.add(2) as *const __m256i);
                let xv = _mm256_loadu_si256(x.q.as_ptr().add(b * QK) as *const __m256i);
                let d = f16(p) * *x.d.get_unchecked(b);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d), dot_signed(w, xv), acc);
            }
            hsum(acc)
        }
    }
}
// ANCHOR_END: avx2

/// A layer's seven matrices.
pub(crate) struct Weights {
    wq: QMatrix,
    wk: QMatrix,
    wv: QMatrix,
    wo: QMatrix,
    w_gate: QMatrix,
    w_up: QMatrix,
    w_down: QMatrix,
}

/// The seven matrices' names, in [`Weights`] order.
const MATRICES: [&str; 7] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

impl Weights {
    pub(crate) fn bytes(&self) -> usize {
        [
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.w_gate,
            &self.w_up,
            &self.w_down,
        ]
        .iter()
        .map(|m| m.bytes())
        .sum()
    }

    pub(crate) fn all_mut(&mut self) -> [&mut QMatrix; 7] {
        [
            &mut self.wq,
            &mut self.wk,
            &mut self.wv,
            &mut self.wo,
            &mut self.w_gate,
            &mut self.w_up,
            &mut self.w_down,
        ]
    }
}

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
        let (eps, base) = crate::llama::norm_eps_and_rope_base(source.base());
        let demand = demand(source, opts.context)?;
        let buffers = if opts.prefetch { 2 } else { 1 };
        let placement = placement::plan(&demand, opts.budget.unwrap_or(u64::MAX), buffers)?;
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
                return Err(Error::invalid(
                    "model weights",
                    format!(
                        "`{name}` is {} × {}, the architecture wants {rows} × {cols}",
                        m.rows, m.cols
                    ),
                ));
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
                k_cache: Vec::with_capacity(opts.context * kv_out),
                v_cache: Vec::with_capacity(opts.context * kv_out),
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
        Ok(FusedLlama {
            norm: vector("output_norm.weight")?,
            arch,
            embedding,
            output,
            layers,
            eps,
            inv_freq,
            pos: 0,
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

    // ANCHOR: prefill
    /// A prompt: each matrix is read once for all its tokens (a
    /// matrix-matrix product), then the logits after the last token.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        self.arch.check_tokens(self.pos, tokens)?;
        if let [one] = tokens {
            return self.step(*one);
        }
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
        Ok(&s.logits)
    }
    // ANCHOR_END: prefill

    // ANCHOR: step
    /// One token through the model; the next position's logits.
    pub fn step(&mut self, token: u32) -> Result<&[f32]> {
        self.arch.check_tokens(self.pos, &[token])?;
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

/// Layer `l`'s seven matrices' ranges, in [`Weights`] order.
fn tensor_ranges(source: &ModelSource, l: u64) -> Result<[Range; 7]> {
    let mut r = [Range {
        file: 0,
        offset: 0,
        bytes: 0,
    }; 7];
    for (slot, m) in r.iter_mut().zip(MATRICES) {
        *slot = source.range(&format!("blk.{l}.{m}.weight"))?;
    }
    Ok(r)
}

/// What the fused path must place for `context` positions, in bytes, read
/// from the GGUF header without loading a weight.
pub fn demand(source: &ModelSource, context: usize) -> Result<Demand> {
    let arch = source.architecture()?;
    let (d, f) = (arch.hidden_size as usize, arch.intermediate_size as usize);
    let hd = arch.head_dim as usize;
    let (q_out, kv_out) = (
        arch.num_heads as usize * hd,
        arch.num_kv_heads as usize * hd,
    );
    let mut demand = Demand {
        fixed: source.range("token_embd.weight")?.bytes as u64,
        layers: vec![],
        kv_cache: (context * arch.num_layers as usize * 2 * kv_out * 4) as u64,
        activations: activation_bytes(
            d as u64,
            f as u64,
            q_out as u64,
            kv_out as u64,
            arch.vocab_size,
        ),
    };
    if !arch.tied_embeddings {
        demand.fixed += source.range("output.weight")?.bytes as u64;
    }
    for l in 0..arch.num_layers {
        let r = tensor_ranges(source, l)?;
        demand.layers.push(r.iter().map(|r| r.bytes as u64).sum());
    }
    Ok(demand)
}

/// The buffers of one step (f32), its quantized activations and the
/// logits, in bytes, for a model of hidden size `d`, MLP width `f`, `q_out`
/// query and `kv_out` key (or value) features, and `vocab` tokens.
pub fn activation_bytes(d: u64, f: u64, q_out: u64, kv_out: u64, vocab: u64) -> u64 {
    4 * (4 * d + 3 * q_out + 2 * kv_out + 2 * f) + d + f + 4 * vocab
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
