//! NINDUB under a budget: synthetic Llama shapes from 135M to 8B parameters
//! (Q4_0, written once into the cache by `nindub::stream::synth`) run by `nindub
//! stream` within 768 MiB, each layer that does not fit read from storage for
//! every token (`--cold`: dropped from the page cache after each read, as
//! when the model is larger than the RAM), with and without prefetch.
//!
//! One child process per run, so that each reports its own peak RSS. The
//! storage read throughput is measured in the same child, before and after
//! the run, by reading the same files sequentially (the faster of the two
//! gives the floor). Printed: peak RSS against the
//! budget, seconds per token, bytes streamed per token, the throughput and
//! the ratio of time per token to the IO floor; then the budget–speed
//! trade-off on the 1B shape, and the seed's Table 2 row "Qwen-2.5-32B
//! INT4: only layer-by-layer" projected from these measurements.
//!
//! `cargo bench -p nindub --bench layer_stream`; with `NINDUB_BENCH_OUT=DIR`
//! it also writes `DIR/stream.json`, `DIR/timeline.svg`, `DIR/size.svg`
//! and `DIR/budget.svg` (`-- --replot DIR` redraws them from the JSON).

use std::path::{Path, PathBuf};
use std::process::Command;

use lab::plot::LineChart;
use nindub::assets;
use nindub::model::gguf;
use nindub::model::run::Report;
use nindub::stream::placement;
use nindub::stream::source::ModelSource;
use nindub::stream::synth;
use nindub::stream::synth::SynthSpec;
use serde_json::{Value, json};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const BUDGET: u64 = 768 << 20;
const TOKENS: usize = 4;
const PROMPT: &str = "The Mana Crystal holds";
const SIZES: &[&str] = &["smollm2-135m", "llama-3.2-1b", "llama-3.2-3b", "llama-3-8b"];
/// The shape whose budget is swept.
const SWEPT: &str = "llama-3.2-1b";

/// The synthetic model `preset`, written into the cache the first time.
fn model(preset: &str) -> Res<PathBuf> {
    let dir = assets::cache_dir()
        .join("synth")
        .join(format!("{preset}-q4_0-seed0"));
    if nindub::stream::manifest::read_manifest(&dir).is_ok() {
        return Ok(dir);
    }
    // No manifest: absent, or an interrupted write; start again.
    let _ = std::fs::remove_dir_all(&dir);
    let spec = SynthSpec::preset(preset)?;
    eprintln!(
        "writing the synthetic {preset} ({:.2} GB) into {}",
        spec.bytes() as f64 / 1e9,
        dir.display()
    );
    let tokenizer = gguf::GgufFile::open(&assets::smollm2()?)?;
    synth::write(&spec, Some(&tokenizer), &dir, true)?;
    Ok(dir)
}

/// One `nindub stream` run in its own process: its report and the read
/// throughput it measured.
fn stream(dir: &Path, budget: u64, prefetch: bool, cold: bool) -> Res<(Report, f64)> {
    let out = tempfile::NamedTempFile::new()?;
    // The release `nindub` binary, named by `cargo codex bench stream`.
    let bin = std::env::var_os("NINDUB_BIN")
        .ok_or("NINDUB_BIN is not set: run this benchmark with `cargo codex bench stream`")?;
    let mut cmd = Command::new(bin);
    cmd.arg("stream")
        .arg("--model")
        .arg(dir)
        .args(["--budget", &budget.to_string(), "--prompt", PROMPT])
        .args(["--max-tokens", &TOKENS.to_string(), "--io-floor", "--json"])
        .arg("--report")
        .arg(out.path());
    if !prefetch {
        cmd.arg("--no-prefetch");
    }
    if cold {
        cmd.arg("--cold");
    }
    let status = cmd.stdout(std::process::Stdio::null()).status()?;
    if !status.success() {
        return Err(format!("nindub stream on {} failed: {status}", dir.display()).into());
    }
    let (report, throughput): (Report, Option<f64>) =
        serde_json::from_slice(&std::fs::read(out.path())?)?;
    Ok((report, throughput.unwrap_or(f64::NAN)))
}

/// The figures of one run, as JSON (the timeline left out).
fn figures(name: &str, r: &Report, throughput: f64, cold: bool) -> Value {
    let floor = r.streamed_per_token as f64 / throughput;
    json!({
        "model": name,
        "weight_bytes": r.weight_bytes,
        "budget": r.budget,
        "prefetch": r.prefetch,
        "cold": cold,
        "accounted": r.accounted,
        "peak_rss": r.peak_rss,
        "resident_layers": r.resident_layers,
        "streamed_layers": r.streamed_layers,
        "streamed_per_token": r.streamed_per_token,
        "secs_per_token": r.secs_per_token(),
        "prompt_secs": r.prompt_secs,
        "read_throughput": throughput,
        "io_floor_secs": floor,
        "ratio_to_floor": if r.streamed_per_token > 0 { r.secs_per_token() / floor } else { f64::NAN },
    })
}

fn print_row(v: &Value) {
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let peak = f("peak_rss");
    let budget = f("budget");
    println!(
        "{:<14} {:>5.2} {:>7.0} {:>8} {:>4} {:>4}/{:<4} {:>8.1} {:>8.1} {:>6.3} {:>8.3} {:>6.2} {:>8.3} {:>6.2}",
        v["model"].as_str().unwrap_or(""),
        f("weight_bytes") / 1e9,
        budget / 1e6,
        if v["prefetch"].as_bool() == Some(true) {
            "on"
        } else {
            "off"
        },
        if v["cold"].as_bool() == Some(true) {
            "cold"
        } else {
            "warm"
        },
        v["resident_layers"],
        v["streamed_layers"],
        f("streamed_per_token") / 1e6,
        peak / 1e6,
        peak / budget,
        f("secs_per_token"),
        f("read_throughput") / 1e9,
        f("io_floor_secs"),
        f("ratio_to_floor"),
    );
}

fn header() {
    println!(
        "{:<14} {:>5} {:>7} {:>8} {:>4} {:>9} {:>8} {:>8} {:>6} {:>8} {:>6} {:>8} {:>6}",
        "model",
        "GB",
        "budg MB",
        "prefetch",
        "read",
        "res/str",
        "MB/token",
        "peak MB",
        "/budg",
        "s/token",
        "GB/s",
        "floor s",
        "ratio"
    );
}

/// The seed's Table 2 row, made concrete: Qwen-2.5-32B's shape in Q4_0
/// placed within the Mana Crystal (4 GiB), and its time per token projected
/// from this machine's measured storage throughput and streaming ratio.
fn table2(throughput: f64, ratio: f64) -> Value {
    let Ok(spec) = nindub::Architecture::preset("qwen-2.5-32b")
        .and_then(|a| SynthSpec::from_architecture(&a, candle_core::quantized::GgmlDType::Q4_0))
    else {
        return Value::Null;
    };
    let demand = spec.demand(512, false);
    let crystal = 4u64 << 30;
    match placement::plan(&demand, crystal, 2) {
        Ok(p) => {
            let floor = p.streamed_per_token as f64 / throughput;
            json!({
                "shape": spec.name,
                // SynthSpec counts a tied embedding once; Qwen's head is its own.
                "params": spec.params() + (spec.vocab * spec.hidden) as u64,
                "weight_bytes": demand.fixed + demand.layers.iter().sum::<u64>(),
                "budget": crystal,
                "resident_layers": p.resident.len(),
                "streamed_layers": p.streamed.len(),
                "streamed_per_token": p.streamed_per_token,
                "read_throughput": throughput,
                "io_floor_secs": floor,
                "ratio": ratio,
                "projected_secs_per_token": floor * ratio,
            })
        }
        Err(e) => json!({ "shape": spec.name, "error": e.to_string() }),
    }
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--replot") {
        let dir = PathBuf::from(args.get(i + 1).ok_or("--replot DIR")?);
        let all: Value = serde_json::from_slice(&std::fs::read(dir.join("stream.json"))?)?;
        return plot(&all, &dir);
    }
    if cfg!(debug_assertions) {
        eprintln!("layer_stream: a DEBUG build; run it with `cargo bench` for real figures");
    }
    let out = std::env::var_os("NINDUB_BENCH_OUT").map(PathBuf::from);
    println!(
        "layer_stream: budget {} MiB, prompt {PROMPT:?}, {TOKENS} tokens, {} threads; cold = each streamed layer dropped from the page cache after it is read",
        BUDGET >> 20,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    header();
    let mut runs = vec![];
    let mut timeline = None;
    for name in SIZES {
        let dir = model(name)?;
        for prefetch in [true, false] {
            let (r, bps) = stream(&dir, BUDGET, prefetch, true)?;
            let v = figures(name, &r, bps, true);
            print_row(&v);
            if *name == "llama-3-8b" && prefetch {
                timeline = Some(
                    json!({ "model": name, "budget": BUDGET, "accounted": r.accounted, "samples": r.timeline }),
                );
            }
            runs.push(v);
        }
    }
    // The largest model from the page cache: what streaming costs when the
    // storage is the RAM.
    let big = model(SIZES[SIZES.len() - 1])?;
    let (r, bps) = stream(&big, BUDGET, true, false)?;
    let warm = figures(SIZES[SIZES.len() - 1], &r, bps, false);
    print_row(&warm);
    runs.push(warm);

    // The trade-off between budget and speed on one shape.
    println!("\nbudget against speed, synthetic {SWEPT} (cold, prefetch on):");
    header();
    let dir = model(SWEPT)?;
    let source = ModelSource::open(&dir)?;
    let demand = nindub::stream::placement::demand(&source, 64)?;
    let largest = demand.layers.iter().copied().max().unwrap_or(0);
    let minimum = demand.fixed + demand.kv_cache + demand.activations + 2 * largest;
    let everything =
        demand.fixed + demand.kv_cache + demand.activations + demand.layers.iter().sum::<u64>();
    let mut sweep = vec![];
    for k in 0..=5 {
        let budget = minimum + (everything - minimum) * k / 5;
        let (r, bps) = stream(&dir, budget, true, true)?;
        let v = figures(SWEPT, &r, bps, true);
        print_row(&v);
        sweep.push(v);
    }

    // Goals, from the largest model's runs.
    let find = |prefetch: bool| {
        runs.iter()
            .find(|v| v["model"] == "llama-3-8b" && v["prefetch"] == prefetch && v["cold"] == true)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let (on, off) = (find(true), find(false));
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let size_ratio = f(&on, "weight_bytes") / BUDGET as f64;
    let overhead = f(&on, "peak_rss") - BUDGET as f64;
    println!(
        "\nllama-3-8b shape: {:.2} GB of weights = {size_ratio:.1}x the budget; peak RSS {:.1} MB = {:.3} of the budget ({} by {:.1} MB = {:.1} % of it; goal: at most 10 %)",
        f(&on, "weight_bytes") / 1e9,
        f(&on, "peak_rss") / 1e6,
        f(&on, "peak_rss") / BUDGET as f64,
        if overhead > 0.0 { "over" } else { "under" },
        overhead.abs() / 1e6,
        100.0 * overhead.abs() / BUDGET as f64,
    );
    println!(
        "prefetch on: {:.2} s per token = {:.2}x the IO floor (goal: at most 1.3x); off: {:.2} s = {:.2}x; prefetch saves {:.0} %",
        f(&on, "secs_per_token"),
        f(&on, "ratio_to_floor"),
        f(&off, "secs_per_token"),
        f(&off, "ratio_to_floor"),
        100.0 * (1.0 - f(&on, "secs_per_token") / f(&off, "secs_per_token"))
    );
    let t2 = table2(f(&on, "read_throughput"), f(&on, "ratio_to_floor"));
    println!(
        "Table 2, \"Qwen-2.5-32B INT4: only layer-by-layer\": {:.1} GB in Q4_0; within 4 GiB {} layers resident, {} streamed ({:.1} GB per token); at {:.2} GB/s and {:.2}x the floor: {:.1} s per token",
        f(&t2, "weight_bytes") / 1e9,
        t2["resident_layers"],
        t2["streamed_layers"],
        f(&t2, "streamed_per_token") / 1e9,
        f(&t2, "read_throughput") / 1e9,
        f(&t2, "ratio"),
        f(&t2, "projected_secs_per_token"),
    );
    let all = json!({ "budget": BUDGET, "tokens": TOKENS, "runs": runs, "sweep": sweep, "timeline": timeline, "table2": t2 });
    if let Some(dir) = out {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("stream.json"), serde_json::to_string_pretty(&all)?)?;
        plot(&all, &dir)?;
        println!("wrote {}", dir.display());
    }
    Ok(())
}

fn plot(all: &Value, dir: &Path) -> Res<()> {
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let budget = f(all, "budget");
    // The memory timeline.
    if let Some(t) = all.get("timeline").filter(|t| !t.is_null()) {
        let samples = t["samples"].as_array().cloned().unwrap_or_default();
        let rss: Vec<(f64, f64)> = samples
            .iter()
            .map(|s| (f(s, "t"), f(s, "rss") / 1e6))
            .collect();
        let accounted: Vec<(f64, f64)> = samples
            .iter()
            .map(|s| (f(s, "t"), f(t, "accounted") / 1e6))
            .collect();
        LineChart {
            title: format!(
                "Resident memory while {} streams (each point: one layer done)",
                t["model"].as_str().unwrap_or("")
            ),
            x_desc: "seconds".into(),
            y_desc: "MB".into(),
            series: vec![
                ("measured RSS".into(), rss),
                ("accounted by the placement".into(), accounted),
            ],
            reference: Some(("budget".into(), budget / 1e6)),
            log_x: false,
            log_y: false,
        }
        .draw()?
        .save(dir.join("timeline.svg"))?;
    }
    // Seconds per token against model size.
    let runs = all["runs"].as_array().cloned().unwrap_or_default();
    let series = |prefetch: bool| -> Vec<(f64, f64)> {
        runs.iter()
            .filter(|v| v["prefetch"] == prefetch && v["cold"] == true)
            .map(|v| (f(v, "weight_bytes") / 1e9, f(v, "secs_per_token")))
            .collect()
    };
    let floor: Vec<(f64, f64)> = runs
        .iter()
        .filter(|v| v["prefetch"] == true && v["cold"] == true)
        .map(|v| (f(v, "weight_bytes") / 1e9, f(v, "io_floor_secs")))
        .collect();
    LineChart {
        title: format!(
            "Seconds per token against model size (budget {} MiB, from storage)",
            (budget as u64) >> 20
        ),
        x_desc: "weights, GB".into(),
        y_desc: "seconds per token".into(),
        series: vec![
            ("prefetch on".into(), series(true)),
            ("prefetch off".into(), series(false)),
            ("IO floor (streamed bytes / read throughput)".into(), floor),
        ],
        reference: None,
        log_x: false,
        log_y: false,
    }
    .draw()?
    .save(dir.join("size.svg"))?;
    // Budget against speed.
    let sweep = all["sweep"].as_array().cloned().unwrap_or_default();
    let pts = |k: &str| -> Vec<(f64, f64)> {
        sweep
            .iter()
            .map(|v| (f(v, "budget") / 1e6, f(v, k)))
            .collect()
    };
    LineChart {
        title: format!("Budget against speed: synthetic {SWEPT}, from storage"),
        x_desc: "budget, MB".into(),
        y_desc: "seconds per token".into(),
        series: vec![
            ("measured".into(), pts("secs_per_token")),
            ("IO floor".into(), pts("io_floor_secs")),
        ],
        reference: None,
        log_x: false,
        log_y: false,
    }
    .draw()?
    .save(dir.join("budget.svg"))?;
    Ok(())
}
