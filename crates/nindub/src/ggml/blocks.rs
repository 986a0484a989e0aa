//! The three GGML block types the Codex reads and writes, each defined
//! once: the layout as a `#[repr(C)]` struct (its size asserted at compile
//! time against GGML's), how to read it from a file's bytes, write it back,
//! and turn it into 32 floats.
//!
//! | type | bytes | layout | value of code `q` |
//! |---|---|---|---|
//! | Q4_0 | 18 | f16 `d`, 16 bytes of nibbles | `d·(q − 8)` |
//! | Q4_1 | 20 | f16 `d`, f16 `m`, 16 bytes of nibbles | `d·q + m` |
//! | Q8_0 | 34 | f16 `d`, 32 × i8 | `d·q` |
//!
//! Nibbles are not stored pairwise: byte `j` holds weight `j` in its low
//! nibble and weight `j + 16` in its high one.

use candle_core::quantized::GgmlDType;
use half::f16;

/// Values per block (all three types).
pub const QK: usize = 32;

/// `d: f16, qs: [u8; 16]`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; QK / 2],
}

/// `d: f16, m: f16, qs: [u8; 16]`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; QK / 2],
}

/// `d: f16, qs: [i8; 32]`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK],
}

// GGML's sizes (ggml-common.h): a layout that drifted would misread every file.
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

/// The block formats the Codex computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Q4_0,
    Q4_1,
    Q8_0,
}

impl Format {
    /// Bytes of one block of 32 values.
    pub const fn block_bytes(self) -> usize {
        match self {
            Format::Q4_0 => std::mem::size_of::<BlockQ4_0>(),
            Format::Q4_1 => std::mem::size_of::<BlockQ4_1>(),
            Format::Q8_0 => std::mem::size_of::<BlockQ8_0>(),
        }
    }

    /// The format of a GGML type, if it is one of these three.
    pub fn from_ggml(dtype: GgmlDType) -> Option<Format> {
        match dtype {
            GgmlDType::Q4_0 => Some(Format::Q4_0),
            GgmlDType::Q4_1 => Some(Format::Q4_1),
            GgmlDType::Q8_0 => Some(Format::Q8_0),
            _ => None,
        }
    }

    pub fn ggml(self) -> GgmlDType {
        match self {
            Format::Q4_0 => GgmlDType::Q4_0,
            Format::Q4_1 => GgmlDType::Q4_1,
            Format::Q8_0 => GgmlDType::Q8_0,
        }
    }
}

fn f16_at(bytes: &[u8], at: usize) -> f16 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// A block type: read from and written to a file's little-endian bytes,
/// and decoded to floats.
pub trait Block: Sized {
    const FORMAT: Format;
    /// Reads one block from the start of `bytes` (at least
    /// `FORMAT.block_bytes()` long).
    fn read(bytes: &[u8]) -> Self;
    /// Appends the block's bytes, as a GGUF file stores them.
    fn write(&self, out: &mut Vec<u8>);
    /// The block's 32 values.
    fn dequantize(&self, out: &mut [f32]);
}

/// Splits 16 bytes of nibbles into 32 codes (low nibbles first).
fn unpack_nibbles(qs: &[u8; QK / 2]) -> [u8; QK] {
    let mut q = [0u8; QK];
    for (j, b) in qs.iter().enumerate() {
        q[j] = b & 0x0F;
        q[j + QK / 2] = b >> 4;
    }
    q
}

/// Packs 32 codes in 0..16 into 16 bytes (weight `j` low, `j + 16` high).
fn pack_nibbles(codes: &[u8; QK]) -> [u8; QK / 2] {
    std::array::from_fn(|j| (codes[j] & 0x0F) | ((codes[j + QK / 2] & 0x0F) << 4))
}

impl BlockQ4_0 {
    pub fn codes(&self) -> [u8; QK] {
        unpack_nibbles(&self.qs)
    }
}

impl Block for BlockQ4_0 {
    const FORMAT: Format = Format::Q4_0;
    fn read(b: &[u8]) -> Self {
        BlockQ4_0 {
            d: f16_at(b, 0),
            qs: std::array::from_fn(|i| b[2 + i]),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.d.to_le_bytes());
        out.extend_from_slice(&self.qs);
    }
    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let m = -8.0 * d;
        for (o, q) in out.iter_mut().zip(self.codes()) {
            *o = d * q as f32 + m;
        }
    }
}

impl BlockQ4_1 {
    /// A block from its scale, offset and 32 codes in 0..16.
    pub fn from_codes(d: f32, m: f32, codes: &[u8; QK]) -> Self {
        BlockQ4_1 {
            d: f16::from_f32(d),
            m: f16::from_f32(m),
            qs: pack_nibbles(codes),
        }
    }

    pub fn codes(&self) -> [u8; QK] {
        unpack_nibbles(&self.qs)
    }
}

impl Block for BlockQ4_1 {
    const FORMAT: Format = Format::Q4_1;
    fn read(b: &[u8]) -> Self {
        BlockQ4_1 {
            d: f16_at(b, 0),
            m: f16_at(b, 2),
            qs: std::array::from_fn(|i| b[4 + i]),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.d.to_le_bytes());
        out.extend_from_slice(&self.m.to_le_bytes());
        out.extend_from_slice(&self.qs);
    }
    fn dequantize(&self, out: &mut [f32]) {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        for (o, q) in out.iter_mut().zip(self.codes()) {
            *o = d * q as f32 + m;
        }
    }
}

impl BlockQ8_0 {
    /// A block from its scale and 32 codes.
    pub fn from_codes(d: f32, codes: &[i8; QK]) -> Self {
        BlockQ8_0 {
            d: f16::from_f32(d),
            qs: *codes,
        }
    }
}

impl Block for BlockQ8_0 {
    const FORMAT: Format = Format::Q8_0;
    fn read(b: &[u8]) -> Self {
        BlockQ8_0 {
            d: f16_at(b, 0),
            qs: std::array::from_fn(|i| b[2 + i] as i8),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.d.to_le_bytes());
        out.extend(self.qs.iter().map(|&q| q as u8));
    }
    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = d * q as f32;
        }
    }
}

/// Decodes a row of `format` blocks into floats (`out` is 32 per block).
pub fn dequantize_row(format: Format, row: &[u8], out: &mut [f32]) {
    fn each<B: Block>(row: &[u8], out: &mut [f32]) {
        let bb = B::FORMAT.block_bytes();
        for (block, out) in row.chunks_exact(bb).zip(out.chunks_exact_mut(QK)) {
            B::read(block).dequantize(out);
        }
    }
    match format {
        Format::Q4_0 => each::<BlockQ4_0>(row, out),
        Format::Q4_1 => each::<BlockQ4_1>(row, out),
        Format::Q8_0 => each::<BlockQ8_0>(row, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_through_bytes() {
        let codes: [u8; QK] = std::array::from_fn(|i| (i * 7 % 16) as u8);
        let b = BlockQ4_1::from_codes(0.5, -1.25, &codes);
        let mut bytes = vec![];
        b.write(&mut bytes);
        assert_eq!(bytes.len(), Format::Q4_1.block_bytes());
        assert_eq!(BlockQ4_1::read(&bytes), b);
        assert_eq!(b.codes(), codes);
        let mut out = [0f32; QK];
        b.dequantize(&mut out);
        assert_eq!(out[3], 0.5 * codes[3] as f32 - 1.25);

        let q8: [i8; QK] = std::array::from_fn(|i| i as i8 - 16);
        let b = BlockQ8_0::from_codes(0.25, &q8);
        let mut bytes = vec![];
        b.write(&mut bytes);
        assert_eq!(bytes.len(), Format::Q8_0.block_bytes());
        assert_eq!(BlockQ8_0::read(&bytes), b);
    }

    #[test]
    fn byte_j_holds_weights_j_and_j_plus_16() {
        let mut codes = [0u8; QK];
        codes[0] = 3;
        codes[16] = 9;
        let qs = pack_nibbles(&codes);
        assert_eq!(qs[0], 3 | (9 << 4));
    }
}
