//! `nindub inspect`: a GGUF file's architecture, metadata and tensors.

use anyhow::Result;
use clap::Args;
use nindub::model::gguf;
use nindub::{assets, budget};

#[derive(Args)]
pub struct InspectArgs {
    /// A GGUF file, or the name of a cached asset (`smollm2`).
    model: String,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let path = assets::resolve(&args.model)?;
    let file = gguf::GgufFile::open(&path)?;
    let arch = file.architecture()?;
    println!("{}", path.display());
    println!("{}", serde_json::to_string_pretty(&arch)?);
    println!("metadata:");
    let mut keys: Vec<_> = file.content.metadata.keys().collect();
    keys.sort();
    for key in keys {
        println!(
            "  {key:<40} {}",
            gguf::describe_value(&file.content.metadata[key])
        );
    }
    let tensors = file.tensors();
    let total: u64 = tensors.iter().map(|t| t.bytes).sum();
    println!(
        "{} tensors, {} of tensor data in a {} file",
        tensors.len(),
        budget::human(total),
        budget::human(file.file_size)
    );
    println!(
        "{:<32} {:<16} {:<6} {:>12} {:>6}",
        "tensor", "shape", "type", "bytes", "bpw"
    );
    for t in &tensors {
        let dims: Vec<_> = t.dims.iter().map(u64::to_string).collect();
        println!(
            "{:<32} {:<16} {:<6} {:>12} {:>6.2}",
            t.name,
            dims.join("x"),
            t.dtype,
            t.bytes,
            t.bits_per_weight()
        );
    }
    Ok(())
}
