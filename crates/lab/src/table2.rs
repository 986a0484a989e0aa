//! The seed's Table 2 ("Quantization efficiency under the 4 GB limit"),
//! as the seed states it, and recomputed by [`nindub::budget`].

use serde::Serialize;

use nindub::budget::{self, Machine, Precision, Verdict, Workload};
use nindub::error::Result;
use nindub::model::arch::Architecture;

/// One row as the seed gives it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SeedRow {
    pub preset: &'static str,
    pub precision: &'static str,
    /// The seed's "required VRAM (estimate)", in GB.
    pub seed_gb: f64,
    /// The seed's feasibility verdict, translated.
    pub seed_verdict: &'static str,
}

/// The seed's Table 2, row by row.
pub const SEED_TABLE_2: &[SeedRow] = &[
    SeedRow {
        preset: "llama-3-8b",
        precision: "f16",
        seed_gb: 16.0,
        seed_verdict: "impossible (OOM)",
    },
    SeedRow {
        preset: "llama-3-8b",
        precision: "int4",
        seed_gb: 5.5,
        seed_verdict: "hard (needs partial CPU offload)",
    },
    SeedRow {
        preset: "phi-3-mini",
        precision: "f16",
        seed_gb: 7.6,
        seed_verdict: "impossible (OOM)",
    },
    SeedRow {
        preset: "phi-3-mini",
        precision: "int4",
        seed_gb: 2.2,
        seed_verdict: "ideal (fast, room for KV cache)",
    },
    SeedRow {
        preset: "qwen-2.5-32b",
        precision: "int4",
        seed_gb: 18.0,
        seed_verdict: "layer-by-layer inference only (very slow)",
    },
];

/// One row recomputed.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub seed: SeedRow,
    pub model: String,
    pub params: u64,
    pub precision: Precision,
    pub estimate: budget::Estimate,
    pub verdict: Verdict,
    /// Longest context that keeps everything resident on the device.
    pub max_context: Option<u64>,
}

/// Recomputes every row of the seed's table for `workload` on `machine`.
pub fn recompute(workload: &Workload, machine: &Machine) -> Result<Vec<Row>> {
    SEED_TABLE_2
        .iter()
        .map(|seed| {
            let arch = Architecture::preset(seed.preset)?;
            let precision = Precision::parse(seed.precision)?;
            let estimate = budget::estimate(&arch, precision, workload)?;
            let verdict = budget::verdict(&estimate, &arch, machine);
            let max_context = budget::max_context(&arch, precision, workload, machine.device)?;
            Ok(Row {
                seed: *seed,
                model: arch.name.clone(),
                params: estimate.params,
                precision,
                estimate,
                verdict,
                max_context,
            })
        })
        .collect()
}

/// GB (10⁹ bytes), the seed's unit.
pub fn gb(bytes: u64) -> f64 {
    bytes as f64 / 1e9
}

/// The recomputed table as Markdown.
pub fn markdown(rows: &[Row], workload: &Workload, machine: &Machine) -> String {
    let mut s = format!(
        "| Model | Params | Precision | Seed: VRAM | Weights | KV cache @ {ctx} | Activations | Total @ {ctx} | Seed's verdict | Our verdict ({dev} device, {host} host) | Max resident context |\n",
        ctx = workload.context,
        dev = budget::human(machine.device),
        host = budget::human(machine.host),
    );
    s.push_str("|---|---:|---|---:|---:|---:|---:|---:|---|---|---:|\n");
    for r in rows {
        let e = &r.estimate;
        s.push_str(&format!(
            "| {} | {:.2} B | {} | ~{:.1} GB | {:.2} GB | {} | {} | {} | {} | {} | {} |\n",
            r.model,
            r.params as f64 / 1e9,
            r.precision,
            r.seed.seed_gb,
            gb(e.weights),
            budget::human(e.kv_cache),
            budget::human(e.activations),
            budget::human(e.total),
            r.seed.seed_verdict,
            r.verdict.describe(),
            r.max_context.map_or("none".to_string(), |c| c.to_string()),
        ));
    }
    s
}
