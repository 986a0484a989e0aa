//! `nindub bench`: prompt and generation speed of the engines on one file,
//! medians of several runs, with the per-operation profiles.

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use nindub::assets;
use nindub::candle_core;
use nindub::ggml::Prefetch;
use nindub::model::generate::{Engine, GenerateConfig, Generator, LoadOptions};
use nindub::model::sample::{SamplingConfig, argmax};
use std::time::Instant;

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long, default_value = "smollm2")]
    model: String,
    /// Tokens in the prompt.
    #[arg(long, default_value_t = 64)]
    prompt_tokens: usize,
    /// Tokens to generate.
    #[arg(long, default_value_t = 64)]
    gen_tokens: usize,
    /// Runs per engine (the median is printed).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// A peer's recorded figures, printed beside ours only when llama.cpp's
    /// own `llama-bench` is not found to run in the same run (JSON written
    /// by tests/fixtures/record_llama_cpp_speed.py).
    #[arg(long)]
    peer: Option<PathBuf>,
    /// llama.cpp's `llama-bench`, run alternately with the fused engine in
    /// this run (default: where tests/fixtures/build-llama-cpp.sh builds it,
    /// when it is there).
    #[arg(long)]
    llama_bench: Option<PathBuf>,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let BenchArgs {
        model,
        prompt_tokens,
        gen_tokens,
        runs,
        peer,
        llama_bench,
    } = args;
    let llama_bench = llama_bench.or_else(|| nindub::peers::llama_cpp_tool("llama-bench"));
    anyhow::ensure!(
        runs > 0 && prompt_tokens > 0 && gen_tokens > 0,
        "runs and token counts must be at least 1"
    );
    let path = assets::resolve(&model)?;
    let load = |engine: Engine| {
        let opts = LoadOptions {
            engine,
            ..Default::default()
        };
        Generator::open(&path, &opts)
    };
    let mut g = load(Engine::Candle)?;
    // A prompt of real text, cut to the asked length.
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(prompt_tokens);
    let mut prompt = g.tokenizer.encode(&text)?;
    prompt.truncate(prompt_tokens);
    println!(
        "bench: {} | prompt {} tokens, {} generated, {} runs, {} threads, {}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        prompt.len(),
        gen_tokens,
        runs,
        candle_core::utils::get_num_threads(),
        if cfg!(debug_assertions) {
            "DEBUG build (use --release for real figures)"
        } else {
            "release build"
        }
    );
    // Every engine row runs the one generation loop (Generator::generate);
    // EOS is not allowed to end a benchmark early: count what was made.
    let measure = |g: &mut Generator, sampling: SamplingConfig, use_cache: bool, runs: usize| {
        let cfg = GenerateConfig {
            sampling,
            max_tokens: gen_tokens,
            top_n: 0,
            use_cache,
            ignore_eos: true,
            ..Default::default()
        };
        let (mut pp, mut tg) = (vec![], vec![]);
        for _ in 0..runs {
            let out = g.generate(&prompt, &cfg, |_| true)?;
            pp.push(out.prompt_tokens as f64 / out.prompt_secs);
            tg.push(out.tokens_per_sec());
        }
        anyhow::Ok((median(pp), median(tg)))
    };
    let mut rows = vec![];
    // Without the KV cache every step recomputes the whole sequence: one run
    // is enough to see it.
    for (name, sampling, use_cache, runs) in [
        (
            "ritual, candle engine (greedy)",
            SamplingConfig::greedy(),
            true,
            runs,
        ),
        (
            "cantrip, candle engine (sampling)",
            SamplingConfig::default(),
            true,
            runs,
        ),
        (
            "ritual, candle, no KV cache (1 run)",
            SamplingConfig::greedy(),
            false,
            1,
        ),
    ] {
        let (pp, tg) = measure(&mut g, sampling, use_cache, runs)?;
        rows.push((name, pp, tg));
    }
    // Where one candle token's time goes: before fusion.
    g.decoder.reset();
    g.decoder.forward(&prompt)?;
    *g.decoder.profile_mut() = Some(Default::default());
    let mut next = prompt[prompt.len() - 1];
    for _ in 0..gen_tokens {
        next = argmax(&g.decoder.step(next)?);
    }
    let candle_profile = g.decoder.profile_mut().take();
    drop(g);
    // candle-transformers' own model on the same file, greedy.
    let (mut pp, mut tg) = (vec![], vec![]);
    for _ in 0..runs {
        let mut reader = std::fs::File::open(&path)?;
        let content = candle_core::quantized::gguf_file::Content::read(&mut reader)?;
        let mut m = candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
            content,
            &mut reader,
            &Device::Cpu,
        )?;
        let started = Instant::now();
        let input = Tensor::new(prompt.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let mut logits = m.forward(&input, 0)?;
        let _ = logits.flatten_all()?.argmax(0)?.to_scalar::<u32>()?;
        pp.push(prompt.len() as f64 / started.elapsed().as_secs_f64());
        let started = Instant::now();
        for i in 0..gen_tokens {
            let next = logits.flatten_all()?.argmax(0)?.to_scalar::<u32>()?;
            logits = m.forward(
                &Tensor::new(&[next], &Device::Cpu)?.unsqueeze(0)?,
                prompt.len() + i,
            )?;
        }
        tg.push(gen_tokens as f64 / started.elapsed().as_secs_f64());
    }
    rows.push((
        "candle-transformers quantized_llama",
        median(pp),
        median(tg),
    ));
    // The fused engine on the same file, greedy: the prompt as one
    // matrix-matrix product per weight, then one fused step per token.
    // Where llama.cpp's own llama-bench is present, the two alternate, one
    // run each per round, so that both see the same machine.
    let mut g = load(Engine::Fused)?;
    let threads = candle_core::utils::get_num_threads();
    let mut llama = vec![];
    let (pp, tg) = match &llama_bench {
        None => measure(&mut g, SamplingConfig::greedy(), true, runs)?,
        Some(bin) => {
            let (mut pp, mut tg) = (vec![], vec![]);
            for _ in 0..runs {
                let (p, t) = measure(&mut g, SamplingConfig::greedy(), true, 1)?;
                pp.push(p);
                tg.push(t);
                llama.push(nindub::peers::LlamaBench::run(
                    bin,
                    &path,
                    prompt.len(),
                    gen_tokens,
                    threads,
                    1,
                )?);
            }
            (median(pp), median(tg))
        }
    };
    rows.push(("ritual, fused engine (greedy)", pp, tg));
    println!(
        "{:<38} {:>14} {:>14}",
        "engine", "prompt tok/s", "gen tok/s"
    );
    for (name, pp, tg) in &rows {
        println!("{name:<38} {pp:>14.1} {tg:>14.1}");
    }
    println!(
        "ratio candle engine / candle-transformers, generation: {:.2}; fused / candle-transformers: {:.2}",
        rows[0].2 / rows[3].2,
        rows[4].2 / rows[3].2
    );
    // The floor: the weights read once per token at the machine's read
    // bandwidth, measured now.
    let Some(fused) = g.fused() else {
        anyhow::bail!("the fused engine did not load");
    };
    let bytes = fused.bytes_per_token();
    let bandwidth = nindub::model::fused::read_bandwidth(4 * bytes, 5);
    let floor = bandwidth / bytes as f64;
    println!(
        "memory-bandwidth floor: {:.1} MB of weights per token at {:.1} GB/s read = {floor:.1} tokens/s; fused generation at {:.2}x the floor",
        bytes as f64 / 1e6,
        bandwidth / 1e9,
        rows[4].2 / floor
    );
    // Is the kernel or the memory the wall? The same bytes through the
    // Q4_1 kernel, with the weights asked for ahead and without.
    let rate = |prefetch| nindub::model::fused::kernel_read_rate(4 * bytes, 5, prefetch);
    let (ahead, off) = (rate(Prefetch::Ahead)?, rate(Prefetch::Off)?);
    println!(
        "the Q4_1 kernel over {:.1} MB of weights beyond each core's private caches: {:.1} GB/s asking for them {} bytes ahead, {:.1} GB/s without: {:.2}x",
        4.0 * bytes as f64 / 1e6,
        ahead / 1e9,
        nindub::ggml::PREFETCH_AHEAD,
        off / 1e9,
        ahead / off
    );
    // Where one fused token's time goes.
    g.decoder.reset();
    let mut next = argmax(&g.decoder.forward(&prompt)?);
    *g.decoder.profile_mut() = Some(Default::default());
    for _ in 0..gen_tokens {
        next = argmax(&g.decoder.step(next)?);
    }
    print_profile("one fused token", g.decoder.profile_mut().take());
    print_profile("one candle token (before fusion)", candle_profile);
    // llama.cpp: measured in this run when its llama-bench is present,
    // else a recorded figure, labelled with its date.
    let same_run = (!llama.is_empty()).then(|| {
        (
            median(llama.iter().map(|b| b.prompt_tokens_per_s).collect()),
            median(llama.iter().map(|b| b.gen_tokens_per_s).collect()),
        )
    });
    let peer_row = match (same_run, peer) {
        (Some((pp, tg)), _) => {
            println!(
                "{:<38} {pp:>14.1} {tg:>14.1}   (llama.cpp's llama-bench, same run: alternated with the fused engine, {runs} rounds, {threads} threads)",
                "llama.cpp",
            );
            Some((pp, tg))
        }
        (None, Some(peer)) => {
            let p = PeerSpeed::read(&peer)?;
            let same = p.model_sha256 == nindub::fsx::sha256_file(&path)?
                && p.prompt_tokens == prompt.len()
                && p.gen_tokens == gen_tokens;
            println!(
                "{:<38} {:>14.1} {:>14.1}   (RECORDED {}, not this run: {}, {} threads, {} ({} CPUs){})",
                "llama.cpp",
                p.prompt_tokens_per_s,
                p.gen_tokens_per_s,
                p.recorded.as_deref().unwrap_or("on an unknown date"),
                p.peer,
                p.threads,
                p.machine.cpu,
                p.machine.logical_cpus,
                if same {
                    ""
                } else {
                    "; ANOTHER model or workload: not comparable"
                }
            );
            Some((p.prompt_tokens_per_s, p.gen_tokens_per_s))
        }
        (None, None) => None,
    };
    if let Some((pp, tg)) = peer_row {
        println!(
            "ratio candle engine / llama.cpp, generation: {:.2}; prompt: {:.2}",
            rows[0].2 / tg,
            rows[0].1 / pp
        );
        println!(
            "ratio fused / llama.cpp, generation: {:.2}; prompt: {:.2}; llama.cpp at {:.2}x the floor",
            rows[4].2 / tg,
            rows[4].1 / pp,
            tg / floor
        );
    }
    Ok(())
}

/// (prompt tokens/s, generated tokens/s) medians over `runs`.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Prints where one token's time goes.
fn print_profile(what: &str, p: Option<nindub::profile::Profile>) {
    let Some(p) = p else { return };
    let total: f64 = p.per_token_ms().iter().map(|(_, ms)| ms).sum();
    println!(
        "{what}, by operation ({} tokens profiled, {total:.2} ms per token):",
        p.tokens
    );
    for (op, ms) in p.per_token_ms() {
        println!("  {op:<22} {ms:>7.3} ms  {:>5.1} %", 100.0 * ms / total);
    }
}

/// A peer's speed, recorded by tests/fixtures/record_llama_cpp_speed.py.
#[derive(serde::Deserialize)]
struct PeerSpeed {
    /// The day it was recorded (fixtures before this field have none).
    recorded: Option<String>,
    peer: String,
    model_sha256: String,
    machine: PeerMachine,
    threads: usize,
    prompt_tokens: usize,
    gen_tokens: usize,
    prompt_tokens_per_s: f64,
    gen_tokens_per_s: f64,
}

#[derive(serde::Deserialize)]
struct PeerMachine {
    cpu: String,
    logical_cpus: usize,
}

impl PeerSpeed {
    fn read(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the peer's figures {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a peer speed record", path.display()))
    }
}
