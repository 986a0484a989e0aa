//! `nindub estimate`: how much memory a model needs, and whether it fits
//! (The Mana Crystal).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use nindub::budget::{self, Machine, Precision, Workload};
use nindub::{Architecture, assets};

#[derive(Args)]
pub struct EstimateArgs {
    /// A GGUF file, a config.json (or its directory), or an asset name.
    #[arg(long, conflicts_with = "preset")]
    model: Option<String>,
    /// A published configuration: llama-3-8b, phi-3-mini, qwen-2.5-32b, smollm2-135m.
    #[arg(long)]
    preset: Option<String>,
    /// Precisions to compare, comma-separated (f32, f16, bf16, int8, int4, int4-g128-sym, q8_0...).
    #[arg(long, value_delimiter = ',', default_value = "f32,f16,int8,int4")]
    precision: Vec<String>,
    /// Tokens of context (sizes the KV cache).
    #[arg(long, default_value_t = 4096)]
    context: u64,
    /// Sequences in a batch.
    #[arg(long, default_value_t = 1)]
    batch: u64,
    /// Bytes per KV-cache element (2 = f16).
    #[arg(long, default_value_t = 2)]
    kv_bytes: u64,
    /// Device memory budget.
    #[arg(long, default_value = "4GiB")]
    budget: String,
    /// Host RAM available for offloaded layers.
    #[arg(long, default_value = "12GiB")]
    host: String,
    /// Runtime overhead on the device (CUDA context, workspaces).
    #[arg(long, default_value = "400MiB")]
    overhead: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: EstimateArgs) -> Result<()> {
    let workload = Workload {
        context: a.context,
        batch: a.batch,
        kv_bytes: a.kv_bytes,
        overhead: budget::parse_bytes(&a.overhead)?,
        ..Workload::default()
    };
    let machine = Machine {
        device: budget::parse_bytes(&a.budget)?,
        host: budget::parse_bytes(&a.host)?,
    };
    let (arch, path) = match (&a.model, &a.preset) {
        (Some(m), _) => load_architecture(m)?,
        (None, Some(p)) => (Architecture::preset(p)?, None),
        (None, None) => bail!(
            "name a model (--model smollm2, a GGUF file, a config.json) or a preset (--preset llama-3-8b); the seed's Table 2 is recomputed in the book (`cargo codex results`)"
        ),
    };
    let precisions = a
        .precision
        .iter()
        .map(|p| Precision::parse(p))
        .collect::<nindub::Result<Vec<_>>>()?;
    let mut rows = vec![];
    for p in &precisions {
        let e = budget::estimate(&arch, *p, &workload)?;
        let v = budget::verdict(&e, &arch, &machine);
        let max_ctx = budget::max_context(&arch, *p, &workload, machine.device)?;
        rows.push((e, v, max_ctx));
    }
    if a.json {
        let json: Vec<_> = rows
            .iter()
            .map(|(e, v, c)| serde_json::json!({"estimate": e, "verdict": v, "max_context": c}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!(
        "{}: {:.1} M parameters, {} layers, context {} (batch {}), device {}, host {}",
        arch.name,
        arch.param_count() as f64 / 1e6,
        arch.num_layers,
        a.context,
        a.batch,
        budget::human(machine.device),
        budget::human(machine.host)
    );
    println!(
        "{:<18} {:>11} {:>11} {:>11} {:>11} {:>11}  {:<40} {:>10}",
        "precision",
        "weights",
        "kv cache",
        "activations",
        "overhead",
        "total",
        "verdict",
        "max ctx"
    );
    for (e, v, c) in &rows {
        println!(
            "{:<18} {:>11} {:>11} {:>11} {:>11} {:>11}  {:<40} {:>10}",
            e.precision,
            budget::human(e.weights),
            budget::human(e.kv_cache),
            budget::human(e.activations),
            budget::human(e.overhead),
            budget::human(e.total),
            v.describe(),
            c.map_or("none".into(), |c| c.to_string())
        );
    }
    if let Some(path) = path.filter(|p| p.extension().is_some_and(|e| e == "gguf")) {
        let m = budget::measure_gguf(&path)?;
        println!(
            "\nmeasured {}: file {} ({} bytes); tensors {}; the estimate with the file's own tensor types: {} (difference {} bytes)",
            path.file_name().unwrap_or_default().to_string_lossy(),
            budget::human(m.file_size),
            m.file_size,
            budget::human(m.tensor_bytes),
            budget::human(m.estimated_bytes),
            m.tensor_bytes as i64 - m.estimated_bytes as i64
        );
    }
    Ok(())
}

fn load_architecture(model: &str) -> Result<(Architecture, Option<PathBuf>)> {
    let path = assets::resolve(model)?;
    // A directory or a safetensors file is described by its config.json.
    let path = if path.is_dir() {
        path.join("config.json")
    } else if path.extension().is_some_and(|e| e == "safetensors") {
        path.with_file_name("config.json")
    } else {
        path
    };
    let arch = if path.extension().is_some_and(|e| e == "json") {
        Architecture::from_config_json(&path)?
    } else {
        Architecture::from_gguf(&path)?
    };
    Ok((arch, Some(path)))
}
