//! Every GGML type the Codex reads and writes, by name: its size on disk
//! and its decode, dispatched to the one definition of its block
//! ([`super::blocks`], [`super::superblocks`]).

use candle_core::quantized::GgmlDType;
use half::f16;

use super::blocks::{self, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0};
use super::superblocks::{BlockQ4K, BlockQ5K, BlockQ6K};
use crate::error::{Error, Result};

/// The types, in the order `nindub quantize --scheme list` prints them.
pub const TYPES: [GgmlDType; 10] = [
    GgmlDType::F32,
    GgmlDType::F16,
    GgmlDType::Q8_0,
    GgmlDType::Q6K,
    GgmlDType::Q5_1,
    GgmlDType::Q5K,
    GgmlDType::Q5_0,
    GgmlDType::Q4_1,
    GgmlDType::Q4K,
    GgmlDType::Q4_0,
];

/// llama.cpp's lower-case name: `q4_k`, `q8_0`, `f16`.
pub fn name(t: GgmlDType) -> String {
    match t {
        GgmlDType::Q4K => "q4_k".into(),
        GgmlDType::Q5K => "q5_k".into(),
        GgmlDType::Q6K => "q6_k".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The type named `q4_k`, `Q4_K`, `q8_0`, `f32`, … (one of [`TYPES`]).
pub fn parse(s: &str) -> Option<GgmlDType> {
    TYPES.into_iter().find(|&t| name(t).eq_ignore_ascii_case(s))
}

/// Bits a weight takes on disk (and in memory, where a file is mapped as
/// it is): the block's bytes over its weights, scales included.
pub fn bits_per_weight(t: GgmlDType) -> f64 {
    8.0 * t.type_size() as f64 / t.block_size() as f64
}

/// Whether `t` stores codes and scales (not plain floats).
pub fn is_quantized(t: GgmlDType) -> bool {
    !matches!(t, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
}

/// `values` (a matrix of `dims`, rows along the last dimension) encoded
/// as `t` the way llama.cpp encodes it: the K-quants by nindub's port
/// ([`super::superblocks::quantize_row`]), the other types by candle's
/// (the same algorithm as llama.cpp's reference quantizers).
pub fn quantize(t: GgmlDType, values: &[f32], dims: &[usize]) -> Result<Vec<u8>> {
    let cols = dims.last().copied().unwrap_or(0);
    if cols == 0 || cols % t.block_size() != 0 || dims.iter().product::<usize>() != values.len() {
        return Err(Error::invalid(
            "quantize",
            format!(
                "{} values of shape {dims:?} are not rows of whole {} blocks ({} values)",
                values.len(),
                name(t),
                t.block_size()
            ),
        ));
    }
    if let Some(bytes) = super::superblocks::quantize_row(t, values) {
        return Ok(bytes);
    }
    let err = |e: candle_core::Error| Error::invalid("quantize", format!("{}: {e}", name(t)));
    let src =
        candle_core::Tensor::from_slice(values, dims, &candle_core::Device::Cpu).map_err(err)?;
    let q = candle_core::quantized::QTensor::quantize(&src, t).map_err(err)?;
    Ok(q.data().map_err(err)?.into_owned())
}

// ANCHOR: dequantize
/// Decodes `bytes` of type `t` into `out` (as many values as they hold).
pub fn dequantize(t: GgmlDType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let (bs, ts) = (t.block_size(), t.type_size());
    if bytes.len() % ts != 0 || bytes.len() / ts * bs != out.len() {
        return Err(Error::invalid(
            "dequantize",
            format!(
                "{} bytes of {} are not {} values ({} bytes per {} values)",
                bytes.len(),
                name(t),
                out.len(),
                ts,
                bs
            ),
        ));
    }
    match t {
        GgmlDType::F32 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        GgmlDType::F16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        GgmlDType::Q4_0 => blocks::dequantize_blocks::<BlockQ4_0>(bytes, out),
        GgmlDType::Q4_1 => blocks::dequantize_blocks::<BlockQ4_1>(bytes, out),
        GgmlDType::Q5_0 => blocks::dequantize_blocks::<BlockQ5_0>(bytes, out),
        GgmlDType::Q5_1 => blocks::dequantize_blocks::<BlockQ5_1>(bytes, out),
        GgmlDType::Q8_0 => blocks::dequantize_blocks::<BlockQ8_0>(bytes, out),
        GgmlDType::Q4K => blocks::dequantize_blocks::<BlockQ4K>(bytes, out),
        GgmlDType::Q5K => blocks::dequantize_blocks::<BlockQ5K>(bytes, out),
        GgmlDType::Q6K => blocks::dequantize_blocks::<BlockQ6K>(bytes, out),
        other => {
            return Err(Error::invalid(
                "dequantize",
                format!(
                    "GGML type {other:?}: nindub decodes {}",
                    TYPES.map(name).join(", ")
                ),
            ));
        }
    }
    Ok(())
}
// ANCHOR_END: dequantize

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes_are_llama_cpps() {
        for t in TYPES {
            assert_eq!(parse(&name(t)), Some(t));
        }
        assert_eq!(parse("Q4_K"), Some(GgmlDType::Q4K));
        assert_eq!(parse("q3_k"), None);
        assert_eq!(bits_per_weight(GgmlDType::Q4K), 4.5);
        assert_eq!(bits_per_weight(GgmlDType::Q6K), 6.5625);
        assert_eq!(bits_per_weight(GgmlDType::Q4_1), 5.0);
        assert_eq!(bits_per_weight(GgmlDType::Q5_0), 5.5);
        assert_eq!(bits_per_weight(GgmlDType::Q8_0), 8.5);
    }

    #[test]
    fn a_byte_count_that_is_not_whole_blocks_is_refused() {
        let mut out = [0f32; 256];
        assert!(dequantize(GgmlDType::Q4K, &[0u8; 143], &mut out).is_err());
        assert!(dequantize(GgmlDType::Q4K, &[0u8; 144], &mut out[..255]).is_err());
        assert!(dequantize(GgmlDType::Q4K, &[0u8; 144], &mut out).is_ok());
    }
}
