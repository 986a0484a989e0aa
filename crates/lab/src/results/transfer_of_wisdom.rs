//! Generates the Results of "The Transfer of Wisdom".
//!
//! `cargo run -p lab --bin results -- run transfer_of_wisdom OUT_DIR` writes the
//! deterministic results (the gradient's scaling with T, checked by
//! autograd; a worked example of soft targets): `cargo codex results`
//! regenerates and CI rechecks them byte for byte.
//!
//! `cargo run --release -p lab --bin results -- experiment OUT_DIR`
//! runs the book's experiments (digits: teacher, students, T sweep, T²
//! ablation over 5 seeds; SmolLM2 teaching a small language model), which
//! take a quarter of an hour or more on 2 cores: `cargo codex experiments`.
//! Their figures include timings, so they are kept apart (`experiment/`)
//! and not expected to reproduce byte for byte.

use super::write;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use crate::digits::{Digits, Experiment, ExperimentTable};
use crate::plot::LineChart;
use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor, Var};
use nindub::distill::lm::{self, LmExperiment, LmExperimentConfig};
use nindub::distill::loss::{self, KdConfig};
use nindub::{assets, corpus, fsx};

/// Writes the chapter's deterministic results into `out`.
pub fn generate(out: &Path) -> Result<()> {
    deterministic(out)
}

/// Rows of centred random logits, `[rows, classes]`, scale `±s`.
fn logits(seed: u64, rows: usize, classes: usize, s: f32) -> Result<Tensor> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let v: Vec<f32> = (0..rows * classes)
        .map(|_| rng.random_range(-s..s))
        .collect();
    let t = Tensor::from_vec(v, (rows, classes), &Device::Cpu)?;
    Ok(t.broadcast_sub(&t.mean_keepdim(1)?)?)
}

/// Mean L2 norm of the rows of a gradient.
fn mean_norm(g: &Tensor) -> Result<f64> {
    let n = g.sqr()?.sum(1)?.sqrt()?.mean_all()?.to_scalar::<f32>()?;
    Ok(n as f64)
}

/// Least-squares slope of ln y against ln x.
fn loglog_slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (lx, ly): (Vec<f64>, Vec<f64>) = points.iter().map(|(x, y)| (x.ln(), y.ln())).unzip();
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let cov: f64 = lx.iter().zip(&ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = lx.iter().map(|x| (x - mx) * (x - mx)).sum();
    cov / var
}

fn deterministic(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let mut figs = super::Figures::default();
    gradient_scaling(out, &mut figs)?;
    figs.write(out)?;
    soft_targets_example(out)
}

/// The soft gradient's size against T: exact, Hinton's approximation, and
/// with the T² factor; each exact value also checked against autograd.
fn gradient_scaling(out: &Path, figs: &mut super::Figures) -> Result<()> {
    let (rows, classes) = (256, 10);
    let z = logits(1, rows, classes, 3.0)?;
    let v = logits(2, rows, classes, 3.0)?;
    let labels = Tensor::zeros(rows, candle_core::DType::U32, &Device::Cpu)?;
    let temps = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 100.0];
    let mut table = String::from(
        "| T | ‖∇‖ exact, no T² | Hinton's approximation | ratio | ‖∇‖ with T² | autograd − exact (max) |\n\
         |---:|---:|---:|---:|---:|---:|\n",
    );
    let (mut exact, mut approx, mut scaled) = (vec![], vec![], vec![]);
    let mut worst_autograd = 0f32;
    let mut exact_from: Option<f64> = None;
    for &t in &temps {
        let plain = KdConfig::new(t, 1.0, false)?;
        let g = loss::soft_gradient(&z, &v, &plain)?;
        let a = loss::soft_gradient_high_t(&z, &v, t)?;
        let with_t2 = loss::soft_gradient(&z, &v, &KdConfig::new(t, 1.0, true)?)?;
        // Autograd through the loss (α = 1: the soft part only); the loss
        // averages rows, so its gradient is the per-row gradient / rows.
        let var = Var::from_tensor(&z)?;
        let loss = loss::kd_loss(var.as_tensor(), &v, &labels, &plain)?;
        let auto = (loss
            .total
            .backward()?
            .get(var.as_tensor())
            .context("no gradient")?
            * rows as f64)?;
        let err = (auto - &g)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let (ge, ga, gs) = (mean_norm(&g)?, mean_norm(&a)?, mean_norm(&with_t2)?);
        writeln!(
            table,
            "| {t} | {ge:.3e} | {ga:.3e} | {:.3} | {gs:.3} | {err:.1e} |",
            ga / ge
        )?;
        let ratio = ga / ge;
        figs.number(
            &format!("wisdom.gradient.t{t}.approx_off"),
            100.0 * (ratio - 1.0).abs(),
            1,
            "%",
        );
        // The first T from which the approximation agrees to the table's
        // three decimals at every higher T.
        if format!("{ratio:.3}") == "1.000" {
            exact_from.get_or_insert(t);
        } else {
            exact_from = None;
        }
        worst_autograd = worst_autograd.max(err);
        exact.push((t, ge));
        approx.push((t, ga));
        scaled.push((t, gs));
    }
    let high: Vec<_> = exact.iter().copied().filter(|(t, _)| *t >= 4.0).collect();
    let high_scaled: Vec<_> = scaled.iter().copied().filter(|(t, _)| *t >= 4.0).collect();
    writeln!(
        table,
        "\nLeast-squares slope of ln ‖∇‖ against ln T for T ≥ 4: **{:.3}** without the factor, \
         **{:.3}** with T². Logits: {rows} rows of {classes} classes, uniform in ±3, centred; \
         ‖∇‖ is the mean L2 norm of a row's gradient.",
        loglog_slope(&high),
        loglog_slope(&high_scaled)
    )?;
    write(out, "soft-gradient.md", &table)?;
    figs.number("wisdom.gradient.slope_plain", loglog_slope(&high), 2, "");
    figs.number(
        "wisdom.gradient.slope_t2",
        loglog_slope(&high_scaled),
        2,
        "",
    );
    figs.add(
        "wisdom.gradient.autograd_max",
        worst_autograd as f64,
        "",
        format!("{worst_autograd:.1e}"),
    );
    if let Some(t) = exact_from {
        figs.number("wisdom.gradient.exact_from_t", t, 0, "");
    }
    LineChart {
        title: "Soft-target gradient vs temperature".into(),
        x_desc: "temperature T".into(),
        y_desc: "mean ‖∂L_soft/∂z‖".into(),
        series: vec![
            ("exact, no T² (slope → −2)".into(), exact),
            ("(z − v)/(N·T²), Hinton's approximation".into(), approx),
            ("exact, times T² (flat)".into(), scaled),
        ],
        reference: None,
        log_x: true,
        log_y: true,
    }
    .draw()?
    .save(out.join("soft-gradient.svg"))?;
    Ok(())
}

/// One teacher's logits softened at several temperatures: what the soft
/// targets carry that the label does not.
fn soft_targets_example(out: &Path) -> Result<()> {
    // A teacher sure it sees a 7, with a little belief in 1 and 9 and
    // almost none in 0 or 6 (illustrative logits).
    let v = [-3.0f32, 2.5, -1.0, 0.5, -2.0, -0.5, -4.0, 9.0, 1.0, 3.0];
    let t = Tensor::new(&v, &Device::Cpu)?.unsqueeze(0)?;
    let mut table = String::from("| T |");
    for c in 0..10 {
        write!(table, " {c} |")?;
    }
    table.push_str(" entropy (bits) |\n|---:|");
    table.push_str(&"---:|".repeat(11));
    table.push('\n');
    for temp in [1.0, 2.0, 4.0, 8.0, 20.0] {
        let q = candle_nn::ops::softmax_last_dim(&(&t / temp)?)?
            .squeeze(0)?
            .to_vec1::<f32>()?;
        let h: f32 = q.iter().filter(|&&p| p > 0.0).map(|&p| -p * p.log2()).sum();
        write!(table, "| {temp} |")?;
        for p in &q {
            write!(table, " {p:.3} |")?;
        }
        writeln!(table, " {h:.2} |")?;
    }
    write(out, "soft-targets.md", &table)
}

/// The book's long experiments (timed; written under `experiment/`). Each
/// part records its wall time; `timing.md` sums the parts on record.
pub fn experiment(out: &Path, parts: &[&str]) -> Result<()> {
    std::fs::create_dir_all(out)?;
    // Checkpoints and saved students are large: they live in the cache,
    // outside the repository (a rerun resumes from them).
    let work = assets::cache_dir().join("runs").join("transfer-of-wisdom");
    for part in parts {
        // A finished part starts afresh (its timings must be this run's);
        // an interrupted one resumes from its checkpoints.
        let marker = work.join(format!("{part}.complete"));
        if marker.exists() {
            if work.join(part).exists() {
                std::fs::remove_dir_all(work.join(part))?;
            }
            std::fs::remove_file(&marker)?;
        }
        let start = Instant::now();
        let detail = match *part {
            "lm" => {
                let lm = lm_experiment(out, &work)?;
                format!(
                    "the teacher's soft targets {:.0} s{}, each student about {:.0} s",
                    lm.teacher_seconds,
                    if lm.soft_targets_from_cache {
                        " (read from the cache in this run; the figure is from when it was made)"
                    } else {
                        ""
                    },
                    lm.hard.train_seconds
                )
            }
            "digits" => {
                let t = digits_experiment(out, &work)?;
                format!(
                    "teacher {:.0} s, {} student runs of about {:.1} s",
                    t.teacher.wall_s,
                    t.rows.len() * t.experiment.seeds.len(),
                    t.rows.iter().map(|r| r.mean_wall_s).sum::<f64>() / t.rows.len().max(1) as f64
                )
            }
            other => bail!("unknown experiment `{other}` (digits, lm)"),
        };
        let record = serde_json::json!({
            "part": part,
            "seconds": start.elapsed().as_secs_f64(),
            "threads": rayon::current_num_threads(),
            "detail": detail,
        });
        write(out, &format!("time-{part}.json"), &record.to_string())?;
        fsx::write_atomic(&marker, b"")?;
    }
    let mut timing =
        String::from("| experiment | minutes | threads | detail |\n|---|---:|---:|---|\n");
    let mut total = 0.0;
    for part in ["digits", "lm"] {
        let Ok(text) = std::fs::read_to_string(out.join(format!("time-{part}.json"))) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let secs = v["seconds"].as_f64().unwrap_or(0.0);
        total += secs;
        writeln!(
            timing,
            "| {part} | {:.1} | {} | {} |",
            secs / 60.0,
            v["threads"],
            v["detail"].as_str().unwrap_or("")
        )?;
    }
    writeln!(timing, "| **total** | **{:.1}** | | |", total / 60.0)?;
    write(out, "timing.md", &timing)
}

fn digits_experiment(out: &Path, work: &Path) -> Result<ExperimentTable> {
    let data = Digits::load_asset()?;
    let t = Experiment::full().run(&data, Some(&work.join("digits")), true)?;
    write(out, "digits.json", &serde_json::to_string_pretty(&t)?)?;
    write_digits(out, &t)?;
    Ok(t)
}

/// The digits tables and chart, from the experiment's results.
fn write_digits(out: &Path, t: &ExperimentTable) -> Result<()> {
    let hard = t.row("hard").context("no hard-label row")?;
    let best = t
        .best
        .as_deref()
        .and_then(|k| t.row(k))
        .context("no distilled row")?;
    // Every distilled condition that ties the best mean (to the table's
    // one decimal) is named: the seeds cannot tell them apart.
    let tied: Vec<&str> = t.rows[1..]
        .iter()
        .filter(|r| format!("{:.1}", r.mean_errors) == format!("{:.1}", best.mean_errors))
        .map(|r| r.label.as_str())
        .collect();
    let best_label = tied.join(" and ");
    let mut md = t.markdown();
    writeln!(
        md,
        "\nBeside Hinton, Vinyals and Dean (2015, §3, MNIST, 10,000 test images):\n\n\
         | | Hinton et al., MNIST | this run, digits ({} test images, mean of {} seeds) |\n\
         |---|---:|---:|\n\
         | teacher | 67 errors (0.67%) | {} errors ({:.2}%) |\n\
         | student, hard labels | 146 errors (1.46%) | {:.1} errors ({:.2}%) |\n\
         | student, distilled | 74 errors (0.74%), T = 20 | {:.1} errors ({:.2}%), {} |\n\
         | share of the gap closed | {:.0}% | **{:.0}%** |",
        t.n_test,
        t.experiment.seeds.len(),
        t.teacher.test_errors,
        100.0 * t.teacher.test_errors as f64 / t.n_test as f64,
        hard.mean_errors,
        100.0 * hard.mean_errors / t.n_test as f64,
        best.mean_errors,
        100.0 * best.mean_errors / t.n_test as f64,
        best_label,
        100.0 * (146.0 - 74.0) / (146.0 - 67.0),
        100.0 * t.gap_recovered.unwrap_or(f64::NAN)
    )?;
    writeln!(
        md,
        "\nTeacher: {} parameters; student: {} parameters; α = {}; {} training images. \
         Peak resident memory of the whole experiment: {:.0} MiB.",
        t.teacher.param_count,
        t.student_params,
        t.experiment.alpha,
        t.n_train,
        t.peak_rss_bytes.unwrap_or(0) as f64 / 1048576.0
    )?;
    write(out, "digits.md", &md)?;
    // The experiment's figures, beside the run they come from.
    let mut figs = super::Figures {
        run: Some(
            "cargo codex experiments (results experiment OUT digits), recorded in experiment/digits.json"
                .into(),
        ),
        ..super::Figures::default()
    };
    for r in &t.rows {
        figs.number(
            &format!("wisdom.digits.{}.mean", r.key),
            r.mean_errors,
            1,
            "errors",
        );
    }
    figs.number(
        "wisdom.digits.teacher",
        t.teacher.test_errors as f64,
        0,
        "errors",
    );
    figs.text("wisdom.digits.best", &best_label);
    if let Some(g) = t.gap_recovered {
        figs.number("wisdom.digits.gap_closed", 100.0 * g, 0, "%");
    }
    figs.write(out)?;
    t.chart()?.save(out.join("digits-vs-t.svg"))?;
    Ok(())
}

fn lm_experiment(out: &Path, work: &Path) -> Result<LmExperiment> {
    let cfg = LmExperimentConfig::book();
    let teacher = assets::smollm2()?;
    let corpus = corpus::path()?;
    let e = lm::run_experiment(
        &teacher,
        &corpus,
        &cfg,
        &nindub::distill::soft_targets::default_dir(),
        Some(&work.join("lm")),
        true,
    )?;
    write(out, "lm.json", &serde_json::to_string_pretty(&e)?)?;
    write_lm(out, &e)?;
    Ok(e)
}

/// The language-model tables, chart and samples, from its results.
fn write_lm(out: &Path, e: &LmExperiment) -> Result<()> {
    let mb = |b: Option<u64>| {
        b.map(|b| format!("{:.0} MiB", b as f64 / 1048576.0))
            .unwrap_or("?".into())
    };
    let mut t = String::from(
        "| model | parameters | held-out perplexity | steps | training tokens/s | time | peak RSS |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    writeln!(
        t,
        "| teacher: SmolLM2-135M-Instruct | {} | {:.1} | (pretrained) | {:.0} (soft targets) | {:.0} s | |",
        e.teacher_params, e.teacher_held_out_ppl, e.teacher_tokens_per_sec, e.teacher_seconds
    )?;
    for (name, r) in [
        ("student, hard labels", &e.hard),
        ("student, distilled", &e.distilled),
    ] {
        writeln!(
            t,
            "| {name} | {} | **{:.1}** | {} | {:.0} | {:.0} s | {} |",
            r.params,
            r.held_out_ppl,
            r.steps,
            r.tokens_per_sec,
            r.train_seconds,
            mb(r.peak_rss_bytes)
        )?;
    }
    let c = &e.config;
    writeln!(
        t,
        "\nCorpus: {} tokens (SmolLM2's tokenizer); {} training windows and {} held-out windows \
         of {} tokens; batch {} windows; AdamW, peak learning rate {}, {} warm-up steps, cosine \
         decay; distilled with T = {}, α = {}, the teacher's top {} logits per position \
         (cache: {:.1} MiB gzip). Student: {} layers, width {}.",
        e.corpus_tokens,
        c.train_windows,
        c.held_out_windows,
        c.window,
        c.batch,
        c.lr,
        c.warmup,
        c.temperature,
        c.alpha,
        c.k,
        e.soft_targets_bytes as f64 / 1048576.0,
        c.layers,
        c.hidden
    )?;
    write(out, "lm.md", &t)?;
    let curve = |r: &lm::LmReport| -> Vec<(f64, f64)> {
        r.curve
            .iter()
            .map(|p| (p.step as f64, p.held_out_ppl))
            .collect()
    };
    LineChart {
        title: "Language-model students: held-out perplexity".into(),
        x_desc: "optimiser step".into(),
        y_desc: "perplexity".into(),
        series: vec![
            ("hard labels".into(), curve(&e.hard)),
            ("distilled".into(), curve(&e.distilled)),
        ],
        reference: Some(("teacher".into(), e.teacher_held_out_ppl)),
        log_x: false,
        log_y: true,
    }
    .draw()?
    .save(out.join("lm-curves.svg"))?;
    let mut s = String::new();
    for sample in &e.samples {
        writeln!(
            s,
            "**{}** (T = 0.8, top-k 40, top-p 0.9):\n\n```text\n{}{}\n```\n",
            sample.model, sample.prompt, sample.text
        )?;
    }
    write(out, "lm-samples.md", &s)
}

/// Redraws the experiments' tables and charts from their JSON results
/// (after a change of presentation; no training).
pub fn replot(out: &Path) -> Result<()> {
    let read = |name: &str| -> Result<String> {
        std::fs::read_to_string(out.join(name)).with_context(|| format!("reading {name}"))
    };
    write_digits(out, &serde_json::from_str(&read("digits.json")?)?)?;
    write_lm(out, &serde_json::from_str(&read("lm.json")?)?)
}
