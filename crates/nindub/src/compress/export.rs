//! Writing GGUF files that llama.cpp and candle both read: the Codex's own
//! schemes, GGML's types in GGML's own encoding, and llama.cpp's file types
//! with their per-tensor rules (Q4_K_M, Q6_K, Q4_1, …), under one rule:
//! **do no harm**.
//!
//! - A tensor already in the type it is asked for is copied, bytes and all.
//! - A tensor already quantized, asked for another type, loses precision
//!   unless the new type holds its values exactly (f32 does). That is only
//!   done with [`ExportOptions::allow_requantize`] (llama.cpp's
//!   `--allow-requantize`); without it the export measures the cost (SQNR
//!   against the source, per tensor and in all), refuses with it, and
//!   writes nothing.
//! - From floats, quantizing is the point: the SQNR is reported.
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

use crate::compress::calibrate::{Calibration, CalibrationText};
use crate::compress::gptq::{self, GptqParams};
use crate::compress::quant::{self, Clip, Granularity, Mode, QTensor, Scheme};
use crate::error::{Error, Result, ctx};
use crate::ggml::QK;
use crate::ggml::blocks::{Block, BlockQ4_1, BlockQ8_0};
use crate::ggml::dtype;
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

/// What [`quantize_gguf`] writes the 2-D weights as.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// One of the Codex's schemes, in its GGML type, encoded the Codex's
    /// way (`int4-g32`: Q4_1 with an integer zero-point).
    Scheme(Scheme),
    /// A GGML type in GGML's own encoding (llama.cpp's reference
    /// quantizers, [`dtype::quantize`]), every matrix in it: `ggml-q4_1`,
    /// `ggml-q4_k`, `ggml-f32`, …
    Type(GgmlDType),
    /// One of llama.cpp's file types, with its per-tensor rules.
    Recipe(Recipe),
}

impl Target {
    /// `ggml-<type>` (any of [`dtype::TYPES`]) or one of the Codex's schemes.
    pub fn parse(name: &str) -> Result<Target> {
        if let Some(t) = name.strip_prefix("ggml-") {
            return dtype::parse(t).map(Target::Type).ok_or_else(|| {
                Error::invalid(
                    "quantization scheme",
                    format!(
                        "`{name}`: GGML types are {}",
                        dtype::TYPES
                            .map(|t| format!("ggml-{}", dtype::name(t)))
                            .join(", ")
                    ),
                )
            });
        }
        Ok(Target::Scheme(Scheme::parse(name)?))
    }

    pub fn name(&self) -> String {
        match self {
            Target::Scheme(s) => s.name(),
            Target::Type(t) => format!("ggml-{}", dtype::name(*t)),
            Target::Recipe(r) => r.name(),
        }
    }

    /// The type a tensor of `cols` columns becomes: the target's, then
    /// llama.cpp's fallback when a row is not a whole number of its blocks.
    fn type_for(&self, role: Role, cols: usize) -> Result<GgmlDType> {
        let t = match self {
            Target::Scheme(s) => ggml_type(s).ok_or_else(|| {
                Error::invalid(
                    "GGUF export",
                    format!(
                        "scheme {s} has no GGML block type (use int8-g32, int4-g32, int3-g32 or int2-g32, or a ggml-* type)"
                    ),
                )
            })?,
            Target::Type(t) => *t,
            Target::Recipe(r) => r.type_for(role),
        };
        Ok(fallback(t, cols))
    }
}

impl Target {
    /// Whether a tensor already in `t` is already what this target means
    /// by `t`. Not for `int3-g32` and `int2-g32`: their Q8_0 blocks hold
    /// 7 or 3 levels, and a Q8_0 tensor is not yet one of them.
    fn keeps(&self, t: GgmlDType) -> bool {
        match self {
            Target::Scheme(s) => ggml_type(s) == Some(t) && matches!(s.format.bits, 8 | 4),
            Target::Type(_) | Target::Recipe(_) => true,
        }
    }
}

impl From<Scheme> for Target {
    fn from(s: Scheme) -> Target {
        Target::Scheme(s)
    }
}

/// What a tensor is, for a recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The output head, or the token embedding when it is tied to it.
    Output,
    /// `attn_v` or `ffn_down` of layer `layer` of `layers`.
    MoreBitsCandidate {
        layer: usize,
        layers: usize,
    },
    Other,
}

impl Role {
    fn of(name: &str, layers: usize, tied: bool) -> Role {
        if name == "output.weight" || (tied && name == "token_embd.weight") {
            return Role::Output;
        }
        let layer = name
            .strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|l| l.parse().ok());
        match layer {
            Some(layer)
                if name.ends_with(".attn_v.weight") || name.ends_with(".ffn_down.weight") =>
            {
                Role::MoreBitsCandidate { layer, layers }
            }
            _ => Role::Other,
        }
    }
}

// ANCHOR: recipes
/// One of llama.cpp's file types (`llama-quantize IN OUT Q4_K_M`): a base
/// type, and the rules `llama_tensor_get_type` (`llama-quant.cpp`) applies
/// to a dense Llama, as a table.
///
/// | tensor | plain (`q4_1`, `q6_k`, …) | mixed (`q4_k_m`, `q5_k_m`) |
/// |---|---|---|
/// | output head (or the tied token embedding) | Q6_K (Q8_0 stays Q8_0) | Q6_K |
/// | `attn_v`, `ffn_down` in a layer that gets [`more_bits`] | base | Q6_K |
/// | everything else | base | base (Q4_K, Q5_K) |
///
/// and then, for a row that is not a whole number of 256-weight
/// super-blocks, [`fallback`]: Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipe {
    pub base: GgmlDType,
    pub mixed: bool,
}

impl Recipe {
    pub const ALL: [Recipe; 6] = [
        Recipe::plain(GgmlDType::Q8_0),
        Recipe::plain(GgmlDType::Q6K),
        Recipe::mixed(GgmlDType::Q5K),
        Recipe::mixed(GgmlDType::Q4K),
        Recipe::plain(GgmlDType::Q4_1),
        Recipe::plain(GgmlDType::Q4_0),
    ];

    pub const fn plain(base: GgmlDType) -> Recipe {
        Recipe { base, mixed: false }
    }

    pub const fn mixed(base: GgmlDType) -> Recipe {
        Recipe { base, mixed: true }
    }

    /// llama.cpp's name, lower case: `q4_k_m`, `q4_1`.
    pub fn name(self) -> String {
        let base = dtype::name(self.base);
        if self.mixed {
            format!("{base}_m")
        } else {
            base
        }
    }

    pub fn parse(name: &str) -> Result<Recipe> {
        Recipe::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                Error::invalid(
                    "recipe",
                    format!(
                        "`{name}`: the recipes are {}",
                        Recipe::ALL.map(Recipe::name).join(", ")
                    ),
                )
            })
    }

    fn type_for(self, role: Role) -> GgmlDType {
        match role {
            Role::Output if self.base == GgmlDType::Q8_0 => GgmlDType::Q8_0,
            Role::Output => GgmlDType::Q6K,
            Role::MoreBitsCandidate { layer, layers } if self.mixed && more_bits(layer, layers) => {
                GgmlDType::Q6K
            }
            _ => self.base,
        }
    }
}

/// The first and last eighth of the layers, and every third between.
pub fn more_bits(layer: usize, layers: usize) -> bool {
    layer < layers / 8
        || layer >= 7 * layers / 8
        || (layer as isize - (layers / 8) as isize) % 3 == 2
}

/// A super-block type on a row it does not divide goes to the 32-block
/// type of about the same size (llama.cpp's `tensor_type_fallback`).
pub fn fallback(t: GgmlDType, cols: usize) -> GgmlDType {
    if cols % t.block_size() == 0 {
        return t;
    }
    match t {
        GgmlDType::Q4K => GgmlDType::Q5_0,
        GgmlDType::Q5K => GgmlDType::Q5_1,
        GgmlDType::Q6K => GgmlDType::Q8_0,
        other => other,
    }
}
// ANCHOR_END: recipes

/// How an export may treat its input.
#[derive(Clone, Copy, Default)]
pub struct ExportOptions<'a> {
    /// Requantize tensors that are already quantized into another type,
    /// though it loses precision (llama.cpp's `--allow-requantize`).
    pub allow_requantize: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Round the matrices it measured with GPTQ instead of to nearest
    /// (where the type is one of GGML's 32-weight blocks).
    pub calibration: Option<&'a Calibration>,
    pub gptq: GptqParams,
}

impl ExportOptions<'static> {
    /// Requantizing allowed, no progress bar: for callers that mean to
    /// make a lossy copy of a quantized model (a degraded canary, an INT8
    /// copy of the Q4_1 file) and say so.
    pub const REQUANTIZE: ExportOptions<'static> = ExportOptions {
        allow_requantize: true,
        progress: false,
        calibration: None,
        gptq: GptqParams::DEFAULT,
    };
}

/// What happened to one tensor.
#[derive(Debug, Clone, Serialize)]
pub struct TensorExport {
    pub name: String,
    pub from: String,
    pub to: String,
    /// Its bytes were copied as they were.
    pub copied: bool,
    /// Rounded by GPTQ against the calibration's inputs.
    pub gptq: bool,
    /// Signal over noise of the written values against the source's, in
    /// dB; `None` where they are equal.
    pub sqnr_db: Option<f64>,
    pub values: usize,
    pub bytes: u64,
}

/// What an export did.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub scheme: String,
    pub tensors: usize,
    /// Tensors re-encoded into another type.
    pub quantized: usize,
    /// Tensors whose bytes were copied (already in the type asked for, or
    /// not a matrix).
    pub copied: usize,
    /// Of the quantized, those rounded by GPTQ, and with what.
    pub gptq: usize,
    pub calibration: Option<CalibrationText>,
    pub gptq_params: Option<GptqParams>,
    pub file_bytes: u64,
    /// Largest |what nindub meant to write − candle's dequantization of
    /// the written blocks|.
    pub max_dequant_diff: f32,
    /// Signal over noise of every written weight against the source, in
    /// dB (`None`: every value is the source's).
    pub sqnr_db: Option<f64>,
    /// Bits per weight of the 2-D weights as written.
    pub bits_per_weight: f64,
    pub per_tensor: Vec<TensorExport>,
}

fn sqnr(signal: f64, noise: f64) -> Option<f64> {
    (noise > 0.0).then(|| 10.0 * (signal / noise).log10())
}

/// llama.cpp's `general.file_type` ("mostly …") for a target: its
/// recipe's or its type's, as `llama-quantize` writes it.
fn file_type(target: &Target) -> u32 {
    let t = match target {
        Target::Recipe(r) if r.mixed && r.base == GgmlDType::Q4K => return 15,
        Target::Recipe(r) if r.mixed && r.base == GgmlDType::Q5K => return 17,
        Target::Recipe(r) => r.base,
        Target::Type(t) => *t,
        Target::Scheme(s) => ggml_type(s).unwrap_or(GgmlDType::F32),
    };
    match t {
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q8_0 => 7,
        GgmlDType::Q5_0 => 8,
        GgmlDType::Q5_1 => 9,
        GgmlDType::Q4K => 14,
        GgmlDType::Q5K => 16,
        GgmlDType::Q6K => 18,
        _ => 0,
    }
}

/// A tensor's values, decoded by nindub.
fn values_of(name: &str, t: &GgmlTensor) -> Result<Vec<f32>> {
    let bytes = ctx(name, t.data())?;
    let mut out = vec![0f32; t.shape().elem_count()];
    dtype::dequantize(t.dtype(), &bytes, &mut out)?;
    Ok(out)
}

/// `values` written as `t` (the target's encoding), with what nindub meant
/// the blocks to hold.
fn encode(
    name: &str,
    values: &[f32],
    dims: &[usize],
    target: &Target,
    t: GgmlDType,
) -> Result<(GgmlTensor, Vec<f32>)> {
    match target {
        Target::Scheme(scheme) if ggml_type(scheme) == Some(t) => {
            let q = quant::quantize(values, dims, scheme)?;
            let (_, bytes) = to_ggml(&q)?;
            let written = ctx(
                name,
                ggml_file::qtensor_from_ggml(t, &bytes, dims.to_vec(), &Device::Cpu),
            )?;
            Ok((written, q.dequantize()))
        }
        _ => {
            let bytes = dtype::quantize(t, values, dims)?;
            let written = ctx(
                name,
                ggml_file::qtensor_from_ggml(t, &bytes, dims.to_vec(), &Device::Cpu),
            )?;
            let meant = values_of(name, &written)?;
            Ok((written, meant))
        }
    }
}

/// Writes a GGUF model's 2-D weights as `target` says (metadata copied,
/// other tensors copied as they were), under the rule in the module's
/// documentation. The file is written beside `output` and renamed into
/// place, so an interrupted or refused export leaves nothing half-written.
pub fn quantize_gguf(
    input: &Path,
    output: &Path,
    target: impl Into<Target>,
    options: &ExportOptions,
) -> Result<ExportReport> {
    let target: Target = target.into();
    // A scheme without a GGML type is refused before anything is read.
    target.type_for(Role::Other, 256)?;
    if let (Some(_), Target::Scheme(_)) = (options.calibration, &target) {
        return Err(Error::invalid(
            "GGUF export",
            format!(
                "GPTQ rounds onto GGML's own grids; `{}` is one of the Codex's encodings: use a GGML type (ggml-q4_0, …) or a recipe with a calibration",
                target.name()
            ),
        ));
    }
    let file = GgufFile::open(input)?;
    // Refused now, not after minutes of quantizing.
    crate::fsx::check_output(output)?;
    let (layers, tied) = match file.architecture() {
        Ok(a) => (a.num_layers as usize, a.tied_embeddings),
        Err(e) if matches!(target, Target::Recipe(_)) => return Err(e),
        Err(_) => (0, false),
    };
    let reader = std::fs::File::open(input).map_err(|e| Error::io(input, e))?;
    let mut reader = BufReader::new(reader);
    let mut infos: Vec<(&String, _)> = file.content.tensor_infos.iter().collect();
    infos.sort_by_key(|(_, i)| i.offset);
    let bar = if options.progress {
        let bar = ProgressBar::new(infos.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} tensors {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(target.name());
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut tensors: Vec<(String, GgmlTensor)> = vec![];
    let mut per_tensor = vec![];
    let (mut quantized, mut copied, mut max_diff) = (0usize, 0usize, 0f32);
    let mut by_gptq = 0usize;
    let (mut signal, mut noise) = (0f64, 0f64);
    let (mut weight_values, mut weight_bytes) = (0usize, 0u64);
    for (name, _) in &infos {
        let original = ctx(
            &format!("reading `{name}`"),
            file.content.tensor(&mut reader, name, &Device::Cpu),
        )?;
        let dims = original.shape().dims().to_vec();
        let from = original.dtype();
        let matrix = dims.len() == 2 && dims[1] % QK == 0;
        let to = if matrix {
            target.type_for(Role::of(name, layers, tied), dims[1])?
        } else {
            from
        };
        let values_n = original.shape().elem_count();
        let copy = !matrix || (to == from && target.keeps(to));
        let hessian = options
            .calibration
            .and_then(|c| c.hessian(name))
            .filter(|_| !copy && gptq::supports(to) && dims.len() == 2);
        let (written, t_signal, t_noise) = if copy {
            copied += 1;
            (original, 0.0, 0.0)
        } else {
            let values = values_of(name, &original)?;
            let (written, meant) = match hessian {
                Some(h) => {
                    by_gptq += 1;
                    let g = gptq::quantize(to, &values, dims[0], dims[1], h, &options.gptq)
                        .map_err(|e| Error::invalid("GPTQ", format!("`{name}`: {e}")))?;
                    let written = ctx(
                        name,
                        ggml_file::qtensor_from_ggml(to, &g.bytes, dims.clone(), &Device::Cpu),
                    )?;
                    (written, g.values)
                }
                None => encode(name, &values, &dims, &target, to)?,
            };
            // candle reads back what we wrote; it must be what we meant.
            let theirs = ctx(
                name,
                written
                    .dequantize(&Device::Cpu)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1::<f32>()),
            )?;
            for (a, b) in meant.iter().zip(&theirs) {
                max_diff = max_diff.max((a - b).abs());
            }
            let (mut s, mut n) = (0f64, 0f64);
            for (&x, &y) in values.iter().zip(&theirs) {
                s += f64::from(x).powi(2);
                n += f64::from(x - y).powi(2);
            }
            quantized += 1;
            (written, s, n)
        };
        signal += t_signal;
        noise += t_noise;
        let bytes = written.storage_size_in_bytes() as u64;
        if matrix {
            weight_values += values_n;
            weight_bytes += bytes;
        }
        per_tensor.push(TensorExport {
            name: name.to_string(),
            from: dtype::name(from),
            to: dtype::name(to),
            copied: copy,
            gptq: hessian.is_some(),
            sqnr_db: sqnr(t_signal, t_noise),
            values: values_n,
            bytes,
        });
        tensors.push((name.to_string(), written));
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Do no harm: a quantized source re-encoded with loss needs consent.
    let harmed: Vec<&TensorExport> = per_tensor
        .iter()
        .filter(|t| t.sqnr_db.is_some() && dtype::parse(&t.from).is_some_and(dtype::is_quantized))
        .collect();
    if !harmed.is_empty() && !options.allow_requantize {
        let worst = harmed.iter().min_by(|a, b| {
            a.sqnr_db
                .partial_cmp(&b.sqnr_db)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        return Err(Error::invalid(
            "GGUF export",
            format!(
                "{} already quantized would be requantized ({}) and lose precision: SQNR {} against the source, worst `{}` at {:.1} dB. Nothing was written. Quantize from the f32 model instead (`nindub quantize --scheme ggml-f32 IN F32.gguf`), or pass --allow-requantize to write it anyway",
                match harmed.len() {
                    1 => "1 tensor".to_string(),
                    n => format!("{n} tensors"),
                },
                harmed
                    .iter()
                    .map(|t| format!("{} → {}", t.from, t.to))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", "),
                sqnr(signal, noise).map_or("∞".into(), |d| format!("{d:.1} dB")),
                worst.map_or("", |t| t.name.as_str()),
                worst.and_then(|t| t.sqnr_db).unwrap_or(f64::INFINITY),
            ),
        ));
    }
    let mut metadata: Vec<(&str, &gguf_file::Value)> = file
        .content
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.alignment" && k.as_str() != "general.file_type")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    metadata.sort_by_key(|(k, _)| *k);
    let file_type = gguf_file::Value::U32(file_type(&target));
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
        scheme: target.name(),
        tensors: tensors.len(),
        quantized,
        copied,
        gptq: by_gptq,
        calibration: options
            .calibration
            .filter(|_| by_gptq > 0)
            .map(|c| c.text.clone()),
        gptq_params: (by_gptq > 0).then_some(options.gptq),
        file_bytes,
        max_dequant_diff: max_diff,
        sqnr_db: sqnr(signal, noise),
        bits_per_weight: 8.0 * weight_bytes as f64 / weight_values.max(1) as f64,
        per_tensor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_go_to_the_ends_and_every_third_layer_between() {
        let layers: Vec<usize> = (0..30).filter(|&l| more_bits(l, 30)).collect();
        assert_eq!(layers, [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]);
    }

    #[test]
    fn super_blocks_fall_back_on_rows_they_do_not_divide() {
        assert_eq!(fallback(GgmlDType::Q4K, 576), GgmlDType::Q5_0);
        assert_eq!(fallback(GgmlDType::Q5K, 576), GgmlDType::Q5_1);
        assert_eq!(fallback(GgmlDType::Q6K, 576), GgmlDType::Q8_0);
        assert_eq!(fallback(GgmlDType::Q4K, 1536), GgmlDType::Q4K);
        assert_eq!(fallback(GgmlDType::Q4_1, 576), GgmlDType::Q4_1);
        let role = |n: &str| Role::of(n, 30, true);
        assert_eq!(role("token_embd.weight"), Role::Output);
        assert_eq!(Role::of("token_embd.weight", 30, false), Role::Other);
        let q4km = Recipe::parse("q4_k_m").unwrap();
        assert_eq!(q4km.type_for(role("blk.26.attn_v.weight")), GgmlDType::Q6K);
        assert_eq!(q4km.type_for(role("blk.0.attn_q.weight")), GgmlDType::Q4K);
        let q5km = Recipe::parse("Q5_K_M").unwrap();
        assert_eq!(q5km.type_for(role("blk.4.ffn_down.weight")), GgmlDType::Q5K);
        let q4_1 = Recipe::parse("q4_1").unwrap();
        assert_eq!(q4_1.type_for(role("blk.26.attn_v.weight")), GgmlDType::Q4_1);
        assert_eq!(q4_1.type_for(role("token_embd.weight")), GgmlDType::Q6K);
        let q8 = Recipe::parse("q8_0").unwrap();
        assert_eq!(q8.type_for(role("token_embd.weight")), GgmlDType::Q8_0);
        assert!(Recipe::parse("q4_k_s").is_err());
        assert!(Target::parse("ggml-q3_k").is_err());
        assert_eq!(Target::parse("ggml-q4_k").unwrap().name(), "ggml-q4_k");
    }
}
