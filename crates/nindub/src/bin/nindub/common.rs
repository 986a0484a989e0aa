//! What several subcommands share: the engine flags (`--device`,
//! `--candle`, `--budget`), loading a model the way they ask, the memory
//! report that holds a budget to account, and printing steps.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;
use nindub::candle_core::Device;
use nindub::model::arch::Architecture;
use nindub::model::generate::{Engine, Generation, Generator, LoadOptions, Step};
use nindub::model::tokenizer::GgufTokenizer;
use nindub::process::rss;
use nindub::stream::source::ModelSource;
use nindub::stream::streamer::StreamOptions;

/// Which engine decodes, where, and within how many bytes.
#[derive(Args, Clone)]
pub struct EngineArgs {
    /// Where to compute: `cpu`, or `cuda`/`cuda:N` in a build with the
    /// `cuda` feature (candle's engine; the fused engine is CPU only).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Decode with candle's engine instead of the fused CPU engine (the
    /// default for a GGUF whose matrices are Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
    /// Q4_K, Q5_K or Q6_K).
    #[arg(long, conflicts_with = "budget")]
    pub candle: bool,
    /// A memory budget for the whole process beyond its fixed overhead
    /// (e.g. 60MB): weights, KV cache and working buffers; the layers that
    /// do not fit are streamed from the file for every token. The peak
    /// resident memory is reported against it.
    #[arg(long)]
    pub budget: Option<bytesize::ByteSize>,
}

/// The device a `--device` flag names, as in candle's examples.
pub fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        cuda if cuda == "cuda" || cuda.starts_with("cuda:") => {
            let ordinal: usize = match cuda.strip_prefix("cuda:") {
                Some(n) => n.parse().map_err(|_| {
                    anyhow::anyhow!("`{cuda}`: the GPU's number must be an integer")
                })?,
                None => 0,
            };
            cuda_device(ordinal)
        }
        other => {
            bail!("unknown device `{other}`: `cpu`, or `cuda[:N]` in a build with --features cuda")
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda_device(ordinal: usize) -> Result<Device> {
    Ok(Device::new_cuda(ordinal)?)
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(_: usize) -> Result<Device> {
    bail!("this nindub was built without CUDA: rebuild with `--features cuda`")
}

/// The process's memory, measured to hold a budget to account: what it
/// holds before any weight is read (the program, the file's header, the
/// tokenizer, the allocator) is its fixed overhead; the budget bounds
/// everything the model adds.
pub struct Memory {
    /// Resident bytes before the weights.
    pub overhead: u64,
    /// Further fixed costs measured later (the HTTP server's runtime).
    pub extra: Vec<(&'static str, u64)>,
}

impl Memory {
    /// Measures the overhead now (call it before loading weights).
    pub fn now() -> Memory {
        Memory {
            overhead: rss().map_or(0, |(now, _)| now),
            extra: vec![],
        }
    }

    /// All fixed costs together.
    pub fn fixed(&self) -> u64 {
        self.overhead + self.extra.iter().map(|(_, b)| b).sum::<u64>()
    }

    /// Prints the fixed overhead and, with a budget, the peak so far held
    /// against budget + overhead.
    pub fn report(&self, budget: Option<u64>) {
        let mb = |b: u64| b as f64 / 1e6;
        let extra: String = self
            .extra
            .iter()
            .map(|(what, b)| format!(" + {what} {:.1} MB", mb(*b)))
            .collect();
        let peak = rss().map_or(0, |(_, peak)| peak);
        match budget {
            Some(b) => eprintln!(
                "nindub: memory: peak RSS {peak} B ({:.1} MB) {} budget {b} B + fixed overhead {} B ({:.1} MB before the weights: program, header, tokenizer, allocator{extra}) = {:.1} MB",
                mb(peak),
                if peak <= b + self.fixed() {
                    "within"
                } else {
                    "OVER"
                },
                self.fixed(),
                mb(self.overhead),
                mb(b + self.fixed())
            ),
            None => eprintln!(
                "nindub: memory: peak RSS {:.1} MB; fixed overhead {:.1} MB before the weights{extra}",
                mb(peak),
                mb(self.overhead)
            ),
        }
    }
}

/// A model loaded as the flags ask, with the memory measured around it.
pub struct Loaded {
    pub generator: Generator,
    pub memory: Memory,
    pub path: PathBuf,
}

/// Loads `model` (a path or a cached asset's name) with the engine flags.
/// `context` gives the positions the KV cache must hold, from the
/// tokenizer and the model's shape (a budget reserves exactly that).
pub fn load(
    model: &str,
    flags: &EngineArgs,
    context: impl FnOnce(&GgufTokenizer, &Architecture) -> Result<usize>,
) -> Result<Loaded> {
    let path = nindub::assets::resolve(model)?;
    let device = device(&flags.device)?;
    let started = std::time::Instant::now();
    let mut opts = LoadOptions {
        engine: if flags.candle {
            Engine::Candle
        } else {
            Engine::Auto
        },
        device,
        stream: StreamOptions {
            budget: flags.budget.map(|b| b.as_u64()),
            ..Default::default()
        },
    };
    let (generator, memory) = if path.is_dir() && path.join("model.safetensors").exists() {
        let memory = Memory::now();
        (Generator::open(&path, &opts)?, memory)
    } else {
        let source = ModelSource::open(&path)?;
        let tokenizer = Arc::new(GgufTokenizer::from_gguf(source.base())?);
        let arch = source.architecture()?;
        let positions = context(&tokenizer, &arch)?.min(arch.max_context as usize);
        opts.stream.context = positions;
        let memory = Memory::now();
        (
            Generator::with_tokenizer(&source, tokenizer, &opts)?,
            memory,
        )
    };
    eprintln!(
        "nindub: loaded {} ({} layers) in {:.2} s; decoding on the {} engine",
        path.display(),
        generator.arch().num_layers,
        started.elapsed().as_secs_f64(),
        generator.decoder.name(),
    );
    if let (Some(p), Some(_)) = (generator.decoder.placement(), flags.budget) {
        eprintln!("nindub: {p}");
    }
    Ok(Loaded {
        generator,
        memory,
        path,
    })
}

/// Prints a step: the text as it comes, or with --logits a line per token.
pub fn print_step(step: &Step, logits: bool) -> bool {
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

/// The speeds of a finished generation, on stderr.
pub fn report(g: &Generation) {
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
