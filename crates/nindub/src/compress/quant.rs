//! The Alchemy of Compression: affine quantization, `x ≈ S·(q − Z)`.
//!
//! A real number `x` is stored as an integer code `q` in `[q_min, q_max]`
//! with a **scale** `S > 0` and an integer **zero-point** `Z`:
//!
//! ```text
//! q = clamp(round(x / S) + Z, q_min, q_max)        x̂ = S · (q − Z)
//! ```
//!
//! `S` and `Z` come from the range `[a, b]` of the values they serve
//! ([`choose_params`]); the range is first widened to contain 0, and `Z` is
//! an integer, so that 0.0 is always exactly representable (`q = Z` gives
//! `x̂ = 0` with no rounding). *Symmetric* quantization fixes `Z = 0`;
//! *affine* uses the whole integer range for `[a, b]`.
//!
//! One pair `(S, Z)` serves a block of values: the whole tensor, one
//! channel along any axis, or a group of consecutive values along the last
//! (input) dimension ([`Granularity`]). Scales are stored as f16, as GGUF
//! does; codes as bytes, two 4-bit codes per byte for INT4.

use half::f16;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};

// ANCHOR: format
/// An integer code format: its width and whether codes are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Format {
    pub bits: u8,
    pub signed: bool,
}

impl Format {
    pub const INT8: Format = Format {
        bits: 8,
        signed: true,
    };
    pub const UINT8: Format = Format {
        bits: 8,
        signed: false,
    };
    pub const INT4: Format = Format {
        bits: 4,
        signed: true,
    };
    pub const UINT4: Format = Format {
        bits: 4,
        signed: false,
    };

    /// The smallest code. Signed formats use the restricted range
    /// `[−(2ᵇ⁻¹ − 1), 2ᵇ⁻¹ − 1]`, symmetric around 0 (−127…127, −7…7).
    pub fn qmin(&self) -> i32 {
        if self.signed { -(self.qmax()) } else { 0 }
    }

    /// The largest code.
    pub fn qmax(&self) -> i32 {
        if self.signed {
            (1 << (self.bits - 1)) - 1
        } else {
            (1 << self.bits) - 1
        }
    }
}
// ANCHOR_END: format

/// Symmetric (`Z = 0`, signed codes) or affine (any integer `Z`, unsigned codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Mode {
    Symmetric,
    Affine,
}

/// How the range `[a, b]` of a block is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Clip {
    /// The block's minimum and maximum: nothing saturates.
    MinMax,
    /// The given percentile at each end (e.g. 99.9): outliers saturate.
    Percentile(f32),
    /// The range, shrunk from min/max in steps, that minimises the squared
    /// error of the block.
    Mse,
}

/// Which values share one `(S, Z)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Granularity {
    PerTensor,
    /// One pair per index along `axis` (for a weight `[out, in]`, axis 0
    /// gives one per output channel).
    PerChannel {
        axis: usize,
    },
    /// One pair per `size` consecutive values of the last dimension.
    PerGroup {
        size: usize,
    },
}

/// A complete quantization scheme.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scheme {
    pub format: Format,
    pub mode: Mode,
    pub clip: Clip,
    pub granularity: Granularity,
}

impl Scheme {
    /// Parses `int8-channel`, `int4-g32`, `int8-tensor-affine`,
    /// `int4-g64-sym`, `int8-channel-mse`, `int8-tensor-p99.9`…:
    /// `int{8|4|3|2}-{tensor|channel|gN}[-sym|-affine][-mse|-pNN]`.
    /// INT4 defaults to affine, the others to symmetric. INT3 and INT2 are
    /// the crude ones (7 and 3 levels symmetric: −3…3, −1…1), kept a byte
    /// per code: the Infrastructure Canon serves them to show what a
    /// degraded model looks like from outside.
    pub fn parse(name: &str) -> Result<Scheme> {
        let bad = |why: String| Error::invalid("quantization scheme", format!("`{name}`: {why}"));
        let mut parts = name.split('-');
        let bits = match parts.next() {
            Some("int8") => 8,
            Some("int4") => 4,
            Some("int3") => 3,
            Some("int2") => 2,
            other => {
                return Err(bad(format!(
                    "expected int8, int4, int3 or int2, got {other:?}"
                )));
            }
        };
        let granularity = match parts.next() {
            Some("tensor") => Granularity::PerTensor,
            Some("channel") => Granularity::PerChannel { axis: 0 },
            Some(g) if g.starts_with('g') => {
                let size: usize = g[1..]
                    .parse()
                    .map_err(|_| bad(format!("group `{g}` is not gN")))?;
                if size == 0 {
                    return Err(bad("a group of 0 values".into()));
                }
                Granularity::PerGroup { size }
            }
            other => {
                return Err(bad(format!(
                    "expected tensor, channel or gN, got {other:?}"
                )));
            }
        };
        let mut mode = if bits == 4 {
            Mode::Affine
        } else {
            Mode::Symmetric
        };
        let mut clip = Clip::MinMax;
        for p in parts {
            match p {
                "sym" => mode = Mode::Symmetric,
                "affine" => mode = Mode::Affine,
                "mse" => clip = Clip::Mse,
                p if p.starts_with('p') => {
                    let q: f32 = p[1..]
                        .parse()
                        .map_err(|_| bad(format!("percentile `{p}` is not pNN")))?;
                    if !(50.0..=100.0).contains(&q) {
                        return Err(bad(format!("percentile {q} is outside 50..100")));
                    }
                    clip = Clip::Percentile(q);
                }
                other => return Err(bad(format!("unknown option `{other}`"))),
            }
        }
        let format = Format {
            bits,
            signed: mode == Mode::Symmetric,
        };
        Ok(Scheme {
            format,
            mode,
            clip,
            granularity,
        })
    }

    /// The name [`Scheme::parse`] reads back.
    /// Bytes a file spends on one block's parameters: an f16 scale, and an
    /// f16 offset when affine.
    pub fn stored_bytes_per_block(&self) -> usize {
        2 + 2 * usize::from(self.mode == Mode::Affine)
    }

    pub fn name(&self) -> String {
        let g = match self.granularity {
            Granularity::PerTensor => "tensor".to_string(),
            Granularity::PerChannel { .. } => "channel".to_string(),
            Granularity::PerGroup { size } => format!("g{size}"),
        };
        let mut s = format!("int{}-{g}", self.format.bits);
        let default = if self.format.bits == 4 {
            Mode::Affine
        } else {
            Mode::Symmetric
        };
        if self.mode != default {
            s.push_str(match self.mode {
                Mode::Symmetric => "-sym",
                Mode::Affine => "-affine",
            });
        }
        match self.clip {
            Clip::MinMax => {}
            Clip::Mse => s.push_str("-mse"),
            Clip::Percentile(p) => s.push_str(&format!("-p{p}")),
        }
        s
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// The scale and zero-point of one block.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QParams {
    pub scale: f32,
    pub zero: i32,
}

/// Rounds a positive scale to an f16 that is not smaller (so the range
/// still fits); an f16 cannot hold a scale beyond 65504.
fn f16_scale(s: f32) -> Result<f32> {
    let mut h = f16::from_f32(s);
    if h.to_f32() < s {
        h = f16::from_bits(h.to_bits() + 1);
    }
    let s16 = h.to_f32();
    if !s16.is_finite() {
        return Err(Error::invalid(
            "quantization range",
            format!("a scale of {s} does not fit in f16"),
        ));
    }
    // A range so narrow that its scale underflows f16: the smallest f16.
    Ok(if s16 > 0.0 {
        s16
    } else {
        f16::from_bits(1).to_f32()
    })
}

// ANCHOR: choose_params
/// `S` and `Z` for values in `[min, max]`.
///
/// The range is widened to contain 0. Symmetric: `S = max(|a|, |b|) / q_max`,
/// `Z = 0`. Affine: `S = (b − a) / (q_max − q_min)` and
/// `Z = round(q_min − a / S)`, an integer, so that `x = 0` maps to the code
/// `Z` exactly. A range of zero width (all values 0) gets `S = 1`.
pub fn choose_params(min: f32, max: f32, format: Format, mode: Mode) -> Result<QParams> {
    if !min.is_finite() || !max.is_finite() || min > max {
        return Err(Error::invalid(
            "quantization range",
            format!("[{min}, {max}] is not a finite interval"),
        ));
    }
    let (a, b) = (min.min(0.0), max.max(0.0));
    let (qmin, qmax) = (format.qmin() as f32, format.qmax() as f32);
    match mode {
        Mode::Symmetric => {
            let amax = a.abs().max(b);
            let scale = if amax == 0.0 {
                1.0
            } else {
                f16_scale(amax / qmax)?
            };
            Ok(QParams { scale, zero: 0 })
        }
        Mode::Affine => {
            if b == a {
                return Ok(QParams {
                    scale: 1.0,
                    zero: qmin as i32,
                });
            }
            let scale = f16_scale((b - a) / (qmax - qmin))?;
            let zero = (qmin - a / scale).round_ties_even().clamp(qmin, qmax) as i32;
            Ok(QParams { scale, zero })
        }
    }
}
// ANCHOR_END: choose_params

// ANCHOR: quantize_value
/// The code of `x`: round half to even, then saturate.
pub fn quantize_value(x: f32, p: QParams, format: Format) -> i32 {
    let q = (x / p.scale).round_ties_even() + p.zero as f32;
    q.clamp(format.qmin() as f32, format.qmax() as f32) as i32
}

/// The value a code stands for.
pub fn dequantize_value(q: i32, p: QParams) -> f32 {
    p.scale * (q - p.zero) as f32
}
// ANCHOR_END: quantize_value

// ANCHOR: pack
/// Packs 4-bit codes two per byte: element `2k` in the low nibble, `2k + 1`
/// in the high one (a signed code is stored as its two's-complement nibble).
pub fn pack_int4(codes: &[i32]) -> Vec<u8> {
    codes
        .chunks(2)
        .map(|pair| {
            let lo = (pair[0] & 0x0f) as u8;
            let hi = (pair.get(1).copied().unwrap_or(0) & 0x0f) as u8;
            lo | (hi << 4)
        })
        .collect()
}

/// The first `n` codes of packed nibbles; signed nibbles are sign-extended.
pub fn unpack_int4(packed: &[u8], n: usize, signed: bool) -> Vec<i32> {
    let nibble = |v: u8| -> i32 {
        if signed {
            ((v << 4) as i8 >> 4) as i32
        } else {
            v as i32
        }
    };
    packed
        .iter()
        .flat_map(|&b| [nibble(b & 0x0f), nibble(b >> 4)])
        .take(n)
        .collect()
}
// ANCHOR_END: pack

/// A quantized tensor: codes, and one `(S, Z)` per block.
#[derive(Debug, Clone, Serialize)]
pub struct QTensor {
    pub shape: Vec<usize>,
    pub scheme: Scheme,
    pub params: Vec<QParams>,
    /// One byte per code (INT8), or two codes per byte (INT4).
    pub data: Vec<u8>,
}

impl QTensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All codes, in row-major order.
    pub fn codes(&self) -> Vec<i32> {
        let f = self.scheme.format;
        if f.bits == 4 {
            unpack_int4(&self.data, self.len(), f.signed)
        } else if f.signed {
            self.data.iter().map(|&b| b as i8 as i32).collect()
        } else {
            self.data.iter().map(|&b| b as i32).collect()
        }
    }

    /// Which block (index into `params`) element `i` belongs to.
    pub fn block_of(&self, i: usize) -> usize {
        block_index(&self.shape, self.scheme.granularity, i)
    }

    /// The f32 values the codes stand for.
    pub fn dequantize(&self) -> Vec<f32> {
        self.codes()
            .into_iter()
            .enumerate()
            .map(|(i, q)| dequantize_value(q, self.params[self.block_of(i)]))
            .collect()
    }

    /// Bytes as a file stores them (see [`storage_bytes`]); in memory the
    /// parameters are wider (an f32 scale and an i32 zero point per block).
    pub fn storage_bytes(&self) -> usize {
        self.data.len() + self.params.len() * self.scheme.stored_bytes_per_block()
    }

    /// Storage bits per value, scales included.
    pub fn bits_per_weight(&self) -> f64 {
        8.0 * self.storage_bytes() as f64 / self.len().max(1) as f64
    }
}

// ANCHOR: storage_bytes
/// Bytes a tensor of `shape` takes under `scheme` as a file stores it,
/// without quantizing it: the codes (one byte each, or two per byte for
/// INT4), an f16 scale per block, and for affine schemes an f16 offset per
/// block (the minimum m = −S·Z, as GGUF's Q4_1 keeps it). So `int8-g32`
/// is Q8_0 (8.5 bits per weight), `int4-g32-sym` Q4_0 (4.5) and `int4-g32`
/// Q4_1 (5.0); the Mana Crystal's estimator
/// ([`crate::budget::Precision::matrix_bytes`]) counts the same bytes for
/// the same names.
pub fn storage_bytes(shape: &[usize], scheme: &Scheme) -> Result<usize> {
    let n: usize = shape.iter().product();
    let codes = if scheme.format.bits == 4 {
        n.div_ceil(2)
    } else {
        n
    };
    Ok(codes + block_count(shape, scheme.granularity)? * scheme.stored_bytes_per_block())
}
// ANCHOR_END: storage_bytes

/// Number of blocks, and the checks a granularity needs.
fn block_count(shape: &[usize], g: Granularity) -> Result<usize> {
    let n: usize = shape.iter().product();
    match g {
        Granularity::PerTensor => Ok(1),
        Granularity::PerChannel { axis } => shape.get(axis).copied().ok_or_else(|| {
            Error::invalid(
                "quantization",
                format!("channel axis {axis} does not exist in shape {shape:?}"),
            )
        }),
        Granularity::PerGroup { size } => {
            let last = shape.last().copied().unwrap_or(0);
            if size == 0 || last % size != 0 {
                return Err(Error::invalid(
                    "quantization",
                    format!("a group of {size} does not divide the last dimension of {shape:?}"),
                ));
            }
            Ok(n / size)
        }
    }
}

fn block_index(shape: &[usize], g: Granularity, i: usize) -> usize {
    match g {
        Granularity::PerTensor => 0,
        Granularity::PerChannel { axis } => {
            let stride: usize = shape[axis + 1..].iter().product();
            (i / stride) % shape[axis]
        }
        Granularity::PerGroup { size } => i / size,
    }
}

/// The range of a block under a clipping rule.
fn block_range(values: &[f32], clip: Clip, format: Format, mode: Mode) -> Result<QParams> {
    let (min, max) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    match clip {
        Clip::MinMax => choose_params(min, max, format, mode),
        Clip::Percentile(p) => {
            let mut sorted = values.to_vec();
            sorted.sort_unstable_by(f32::total_cmp);
            let at = |q: f32| {
                let i = ((sorted.len() - 1) as f32 * q / 100.0).round() as usize;
                sorted[i.min(sorted.len() - 1)]
            };
            choose_params(at(100.0 - p), at(p), format, mode)
        }
        Clip::Mse => {
            let mut best: Option<(f64, QParams)> = None;
            for step in 0..=20 {
                let shrink = 1.0 - 0.025 * step as f32;
                let p = choose_params(min * shrink, max * shrink, format, mode)?;
                let err: f64 = values
                    .iter()
                    .map(|&x| {
                        let d = x - dequantize_value(quantize_value(x, p, format), p);
                        (d as f64) * (d as f64)
                    })
                    .sum();
                if best.is_none_or(|(e, _)| err < e) {
                    best = Some((err, p));
                }
            }
            Ok(best.map(|b| b.1).unwrap_or(QParams {
                scale: 1.0,
                zero: 0,
            }))
        }
    }
}

/// One `(S, Z)` per block. Blocks of consecutive values (a tensor, a
/// group, a channel of axis 0) are read in place, in parallel; channels of
/// another axis are gathered first.
fn block_params(values: &[f32], shape: &[usize], scheme: &Scheme) -> Result<Vec<QParams>> {
    let (clip, format, mode) = (scheme.clip, scheme.format, scheme.mode);
    let contiguous = match scheme.granularity {
        Granularity::PerTensor => Some(values.len()),
        Granularity::PerGroup { size } => Some(size),
        Granularity::PerChannel { axis: 0 } => Some(values.len() / shape[0].max(1)),
        Granularity::PerChannel { .. } => None,
    };
    match contiguous {
        Some(size) => values
            .par_chunks(size.max(1))
            .map(|block| block_range(block, clip, format, mode))
            .collect(),
        None => {
            let blocks = block_count(shape, scheme.granularity)?;
            let mut members: Vec<Vec<f32>> = vec![vec![]; blocks];
            for (i, &v) in values.iter().enumerate() {
                members[block_index(shape, scheme.granularity, i)].push(v);
            }
            members
                .iter()
                .map(|m| block_range(m, clip, format, mode))
                .collect()
        }
    }
}

// ANCHOR: quantize
/// Quantizes `values` (row-major, of `shape`) with `scheme`.
pub fn quantize(values: &[f32], shape: &[usize], scheme: &Scheme) -> Result<QTensor> {
    let n: usize = shape.iter().product();
    if n == 0 || values.len() != n {
        return Err(Error::invalid(
            "quantization",
            format!(
                "{} values for shape {shape:?} ({n} expected, and at least one)",
                values.len()
            ),
        ));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "quantization",
            format!("value {i} is {} (NaN or ±∞ cannot be quantized)", values[i]),
        ));
    }
    let g = scheme.granularity;
    block_count(shape, g)?; // checks the granularity against the shape
    let params = block_params(values, shape, scheme)?;
    let codes: Vec<i32> = values
        .par_iter()
        .enumerate()
        .map(|(i, &v)| quantize_value(v, params[block_index(shape, g, i)], scheme.format))
        .collect();
    let data = if scheme.format.bits == 4 {
        pack_int4(&codes)
    } else {
        codes.iter().map(|&q| q as u8).collect()
    };
    Ok(QTensor {
        shape: shape.to_vec(),
        scheme: *scheme,
        params,
        data,
    })
}
// ANCHOR_END: quantize

/// Signal-to-quantization-noise ratio in dB: `10·log₁₀(Σx² / Σ(x − x̂)²)`
/// (infinite when the approximation is exact).
pub fn sqnr_db(reference: &[f32], approx: &[f32]) -> f64 {
    let (mut signal, mut noise) = (0f64, 0f64);
    for (&x, &y) in reference.iter().zip(approx) {
        signal += (x as f64) * (x as f64);
        noise += ((x - y) as f64) * ((x - y) as f64);
    }
    if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn formats_have_the_usual_ranges() {
        assert_eq!((Format::INT8.qmin(), Format::INT8.qmax()), (-127, 127));
        assert_eq!((Format::UINT8.qmin(), Format::UINT8.qmax()), (0, 255));
        assert_eq!((Format::INT4.qmin(), Format::INT4.qmax()), (-7, 7));
        assert_eq!((Format::UINT4.qmin(), Format::UINT4.qmax()), (0, 15));
    }

    #[test]
    fn zero_is_exact_even_for_a_range_that_excludes_it() {
        for (a, b) in [(-1.0, 3.0), (0.3, 2.0), (-5.0, -0.1), (-0.37, 0.91)] {
            for f in [Format::UINT8, Format::UINT4] {
                let p = choose_params(a, b, f, Mode::Affine).unwrap();
                let q = quantize_value(0.0, p, f);
                assert_eq!(q, p.zero);
                assert_eq!(dequantize_value(q, p), 0.0, "[{a}, {b}] {f:?}");
            }
        }
    }

    #[test]
    fn affine_params_follow_the_formula() {
        let p = choose_params(-1.0, 3.0, Format::UINT8, Mode::Affine).unwrap();
        assert!(
            p.scale >= 4.0 / 255.0 && p.scale < 4.0 / 255.0 * 1.001,
            "f16, rounded up"
        );
        assert_eq!(p.zero, (1.0f32 / p.scale).round_ties_even() as i32);
        let s = choose_params(-2.0, 1.0, Format::INT8, Mode::Symmetric).unwrap();
        assert_eq!(s.zero, 0);
        assert!(s.scale >= 2.0 / 127.0 && s.scale < 2.0 / 127.0 * 1.001);
    }

    #[test]
    fn round_half_to_even_and_saturation() {
        let p = QParams {
            scale: 1.0,
            zero: 0,
        };
        assert_eq!(quantize_value(2.5, p, Format::INT8), 2);
        assert_eq!(quantize_value(3.5, p, Format::INT8), 4);
        assert_eq!(quantize_value(-2.5, p, Format::INT8), -2);
        assert_eq!(quantize_value(1e6, p, Format::INT8), 127);
        assert_eq!(quantize_value(-1e6, p, Format::INT4), -7);
    }

    #[test]
    fn int4_packing_round_trips() {
        let signed: Vec<i32> = (-7..=7).chain([3, -1]).collect();
        let packed = pack_int4(&signed);
        assert_eq!(packed.len(), signed.len().div_ceil(2));
        assert_eq!(unpack_int4(&packed, signed.len(), true), signed);
        let unsigned: Vec<i32> = (0..=15).chain([9]).collect();
        assert_eq!(
            unpack_int4(&pack_int4(&unsigned), unsigned.len(), false),
            unsigned
        );
        assert_eq!(
            pack_int4(&[1, 2]),
            vec![0x21],
            "element 0 in the low nibble"
        );
    }

    /// Property: inside the range, |x − x̂| ≤ S/2, for random tensors,
    /// schemes and shapes; and the codes stay within the format.
    #[test]
    fn round_trip_error_is_at_most_half_a_step() {
        let mut rng = StdRng::seed_from_u64(7);
        let schemes = [
            "int8-tensor",
            "int8-channel",
            "int8-g32",
            "int8-tensor-affine",
            "int4-g32",
            "int4-g64-sym",
            "int4-channel",
        ];
        for trial in 0..60 {
            let rows = rng.random_range(1..6);
            let cols = 64 * rng.random_range(1..4);
            let shift: f32 = rng.random_range(-2.0..2.0);
            let spread: f32 = 10f32.powf(rng.random_range(-3.0..2.0));
            let x: Vec<f32> = (0..rows * cols)
                .map(|_| shift * spread + spread * rng.random_range(-1.0..1.0f32))
                .collect();
            let scheme = Scheme::parse(schemes[trial % schemes.len()]).unwrap();
            let q = quantize(&x, &[rows, cols], &scheme).unwrap();
            let (qmin, qmax) = (scheme.format.qmin(), scheme.format.qmax());
            assert!(q.codes().iter().all(|c| (qmin..=qmax).contains(c)));
            for (i, (a, b)) in x.iter().zip(q.dequantize()).enumerate() {
                let s = q.params[q.block_of(i)].scale;
                assert!(
                    (a - b).abs() <= s / 2.0 * 1.0001,
                    "{scheme}: |{a} − {b}| > {s}/2"
                );
            }
        }
    }

    #[test]
    fn granularities_make_the_right_blocks() {
        let x: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let s = |n: &str| Scheme::parse(n).unwrap();
        assert_eq!(
            quantize(&x, &[4, 6], &s("int8-tensor"))
                .unwrap()
                .params
                .len(),
            1
        );
        assert_eq!(
            quantize(&x, &[4, 6], &s("int8-channel"))
                .unwrap()
                .params
                .len(),
            4
        );
        let col = Scheme {
            granularity: Granularity::PerChannel { axis: 1 },
            ..s("int8-channel")
        };
        let q = quantize(&x, &[4, 6], &col).unwrap();
        assert_eq!(q.params.len(), 6);
        assert_eq!((q.block_of(0), q.block_of(7), q.block_of(23)), (0, 1, 5));
        assert_eq!(
            quantize(&x, &[4, 6], &s("int4-g3")).unwrap().params.len(),
            8
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        let s = Scheme::parse("int4-g32").unwrap();
        assert!(quantize(&[], &[0], &s).is_err(), "empty");
        assert!(quantize(&[1.0; 48], &[48], &s).is_err(), "group 32 ∤ 48");
        assert!(
            quantize(
                &[1.0, f32::NAN],
                &[2],
                &Scheme::parse("int8-tensor").unwrap()
            )
            .is_err()
        );
        assert!(quantize(&[1.0; 4], &[2, 3], &s).is_err(), "wrong length");
        for bad in [
            "int5-g32",
            "int4-g0",
            "int8-row",
            "int8-channel-p20",
            "int4-g32-zz",
        ] {
            assert!(Scheme::parse(bad).is_err(), "{bad}");
        }
        assert!(choose_params(1e9, 2e9, Format::INT4, Mode::Symmetric).is_err());
    }

    #[test]
    fn the_crude_schemes_keep_few_levels() {
        let values: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) / 10.0).collect();
        for (name, levels) in [("int3-g32", 7), ("int2-g32", 3)] {
            let s = Scheme::parse(name).unwrap();
            assert_eq!(s.mode, Mode::Symmetric, "{name} is symmetric by default");
            assert_eq!(s.name(), name, "the name reads back");
            let q = quantize(&values, &[2, 32], &s).unwrap();
            let mut codes = q.codes();
            assert!(codes.iter().all(|c| c.abs() <= (levels - 1) / 2), "{name}");
            codes.sort_unstable();
            codes.dedup();
            assert_eq!(codes.len(), levels as usize, "{name} uses all its levels");
        }
    }

    #[test]
    fn a_zero_width_range_is_defined() {
        let q = quantize(&[0.0; 32], &[32], &Scheme::parse("int4-g32").unwrap()).unwrap();
        assert!(q.dequantize().iter().all(|&v| v == 0.0));
        let q = quantize(&[2.5; 32], &[32], &Scheme::parse("int8-tensor").unwrap()).unwrap();
        assert!(q.dequantize().iter().all(|&v| (v - 2.5).abs() < 0.02));
    }

    #[test]
    fn names_round_trip_and_sizes_add_up() {
        for n in [
            "int8-channel",
            "int4-g32",
            "int4-g128-sym",
            "int8-tensor-affine-mse",
            "int8-tensor-p99.9",
        ] {
            assert_eq!(Scheme::parse(n).unwrap().name(), n);
        }
        let x = vec![0.5f32; 4096];
        let q = quantize(&x, &[64, 64], &Scheme::parse("int4-g32").unwrap()).unwrap();
        // 4 bits + (f16 scale + f16 minimum) / 32 = 5.0 bits: Q4_1.
        assert!((q.bits_per_weight() - 5.0).abs() < 1e-9, "the size of Q4_1");
        let q = quantize(&x, &[64, 64], &Scheme::parse("int8-g32").unwrap()).unwrap();
        assert!((q.bits_per_weight() - 8.5).abs() < 1e-9, "the size of Q8_0");
        assert_eq!(
            storage_bytes(&[64, 64], &q.scheme).unwrap(),
            q.storage_bytes()
        );
    }

    /// One vocabulary of formats: a scheme and the Mana Crystal's precision
    /// of the same name count the same bytes.
    #[test]
    fn schemes_and_precisions_agree_on_bytes() {
        use crate::budget::Precision;
        for n in [
            "int8-channel",
            "int8-g32",
            "int8-g32-affine",
            "int4-g32",
            "int4-g32-sym",
            "int4-g64",
            "int4-g128-sym",
        ] {
            let scheme = Scheme::parse(n).unwrap();
            let precision = Precision::parse(n).unwrap();
            assert_eq!(precision.name(), n);
            for (rows, cols) in [(576, 1536), (64, 4096)] {
                assert_eq!(
                    storage_bytes(&[rows, cols], &scheme).unwrap() as u64,
                    precision.matrix_bytes(rows as u64, cols as u64),
                    "{n} at {rows}×{cols}"
                );
            }
        }
        assert_eq!(Precision::parse("q4_1").unwrap().name(), "int4-g32");
    }

    #[test]
    fn clipping_trades_outliers_for_resolution() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut x: Vec<f32> = (0..4096).map(|_| rng.random_range(-1.0..1.0)).collect();
        x[17] = 60.0; // one outlier
        let err = |name: &str| {
            let q = quantize(&x, &[4096], &Scheme::parse(name).unwrap()).unwrap();
            sqnr_db(&x, &q.dequantize())
        };
        let (minmax, pct, mse) = (
            err("int4-tensor"),
            err("int4-tensor-p99.9"),
            err("int4-tensor-mse"),
        );
        assert!(
            mse >= minmax,
            "MSE clipping is never worse than min/max: {mse} < {minmax}"
        );
        assert!(pct.is_finite() && minmax.is_finite());
    }
}
