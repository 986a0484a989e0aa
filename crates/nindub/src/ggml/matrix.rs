//! A weight matrix held as its GGUF blocks, an activation quantized once,
//! and the two products the decoders need: matrix · vector (a token) and
//! matrix · matrix (a prompt).

use candle_core::quantized::{GgmlDType, QTensor};
use rayon::prelude::*;

use super::blocks::{self, Format, QK};
use super::kernels::kernel;
use crate::error::{Error, Result, ctx};

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
        let format = Format::from_ggml(dtype).ok_or_else(|| Error::Unsupported {
            tensor: name.to_string(),
            dtype: format!("{dtype:?}"),
            reader: "the fused decode path (Q4_0, Q4_1, Q8_0)",
        })?;
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

    pub(crate) fn row_bytes(&self) -> usize {
        self.cols / QK * self.format.block_bytes()
    }

    /// Row `r` as floats (the embedding lookup: one row of the quantized
    /// table, as llama.cpp reads it, never the whole table in f32).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        blocks::dequantize_row(self.format, &self.data[r * rb..(r + 1) * rb], out);
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
    pub(crate) d: Vec<f32>,
    pub(crate) s: Vec<f32>,
    pub(crate) q: Vec<i8>,
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
