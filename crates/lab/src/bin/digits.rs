//! `digits`: The Transfer of Wisdom's digits experiment from the command
//! line (`cargo run --release -p lab --bin digits -- --temperature 4`): a
//! teacher, then one student; `--experiment` runs the chapter's whole table.
//! Checkpoints under `--out` let a rerun resume.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use lab::digits::{self, Digits, DistillSettings, Experiment, RunConfig};

#[derive(Parser)]
#[command(
    name = "digits",
    about = "The Transfer of Wisdom's classic experiment on scikit-learn's 8×8 digits: a large teacher MLP, then a small student on hard labels or distilled from it."
)]
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

fn main() -> Result<()> {
    let args = DistillDigitsArgs::parse();
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
