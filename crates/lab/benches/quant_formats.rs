//! How fast each file of the Alchemy's table generates:
//! `cargo bench -p lab --bench quant_formats` (run by `cargo codex bench
//! formats`, which commits the printout). Every file is exported from the
//! same f32 reference (the published SmolLM2 dequantized) as the chapter's
//! table, then run by the engine nindub picks for it (the fused engine,
//! which reads every quantized type of the table, K-quants included),
//! and by llama.cpp's own `llama-bench` on the same file in the same run,
//! when `tests/fixtures/build-llama-cpp.sh` has built it. The GPTQ file
//! needs the corpus (`NINDUB_CORPUS`).

use std::time::Instant;

use candle_core::quantized::GgmlDType;
use nindub::assets;
use nindub::compress::calibrate;
use nindub::compress::export::{ExportOptions, Recipe, Target, quantize_gguf};
use nindub::model::generate::{GenerateConfig, Generator, LoadOptions};
use nindub::model::sample::SamplingConfig;
use nindub::peers::LlamaBench;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const PROMPT: usize = 64;
const GEN: usize = 64;
const RUNS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Prompt and generation tokens per second, medians of [`RUNS`] runs,
/// and the engine that ran them.
fn ours(path: &std::path::Path) -> Res<(f64, f64, &'static str)> {
    let mut g = Generator::open(path, &LoadOptions::default())?;
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(PROMPT);
    let mut prompt = g.tokenizer.encode(&text)?;
    prompt.truncate(PROMPT);
    let cfg = GenerateConfig {
        sampling: SamplingConfig::greedy(),
        max_tokens: GEN,
        top_n: 0,
        ignore_eos: true,
        ..Default::default()
    };
    g.generate(&prompt, &cfg, |_| true)?; // warm-up
    let (mut pp, mut tg) = (vec![], vec![]);
    for _ in 0..RUNS {
        let out = g.generate(&prompt, &cfg, |_| true)?;
        pp.push(out.prompt_tokens as f64 / out.prompt_secs);
        tg.push(out.tokens_per_sec());
    }
    Ok((median(pp), median(tg), g.decoder.name()))
}

fn main() -> Res<()> {
    let threads = rayon::current_num_threads();
    let llama_bench = nindub::peers::llama_cpp_tool("llama-bench");
    println!("# quant_formats");
    println!(
        "profile: {}; rayon threads: {threads}; CPU: {}; prompt {PROMPT} tokens, {GEN} generated, medians of {RUNS} runs after a warm-up",
        if cfg!(debug_assertions) {
            "DEBUG"
        } else {
            "release"
        },
        lab::machine::cpu()
    );
    println!(
        "llama.cpp: {}",
        llama_bench.as_ref().map_or(
            "llama-bench not built (tests/fixtures/build-llama-cpp.sh builds it): nindub's side only".into(),
            |p| format!("{} ({RUNS} repetitions, {threads} threads, alternated with ours)", p.display())
        )
    );
    let dir = tempfile::tempdir()?;
    let reference = dir.path().join("reference-f32.gguf");
    let plain = ExportOptions::default();
    quantize_gguf(
        &assets::smollm2()?,
        &reference,
        Target::Type(GgmlDType::F32),
        &plain,
    )?;
    let started = Instant::now();
    let calibration =
        calibrate::calibrate_file(&reference, &nindub::corpus::path()?, 32, 256, 2048, false)?;
    println!(
        "GPTQ calibration: 32 windows of 256 tokens of the corpus from token 2048, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let calibrated = ExportOptions {
        calibration: Some(&calibration),
        ..plain
    };
    println!(
        "\n{:<12}  {:>6}  {:>8}  {:>8}  {:>12}  {:>12}  {:>9}  engine (types)",
        "file", "MiB", "pp tok/s", "tg tok/s", "llama.cpp pp", "llama.cpp tg", "tg ratio"
    );
    for (name, recipe, gptq) in [
        ("q8_0", "q8_0", false),
        ("q6_k", "q6_k", false),
        ("q5_k_m", "q5_k_m", false),
        ("q4_k_m", "q4_k_m", false),
        ("q4_1", "q4_1", false),
        ("q4_0", "q4_0", false),
        ("gptq-q4_0", "q4_0", true),
    ] {
        let path = dir.path().join(format!("{name}.gguf"));
        let started = Instant::now();
        let r = quantize_gguf(
            &reference,
            &path,
            Target::Recipe(Recipe::parse(recipe)?),
            if gptq { &calibrated } else { &plain },
        )?;
        let export_s = started.elapsed().as_secs_f64();
        let mut types: Vec<&str> = r
            .per_tensor
            .iter()
            .filter(|t| t.to != "f32")
            .map(|t| t.to.as_str())
            .collect();
        types.sort();
        types.dedup();
        // Ours and llama.cpp's alternate, file by file.
        let (pp, tg, engine) = ours(&path)?;
        let peer = match &llama_bench {
            Some(bin) => Some(LlamaBench::run(bin, &path, PROMPT, GEN, threads, RUNS)?),
            None => None,
        };
        let mib = r.file_bytes as f64 / (1u64 << 20) as f64;
        let theirs = |v: Option<f64>, digits: usize| {
            v.map_or("–".to_string(), |v| format!("{v:.digits$}"))
        };
        println!(
            "{name:<12}  {mib:>6.1}  {pp:>8.1}  {tg:>8.1}  {:>12}  {:>12}  {:>9}  {engine} ({}; exported in {export_s:.1} s)",
            theirs(peer.map(|p| p.prompt_tokens_per_s), 1),
            theirs(peer.map(|p| p.gen_tokens_per_s), 1),
            theirs(peer.map(|p| tg / p.gen_tokens_per_s), 2),
            types.join(", ")
        );
    }
    Ok(())
}
