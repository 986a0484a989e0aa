//! Writing the Codex's quantized tensors as GGUF, in block types that
//! llama.cpp and candle both read.
//!
//! Two of the Codex's schemes are GGML block types exactly:
//!
//! | scheme | GGML | block of 32 weights | value |
//! |---|---|---|---|
//! | `int8-g32` (symmetric) | Q8_0 | f16 `d`, 32 × i8 | `d · q` |
//! | `int4-g32` (affine) | Q4_1 | f16 `d`, f16 `m`, 16 bytes of nibbles | `d · q + m` |
//! | `int3-g32`, `int2-g32` (symmetric, crude) | Q8_0 container | f16 `d`, 32 × i8 in −3…3 or −1…1 | `d · q` |
//!
//! For Q4_1, `d = S` and `m = −S·Z`; GGML keeps `m` as an f16, so the exact
//! zero of the Codex's integer `Z` survives only up to the rounding of
//! `S·Z` to f16 (the chapter measures it). The blocks are written through
//! their one definition, [`crate::ggml::blocks`] (where Q4_1's nibble order
//! is: byte `j` holds weight `j` low and weight `j + 16` high).

use std::io::BufReader;
use std::path::Path;

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor as GgmlTensor, ggml_file, gguf_file};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::compress::quant::{self, Clip, Granularity, Mode, QTensor, Scheme};
use crate::error::{Error, Result, ctx};
use crate::ggml::QK;
use crate::ggml::blocks::{Block, BlockQ4_1, BlockQ8_0};
use crate::model::gguf::GgufFile;

/// The GGML type a scheme is, exactly (codes and scales bit for bit).
pub fn ggml_type(scheme: &Scheme) -> Option<GgmlDType> {
    if scheme.clip != Clip::MinMax || scheme.granularity != (Granularity::PerGroup { size: 32 }) {
        return None;
    }
    match (scheme.format.bits, scheme.mode) {
        // INT3 and INT2 codes (−3…3, −1…1) travel in Q8_0 blocks exactly:
        // the same f16 scale, the codes as i8. The file is as large as
        // Q8_0; what it holds is 3 or 2 bits' worth.
        (8 | 3 | 2, Mode::Symmetric) => Some(GgmlDType::Q8_0),
        (4, Mode::Affine) => Some(GgmlDType::Q4_1),
        _ => None,
    }
}

// ANCHOR: ggml_blocks
/// The GGML bytes of a quantized tensor (Q8_0 or Q4_1 blocks).
pub fn to_ggml(q: &QTensor) -> Result<(GgmlDType, Vec<u8>)> {
    let dtype = ggml_type(&q.scheme).ok_or_else(|| {
        Error::invalid(
            "GGUF export",
            format!(
                "scheme {} has no GGML block type (int8-g32 is Q8_0, int4-g32 is Q4_1, int3-g32 and int2-g32 travel as Q8_0)",
                q.scheme
            ),
        )
    })?;
    let codes = q.codes();
    let mut out = Vec::with_capacity(q.params.len() * dtype.type_size());
    for (block, p) in codes.chunks(QK).zip(&q.params) {
        if block.len() != QK {
            return Err(Error::invalid(
                "GGUF export",
                format!(
                    "a block of {} values is not a GGML block of {QK}",
                    block.len()
                ),
            ));
        }
        // The block types are GGML's, defined once in `ggml::blocks`.
        match dtype {
            GgmlDType::Q8_0 => {
                let codes = std::array::from_fn(|j| block[j] as i8);
                BlockQ8_0::from_codes(p.scale, &codes).write(&mut out);
            }
            _ => {
                let codes = std::array::from_fn(|j| block[j] as u8);
                let m = -p.scale * p.zero as f32;
                BlockQ4_1::from_codes(p.scale, m, &codes).write(&mut out);
            }
        }
    }
    Ok((dtype, out))
}
// ANCHOR_END: ggml_blocks

/// What an export did.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub scheme: String,
    pub tensors: usize,
    /// Tensors written in the scheme's GGML type (the rest are copied as they were).
    pub quantized: usize,
    pub file_bytes: u64,
    /// Largest |ours − candle's dequantization of the written blocks|.
    pub max_dequant_diff: f32,
}

/// Re-quantizes every 2-D weight of a GGUF model with `scheme` (which
/// must be a GGML type) and writes a new GGUF: metadata copied, other
/// tensors copied as they were. The file is written beside `output` and
/// renamed into place, so an interrupted export leaves nothing half-written.
pub fn quantize_gguf(
    input: &Path,
    output: &Path,
    scheme: &Scheme,
    progress: bool,
) -> Result<ExportReport> {
    let dtype = ggml_type(scheme).ok_or_else(|| {
        Error::invalid(
            "GGUF export",
            format!(
                "scheme {scheme} has no GGML block type (use int8-g32, int4-g32, int3-g32 or int2-g32)"
            ),
        )
    })?;
    let file = GgufFile::open(input)?;
    // Refused now, not after minutes of quantizing.
    crate::fsx::check_output(output)?;
    let reader = std::fs::File::open(input).map_err(|e| Error::io(input, e))?;
    let mut reader = BufReader::new(reader);
    let mut infos: Vec<(&String, _)> = file.content.tensor_infos.iter().collect();
    infos.sort_by_key(|(_, i)| i.offset);
    let bar = if progress {
        let bar = ProgressBar::new(infos.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} tensors {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(scheme.name());
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut tensors: Vec<(String, GgmlTensor)> = vec![];
    let (mut quantized, mut max_diff) = (0usize, 0f32);
    for (name, _) in &infos {
        let original = ctx(
            &format!("reading `{name}`"),
            file.content.tensor(&mut reader, name, &Device::Cpu),
        )?;
        let dims = original.shape().dims().to_vec();
        let t = if dims.len() == 2 && dims[1] % 32 == 0 {
            let values = ctx(
                name,
                original
                    .dequantize(&Device::Cpu)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1::<f32>()),
            )?;
            let q = quant::quantize(&values, &dims, scheme)?;
            let (_, bytes) = to_ggml(&q)?;
            let written = ctx(
                name,
                ggml_file::qtensor_from_ggml(dtype, &bytes, dims.clone(), &Device::Cpu),
            )?;
            // candle reads back what we wrote; it must be our dequantization.
            let theirs = ctx(
                name,
                written
                    .dequantize(&Device::Cpu)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1::<f32>()),
            )?;
            for (a, b) in q.dequantize().iter().zip(&theirs) {
                max_diff = max_diff.max((a - b).abs());
            }
            quantized += 1;
            written
        } else {
            original
        };
        tensors.push((name.to_string(), t));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut metadata: Vec<(&str, &gguf_file::Value)> = file
        .content
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.alignment" && k.as_str() != "general.file_type")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    metadata.sort_by_key(|(k, _)| *k);
    // llama.cpp's file types: 7 = mostly Q8_0, 3 = mostly Q4_1.
    let file_type = gguf_file::Value::U32(if dtype == GgmlDType::Q8_0 { 7 } else { 3 });
    metadata.push(("general.file_type", &file_type));
    let refs: Vec<(&str, &GgmlTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = crate::fsx::AtomicFile::create(output)?;
    {
        let mut w = std::io::BufWriter::new(out.file_mut());
        ctx("writing GGUF", gguf_file::write(&mut w, &metadata, &refs))?;
        use std::io::Write;
        w.flush().map_err(|e| Error::Write {
            path: output.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    out.commit()?;
    let file_bytes = std::fs::metadata(output)
        .map_err(|e| Error::io(output, e))?
        .len();
    Ok(ExportReport {
        scheme: scheme.name(),
        tensors: tensors.len(),
        quantized,
        file_bytes,
        max_dequant_diff: max_diff,
    })
}
