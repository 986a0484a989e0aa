//! GGML's blocks of 32 weights, each type defined once: the layout as a
//! `#[repr(C)]` struct (its size asserted at compile time against GGML's),
//! how to read it from a file's bytes, write it back, and turn it into 32
//! floats. The super-blocks of 256 (the K-quants) are in
//! [`super::superblocks`].
//!
//! | type | bytes | layout | value of code `q` |
//! |---|---|---|---|
//! | Q4_0 | 18 | f16 `d`, 16 bytes of nibbles | `d·(q − 8)` |
//! | Q4_1 | 20 | f16 `d`, f16 `m`, 16 bytes of nibbles | `d·q + m` |
//! | Q5_0 | 22 | f16 `d`, 4 bytes of fifth bits, 16 bytes of nibbles | `d·(q − 16)` |
//! | Q5_1 | 24 | f16 `d`, f16 `m`, 4 bytes of fifth bits, 16 bytes of nibbles | `d·q + m` |
//! | Q8_0 | 34 | f16 `d`, 32 × i8 | `d·q` |
//!
//! Nibbles are not stored pairwise: byte `j` holds weight `j` in its low
//! nibble and weight `j + 16` in its high one. Q5's fifth bits are one
//! little-endian `u32`, bit `j` for weight `j`.
//!
//! Q5_0 and Q5_1 matter beyond their own files: llama.cpp's K-quant
//! recipes fall back to them for rows that are not a whole number of
//! super-blocks (SmolLM2's 576 columns are 2¼ super-blocks). The fused
//! engine computes with all of them ([`super::format::Format`]).

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

/// `d: f16, qh: [u8; 4], qs: [u8; 16]`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// `d: f16, m: f16, qh: [u8; 4], qs: [u8; 16]`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

// GGML's sizes (ggml-common.h): a layout that drifted would misread every file.
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

pub(super) fn f16_at(bytes: &[u8], at: usize) -> f16 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// A block type: read from and written to a file's little-endian bytes,
/// and decoded to floats.
pub trait Block: Sized {
    /// The GGML type it is.
    const DTYPE: GgmlDType;
    /// Weights per block: 32, or 256 for a super-block.
    const VALUES: usize = QK;
    /// Bytes per block, as a file stores it (the struct's size).
    const BYTES: usize = std::mem::size_of::<Self>();
    /// Reads one block from the start of `bytes` (at least `BYTES` long).
    fn read(bytes: &[u8]) -> Self;
    /// Appends the block's bytes, as a GGUF file stores them.
    fn write(&self, out: &mut Vec<u8>);
    /// The block's `VALUES` values.
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
    /// A block from its scale and 32 codes in 0..16 (weight `(q − 8)·d`).
    pub fn from_codes(d: f32, codes: &[u8; QK]) -> Self {
        BlockQ4_0 {
            d: f16::from_f32(d),
            qs: pack_nibbles(codes),
        }
    }

    pub fn codes(&self) -> [u8; QK] {
        unpack_nibbles(&self.qs)
    }
}

impl Block for BlockQ4_0 {
    const DTYPE: GgmlDType = GgmlDType::Q4_0;
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
        for (o, q) in out.iter_mut().zip(self.codes()) {
            *o = (i32::from(q) - 8) as f32 * d;
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
    const DTYPE: GgmlDType = GgmlDType::Q4_1;
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
    const DTYPE: GgmlDType = GgmlDType::Q8_0;
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

/// 32 codes in 0..32 (Q5_0, Q5_1): the nibbles, and bit `j` of the
/// little-endian `u32` `qh` as weight `j`'s fifth bit.
fn unpack_five_bits(qs: &[u8; QK / 2], qh: &[u8; 4]) -> [u8; QK] {
    let high = u32::from_le_bytes(*qh);
    let mut q = unpack_nibbles(qs);
    for (j, q) in q.iter_mut().enumerate() {
        *q |= ((high >> j) & 1) as u8 * 16;
    }
    q
}

/// Packs the fifth bits of 32 codes in 0..32.
fn pack_fifth_bits(codes: &[u8; QK]) -> [u8; 4] {
    let bits = codes
        .iter()
        .enumerate()
        .fold(0u32, |acc, (j, &q)| acc | (u32::from(q >> 4 & 1) << j));
    bits.to_le_bytes()
}

impl BlockQ5_0 {
    /// A block from its scale and 32 codes in 0..32 (value `d·(q − 16)`).
    pub fn from_codes(d: f32, codes: &[u8; QK]) -> Self {
        BlockQ5_0 {
            d: f16::from_f32(d),
            qh: pack_fifth_bits(codes),
            qs: pack_nibbles(codes),
        }
    }

    pub fn codes(&self) -> [u8; QK] {
        unpack_five_bits(&self.qs, &self.qh)
    }
}

impl Block for BlockQ5_0 {
    const DTYPE: GgmlDType = GgmlDType::Q5_0;
    fn read(b: &[u8]) -> Self {
        BlockQ5_0 {
            d: f16_at(b, 0),
            qh: std::array::from_fn(|i| b[2 + i]),
            qs: std::array::from_fn(|i| b[6 + i]),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.d.to_le_bytes());
        out.extend_from_slice(&self.qh);
        out.extend_from_slice(&self.qs);
    }
    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (o, q) in out.iter_mut().zip(self.codes()) {
            *o = (i32::from(q) - 16) as f32 * d;
        }
    }
}

impl BlockQ5_1 {
    /// A block from its scale, offset and 32 codes in 0..32.
    pub fn from_codes(d: f32, m: f32, codes: &[u8; QK]) -> Self {
        BlockQ5_1 {
            d: f16::from_f32(d),
            m: f16::from_f32(m),
            qh: pack_fifth_bits(codes),
            qs: pack_nibbles(codes),
        }
    }

    pub fn codes(&self) -> [u8; QK] {
        unpack_five_bits(&self.qs, &self.qh)
    }
}

impl Block for BlockQ5_1 {
    const DTYPE: GgmlDType = GgmlDType::Q5_1;
    fn read(b: &[u8]) -> Self {
        BlockQ5_1 {
            d: f16_at(b, 0),
            m: f16_at(b, 2),
            qh: std::array::from_fn(|i| b[4 + i]),
            qs: std::array::from_fn(|i| b[8 + i]),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.d.to_le_bytes());
        out.extend_from_slice(&self.m.to_le_bytes());
        out.extend_from_slice(&self.qh);
        out.extend_from_slice(&self.qs);
    }
    fn dequantize(&self, out: &mut [f32]) {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        for (o, q) in out.iter_mut().zip(self.codes()) {
            *o = q as f32 * d + m;
        }
    }
}

/// Decodes whole blocks of `B` from `bytes` into `out` (`B::VALUES` per block).
pub(crate) fn dequantize_blocks<B: Block>(bytes: &[u8], out: &mut [f32]) {
    for (block, out) in bytes
        .chunks_exact(B::BYTES)
        .zip(out.chunks_exact_mut(B::VALUES))
    {
        B::read(block).dequantize(out);
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
        assert_eq!(bytes.len(), BlockQ4_1::BYTES);
        assert_eq!(BlockQ4_1::read(&bytes), b);
        assert_eq!(b.codes(), codes);
        let mut out = [0f32; QK];
        b.dequantize(&mut out);
        assert_eq!(out[3], 0.5 * codes[3] as f32 - 1.25);

        let q8: [i8; QK] = std::array::from_fn(|i| i as i8 - 16);
        let b = BlockQ8_0::from_codes(0.25, &q8);
        let mut bytes = vec![];
        b.write(&mut bytes);
        assert_eq!(bytes.len(), BlockQ8_0::BYTES);
        assert_eq!(BlockQ8_0::read(&bytes), b);

        let q5: [u8; QK] = std::array::from_fn(|i| (i * 11 % 32) as u8);
        let b = BlockQ5_1::from_codes(0.5, -4.0, &q5);
        let mut bytes = vec![];
        b.write(&mut bytes);
        assert_eq!(bytes.len(), BlockQ5_1::BYTES);
        assert_eq!(BlockQ5_1::read(&bytes), b);
        assert_eq!(b.codes(), q5);
        let b = BlockQ5_0::from_codes(0.5, &q5);
        let mut bytes = vec![];
        b.write(&mut bytes);
        assert_eq!(bytes.len(), BlockQ5_0::BYTES);
        assert_eq!(BlockQ5_0::read(&bytes).codes(), q5);
        let mut out = [0f32; QK];
        b.dequantize(&mut out);
        assert_eq!(out[31], 0.5 * (q5[31] as f32 - 16.0));
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
