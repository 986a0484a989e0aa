//! `nindub monitor`: the Infrastructure Canon's tools: the alert rules as
//! Prometheus reads them, and canaries recorded from the approved model.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use nindub::monitor::{canary, prometheus_rules};

use crate::common::{EngineArgs, load};

#[derive(Args)]
pub struct MonitorArgs {
    #[command(subcommand)]
    what: MonitorCommand,
}

#[derive(Subcommand)]
enum MonitorCommand {
    /// Print the alert rules as a Prometheus rule file.
    Rules,
    /// Record canaries: the model's greedy answers to prompts (one per
    /// line), to be scored later by `nindub serve --canaries`.
    Canary {
        /// A cached asset's name or a model path.
        #[arg(long, default_value = "smollm2")]
        model: String,
        #[command(flatten)]
        engine: EngineArgs,
        /// Prompts, one per line (empty lines are skipped).
        #[arg(long)]
        prompts: PathBuf,
        /// Answer tokens per canary.
        #[arg(long, default_value_t = 12)]
        max_tokens: usize,
        /// Where to write the set (JSON).
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(args: MonitorArgs) -> Result<()> {
    match args.what {
        MonitorCommand::Rules => {
            print!("{}", prometheus_rules());
            Ok(())
        }
        MonitorCommand::Canary {
            model,
            engine,
            prompts,
            max_tokens,
            out,
        } => {
            let text = std::fs::read_to_string(&prompts)
                .with_context(|| format!("reading {}", prompts.display()))?;
            let lines: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            if lines.is_empty() {
                bail!("{} holds no prompt", prompts.display());
            }
            let loaded = load(&model, &engine, |_, _| Ok(4096))?;
            let name = loaded
                .path
                .file_name()
                .map_or(model.clone(), |n| n.to_string_lossy().into_owned());
            let mut g = loaded.generator;
            let set = canary::record(&mut g, &name, &lines, max_tokens)?;
            let score = canary::score(&mut g, &set)?;
            nindub::fsx::write_atomic(&out, serde_json::to_string_pretty(&set)?.as_bytes())?;
            eprintln!(
                "nindub: {} canaries ({} answer tokens) from `{name}` written to {}; the model scores {:.3} on them",
                set.canaries.len(),
                score.tokens,
                out.display(),
                score.accuracy
            );
            Ok(())
        }
    }
}
