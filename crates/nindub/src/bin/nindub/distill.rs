//! `nindub distill`: knowledge distillation (The Transfer of Wisdom).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use nindub::assets;

#[derive(Subcommand)]
pub enum DistillCommand {
    /// SmolLM2 (the teacher) and a small Llama-shaped student on the corpus:
    /// the teacher's top-k logits are cached once, then a student is trained
    /// on hard next tokens and another with the distillation loss.
    Lm(DistillLmArgs),
}

#[derive(Args)]
pub struct DistillLmArgs {
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

pub fn run(what: DistillCommand) -> Result<()> {
    match what {
        DistillCommand::Lm(args) => lm(args),
    }
}

fn lm(args: DistillLmArgs) -> Result<()> {
    use nindub::distill::lm::{LmExperimentConfig, run_experiment};
    let mut cfg = if args.quick {
        LmExperimentConfig::quick()
    } else {
        LmExperimentConfig::book()
    };
    cfg.steps = args.steps.unwrap_or(cfg.steps);
    cfg.temperature = args.temperature.unwrap_or(cfg.temperature);
    cfg.alpha = args.alpha.unwrap_or(cfg.alpha);
    cfg.seed = args.seed.unwrap_or(cfg.seed);
    nindub::distill::loss::KdConfig::new(cfg.temperature, cfg.alpha, true)?;
    nindub::fsx::check_output_dir(&args.out)?;
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
    // What the run took by default is written into its command, so that a
    // rerun reads the same files whatever its environment says.
    let mut extra = vec![];
    if !std::env::args().any(|a| a == "--teacher" || a.starts_with("--teacher=")) {
        extra.extend(["--teacher".to_string(), args.teacher.clone()]);
    }
    let corpus_arg = corpus.to_string_lossy().into_owned();
    if !std::env::args().any(|a| a == "--corpus" || a.starts_with("--corpus=")) {
        extra.extend(["--corpus".to_string(), corpus_arg.clone()]);
    }
    let out_arg = args.out.to_string_lossy().into_owned();
    if !std::env::args().any(|a| a == "--out" || a.starts_with("--out=")) {
        extra.extend(["--out".to_string(), out_arg.clone()]);
    }
    let mut run = crate::runs::begin(
        "transfer-of-wisdom",
        &format!("distill lm{}", if args.quick { " --quick" } else { "" }),
        &extra,
    )?;
    if let Some(r) = run.as_mut() {
        r.input("teacher", &teacher, Some(&args.teacher))?.input(
            "corpus",
            &corpus,
            Some(&corpus_arg),
        )?;
        r.param("steps", cfg.steps)
            .param("batch", cfg.batch)
            .param("window", cfg.window)
            .param("hidden", cfg.hidden)
            .param("layers", cfg.layers)
            .param("lr", cfg.lr)
            .param("temperature", cfg.temperature)
            .param("alpha", cfg.alpha)
            .param("seed", cfg.seed)
            .param("top_k", cfg.k);
        // Training sums in parallel; the order of the threads' partial sums
        // may differ between runs, so a rerun is held to a tolerance.
        r.agreement(nindub::track::Agreement::Within { rel: 1e-3 });
    }
    let cache = nindub::distill::soft_targets::default_dir();
    let e = run_experiment(&teacher, &corpus, &cfg, &cache, Some(&args.out), true)?;
    // The distilled student's lineage: the teacher's root, this command.
    let student = args
        .out
        .join("distilled")
        .join("student")
        .join("model.safetensors");
    if student.is_file() {
        crate::provenance::record_lineage(
            &teacher,
            &student,
            nindub::provenance::Relation::Distilled,
            run.as_ref(),
        )?;
    }
    if let Some(r) = run.as_mut() {
        r.metric("teacher_held_out_ppl", e.teacher_held_out_ppl, 0);
        for (name, rep) in [("hard", &e.hard), ("distilled", &e.distilled)] {
            for p in &rep.curve {
                r.metric(&format!("{name}.train_loss"), p.train_loss, p.step as u64)
                    .metric(
                        &format!("{name}.held_out_ppl"),
                        p.held_out_ppl,
                        p.step as u64,
                    );
            }
        }
        r.artifact("students", &args.out, Some(&out_arg))?;
    }
    crate::runs::finish(run)?;
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
