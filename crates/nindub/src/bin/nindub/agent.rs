//! `nindub agent`: NINDUB the Sovereign from the command line: a task, a
//! set of tools, the plan–act–observe loop with its trace shown as it runs.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use nindub::agent::tools::{Calc, Nindub, ReadFile, Search};
use nindub::agent::{Agent, AgentConfig, Bounds, StepRecord, Tool};
use nindub::model::sample::SamplingConfig;

use crate::common::{EngineArgs, load};

#[derive(Args)]
pub struct AgentArgs {
    /// A GGUF file, or the name of a cached asset.
    #[arg(long, default_value = "smollm2")]
    model: String,
    /// What to do.
    #[arg(long)]
    task: String,
    /// The tools, by name: calc, search, read_file, nindub.
    #[arg(long, value_delimiter = ',', default_value = "calc,search")]
    tools: Vec<String>,
    #[arg(long, default_value_t = 6)]
    max_steps: usize,
    /// Tokens the model may generate over the whole run.
    #[arg(long, default_value_t = 1024)]
    max_tokens: usize,
    /// Let the model write its steps freely (no schema): to measure what
    /// the constraint buys.
    #[arg(long)]
    unconstrained: bool,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 299_792_458)]
    seed: u64,
    /// The directory `read_file` may read (default: the current one).
    #[arg(long)]
    sandbox: Option<PathBuf>,
    /// The Markdown pages `search` searches (default: the book's chapters,
    /// `book/src`).
    #[arg(long, default_value = "book/src")]
    pages: PathBuf,
    /// Seconds a tool call may take.
    #[arg(long, default_value_t = 10.0)]
    tool_timeout: f64,
    /// Write the trace as JSON lines (one per step, then the run).
    #[arg(long)]
    trace: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
}

pub fn run(args: AgentArgs) -> Result<()> {
    let mut tools: Vec<Arc<dyn Tool>> = vec![];
    for name in &args.tools {
        tools.push(match name.as_str() {
            "calc" => Arc::new(Calc),
            "read_file" => {
                let root = args.sandbox.clone().unwrap_or_else(|| PathBuf::from("."));
                Arc::new(
                    ReadFile::new(&root, 4096)
                        .with_context(|| format!("the sandbox {}", root.display()))?,
                )
            }
            "search" => {
                let cache = nindub::assets::cache_dir().join("agent");
                eprintln!(
                    "nindub: indexing the pages under {} (cached by content)",
                    args.pages.display()
                );
                Arc::new(Search::over_pages(&args.pages, &cache, 2)?)
            }
            "nindub" => Arc::new(Nindub::new(
                std::env::current_exe().context("finding the nindub executable")?,
                &["estimate", "inspect", "tokenize"],
                Duration::from_secs_f64(args.tool_timeout),
            )),
            other => bail!("unknown tool `{other}` (calc, search, read_file, nindub)"),
        });
    }
    let agent = Agent::new(tools)?;
    let mut loaded = load(&args.model, &args.engine, |_, _| Ok(2048))?;
    let cfg = AgentConfig {
        max_steps: args.max_steps,
        max_tokens: args.max_tokens,
        constrained: !args.unconstrained,
        sampling: if args.temperature == 0.0 {
            SamplingConfig {
                seed: args.seed,
                ..SamplingConfig::greedy()
            }
        } else {
            SamplingConfig {
                temperature: args.temperature,
                seed: args.seed,
                ..SamplingConfig::default()
            }
        },
        bounds: Bounds {
            timeout: Duration::from_secs_f64(args.tool_timeout),
            ..Bounds::default()
        },
        ..AgentConfig::default()
    };
    let mut trace = match &args.trace {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let mut failed = None;
    let run = agent.run(&mut loaded.generator, &args.task, &cfg, |s: &StepRecord| {
        eprintln!(
            "step {}: {} {}",
            s.step,
            if s.valid { "call" } else { "INVALID" },
            s.raw.trim()
        );
        eprintln!(
            "  → {}  ({} tokens after a prompt of {}, {:.0} ms model of which {:.0} ms the prompt, {:.0} ms tool{})",
            s.observation,
            s.tokens,
            s.prompt_tokens,
            s.generate_ms,
            s.prompt_ms,
            s.tool_ms,
            s.rss_mb
                .map_or(String::new(), |m| format!(", RSS {m:.0} MB"))
        );
        if let Some(t) = &mut trace
            && let Err(e) = serde_json::to_writer(&mut *t, s)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(t))
        {
            failed.get_or_insert(e);
        }
    })?;
    if let Some(mut t) = trace {
        serde_json::to_writer(
            &mut t,
            &serde_json::json!({
                "answer": run.answer, "stop": run.stop, "steps": run.steps.len(), "tokens": run.tokens,
                "valid_steps": run.valid_steps().0,
            }),
        )?;
        writeln!(t)?;
        t.flush()?;
    }
    if let Some(e) = failed {
        return Err(anyhow::Error::from(e).context("writing the trace"));
    }
    match &run.answer {
        Some(a) => println!("{a}"),
        None => eprintln!(
            "nindub: no answer ({:?} after {} steps)",
            run.stop,
            run.steps.len()
        ),
    }
    eprintln!(
        "nindub: {} steps, {} tokens, {} of them well-formed calls; stop: {:?}",
        run.steps.len(),
        run.tokens,
        run.valid_steps().0,
        run.stop
    );
    loaded.memory.report(args.engine.budget.map(|b| b.as_u64()));
    Ok(())
}
