//! Generates the Results of "The Mana Crystal" into a directory:
//! `cargo run -p lab --bin results -- run mana_crystal book/src/generated/mana-crystal`
//! (or `cargo codex results`). Everything written here is computed.

use super::{Figures, write};
use std::fmt::Write as _;
use std::path::Path;

use crate::{plot, table2};
use anyhow::Result;
use nindub::budget::{self, GIB, Machine, Precision, Workload};
use nindub::{Architecture, assets};

/// Writes the chapter's results into `out`.
pub fn generate(out: &Path) -> Result<()> {
    let out = out.to_path_buf();
    let machine = Machine::MANA_CRYSTAL;
    let workload = Workload::default();

    // 1. The seed's Table 2, recomputed.
    let rows = table2::recompute(&workload, &machine)?;
    write(
        &out,
        "table2.md",
        &table2::markdown(&rows, &workload, &machine),
    )?;

    // The weights alone, at 16 bits: what the other chapters start from.
    let mut figs = Figures::default();
    let llama3 = Architecture::preset("llama-3-8b")?;
    let f16 = Precision::parse("f16")?;
    let llama = budget::estimate(&llama3, f16, &workload)?;
    figs.number(
        "crystal.llama3_8b.params_b",
        llama.params as f64 / 1e9,
        2,
        "billion",
    );
    figs.number(
        "crystal.llama3_8b.f16_weights_gb",
        llama.weights as f64 / 1e9,
        2,
        "GB",
    );
    figs.number(
        "crystal.llama3_8b.f16_weights_gib",
        llama.weights as f64 / GIB as f64,
        2,
        "GiB",
    );
    // What a streamed Llama-3-8B in f16 must still hold at 8192 tokens.
    let long = budget::estimate(
        &llama3,
        f16,
        &Workload {
            context: 8192,
            ..workload
        },
    )?;
    let embedding = llama3.vocab_size * llama3.hidden_size * 2;
    figs.number(
        "crystal.llama3_8b.ctx8192.kv_gib",
        long.kv_cache as f64 / GIB as f64,
        1,
        "GiB",
    );
    figs.number(
        "crystal.llama3_8b.ctx8192.activations_mib",
        long.activations as f64 / (1 << 20) as f64,
        1,
        "MiB",
    );
    figs.number(
        "crystal.llama3_8b.f16.non_layer_gib",
        long.non_layer as f64 / GIB as f64,
        2,
        "GiB",
    );
    figs.number(
        "crystal.llama3_8b.f16.embedding_gib",
        embedding as f64 / GIB as f64,
        2,
        "GiB",
    );
    figs.write(&out)?;

    // 2. The same table at other contexts: where the verdicts move.
    let mut by_context =
        String::from("| Model | Precision | 1024 | 4096 | 8192 |\n|---|---|---|---|---|\n");
    for seed in table2::SEED_TABLE_2 {
        let arch = Architecture::preset(seed.preset)?;
        let p = Precision::parse(seed.precision)?;
        let mut cells = vec![];
        for ctx in [1024, 4096, 8192] {
            let w = Workload {
                context: ctx.min(arch.max_context),
                ..workload
            };
            let e = budget::estimate(&arch, p, &w)?;
            cells.push(format!(
                "{} → {}",
                budget::human(e.total),
                budget::verdict(&e, &arch, &machine).describe()
            ));
        }
        writeln!(
            by_context,
            "| {} | {} | {} |",
            arch.name,
            p,
            cells.join(" | ")
        )?;
    }
    write(&out, "table2-by-context.md", &by_context)?;

    // 3. Memory against context, per precision, against the 4 GiB line.
    let precisions = [
        Precision::F32,
        Precision::F16,
        Precision::INT8,
        Precision::INT4,
    ];
    for preset in ["llama-3-8b", "phi-3-mini", "qwen-2.5-32b", "smollm2-135m"] {
        let arch = Architecture::preset(preset)?;
        let svg = plot::memory_vs_context(&arch, &precisions, &workload, machine.device)?;
        svg.save(out.join(format!("memory-vs-context-{preset}.svg")))?;
    }

    // 4. The real SmolLM2 file against the estimate.
    let gguf = assets::smollm2()?;
    let m = budget::measure_gguf(&gguf)?;
    let arch = Architecture::from_gguf(&gguf)?;
    let mut s = String::from("| GGUF type | tensors | bytes | share |\n|---|---:|---:|---:|\n");
    for (dtype, count, bytes) in &m.by_type {
        writeln!(
            s,
            "| {dtype} | {count} | {bytes} | {:.1} % |",
            100.0 * *bytes as f64 / m.tensor_bytes as f64
        )?;
    }
    let all_q4 = budget::estimate(&arch, Precision::INT4, &workload)?;
    writeln!(s)?;
    writeln!(s, "| quantity | bytes | |\n|---|---:|---|")?;
    writeln!(
        s,
        "| file size | {} | {} |",
        m.file_size,
        budget::human(m.file_size)
    )?;
    writeln!(
        s,
        "| tensor data in the file | {} | {} |",
        m.tensor_bytes,
        budget::human(m.tensor_bytes)
    )?;
    writeln!(
        s,
        "| header and alignment | {} | {} |",
        m.file_size - m.tensor_bytes,
        budget::human(m.file_size - m.tensor_bytes)
    )?;
    writeln!(
        s,
        "| estimate, each tensor at the file's type | {} | difference {} bytes |",
        m.estimated_bytes,
        m.tensor_bytes as i64 - m.estimated_bytes as i64
    )?;
    writeln!(
        s,
        "| estimate, everything `int4-g32` (Q4_1) | {} | {:+.1} % vs. the file |",
        all_q4.weights,
        100.0 * (all_q4.weights as f64 / m.tensor_bytes as f64 - 1.0)
    )?;
    write(&out, "smollm2-measured.md", &s)?;

    // 5. MiniLM: the parameter count from config.json against the real tensors.
    let dir = assets::minilm()?;
    let arch = Architecture::from_config_json(dir.join("config.json"))?;
    let real = nindub::model::arch::safetensors_param_count(dir.join("model.safetensors"))?;
    let mut s = String::from("| source | parameters | f32 bytes |\n|---|---:|---:|\n");
    writeln!(
        s,
        "| estimate from `config.json` | {} | {} |",
        arch.param_count(),
        arch.param_count() * 4
    )?;
    writeln!(
        s,
        "| float tensors in `model.safetensors` | {} | {} |",
        real,
        real * 4
    )?;
    write(&out, "minilm-measured.md", &s)?;

    println!(
        "mana_crystal: wrote results to {} (budget {:.0} GiB)",
        out.display(),
        machine.device as f64 / GIB as f64
    );
    Ok(())
}
