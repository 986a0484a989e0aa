//! `nindub stream`: a model within a budget, the layers that do not fit
//! streamed from storage, with a live per-layer display (NINDUB).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use nindub::assets;
use nindub::model::fused::LayerEvent;
use nindub::model::run::{self, RunConfig};
use nindub::model::tokenizer::GgufTokenizer;
use nindub::progress::progress_bar;
use nindub::stream::placement;
use nindub::stream::source::ModelSource;
use nindub::stream::streamer::{self, StreamOptions};

use crate::common::Memory;

#[derive(Args)]
pub struct StreamArgs {
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

pub fn run(args: StreamArgs) -> Result<()> {
    if let Some(out) = &args.report {
        nindub::fsx::check_output(out)?;
    }
    let path = assets::resolve(&args.model)?;
    let source = ModelSource::open(&path)?;
    let tokenizer = Arc::new(
        GgufTokenizer::from_gguf(source.base())
            .context("the model carries no tokenizer (nindub synth copies SmolLM2's)")?,
    );
    let prompt = tokenizer.encode(&args.prompt)?;
    let context = source
        .architecture()?
        .context_for(prompt.len(), args.max_tokens)?;
    let cfg = RunConfig {
        opts: StreamOptions {
            budget: Some(args.budget.as_u64()),
            context,
            prefetch: !args.no_prefetch,
            cold: args.cold,
        },
        prompt,
        max_tokens: args.max_tokens,
        timeline: args.report.is_some(),
    };
    // The live display: one bar per pass, a tick per layer.
    let bar = progress_bar(0, !args.json, "layer", "layers");
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] layer {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (b, max_tokens) = (bar.clone(), args.max_tokens);
    let started = std::time::Instant::now();
    let observer = Box::new(move |e: &LayerEvent| {
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
            true => Some(streamer::read_throughput(&source, buffer, args.cold)?),
            false => None,
        })
    };
    let layer = placement::demand(&source, 0)?
        .layers
        .iter()
        .copied()
        .max()
        .unwrap_or(0) as usize;
    let before = throughput(layer)?;
    let memory = Memory::now();
    let report = run::run_with(&source, tokenizer.clone(), &cfg, Some(observer))?;
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
    eprintln!("nindub: accounted {:.1} MB", mb(report.accounted));
    memory.report(Some(args.budget.as_u64()));
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
