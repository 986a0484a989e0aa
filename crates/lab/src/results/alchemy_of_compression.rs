//! Generates the Results of "The Alchemy of Compression" into a directory:
//! `cargo run -p lab --bin results -- run alchemy_of_compression book/src/generated/alchemy-of-compression`
//! (or `cargo codex results`). Needs SmolLM2 and MiniLM (fetched into the
//! cache) and the corpus named by `NINDUB_CORPUS`. Everything written here
//! is computed; nothing depends on the clock.

mod llama_cpp;

use super::write;
use std::fmt::Write as _;
use std::path::Path;

use crate::plot::LineChart;
use anyhow::Result;
use candle_core::Device;
use nindub::budget::{self, Machine, Precision, Workload};
use nindub::compress::perplexity::{self, CHUNKS, CTX};
use nindub::compress::qmodel::{self, MiniLm, ModelReport, Quantizer};
use nindub::compress::quant::{self, Scheme};
use nindub::model::gguf::GgufFile;
use nindub::model::tokenizer::GgufTokenizer;
use nindub::{Architecture, assets, corpus};

/// The schemes every table compares (the reference is f32).
const SCHEMES: &[&str] = &[
    "int8-tensor",
    "int8-channel",
    "int8-g32",
    "int4-channel",
    "int4-g64",
    "int4-g32",
    "int4-g32-sym",
    "int4-g32-mse",
    "ggml-q8_0",
    "ggml-q6_k",
    "ggml-q5_k",
    "ggml-q4_k",
    "ggml-q4_1",
    "ggml-q4_0",
];

/// Sentences for the embedding comparison.
const SENTENCES: &[&str] = &[
    "A small GPU can still run a language model.",
    "The cat sat on the mat and watched the rain.",
    "Quantization stores each weight in fewer bits.",
    "Paris is the capital of France.",
    "He sold his old bicycle to buy a guitar.",
    "The stock market fell sharply on Tuesday.",
    "Photosynthesis turns sunlight into chemical energy.",
    "Please restart the server before the deployment.",
    "To be, or not to be, that is the question.",
    "The recipe needs two eggs and a cup of flour.",
    "Rust guarantees memory safety without a garbage collector.",
    "The team celebrated their victory late into the night.",
    "A neural network is a stack of linear maps and non-linearities.",
    "She planted tomatoes, basil and peppers in the garden.",
    "The train to Edinburgh leaves at half past nine.",
    "Memory bandwidth limits how fast a model can generate tokens.",
];

/// Writes the chapter's results into `out`.
pub fn generate(out: &Path) -> Result<()> {
    let out = out.to_path_buf();
    let mut figs = super::Figures::default();
    let reports = smollm2(&out, &mut figs)?;
    llama_cpp::peer(&out, &reports, &mut figs)?;
    minilm(&out, &mut figs)?;
    zero_point(&out, &mut figs)?;
    four_gib(&out, &mut figs)?;
    figs.write(&out)?;
    println!("alchemy_of_compression: wrote results to {}", out.display());
    Ok(())
}

/// The first CHUNKS × CTX tokens of the corpus.
fn corpus_tokens(tok: &GgufTokenizer) -> Result<Vec<u32>> {
    let text = corpus::load()?;
    let mut ids = tok.encode(&text)?;
    ids.truncate(CTX * CHUNKS);
    Ok(ids)
}

/// SmolLM2 through every scheme: size, SQNR, perplexity.
fn smollm2(out: &Path, figs: &mut super::Figures) -> Result<Vec<(String, ModelReport, f64)>> {
    let path = assets::smollm2()?;
    let tok = GgufTokenizer::from_gguf(&GgufFile::open(&path)?)?;
    let tokens = corpus_tokens(&tok)?;
    let mut rows = String::from(
        "| scheme | bits/weight | weights | SQNR (dB) | perplexity | vs. reference |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let mut reports = vec![];
    let mut reference = None;
    let mut by_layer = vec![];
    for name in std::iter::once("f32 (reference)").chain(SCHEMES.iter().copied()) {
        let scheme = if name.starts_with("f32") {
            None
        } else {
            Some(Quantizer::parse(name)?)
        };
        let (mut model, report) =
            qmodel::load_llama(&path, scheme.as_ref(), &Device::Cpu, &mut |_| {})?;
        let p = perplexity::perplexity(&mut model, &tokens, CTX, CHUNKS, |_| {})?;
        let base = *reference.get_or_insert(p.ppl);
        let change = 100.0 * (p.ppl / base - 1.0);
        writeln!(
            rows,
            "| {name} | {:.2} | {} | {} | {:.3} | {change:+.2} % |",
            report.bits_per_weight(),
            budget::human(report.bytes() as u64),
            db(report.sqnr_db()),
            p.ppl,
        )?;
        let key = format!("alchemy.smollm2.{}", super::figure_key(name));
        table_figures(figs, &key, &report);
        figs.number(&format!("{key}.ppl"), p.ppl, 3, "");
        figs.add(
            &format!("{key}.ppl_change"),
            change,
            "%",
            format!("{change:+.2}"),
        );
        reports.push((name.to_string(), report.clone(), p.ppl));
        if scheme.is_some() {
            by_layer.push((
                name.to_string(),
                report
                    .sqnr_by_layer()
                    .into_iter()
                    .map(|(l, s)| (l as f64, s))
                    .collect::<Vec<_>>(),
            ));
        }
        eprintln!("smollm2 {name}: ppl {:.3}", p.ppl);
    }
    writeln!(
        rows,
        "\nPerplexity over {} predictions ({} windows of {} tokens) of the corpus; the reference is the Q4_1 file's weights, dequantized to f32.",
        CHUNKS * (CTX - 1),
        CHUNKS,
        CTX
    )?;
    write(out, "smollm2.md", &rows)?;
    // The gap the Insight reads as "six decibels a bit".
    let sqnr = |n: &str| {
        reports
            .iter()
            .find(|(name, ..)| name == n)
            .map(|(_, r, _)| r.sqnr_db())
    };
    if let (Some(s8), Some(s4)) = (sqnr("int8-g32"), sqnr("int4-g32")) {
        figs.number("alchemy.smollm2.int8_int4_gap", s8 - s4, 1, "dB");
        figs.number("alchemy.smollm2.db_per_bit", (s8 - s4) / 4.0, 2, "dB");
    }
    LineChart {
        title: "SmolLM2-135M: SQNR of each layer's weights, per scheme".into(),
        x_desc: "layer".into(),
        y_desc: "SQNR (dB)".into(),
        series: by_layer
            .into_iter()
            .filter(|(n, _)| {
                ["int8-channel", "int8-g32", "int4-g32", "int4-g32-sym"].contains(&n.as_str())
            })
            .collect(),
        reference: None,
        log_x: false,
        log_y: false,
    }
    .draw()?
    .save(out.join("sqnr-by-layer.svg"))?;
    Ok(reports)
}

fn db(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else {
        "∞".into()
    }
}

/// MiniLM through every scheme: sentence embeddings against f32.
fn minilm(out: &Path, figs: &mut super::Figures) -> Result<()> {
    let dir = assets::minilm()?;
    let (f32_model, _) = MiniLm::load(&dir, None, &Device::Cpu)?;
    let reference: Vec<Vec<f32>> = SENTENCES
        .iter()
        .map(|s| f32_model.embed(s))
        .collect::<nindub::Result<_>>()?;
    let mut rows = String::from(
        "| scheme | bits/weight | weights | SQNR (dB) | mean cosine to f32 | worst sentence |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for name in SCHEMES {
        let scheme = Quantizer::parse(name)?;
        let (model, report) = MiniLm::load(&dir, Some(&scheme), &Device::Cpu)?;
        let cos: Vec<f64> = SENTENCES
            .iter()
            .zip(&reference)
            .map(|(s, r)| Ok(qmodel::cosine(&model.embed(s)?, r)))
            .collect::<Result<_>>()?;
        let mean = cos.iter().sum::<f64>() / cos.len() as f64;
        let worst = cos.iter().copied().fold(f64::INFINITY, f64::min);
        writeln!(
            rows,
            "| {name} | {:.2} | {} | {} | {mean:.5} | {worst:.5} |",
            report.bits_per_weight(),
            budget::human(report.bytes() as u64),
            db(report.sqnr_db()),
        )?;
        let key = format!("alchemy.minilm.{}", super::figure_key(name));
        table_figures(figs, &key, &report);
        figs.number(&format!("{key}.cosine"), mean, 5, "");
        figs.number(&format!("{key}.worst"), worst, 5, "");
    }
    let f32_bytes = MiniLm::load(&dir, None, &Device::Cpu)?.1.bytes() as u64;
    figs.add(
        "alchemy.minilm.f32.weights",
        f32_bytes as f64 / (1u64 << 20) as f64,
        "MiB",
        budget::human(f32_bytes),
    );
    writeln!(
        rows,
        "\n{} sentences; embeddings are mean-pooled and normalised, as sentence-transformers does. f32: {} of weights.",
        SENTENCES.len(),
        budget::human(f32_bytes)
    )?;
    write(out, "minilm.md", &rows)?;
    Ok(())
}

// ANCHOR: float_zero
/// The counter-example: an affine grid whose offset is the block's minimum
/// itself (`x̂ = S·q + m`, like GGUF's Q4_1), so 0.0 lands wherever the
/// grid happens to fall.
fn float_zero_roundtrip(x: &[f32], bits: u8) -> Vec<f32> {
    let (min, max) = x
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let levels = ((1u32 << bits) - 1) as f32;
    let s = (max - min) / levels;
    x.iter()
        .map(|&v| s * ((v - min) / s).round_ties_even().clamp(0.0, levels) + min)
        .collect()
}
// ANCHOR_END: float_zero

/// Round trip of a whole tensor under a scheme (per-tensor).
fn roundtrip(x: &[f32], scheme: &str) -> Result<Vec<f32>> {
    Ok(quant::quantize(x, &[x.len()], &Scheme::parse(scheme)?)?.dequantize())
}

/// A deterministic pseudo-random stream (no clock, no dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn gauss(&mut self) -> f32 {
        // A sum of 12 uniforms on [-1/2, 1/2]: close to a standard normal.
        (0..12).map(|_| self.next() * 0.5).sum::<f32>()
    }
}

/// Symmetric vs. affine on a non-negative tensor, and what an inexact zero
/// does to padding through a few layers.
fn zero_point(out: &Path, figs: &mut super::Figures) -> Result<()> {
    let mut rng = Lcg(42);
    // 1. A ReLU output: half zeros, the rest positive.
    let relu: Vec<f32> = (0..4096).map(|_| rng.gauss().max(0.0)).collect();
    let gelu: Vec<f32> = (0..4096)
        .map(|_| {
            let x = rng.gauss();
            0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044715 * x * x * x)).tanh())
        })
        .collect();
    let mut s = String::from(
        "| tensor | quantizer | codes used | SQNR (dB) | zeros kept exactly |\n|---|---|---:|---:|---:|\n",
    );
    for (tname, x) in [("ReLU output", &relu), ("GELU output", &gelu)] {
        let zeros = x.iter().filter(|&&v| v == 0.0).count();
        let near_zero: Vec<usize> = (0..x.len()).filter(|&i| x[i] == 0.0).collect();
        for (qname, y, used) in [
            (
                "int8 symmetric (Z = 0)",
                roundtrip(x, "int8-tensor")?,
                codes_used(x, "int8-tensor")?,
            ),
            (
                "int8 affine, integer Z",
                roundtrip(x, "int8-tensor-affine")?,
                codes_used(x, "int8-tensor-affine")?,
            ),
            (
                "int8 affine, float offset m",
                float_zero_roundtrip(x, 8),
                256,
            ),
            (
                "int4 affine, integer Z",
                roundtrip(x, "int4-tensor")?,
                codes_used(x, "int4-tensor")?,
            ),
            (
                "int4 affine, float offset m",
                float_zero_roundtrip(x, 4),
                16,
            ),
        ] {
            let kept = near_zero.iter().filter(|&&i| y[i] == 0.0).count();
            let kept = if zeros == 0 {
                "(no zeros)".to_string()
            } else {
                format!("{kept} / {zeros}")
            };
            let used = if qname.contains("float") {
                "all".to_string()
            } else {
                used.to_string()
            };
            let sqnr = quant::sqnr_db(x, &y);
            writeln!(s, "| {tname} | {qname} | {used} | {} | {kept} |", db(sqnr))?;
            let key = format!(
                "alchemy.zero.{}.{}",
                super::figure_key(tname),
                super::figure_key(qname)
            );
            figs.number(&format!("{key}.sqnr"), sqnr, 1, "dB");
            if !qname.contains("float") {
                figs.number(&format!("{key}.codes"), used.parse()?, 0, "");
            }
        }
    }
    write(out, "zero-point.md", &s)?;

    // 2. Padding through layers: rows 48..64 of a [64, 64] activation are
    // padding (exact zeros). Each layer: quantize the activations
    // (per tensor), multiply by a random weight, GELU. A mean over all rows
    // (pooling without a mask) shows what the padding leaks.
    let (rows, dim, real) = (64usize, 64usize, 48usize);
    let weights: Vec<Vec<f32>> = (0..4)
        .map(|_| {
            (0..dim * dim)
                .map(|_| rng.gauss() / (dim as f32).sqrt())
                .collect()
        })
        .collect();
    let mut x0 = vec![0f32; rows * dim];
    for v in x0.iter_mut().take(real * dim) {
        *v = rng.gauss();
    }
    let mut t = String::from(
        "| after layer | ‖padding rows‖, integer Z | ‖padding rows‖, float offset m | pooled error, integer Z | pooled error, float offset m |\n|---:|---:|---:|---:|---:|\n",
    );
    let mut exact = x0.clone();
    let mut float = x0.clone();
    let mut clean = x0.clone();
    for (l, w) in weights.iter().enumerate() {
        let q_exact = roundtrip(&exact, "int8-tensor-affine")?;
        let q_float = float_zero_roundtrip(&float, 8);
        exact = layer(&q_exact, w, rows, dim);
        float = layer(&q_float, w, rows, dim);
        clean = layer(&clean, w, rows, dim);
        let pad_norm = |a: &[f32]| a[real * dim..].iter().map(|v| v * v).sum::<f32>().sqrt();
        let pooled_err = |a: &[f32]| {
            let (pa, pc) = (pool(a, rows, dim), pool(&clean, rows, dim));
            let d: f32 = pa.iter().zip(&pc).map(|(x, y)| (x - y).powi(2)).sum();
            let n: f32 = pc.iter().map(|y| y * y).sum();
            (d / n).sqrt()
        };
        let (err_exact, err_float) = (100.0 * pooled_err(&exact), 100.0 * pooled_err(&float));
        writeln!(
            t,
            "| {} | {:.3e} | {:.3e} | {err_exact:.2} % | {err_float:.2} % |",
            l + 1,
            pad_norm(&exact),
            pad_norm(&float),
        )?;
        let key = format!("alchemy.padding.layer{}", l + 1);
        let norm = pad_norm(&float) as f64;
        figs.add(&format!("{key}.float_norm"), norm, "", format!("{norm:.2}"));
        figs.number(&format!("{key}.error_integer"), err_exact as f64, 2, "%");
        figs.number(&format!("{key}.error_float"), err_float as f64, 2, "%");
    }
    write(out, "zero-point-layers.md", &t)?;
    Ok(())
}

fn codes_used(x: &[f32], scheme: &str) -> Result<usize> {
    let mut c = quant::quantize(x, &[x.len()], &Scheme::parse(scheme)?)?.codes();
    c.sort_unstable();
    c.dedup();
    Ok(c.len())
}

/// `gelu(x · W)` for `x` of `[rows, dim]`.
fn layer(x: &[f32], w: &[f32], rows: usize, dim: usize) -> Vec<f32> {
    let mut y = vec![0f32; rows * dim];
    for r in 0..rows {
        for c in 0..dim {
            let v: f32 = (0..dim).map(|k| x[r * dim + k] * w[k * dim + c]).sum();
            y[r * dim + c] = 0.5 * v * (1.0 + (0.797_884_6 * (v + 0.044715 * v * v * v)).tanh());
        }
    }
    y
}

/// Mean over rows.
fn pool(x: &[f32], rows: usize, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|c| (0..rows).map(|r| x[r * dim + c]).sum::<f32>() / rows as f32)
        .collect()
}

/// The Mana Crystal's models at the bits per weight measured here.
fn four_gib(out: &Path, figs: &mut super::Figures) -> Result<()> {
    let machine = Machine::MANA_CRYSTAL;
    let workload = Workload::default();
    let schemes = ["int8-channel", "int4-g64", "int4-g32"];
    let mut s = String::from("| model | f16 |");
    for n in schemes {
        write!(s, " {n} |")?;
    }
    writeln!(s, "\n|---|---|{}", "---|".repeat(schemes.len()))?;
    for preset in ["llama-3-8b", "phi-3-mini", "qwen-2.5-32b"] {
        let arch = Architecture::preset(preset)?;
        write!(s, "| {} |", arch.name)?;
        for n in std::iter::once("f16").chain(schemes) {
            // The Mana Crystal's estimator, the scheme's name its precision:
            // one accounting of bytes (`quant::storage_bytes` agrees).
            let e = budget::estimate(&arch, Precision::parse(n)?, &workload)?;
            let verdict = budget::verdict(&e, &arch, &machine).describe();
            write!(s, " {} → {verdict} |", budget::human(e.total))?;
            let key = format!("alchemy.four_gib.{preset}.{n}");
            figs.add(
                &format!("{key}.total"),
                e.total as f64 / (1u64 << 30) as f64,
                "GiB",
                budget::human(e.total),
            );
            figs.text(&format!("{key}.verdict"), &verdict);
        }
        writeln!(s)?;
    }
    let bpw: Vec<String> = schemes
        .iter()
        .map(|n| {
            Ok(format!(
                "{n} {:.2}",
                Precision::parse(n)?.bits_per_weight(4096)
            ))
        })
        .collect::<Result<_>>()?;
    writeln!(
        s,
        "\nContext {} tokens, KV cache in f16, on the Mana Crystal ({} device). Matrices stored as a GGUF file stores them (an f16 scale per group, and an f16 offset when affine), vectors in f32; bits per weight on a row of 4096: {}.",
        workload.context,
        budget::human(machine.device),
        bpw.join(", ")
    )?;
    write(out, "four-gib.md", &s)?;
    Ok(())
}

/// A scheme's row of a model table as figures: bits per weight, weight
/// bytes and SQNR.
fn table_figures(figs: &mut super::Figures, key: &str, report: &ModelReport) {
    figs.number(&format!("{key}.bpw"), report.bits_per_weight(), 2, "");
    figs.add(
        &format!("{key}.weights"),
        report.bytes() as f64 / (1u64 << 20) as f64,
        "MiB",
        budget::human(report.bytes() as u64),
    );
    let sqnr = report.sqnr_db();
    if sqnr.is_finite() {
        figs.number(&format!("{key}.sqnr"), sqnr, 1, "dB");
    }
}
