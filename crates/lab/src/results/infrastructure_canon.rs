//! Generates the Results of "The Infrastructure Canon":
//! `cargo run -p lab --bin results -- run infrastructure_canon book/src/generated/infrastructure-canon`.
//!
//! A real server on loopback serves SmolLM2 to a stream of completion
//! requests (prompts cut from the corpus, sampled at temperature 0.8 with
//! a seed each). In a degraded run the served model is swapped, mid-stream
//! and without a pause, for a crude requantization of itself (INT3 or INT2,
//! symmetric, per group of 32); in a control run it is not. After every
//! request the harness reads `/metrics` as Prometheus would and decides
//! every alert rule on what it read ([`nindub::monitor::Rule::holds`]), and
//! checks `/health`. Everything is seeded and the engine is deterministic,
//! so every byte written is reproducible.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use candle_core::Device;
use nindub::compress::export::{ExportOptions, quantize_gguf};
use nindub::compress::quant::Scheme;
use nindub::model::generate::{GenerateConfig, Generator};
use nindub::model::sample::SamplingConfig;
use nindub::monitor::{
    CanaryScore, CanarySet, Drift, MonitorConfig, RULES, Signal, Snapshot, Test, WindowConfig,
    canary, embedding_norms,
};
use nindub::serve::client::Client;
use nindub::serve::{ServeConfig, Server};
use nindub::{assets, corpus};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::{Figures, write};
use crate::plot::LineChart;

const WINDOWS: WindowConfig = WindowConfig {
    reference: 400,
    live: 160,
    bins: 10,
    top_tokens: 31,
};
/// Requests before the swap (for the first seed; each later seed swaps
/// two requests later, so the swap falls at a different point of the
/// canaries' schedule), and after it.
const BEFORE: usize = 40;
const AFTER: usize = 25;
const MAX_TOKENS: usize = 16;
const CANARY_EVERY: usize = 5;
const SEEDS: [u64; 3] = [1, 2, 3];
/// The degraded variants (the control serves the model throughout).
const VARIANTS: [&str; 2] = ["int3-g32", "int2-g32"];

const CANARY_PROMPTS: [&str; 6] = [
    "The capital of France is",
    "One, two, three, four,",
    "To be, or not to be,",
    "Water is made of hydrogen and",
    "Monday, Tuesday, Wednesday,",
    "Once upon a time, there was a",
];
const CANARY_TOKENS: usize = 6;

/// A degraded copy of SmolLM2 in the cache (written once, atomically).
fn degraded(scheme: &str) -> Result<PathBuf> {
    let dir = assets::cache_dir().join("degraded");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("SmolLM2-135M-Instruct.{scheme}.gguf"));
    if !path.exists() {
        quantize_gguf(
            &assets::smollm2()?,
            &path,
            Scheme::parse(scheme)?,
            &ExportOptions::REQUANTIZE,
        )?;
    }
    Ok(path)
}

fn load(path: &Path) -> Result<Generator> {
    Ok(Generator::load(path, &Device::Cpu)?)
}

/// Prompts cut from the corpus: two consecutive lines from a random place.
fn prompts(text: &str, seed: u64, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.len() > 12 && !l.ends_with(':'))
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let i = rng.random_range(0..lines.len() - 1);
            format!("{}\n{}", lines[i], lines[i + 1])
        })
        .collect()
}

/// What a scrape of `/metrics` says, in the monitor's own terms.
struct Scrape {
    snapshot: Snapshot,
    canary: Option<CanaryScore>,
}

/// `name{a="x",b="y"} value` → (name, labels, value).
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = vec![];
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let body = rest.trim_end_matches('}');
                let labels = body
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                    .collect();
                (n.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        out.push((name, labels, value));
    }
    out
}

fn read(text: &str) -> Scrape {
    let mut snapshot = Snapshot {
        ready: false,
        reference_tokens: 0,
        live_tokens: 0,
        means: vec![],
        drift: vec![],
    };
    let (mut accuracy, mut runs) = (None, 0.0);
    let mut means: BTreeMap<&'static str, (Signal, f64, f64)> = BTreeMap::new();
    for (name, labels, v) in samples(text) {
        let label = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
        match name.as_str() {
            "nindub_drift_reference_ready" => snapshot.ready = v == 1.0,
            "nindub_drift_window_tokens" if label("window") == "reference" => {
                snapshot.reference_tokens = v as usize
            }
            "nindub_drift_window_tokens" => snapshot.live_tokens = v as usize,
            "nindub_signal_mean" => {
                if let Some(s) = Signal::from_name(label("signal")) {
                    let e = means.entry(s.name()).or_insert((s, f64::NAN, f64::NAN));
                    if label("window") == "reference" {
                        e.1 = v;
                    } else {
                        e.2 = v;
                    }
                }
            }
            "nindub_drift_score" => {
                if let (Some(signal), Some(test)) = (
                    Signal::from_name(label("signal")),
                    Test::from_name(label("test")),
                ) {
                    snapshot.drift.push(Drift {
                        signal,
                        test,
                        value: v,
                    });
                }
            }
            "nindub_canary_accuracy_ratio" => accuracy = Some(v),
            "nindub_canary_runs_total" => runs = v,
            _ => {}
        }
    }
    snapshot.means = means.into_values().collect();
    Scrape {
        snapshot,
        canary: accuracy.filter(|_| runs > 0.0).map(|accuracy| CanaryScore {
            accuracy,
            logprob_mean: f64::NAN,
            tokens: 0,
            exact: 0,
            canaries: 0,
        }),
    }
}

/// One request of one run, as the harness saw it.
struct Row {
    request: usize,
    swapped: bool,
    status: u16,
    healthy: bool,
    scrape: Scrape,
    /// The rules that hold after this request.
    firing: Vec<&'static str>,
}

struct Run {
    variant: &'static str,
    seed: u64,
    rows: Vec<Row>,
    metrics: String,
    /// The server's quality log (first seed only).
    traffic: String,
}

fn run(
    variant: &'static str,
    seed: u64,
    prompts: &[String],
    monitor: &MonitorConfig,
    swap_to: Option<&Path>,
) -> Result<Run> {
    let mut cfg = ServeConfig::new("smollm2");
    cfg.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.public_metrics = true;
    cfg.monitor = monitor.clone();
    // The first seed's traffic is kept, token by token, as the server's
    // quality log records it (the notebook's data).
    let log = tempfile::NamedTempFile::new()?;
    if seed == SEEDS[0] {
        cfg.monitor.log = Some(log.path().to_path_buf());
    }
    let server = Server::start(load(&assets::smollm2()?)?, cfg)?;
    let client = Client::new(&server.url());
    let mut rows = vec![];
    let mut metrics = String::new();
    for (i, prompt) in prompts.iter().enumerate() {
        if i == swap_at(seed)
            && let Some(path) = swap_to
        {
            server.swap_model(load(path)?)?;
        }
        let (status, _) = client.post(
            "/v1/completions",
            &json!({
                "prompt": prompt,
                "max_tokens": MAX_TOKENS,
                "temperature": 0.8,
                "seed": seed * 1000 + i as u64,
            }),
        )?;
        let (health, _) = client.get("/health")?;
        let (_, text) = client.get("/metrics")?;
        metrics = text.as_str().unwrap_or_default().to_string();
        let scrape = read(&metrics);
        let firing = RULES
            .iter()
            .filter(|r| r.holds(&scrape.snapshot, scrape.canary.as_ref()) == Some(true))
            .map(|r| r.alert)
            .collect();
        rows.push(Row {
            request: i + 1,
            swapped: swap_to.is_some() && i >= swap_at(seed),
            status,
            healthy: health == 200,
            scrape,
            firing,
        });
    }
    drop(server);
    let traffic = if seed == SEEDS[0] {
        std::fs::read_to_string(log.path())?
    } else {
        String::new()
    };
    Ok(Run {
        variant,
        seed,
        rows,
        metrics,
        traffic,
    })
}

/// Requests served before the swap in seed `seed`'s runs.
fn swap_at(seed: u64) -> usize {
    BEFORE + 2 * (seed as usize - 1)
}

/// The requests after the swap until `alert` first holds (1 = the first
/// request served by the degraded model).
fn delay(run: &Run, alert: &str) -> Option<usize> {
    run.rows
        .iter()
        .filter(|r| r.swapped)
        .position(|r| r.firing.contains(&alert))
        .map(|p| p + 1)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn f(v: f64, d: usize) -> String {
    if v.is_finite() {
        format!("{v:.d$}")
    } else {
        String::new()
    }
}

pub fn generate(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let smollm2 = assets::smollm2()?;
    let mut figs = Figures::default();

    // The canaries: the approved model's own greedy answers.
    let mut healthy = load(&smollm2)?;
    let prompts_c: Vec<String> = CANARY_PROMPTS.iter().map(|s| s.to_string()).collect();
    let set: CanarySet = canary::record(
        &mut healthy,
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        &prompts_c,
        8,
    )?;
    write(
        out,
        "canaries.json",
        &(serde_json::to_string_pretty(&set)? + "\n"),
    )?;

    // The same prompts, greedily, from each model: what a user would read.
    let mut answers = String::from(
        "| model | canary accuracy | \"The capital of France is\" … |\n|---|---:|---|\n",
    );
    let greedy = GenerateConfig {
        sampling: SamplingConfig::greedy(),
        max_tokens: 12,
        top_n: 0,
        ..GenerateConfig::default()
    };
    for (name, path) in std::iter::once(("Q4_1 (served)", smollm2.clone())).chain(
        VARIANTS
            .iter()
            .map(|v| Ok((*v, degraded(v)?)))
            .collect::<Result<Vec<_>>>()?,
    ) {
        let mut g = load(&path)?;
        let score = canary::score(&mut g, &set)?;
        let ids = g.tokenizer.encode(CANARY_PROMPTS[0])?;
        let text = g.generate(&ids, &greedy, |_| true)?.text;
        writeln!(
            answers,
            "| {name} | {:.3} | `{}` |",
            score.accuracy,
            text.replace('\n', "⏎")
                .replace('|', "\\|")
                .replace('`', "'")
        )?;
        let key = name
            .split_whitespace()
            .next()
            .unwrap_or(name)
            .to_lowercase();
        figs.number(&format!("canon.canary.{key}"), score.accuracy, 3, "");
    }
    write(out, "answers.md", &answers)?;

    let monitor = MonitorConfig {
        windows: WINDOWS,
        embedding_norms: Some(Arc::new(embedding_norms(&smollm2)?)),
        canaries: Some(set),
        canary_every: CANARY_EVERY,
        log: None,
    };
    let text = corpus::load()?;
    let mut runs = vec![];
    for &seed in &SEEDS {
        let p = prompts(&text, seed, swap_at(seed) + AFTER);
        runs.push(run("control", seed, &p, &monitor, None)?);
        for v in VARIANTS {
            runs.push(run(v, seed, &p, &monitor, Some(&degraded(v)?))?);
        }
    }

    // Uptime: every request answered 200, every /health 200.
    let requests: usize = runs.iter().map(|r| r.rows.len()).sum();
    let ok = runs
        .iter()
        .flat_map(|r| &r.rows)
        .filter(|r| r.status == 200 && r.healthy)
        .count();
    ensure!(requests > 0, "no request was sent");
    figs.number("canon.requests", requests as f64, 0, "");
    figs.number("canon.uptime", 100.0 * ok as f64 / requests as f64, 1, "%");

    // Detection delay, per variant and rule, over the seeds.
    let quality: Vec<&str> = RULES
        .iter()
        .map(|r| r.alert)
        .filter(|a| *a != "NindubDown")
        .collect();
    let mut table = format!(
        "| served after the swap | seed | {} | any quality alert |\n|---|---:|{}---:|\n",
        quality.join(" | "),
        "---:|".repeat(quality.len())
    );
    for v in VARIANTS {
        let mut any = vec![];
        for r in runs.iter().filter(|r| r.variant == v) {
            let cells: Vec<String> = quality
                .iter()
                .map(|a| delay(r, a).map_or(format!("not within {AFTER}"), |d| d.to_string()))
                .collect();
            let first = r
                .rows
                .iter()
                .filter(|x| x.swapped)
                .position(|x| !x.firing.is_empty())
                .map(|p| p + 1);
            writeln!(
                table,
                "| {v} | {} | {} | {} |",
                r.seed,
                cells.join(" | "),
                first.map_or(format!("not within {AFTER}"), |d| d.to_string())
            )?;
            any.push(first.map_or(f64::INFINITY, |d| d as f64));
        }
        let detected = any.iter().filter(|d| d.is_finite()).count();
        figs.number(
            &format!("canon.{}.detected", &v[..4]),
            detected as f64,
            0,
            "",
        );
        figs.number(
            &format!("canon.{}.delay.median", &v[..4]),
            median(any.clone()),
            0,
            "",
        );
        figs.number(
            &format!("canon.{}.delay.max", &v[..4]),
            any.iter().copied().fold(0.0, f64::max),
            0,
            "",
        );
        for a in &quality {
            let d: Vec<f64> = runs
                .iter()
                .filter(|r| r.variant == v)
                .map(|r| delay(r, a).map_or(f64::INFINITY, |d| d as f64))
                .collect();
            figs.number(&format!("canon.{}.{a}.median", &v[..4]), median(d), 0, "");
        }
    }
    write(out, "detection.md", &table)?;

    // False alarms: every evaluation with the healthy model served and
    // the windows full (control runs, and degraded runs before the swap).
    let healthy_rows: Vec<&Row> = runs
        .iter()
        .flat_map(|r| &r.rows)
        .filter(|r| !r.swapped && r.scrape.snapshot.ready)
        .collect();
    let mut fa = String::from("| rule | evaluations | held | rate |\n|---|---:|---:|---:|\n");
    let mut any = 0;
    for a in &quality {
        let held = healthy_rows.iter().filter(|r| r.firing.contains(a)).count();
        writeln!(
            fa,
            "| {a} | {} | {held} | {:.3} |",
            healthy_rows.len(),
            held as f64 / healthy_rows.len().max(1) as f64
        )?;
    }
    any += healthy_rows.iter().filter(|r| !r.firing.is_empty()).count();
    writeln!(
        fa,
        "| any | {} | {any} | {:.3} |",
        healthy_rows.len(),
        any as f64 / healthy_rows.len().max(1) as f64
    )?;
    write(out, "false-alarms.md", &fa)?;
    figs.number(
        "canon.healthy.evaluations",
        healthy_rows.len() as f64,
        0,
        "",
    );
    figs.number("canon.healthy.false_alarms", any as f64, 0, "");
    // The noise floor of each statistic on healthy traffic, beside the
    // KS test's textbook critical value for these window sizes.
    let most = |pick: &dyn Fn(&Snapshot) -> Option<f64>| {
        healthy_rows
            .iter()
            .filter_map(|r| pick(&r.scrape.snapshot))
            .fold(f64::NAN, f64::max)
    };
    for (name, signal, test) in [
        ("psi_probability", Signal::TokenProbability, Test::Psi),
        ("psi_entropy", Signal::TokenEntropy, Test::Psi),
        ("ks_probability", Signal::TokenProbability, Test::Ks),
        ("js_output", Signal::OutputTokens, Test::Js),
        ("psi_input_norm", Signal::InputEmbeddingNorm, Test::Psi),
    ] {
        figs.number(
            &format!("canon.healthy.max.{name}"),
            most(&|s| s.drift(signal, test)),
            3,
            "",
        );
    }
    let ratio = |s: &Snapshot| s.mean(Signal::TokenProbability).map(|(r, l)| l / r);
    let lowest = healthy_rows
        .iter()
        .filter_map(|r| ratio(&r.scrape.snapshot))
        .fold(f64::NAN, f64::min);
    figs.number("canon.healthy.min.prob_ratio", lowest, 2, "");
    figs.number(
        "canon.ks.critical",
        nindub::monitor::stats::ks_critical(WINDOWS.reference, WINDOWS.live, 0.05),
        3,
        "",
    );
    for v in VARIANTS {
        let last: Vec<f64> = runs
            .iter()
            .filter(|r| r.variant == v)
            .filter_map(|r| r.rows.last().and_then(|x| ratio(&x.scrape.snapshot)))
            .collect();
        figs.number(
            &format!("canon.{}.final_prob_ratio", &v[..4]),
            median(last),
            2,
            "",
        );
    }
    let control_runs = runs.iter().filter(|r| r.variant == "control");
    let control_alarmed = control_runs
        .clone()
        .filter(|r| r.rows.iter().any(|x| !x.firing.is_empty()))
        .count();
    figs.number("canon.control.runs", control_runs.count() as f64, 0, "");
    figs.number("canon.control.alarmed", control_alarmed as f64, 0, "");

    // The trace every plot and the notebook read.
    let mut csv = String::from(
        "variant,seed,request,swapped,status,health,ready,prob_reference,prob_live,entropy_reference,entropy_live,psi_probability,psi_entropy,ks_probability,js_output,js_input,psi_input_norm,canary_accuracy,firing\n",
    );
    for r in &runs {
        for x in &r.rows {
            let s = &x.scrape.snapshot;
            let (pr, pl) = s
                .mean(Signal::TokenProbability)
                .unwrap_or((f64::NAN, f64::NAN));
            let (er, el) = s.mean(Signal::TokenEntropy).unwrap_or((f64::NAN, f64::NAN));
            let d = |sig, t| s.drift(sig, t).map_or(String::new(), |v| f(v, 4));
            writeln!(
                csv,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                r.variant,
                r.seed,
                x.request,
                u8::from(x.swapped),
                x.status,
                u8::from(x.healthy),
                u8::from(s.ready),
                f(pr, 4),
                f(pl, 4),
                f(er, 4),
                f(el, 4),
                d(Signal::TokenProbability, Test::Psi),
                d(Signal::TokenEntropy, Test::Psi),
                d(Signal::TokenProbability, Test::Ks),
                d(Signal::OutputTokens, Test::Js),
                d(Signal::InputTokens, Test::Js),
                d(Signal::InputEmbeddingNorm, Test::Psi),
                x.scrape.canary.map_or(String::new(), |c| f(c.accuracy, 4)),
                x.firing.join(";")
            )?;
        }
    }
    write(out, "trace.csv", &csv)?;
    for r in runs.iter().filter(|r| r.seed == SEEDS[0]) {
        write(out, &format!("traffic-{}.jsonl", r.variant), &r.traffic)?;
    }

    // What Prometheus scrapes at the end of the first INT3 run: the quality series.
    if let Some(r) = runs.iter().find(|r| r.variant == VARIANTS[0]) {
        // Series in a stable order (a labelled family is a hash map).
        let mut kept: Vec<&str> = r
            .metrics
            .lines()
            .filter(|l| {
                !l.starts_with('#')
                    && (l.starts_with("nindub_drift_score")
                        || l.starts_with("nindub_signal_mean")
                        || l.starts_with("nindub_canary_accuracy")
                        || l.starts_with("nindub_canary_runs")
                        || l.starts_with("nindub_model_swaps")
                        || l.starts_with("nindub_token_probability_ratio_count")
                        || l.starts_with("nindub_token_probability_ratio_sum")
                        || l.starts_with("nindub_drift_reference_ready"))
            })
            .collect();
        kept.sort_unstable();
        let excerpt: String = kept.iter().map(|l| format!("{l}\n")).collect();
        write(out, "metrics.txt", &excerpt)?;
    }

    // The signals of seed 1, request by request.
    let series = |variant: &str, pick: &dyn Fn(&Row) -> Option<f64>| -> Vec<(f64, f64)> {
        runs.iter()
            .find(|r| r.variant == variant && r.seed == SEEDS[0])
            .map(|r| {
                r.rows
                    .iter()
                    .filter_map(|x| pick(x).map(|v| (x.request as f64, v)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let live_prob = |x: &Row| {
        x.scrape
            .snapshot
            .mean(Signal::TokenProbability)
            .map(|m| m.1)
            .filter(|v| v.is_finite() && x.scrape.snapshot.ready)
    };
    let mut lines = vec![];
    for v in ["control", VARIANTS[0], VARIANTS[1]] {
        lines.push((format!("{v}: live mean probability"), series(v, &live_prob)));
    }
    for v in ["control", VARIANTS[0], VARIANTS[1]] {
        lines.push((
            format!("{v}: canary accuracy"),
            series(v, &|x: &Row| x.scrape.canary.map(|c| c.accuracy)),
        ));
    }
    LineChart {
        title: format!(
            "Confidence and canaries (seed 1; swap after request {})",
            swap_at(SEEDS[0])
        ),
        x_desc: "request".into(),
        y_desc: "probability / accuracy".into(),
        series: lines,
        reference: None,
        ..LineChart::default()
    }
    .draw()?
    .save(out.join("confidence.svg"))?;
    let mut lines = vec![];
    for v in ["control", VARIANTS[0], VARIANTS[1]] {
        lines.push((
            format!("{v}: PSI of entropy"),
            series(v, &|x: &Row| {
                x.scrape.snapshot.drift(Signal::TokenEntropy, Test::Psi)
            }),
        ));
        lines.push((
            format!("{v}: JS of output tokens"),
            series(v, &|x: &Row| {
                x.scrape.snapshot.drift(Signal::OutputTokens, Test::Js)
            }),
        ));
    }
    LineChart {
        title: format!(
            "Drift from the reference window (seed 1; swap after request {})",
            swap_at(SEEDS[0])
        ),
        x_desc: "request".into(),
        y_desc: "PSI / JS (bits)".into(),
        series: lines,
        reference: Some(("PSI alert threshold".into(), 0.25)),
        ..LineChart::default()
    }
    .draw()?
    .save(out.join("drift.svg"))?;

    figs.number("canon.before", BEFORE as f64, 0, "");
    figs.number("canon.after", AFTER as f64, 0, "");
    figs.number("canon.seeds", SEEDS.len() as f64, 0, "");
    figs.number("canon.window.reference", WINDOWS.reference as f64, 0, "");
    figs.number("canon.window.live", WINDOWS.live as f64, 0, "");
    figs.number("canon.canary_every", CANARY_EVERY as f64, 0, "");
    figs.number("canon.max_tokens", MAX_TOKENS as f64, 0, "");
    figs.number("canon.canaries", CANARY_PROMPTS.len() as f64, 0, "");
    figs.number("canon.canary_tokens", CANARY_TOKENS as f64, 0, "");
    figs.write(out)?;
    println!("infrastructure_canon: wrote results to {}", out.display());
    Ok(())
}
