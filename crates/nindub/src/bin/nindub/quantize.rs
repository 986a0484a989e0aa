//! `nindub quantize`: a model through one of the Codex's schemes (The
//! Alchemy of Compression).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use nindub::{assets, budget};

#[derive(Args)]
pub struct QuantizeArgs {
    /// int8-tensor, int8-channel, int8-g32, int4-g32, int4-g64-sym,
    /// int8-channel-mse, int8-tensor-p99.9, … or ggml-q8_0/q4_1/q4_0
    /// (candle's GGML quantizer, report only).
    #[arg(long)]
    scheme: String,
    /// A GGUF file, a model directory, or a cached asset name.
    input: String,
    /// Where to write the quantized GGUF.
    output: Option<PathBuf>,
}

pub fn run(args: QuantizeArgs) -> Result<()> {
    let (scheme, input, output) = (&args.scheme, &args.input, args.output.as_deref());
    use nindub::compress::qmodel::{self, Quantizer};
    let path = assets::resolve(input)?;
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
    if let Some(output) = output {
        let Quantizer::Ours(scheme) = quantizer else {
            anyhow::bail!("GGUF export takes one of the Codex's schemes (int8-g32, int4-g32)");
        };
        let started = std::time::Instant::now();
        let r = nindub::compress::export::quantize_gguf(&path, output, &scheme, true)?;
        println!(
            "wrote {} ({}): {} of {} tensors as {}; candle reads the blocks back within {:.2e} of nindub's dequantization",
            output.display(),
            budget::human(r.file_bytes),
            r.quantized,
            r.tensors,
            r.scheme,
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
                .metric("file_bytes", r.file_bytes as f64, 0)
                .metric("max_dequant_diff", f64::from(r.max_dequant_diff), 0)
                .artifact(
                    "output",
                    output,
                    args.output.as_ref().and_then(|o| o.to_str()),
                )?;
        }
        return crate::runs::finish(run);
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
