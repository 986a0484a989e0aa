//! `nindub quantize`: a model through one of the Codex's schemes (The
//! Alchemy of Compression).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use nindub::{assets, budget};

#[derive(Args)]
pub struct QuantizeArgs {
    /// The Codex's schemes (int8-channel, int8-g32, int4-g32, int4-g64-sym,
    /// int8-channel-mse, int8-tensor-p99.9, …) or a GGML type in GGML's own
    /// encoding (ggml-q4_k, ggml-q6_k, ggml-q4_1, ggml-q8_0, ggml-f32, …);
    /// `--scheme list` prints them all with their bits per weight.
    #[arg(long, required_unless_present = "recipe", conflicts_with = "recipe")]
    scheme: Option<String>,
    /// One of llama.cpp's file types with its per-tensor rules (q4_k_m,
    /// q5_k_m, q6_k, q4_1, q4_0, q8_0), written to OUTPUT.
    #[arg(long, requires = "output")]
    recipe: Option<String>,
    /// Requantize tensors that are already quantized into another type,
    /// though they lose precision (otherwise the export measures the loss,
    /// refuses, and writes nothing).
    #[arg(long)]
    allow_requantize: bool,
    /// Round with GPTQ against the inputs this text produces (the model in
    /// f32 reads it first): for the 32-weight block types (Q4_0, Q4_1, Q5_0,
    /// Q5_1, Q8_0); the others stay round-to-nearest.
    #[arg(long, value_name = "TEXT", requires = "output")]
    calibrate: Option<PathBuf>,
    /// Windows of 256 tokens of the calibration text.
    #[arg(long, default_value_t = 32, requires = "calibrate")]
    calibration_windows: usize,
    /// The first token of the calibration text to use.
    #[arg(long, default_value_t = 0, requires = "calibrate")]
    calibration_start: usize,
    /// GPTQ's damping, as a fraction of the mean of H's diagonal.
    #[arg(long, default_value_t = nindub::compress::gptq::GptqParams::DEFAULT.damp, requires = "calibrate")]
    damp: f64,
    /// Scales tried per block below GGML's, 2.5 % apart (0: GGML's scale).
    #[arg(long, default_value_t = nindub::compress::gptq::GptqParams::DEFAULT.shrink_steps, requires = "calibrate")]
    shrink_steps: usize,
    /// A GGUF file, a model directory, or a cached asset name.
    #[arg(required_unless_present = "scheme")]
    input: Option<String>,
    /// Where to write the quantized GGUF.
    output: Option<PathBuf>,
}

/// `--scheme list`: every scheme, what it writes, its bits per weight.
fn list() {
    use nindub::compress::export::{Recipe, ggml_type};
    use nindub::compress::quant::Scheme;
    use nindub::ggml::dtype;
    println!(
        "{:<18} {:<34} {:>10} {:>10}",
        "scheme", "writes", "disk b/w", "memory b/w"
    );
    for t in dtype::TYPES {
        let bits = dtype::bits_per_weight(t);
        // candle widens f16 matrices to f32 when it loads them; quantized
        // blocks stay as they are in both engines.
        let memory = if dtype::is_quantized(t) { bits } else { 32.0 };
        println!(
            "{:<18} {:<34} {:>10.4} {:>10.4}",
            format!("ggml-{}", dtype::name(t)),
            format!("{} (GGML's encoding)", nindub::model::gguf::dtype_name(t)),
            bits,
            memory
        );
    }
    for name in ["int8-g32", "int4-g32", "int3-g32", "int2-g32"] {
        if let Some(t) = Scheme::parse(name).ok().as_ref().and_then(ggml_type) {
            let how = match name {
                "int4-g32" => "integer zero-point",
                "int8-g32" => "scale rounded up to f16",
                _ => "codes in an 8-bit container",
            };
            let bits = dtype::bits_per_weight(t);
            println!(
                "{:<18} {:<34} {:>10.4} {:>10.4}",
                name,
                format!("{} ({how})", nindub::model::gguf::dtype_name(t)),
                bits,
                bits
            );
        }
    }
    for r in Recipe::ALL {
        println!(
            "{:<18} {:<34} {:>10} {:>10}",
            format!("--recipe {}", r.name()),
            if r.mixed {
                "mixed K-quants (llama.cpp's rules)"
            } else {
                "as llama.cpp's file type (output head Q6_K)"
            },
            "per model",
            "= disk"
        );
    }
    println!(
        "\nThe other schemes (int8-channel, int4-g64-sym, int8-tensor-p99.9, …) have no GGML block type: \
         without OUTPUT they report what they cost (fake quantization, f32 in memory).\n\
         Add --calibrate TEXT to round the blocks of 32 (q4_0, q4_1, q5_0, q5_1, q8_0, alone or in a recipe) \
         with GPTQ against the inputs TEXT produces; the file's layout and size do not change."
    );
}

pub fn run(args: QuantizeArgs) -> Result<()> {
    if args.scheme.as_deref() == Some("list") {
        list();
        return Ok(());
    }
    let Some(input) = args.input.as_deref() else {
        anyhow::bail!(
            "give a model to quantize (a GGUF file, a model directory or a cached asset name)"
        );
    };
    let output = args.output.as_deref();
    if let Some(recipe) = &args.recipe {
        let recipe = nindub::compress::export::Recipe::parse(recipe)?;
        let Some(output) = output else {
            anyhow::bail!("--recipe writes a GGUF: give OUTPUT");
        };
        return export(
            &args,
            input,
            output,
            nindub::compress::export::Target::Recipe(recipe),
        );
    }
    let scheme = args.scheme.as_deref().unwrap_or_default();
    use nindub::compress::qmodel::{self, Quantizer};
    let path = assets::resolve(input)?;
    if let Some(output) = output {
        return export(
            &args,
            input,
            output,
            nindub::compress::export::Target::parse(scheme)?,
        );
    }
    let quantizer = Quantizer::parse(scheme)?;
    let mut run = crate::runs::begin(
        "alchemy-of-compression",
        &format!("quantize {scheme} {input}"),
        &[],
    )?;
    if let Some(r) = run.as_mut() {
        r.input("model", &path, Some(input))?
            .param("scheme", scheme)
            .param("input", input);
    }
    let device = candle_core::Device::Cpu;
    let safetensors = path.extension().is_some_and(|e| e == "safetensors");
    let report = if path.is_dir() || safetensors {
        // A model directory: model.safetensors, config.json, tokenizer.json.
        let dir = if safetensors {
            path.parent().unwrap_or(&path).to_path_buf()
        } else {
            path.clone()
        };
        qmodel::MiniLm::load(&dir, Some(&quantizer), &device)?.1
    } else {
        qmodel::load_llama(&path, Some(&quantizer), &device, &mut |_| {})?.1
    };
    println!(
        "{} with {}: {:.2} bits/weight, {} of weights, SQNR {:.1} dB",
        path.display(),
        quantizer.name(),
        report.bits_per_weight(),
        budget::human(report.bytes() as u64),
        report.sqnr_db()
    );
    println!(
        "{:<48} {:>10} {:>8} {:>10}",
        "tensor", "values", "bits/w", "SQNR dB"
    );
    if let Some(rec) = run.as_mut() {
        rec.metric("bits_per_weight", report.bits_per_weight(), 0)
            .metric("sqnr_db", report.sqnr_db(), 0);
        // Metrics over steps: one step per tensor, in file order.
        for (i, t) in report.tensors.iter().enumerate() {
            if t.noise > 0.0 {
                rec.metric(
                    "tensor_sqnr_db",
                    10.0 * (t.signal / t.noise).log10(),
                    i as u64,
                );
            }
        }
    }
    for t in &report.tensors {
        let sqnr = if t.noise > 0.0 {
            format!("{:.1}", 10.0 * (t.signal / t.noise).log10())
        } else {
            "-".into()
        };
        println!(
            "{:<48} {:>10} {:>8.2} {:>10}",
            t.name,
            t.numel,
            8.0 * t.bytes as f64 / t.numel.max(1) as f64,
            sqnr
        );
    }
    crate::runs::finish(run)
}

/// Writes a GGUF: the export, what it did per type, and its lineage.
fn export(
    args: &QuantizeArgs,
    input: &str,
    output: &std::path::Path,
    target: nindub::compress::export::Target,
) -> Result<()> {
    use nindub::compress::export::{ExportOptions, quantize_gguf};
    let path = assets::resolve(input)?;
    let name = target.name();
    let mut run = crate::runs::begin(
        "alchemy-of-compression",
        &format!("quantize {name} {input}"),
        &[],
    )?;
    if let Some(r) = run.as_mut() {
        r.input("model", &path, Some(input))?
            .param("scheme", &name)
            .param("input", input)
            .param("allow_requantize", args.allow_requantize);
    }
    let started = std::time::Instant::now();
    if !(args.damp > 0.0 && args.damp.is_finite()) {
        anyhow::bail!("--damp must be a positive number (GPTQ's paper uses 0.01)");
    }
    let calibration = match &args.calibrate {
        Some(text) => {
            let c = nindub::compress::calibrate::calibrate_file(
                &path,
                text,
                args.calibration_windows,
                256,
                args.calibration_start,
                true,
            )?;
            eprintln!(
                "nindub: calibrated {} matrices on {} windows of 256 tokens of {} in {:.1} s",
                c.len(),
                c.text.windows,
                c.text.name,
                started.elapsed().as_secs_f64()
            );
            if let Some(r) = run.as_mut() {
                r.input("calibration", text, text.to_str())?
                    .param("calibration_windows", args.calibration_windows)
                    .param("calibration_start", args.calibration_start)
                    .param("gptq_damp", args.damp)
                    .param("gptq_shrink_steps", args.shrink_steps);
            }
            Some(c)
        }
        None => None,
    };
    let options = ExportOptions {
        allow_requantize: args.allow_requantize,
        progress: true,
        calibration: calibration.as_ref(),
        gptq: nindub::compress::gptq::GptqParams {
            damp: args.damp,
            shrink_steps: args.shrink_steps,
        },
    };
    let r = quantize_gguf(&path, output, target, &options)?;
    // What became of the tensors, by (from → to).
    let mut kinds: std::collections::BTreeMap<(String, String, bool, bool), usize> =
        Default::default();
    for t in &r.per_tensor {
        *kinds
            .entry((t.from.clone(), t.to.clone(), t.copied, t.gptq))
            .or_default() += 1;
    }
    for ((from, to, copied, gptq), n) in kinds {
        let how = match (copied, gptq) {
            (true, _) => "copied",
            (false, true) => "rounded by GPTQ",
            _ => "re-encoded",
        };
        println!("  {n:>4} tensors {from:>5} → {to:<5} {how}");
    }
    println!(
        "wrote {} ({}): {} as {:.3} bits per weight of the matrices; SQNR against the input {}; candle reads the blocks back within {:.2e} of nindub's",
        output.display(),
        budget::human(r.file_bytes),
        r.scheme,
        r.bits_per_weight,
        r.sqnr_db
            .map_or("∞ (every value kept)".into(), |d| format!("{d:.1} dB")),
        r.max_dequant_diff
    );
    eprintln!(
        "nindub: quantized in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    crate::provenance::record_lineage(
        &path,
        output,
        nindub::provenance::Relation::Quantized,
        run.as_ref(),
    )?;
    if let Some(rec) = run.as_mut() {
        rec.metric("tensors_quantized", r.quantized as f64, 0)
            .metric("tensors_copied", r.copied as f64, 0)
            .metric("file_bytes", r.file_bytes as f64, 0)
            .metric("bits_per_weight", r.bits_per_weight, 0)
            .metric("max_dequant_diff", f64::from(r.max_dequant_diff), 0);
        if let Some(d) = r.sqnr_db {
            rec.metric("sqnr_db", d, 0);
        }
        rec.artifact(
            "output",
            output,
            args.output.as_ref().and_then(|o| o.to_str()),
        )?;
    }
    crate::runs::finish(run)
}
