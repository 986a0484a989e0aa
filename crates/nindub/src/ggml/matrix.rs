//! A weight matrix held as its GGUF blocks, and the two products the
//! decoders need: matrix · vector (a token) and matrix · matrix (a prompt).

use candle_core::quantized::{GgmlDType, QTensor};
use rayon::prelude::*;

use super::activation::Activation;
use super::format::{self, Format};
use super::kernels::{Prefetch, RowDot, RowTile, TILE, kernel, kernel_with, tile_kernel};
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
            reader: "the fused decode path (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)",
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
        if cols % format.block_values() != 0 || data.len() != rows * format.row_bytes(cols) {
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

    /// Row `r`'s blocks.
    pub fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    pub(crate) fn row_bytes(&self) -> usize {
        self.format.row_bytes(self.cols)
    }

    /// Row `r` as floats (the embedding lookup: one row of the quantized
    /// table, as llama.cpp reads it, never the whole table in f32).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        format::dequantize_row(self.format, &self.data[r * rb..(r + 1) * rb], out);
    }

    // ANCHOR: matvec
    /// `out = W · x`, for an activation quantized once ([`Activation`]),
    /// rows split across the rayon pool in chunks.
    pub fn matvec(&self, x: &Activation, out: &mut [f32]) {
        self.matvec_with(x, out, Prefetch::Ahead)
    }

    /// [`Self::matvec`], asking for the weights ahead of the kernel or not
    /// ([`Prefetch`]; the engine always does).
    pub fn matvec_with(&self, x: &Activation, out: &mut [f32], prefetch: Prefetch) {
        const ROWS_PER_TASK: usize = 16;
        let rb = self.row_bytes();
        let dot = kernel_with(self.format, prefetch);
        out.par_chunks_mut(ROWS_PER_TASK)
            .zip(self.data.par_chunks(rb * ROWS_PER_TASK))
            .for_each(|(out, rows)| {
                for (o, row) in out.iter_mut().zip(rows.chunks_exact(rb)) {
                    *o = dot(row, x);
                }
            });
    }
    // ANCHOR_END: matvec

    // ANCHOR: matmul
    /// `out[t] = W · xs[t]` for several activations at once (a prompt, a
    /// batch): each row's blocks are read from memory once and unpacked
    /// once per tile of [`TILE`] activations ([`tile_kernel`]), which makes
    /// the product compute-bound, not bandwidth-bound. `out` is
    /// `[xs.len()][rows]`; each value is bit-identical to [`Self::matvec`]'s
    /// for that activation.
    pub fn matmul(&self, xs: &[Activation], out: &mut [f32]) {
        const ROWS_PER_TASK: usize = 16;
        let (n, rb) = (xs.len(), self.row_bytes());
        let tiles = Tiles::of(self.format);
        let xs: Vec<&Activation> = xs.iter().collect();
        // Row-major [rows][n] first (each task owns whole rows), then the
        // transpose into [n][rows].
        let mut by_row = vec![0f32; self.rows * n];
        by_row
            .par_chunks_mut(ROWS_PER_TASK * n)
            .zip(self.data.par_chunks(rb * ROWS_PER_TASK))
            .for_each(|(out, rows)| {
                for (o, row) in out.chunks_exact_mut(n).zip(rows.chunks_exact(rb)) {
                    tiles.row(row, &xs, o);
                }
            });
        out.par_chunks_mut(self.rows)
            .enumerate()
            .with_min_len(TILE)
            .for_each(|(t, out)| {
                for (o, vals) in out.iter_mut().zip(by_row.chunks_exact(n)) {
                    *o = vals[t];
                }
            });
    }
    // ANCHOR_END: matmul
}

/// The kernels of one product by width: tiles of [`TILE`] activations,
/// then what is left in one kernel of its own width (a batch of two
/// sequences unpacks each block once, not twice).
struct Tiles {
    four: RowTile<TILE>,
    three: RowTile<3>,
    two: RowTile<2>,
    one: RowDot,
}

impl Tiles {
    fn of(format: Format) -> Self {
        Tiles {
            four: tile_kernel(format),
            three: tile_kernel(format),
            two: tile_kernel(format),
            one: kernel(format),
        }
    }

    /// `out[t] = row · xs[t]`, every activation's sum as the kernel of
    /// width one gives it.
    fn row(&self, row: &[u8], xs: &[&Activation], out: &mut [f32]) {
        let mut tiles = xs.chunks_exact(TILE);
        for (o, x) in out.chunks_exact_mut(TILE).zip(&mut tiles) {
            o.copy_from_slice(&(self.four)(row, x.try_into().expect("a whole tile")));
        }
        let rest = tiles.remainder();
        let o = &mut out[xs.len() - rest.len()..];
        match rest {
            [a, b] => o.copy_from_slice(&(self.two)(row, &[a, b])),
            [a, b, c] => o.copy_from_slice(&(self.three)(row, &[a, b, c])),
            _ => o
                .iter_mut()
                .zip(rest)
                .for_each(|(o, x)| *o = (self.one)(row, x)),
        }
    }
}
