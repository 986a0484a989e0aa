//! `nindub place`: where the fused engine would hold a model's layers
//! within a budget, from the file's header alone.

use anyhow::Result;
use clap::Args;
use nindub::assets;
use nindub::stream::placement;
use nindub::stream::source::ModelSource;

#[derive(Args)]
pub struct PlaceArgs {
    /// A GGUF file, or the name of a cached asset.
    #[arg(long, default_value = "smollm2")]
    model: String,
    /// The budget, e.g. 60MB or 4GiB.
    #[arg(long)]
    budget: bytesize::ByteSize,
    /// Positions the KV cache must hold.
    #[arg(long, default_value_t = 2048)]
    context: usize,
    /// One staging buffer instead of two (no prefetch).
    #[arg(long)]
    no_prefetch: bool,
}

pub fn run(args: PlaceArgs) -> Result<()> {
    let (budget, context, prefetch) = (args.budget.as_u64(), args.context, !args.no_prefetch);
    let source = ModelSource::open(&assets::resolve(&args.model)?)?;
    let file = source.base();
    let demand = placement::demand(&source, context)?;
    let p = placement::plan(&demand, budget, if prefetch { 2 } else { 1 })?;
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "{}: {} layers of {:.2} MB; KV cache for {context} positions {:.1} MB; activations {:.1} MB; embedding and head {:.1} MB",
        file.path.file_name().unwrap_or_default().to_string_lossy(),
        demand.layers.len(),
        mb(demand.layers.iter().copied().max().unwrap_or(0)),
        mb(demand.kv_cache),
        mb(demand.activations),
        mb(demand.fixed)
    );
    println!("{p}");
    let list = |v: &[usize]| match (v.first(), v.last()) {
        (Some(a), Some(b)) => format!("{a}–{b}"),
        _ => "none".into(),
    };
    println!(
        "resident: {}; streamed: {}",
        list(&p.resident),
        list(&p.streamed)
    );
    Ok(())
}
