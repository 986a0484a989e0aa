//! `nindub split` and `nindub synth`: models as per-layer shards, cut from
//! a GGUF or made up with a real model's shape.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use nindub::assets;
use nindub::model::gguf;
use nindub::provenance::Relation;
use nindub::stream::shard;

#[derive(Args)]
pub struct SplitArgs {
    /// A GGUF file or the name of a cached asset.
    #[arg(long, default_value = "smollm2")]
    model: String,
    /// The directory to create (must not exist or be empty).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct SynthArgs {
    #[arg(long, default_value = "llama-3-8b")]
    preset: String,
    /// Decoder layers (default: the preset's).
    #[arg(long)]
    layers: Option<usize>,
    /// Q4_0, Q4_1 or Q8_0.
    #[arg(long, default_value = "Q4_0")]
    format: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The directory to create (must not exist or be empty).
    #[arg(long)]
    out: PathBuf,
    /// Print the shape and size without writing anything.
    #[arg(long)]
    dry_run: bool,
}

pub fn split(args: SplitArgs) -> Result<()> {
    let out = &args.out;
    nindub::fsx::check_output_dir(out)?;
    let model = assets::resolve(&args.model)?;
    let m = shard::split(&model, out, true)?;
    println!(
        "{}: {} layer shards and base.gguf, {:.1} MB, manifest.json written last",
        out.display(),
        m.layers.len(),
        m.total_bytes() as f64 / 1e6
    );
    crate::provenance::record_lineage(&model, out, Relation::Split, None)
}

pub fn synth(args: SynthArgs) -> Result<()> {
    let (preset, layers, format, seed, out, dry_run) = (
        &args.preset,
        args.layers,
        &args.format,
        args.seed,
        &args.out,
        args.dry_run,
    );
    use candle_core::quantized::GgmlDType;
    let dtype = match format.to_ascii_uppercase().as_str() {
        "Q4_0" => GgmlDType::Q4_0,
        "Q4_1" => GgmlDType::Q4_1,
        "Q8_0" => GgmlDType::Q8_0,
        other => anyhow::bail!("format `{other}`: Q4_0, Q4_1 or Q8_0"),
    };
    let mut spec = nindub::stream::synth::SynthSpec::preset(preset)?
        .with_dtype(dtype)
        .with_seed(seed);
    if let Some(n) = layers {
        spec = spec.with_layers(n);
    }
    spec.validate()?;
    println!(
        "{}: {} layers of {:.1} MB, {:.2} B parameters, {:.2} GB in {format}",
        spec.name,
        spec.layers,
        spec.layer_bytes() as f64 / 1e6,
        spec.params() as f64 / 1e9,
        spec.bytes() as f64 / 1e9
    );
    if dry_run {
        return Ok(());
    }
    nindub::fsx::check_output_dir(out)?;
    let tokenizer = gguf::GgufFile::open(&assets::smollm2()?)?;
    nindub::stream::synth::write(&spec, Some(&tokenizer), out, true)?;
    println!("{}: written (SmolLM2's tokenizer copied in)", out.display());
    Ok(())
}
