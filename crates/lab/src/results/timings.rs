//! The benchmarks' timings as figures: `results timings GENERATED OUT_ROOT`.
//!
//! A benchmark (`cargo codex bench`) measures the machine, so it is not
//! rerun by CI; what it printed is committed under
//! `generated/CHAPTER/bench/`, first line the command that ran. This module
//! reads those printouts and writes their numbers, exactly as printed, as
//! figures in `OUT_ROOT/CHAPTER/timings/figures.json`, each file naming the
//! run it comes from. It only reads what is committed, so CI regenerates it
//! and compares, like any result: a bench rerun without `cargo codex bench`
//! (which refreshes these) shows up as stale figures, and the chapters
//! quote the numbers by name.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::{Figures, figure_key};

/// Each chapter's benchmark printout, and how to read it.
const BENCHES: &[(&str, &str, &str, Reader)] = &[
    (
        "cantrip-and-ritual",
        "cantrip.bench",
        "bench.txt",
        generation,
    ),
    (
        "alchemy-of-compression",
        "alchemy.bench",
        "kernels.txt",
        kernels,
    ),
    (
        "alchemy-of-compression",
        "alchemy.formats",
        "formats.txt",
        formats,
    ),
    ("transfer-of-wisdom", "wisdom.bench", "loss.txt", loss),
    ("speaking-stone", "stone.bench", "serve.txt", serve),
    ("nindub", "nindub.bench", "stream.txt", stream),
    ("sovereign", "sovereign.bench", "agent.txt", sovereign),
    ("pocket-worlds", "pocket.bench", "image.txt", image),
];

/// Reads a printout (its folder, its text) into figures named `PREFIX.…`.
type Reader = fn(&Path, &str, &str, &mut Figures) -> Result<()>;

/// Writes every chapter's timing figures under `out`, from the printouts
/// under `generated`.
pub fn generate(generated: &Path, out: &Path) -> Result<()> {
    // One figures file per chapter, whatever number of printouts it has.
    let mut chapters: std::collections::BTreeMap<&str, Figures> = Default::default();
    for &(chapter, prefix, file, read) in BENCHES {
        let path = generated.join(chapter).join("bench").join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (run `cargo codex bench`)", path.display()))?;
        let figs = chapters.entry(chapter).or_default();
        let run = format!("{chapter}/bench/{file}: {}", first_line(&text)?);
        figs.run = Some(match figs.run.take() {
            Some(earlier) => format!("{earlier}; {run}"),
            None => run,
        });
        let before = figs.len();
        read(&path.with_file_name(""), &text, prefix, figs)
            .with_context(|| format!("reading {}", path.display()))?;
        if figs.len() == before {
            bail!("{} gave no figures", path.display());
        }
    }
    for (chapter, figs) in chapters {
        figs.write(&out.join(chapter).join("timings"))?;
    }
    Ok(())
}

/// The command a printout starts with (`$ cargo …`); for a JSON file, the
/// printout beside it says it.
fn first_line(text: &str) -> Result<&str> {
    let line = text.lines().next().unwrap_or("");
    if let Some(cmd) = line.strip_prefix("$ ") {
        Ok(cmd)
    } else if line.trim_start().starts_with('{') {
        Ok("the JSON record `cargo codex bench` writes beside its printout")
    } else {
        bail!("the printout does not start with the command that ran (`$ cargo …`)")
    }
}

/// A number as printed, and its value: `28.8`, `1.20`, `4.4×`, `0.35x`,
/// `-15.9`, `7.3e-2` (a unit glued to it is dropped).
fn number(token: &str) -> Option<(f64, String)> {
    let t = token.trim_end_matches([',', ';', ':', ')']);
    let t = t.trim_end_matches(['×', 'x', '%']);
    t.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|v| (v, t.to_string()))
}

/// Every number in `text`, in order.
fn numbers(text: &str) -> Vec<(f64, String)> {
    text.split_whitespace().filter_map(number).collect()
}

/// A table row: its label (the text before the first gap of two spaces or
/// more) and the first number of each following cell, while they are
/// numbers.
fn row(line: &str) -> Option<(String, Vec<(f64, String)>)> {
    let mut cells = line
        .trim()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let label = cells.next()?.to_string();
    if number(&label).is_some() {
        return None;
    }
    let values: Vec<_> = cells
        .map_while(|c| c.split_whitespace().next().and_then(number))
        .collect();
    (!values.is_empty()).then_some((label, values))
}

/// Figures `PREFIX.NAME` from the numbers of `line`, as many as names.
fn take(
    figs: &mut Figures,
    prefix: &str,
    names: &[(&str, &str)],
    values: &[(f64, String)],
) -> Result<()> {
    if values.len() < names.len() {
        bail!(
            "expected {} numbers ({}), found {}",
            names.len(),
            names.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            values.len()
        );
    }
    for ((name, unit), (value, text)) in names.iter().zip(values) {
        figs.add(&format!("{prefix}.{name}"), *value, unit, text.clone());
    }
    Ok(())
}

/// `nindub bench`: tokens per second by engine, the bandwidth floor, the
/// ratios, and the two per-operation profiles.
fn generation(_: &Path, text: &str, prefix: &str, figs: &mut Figures) -> Result<()> {
    const ENGINES: &[(&str, &str)] = &[
        ("ritual, candle engine (greedy)", "ritual"),
        ("cantrip, candle engine (sampling)", "cantrip"),
        ("ritual, candle, no KV cache", "ritual_no_cache"),
        ("candle-transformers quantized_llama", "candle"),
        ("ritual, fused engine (greedy)", "fused"),
        ("llama.cpp ", "llama_cpp"),
    ];
    let speeds = [("prompt_tok_s", "tokens/s"), ("gen_tok_s", "tokens/s")];
    let mut profile = None;
    let mut found = 0;
    for line in text.lines() {
        if let Some(&(_, k)) = ENGINES.iter().find(|(label, _)| line.starts_with(label)) {
            let rest = line.split("  ").skip(1).collect::<Vec<_>>().join("  ");
            take(figs, &format!("{prefix}.{k}"), &speeds, &numbers(&rest))?;
            found += 1;
        } else if let Some(rest) = line.strip_prefix("memory-bandwidth floor:") {
            take(
                figs,
                &format!("{prefix}.floor"),
                &[
                    ("mb_per_token", "MB"),
                    ("bandwidth", "GB/s"),
                    ("tok_s", "tokens/s"),
                    ("fused_fraction", ""),
                ],
                &numbers(rest),
            )?;
        } else if let Some(rest) = line.strip_prefix("the Q4_1 kernel over") {
            // MB, GB/s with prefetch, its distance in bytes (the code's
            // constant, which the chapter shows, not a measurement), GB/s
            // without, the gain.
            let mut values = numbers(rest);
            if values.len() != 5 {
                bail!(
                    "the kernel's line has {} numbers, not 5: {line}",
                    values.len()
                );
            }
            values.remove(2);
            take(
                figs,
                &format!("{prefix}.kernel"),
                &[
                    ("mb", "MB"),
                    ("prefetch_gb_s", "GB/s"),
                    ("no_prefetch_gb_s", "GB/s"),
                    ("prefetch_gain", ""),
                ],
                &values,
            )?;
        } else if let Some(rest) = line.strip_prefix("ratio candle engine / candle-transformers") {
            take(
                figs,
                &format!("{prefix}.ratio"),
                &[("ritual_candle", ""), ("fused_candle", "")],
                &numbers(rest),
            )?;
        } else if let Some(rest) = line.strip_prefix("ratio candle engine / llama.cpp") {
            take(
                figs,
                &format!("{prefix}.ratio"),
                &[("ritual_llama_cpp", ""), ("ritual_llama_cpp_prompt", "")],
                &numbers(rest),
            )?;
        } else if let Some(rest) = line.strip_prefix("ratio fused / llama.cpp") {
            take(
                figs,
                &format!("{prefix}.ratio"),
                &[
                    ("fused_llama_cpp", ""),
                    ("fused_llama_cpp_prompt", ""),
                    ("llama_cpp_floor_fraction", ""),
                ],
                &numbers(rest),
            )?;
        } else if let Some(rest) = line.strip_prefix("one ") {
            let engine = if rest.starts_with("fused") {
                "fused"
            } else {
                "candle"
            };
            let per_token = rest.rsplit(", ").next().map(numbers).unwrap_or_default();
            take(
                figs,
                &format!("{prefix}.{engine}.profile"),
                &[("ms_per_token", "ms")],
                &per_token,
            )?;
            profile = Some(engine);
        } else if line.starts_with("  ") {
            if let (Some(engine), Some((label, values))) = (profile, row(line)) {
                take(
                    figs,
                    &format!("{prefix}.{engine}.profile.{}", figure_key(&label)),
                    &[("ms", "ms"), ("pct", "%")],
                    &values,
                )?;
            }
        } else {
            profile = None;
        }
    }
    if found < ENGINES.len() {
        bail!("found {found} of the {} engines' rows", ENGINES.len());
    }
    Ok(())
}

/// The quantized kernels: bandwidth, and each kernel's row per layer shape.
fn kernels(_: &Path, text: &str, prefix: &str, figs: &mut Figures) -> Result<()> {
    const COLUMNS: &[(&str, &str)] = &[
        ("mb", "MB"),
        ("floor_us", "µs"),
        ("floor_r_us", "µs"),
        ("us", "µs"),
        ("gb_s", "GB/s"),
        ("x_floor", ""),
        ("x_floor_r", ""),
        ("warm_us", "µs"),
        ("n64_ms", "ms"),
        ("gflop_s", "GFLOP/s"),
        ("rel_err", ""),
    ];
    let mut shape = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("## ") {
            shape = rest
                .split_once(" (")
                .and_then(|(_, name)| name.split_whitespace().next())
                .map(figure_key);
            continue;
        }
        for (label, name) in [
            ("copy, 1 thread:", "copy_1_thread"),
            ("copy, 2 threads:", "copy_2_threads"),
            ("read, 2 threads:", "read_2_threads"),
        ] {
            if let Some(rest) = line.strip_prefix(label) {
                take(
                    figs,
                    &format!("{prefix}.bandwidth"),
                    &[(name, "GB/s")],
                    &numbers(rest),
                )?;
            }
        }
        if let (Some(shape), Some((label, values))) = (&shape, row(line))
            && values.len() == COLUMNS.len()
        {
            take(
                figs,
                &format!("{prefix}.{shape}.{}", figure_key(&label)),
                COLUMNS,
                &values,
            )?;
        }
    }
    Ok(())
}

/// The formats' speeds: per file, its size, ours (prompt, generation), and
/// llama.cpp's and the ratio when llama-bench ran.
fn formats(_: &Path, text: &str, prefix: &str, figs: &mut Figures) -> Result<()> {
    let mut found = 0;
    for line in text.lines() {
        let Some((label, values)) = row(line) else {
            continue;
        };
        let columns: &[(&str, &str)] = &[
            ("mib", "MiB"),
            ("pp", "tokens/s"),
            ("tg", "tokens/s"),
            ("llama_cpp_pp", "tokens/s"),
            ("llama_cpp_tg", "tokens/s"),
            ("tg_ratio", ""),
        ];
        let n = if values.len() >= columns.len() { 6 } else { 3 };
        take(
            figs,
            &format!("{prefix}.{}", figure_key(&label)),
            &columns[..n],
            &values,
        )?;
        found += 1;
    }
    if found == 0 {
        bail!("no file's row");
    }
    Ok(())
}

/// The distillation loss: composed against fused, forward and backward.
fn loss(_: &Path, text: &str, prefix: &str, figs: &mut Figures) -> Result<()> {
    for line in text.lines() {
        let Some((label, values)) = row(line) else {
            continue;
        };
        let name = label.split(" (").next().unwrap_or(&label);
        let units = if name == "speed-up" { "" } else { "ms" };
        let columns: &[(&str, &str)] = if name.starts_with("student") {
            &[("ms", "ms")]
        } else {
            &[("forward", units), ("forward_backward", units)]
        };
        take(
            figs,
            &format!("{prefix}.{}", figure_key(name)),
            columns,
            &values,
        )?;
    }
    Ok(())
}

/// The agent's benchmark: per mode (constrained, free) its steps, valid
/// calls, their share, tasks answered correctly, tokens, seconds per task
/// and the model's time per generated token (prompts apart); then the
/// constraint's own cost per token.
fn sovereign(_: &Path, text: &str, prefix: &str, figs: &mut Figures) -> Result<()> {
    let mut found = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("constraint overhead:") {
            take(
                figs,
                &format!("{prefix}.overhead"),
                &[("ms_per_token", "ms"), ("tokens", "")],
                &numbers(rest),
            )?;
            found += 1;
            continue;
        }
        let Some((label, values)) = row(line) else {
            continue;
        };
        if label != "constrained" && label != "free" {
            continue;
        }
        take(
            figs,
            &format!("{prefix}.{label}"),
            &[
                ("steps", ""),
                ("valid", ""),
                ("valid_pct", "%"),
                ("correct", ""),
                ("tokens", ""),
                ("s_per_task", "s"),
                ("decode_ms_per_token", "ms"),
            ],
            &values,
        )?;
        found += 1;
    }
    if found != 3 {
        bail!("expected the two modes' rows and the overhead line, found {found} of them");
    }
    Ok(())
}

/// `deploy/image.sh`: the binary, the runtime image and the naive one, in
/// MB, and their ratio.
fn image(_: &Path, text: &str, prefix: &str, figs: &mut Figures) -> Result<()> {
    for line in text.lines() {
        let Some((label, values)) = row(line) else {
            continue;
        };
        let name = label.split(" (").next().unwrap_or(&label);
        let unit = if name.contains('/') { "" } else { "MB" };
        let key = figure_key(&name.replace('/', "over"));
        let (value, text) = &values[0];
        figs.add(&format!("{prefix}.{key}"), *value, unit, text.clone());
    }
    Ok(())
}

/// The server against in-process generation and llama.cpp's server.
fn serve(_: &Path, text: &str, prefix: &str, figs: &mut Figures) -> Result<()> {
    let mut in_batches = false;
    for line in text.lines() {
        if line.starts_with("the fused engine, in process") {
            in_batches = true;
            continue;
        }
        if in_batches {
            // `batch  ms/step  tokens/s`, until the blank line.
            match numbers(line).as_slice() {
                [] if line.trim().is_empty() => in_batches = false,
                [(b, _), rest @ ..] if rest.len() == 2 => take(
                    figs,
                    &format!("{prefix}.engine.b{}", *b as u32),
                    &[("ms_per_step", "ms"), ("tok_s", "tokens/s")],
                    rest,
                )?,
                _ => {}
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("the HTTP layer, one client:") {
            let ttft = rest.split("time to first token").nth(1).unwrap_or("");
            let picked: Vec<_> = [numbers(rest).first(), numbers(ttft).first()]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            take(
                figs,
                &format!("{prefix}.http"),
                &[("tok_s_change", "%"), ("ttft_change_ms", "ms")],
                &picked,
            )?;
            continue;
        }
        if let Some(rest) = line.strip_prefix("one request for") {
            take(
                figs,
                &format!("{prefix}.samples"),
                &[
                    ("n", ""),
                    ("tokens", "tokens"),
                    ("secs", "s"),
                    ("tok_s", "tokens/s"),
                    ("ttft_ms", "ms"),
                ],
                &numbers(rest),
            )?;
            continue;
        }
        if let Some(rest) = line.strip_prefix("the prompts, in process:") {
            take(
                figs,
                &format!("{prefix}.prompts"),
                &[
                    ("count", ""),
                    ("tokens", "tokens"),
                    ("ms", "ms"),
                    ("tok_s", "tokens/s"),
                ],
                &numbers(rest),
            )?;
            continue;
        }
        if let Some(rest) = line.strip_prefix("KV cache:") {
            take(
                figs,
                &format!("{prefix}.kv"),
                &[
                    ("bytes_per_position", "bytes"),
                    ("request_positions", "positions"),
                    ("request_mb", "MB"),
                    ("positions_1024", "positions"),
                    ("mb_1024", "MB"),
                    ("weights_mb", "MB"),
                ],
                &numbers(rest),
            )?;
            continue;
        }
        if let Some(rest) = line.strip_prefix("8 clients, the engine's bound:") {
            take(
                figs,
                &format!("{prefix}.bound.c8"),
                &[
                    ("prompts_ms", "ms"),
                    ("steps", ""),
                    ("step_ms", "ms"),
                    ("secs", "s"),
                    ("tokens", "tokens"),
                    ("tok_s", "tokens/s"),
                    ("gain", "x"),
                ],
                &numbers(rest),
            )?;
            continue;
        }
        if let Some(rest) = line.strip_prefix("8 clients: batched") {
            if rest.contains("llama-server") {
                take(
                    figs,
                    &format!("{prefix}.batched.c8"),
                    &[("vs_llama_server", "x"), ("llama_server_tok_s", "tokens/s")],
                    &numbers(rest)[1..],
                )?;
                continue;
            }
            take(
                figs,
                &format!("{prefix}.batched.c8"),
                &[("gain", "x"), ("serial_tok_s", "tokens/s")],
                &numbers(rest)[1..],
            )?;
            continue;
        }
        let Some((label, values)) = row(line) else {
            continue;
        };
        let engine = match label.as_str() {
            "nindub in process (Ritual)" => "in_process",
            "nindub serve, in turn" => "serve",
            "nindub serve, batched (16)" => "batched",
            "batched, 16-row passes" => "batched_rows16",
            "batched, 64-row passes" => "batched_rows64",
            "llama-cpp-python server" => "llama_cpp_server",
            "llama-server -np 16" => "llama_server",
            _ => continue,
        };
        let clients = values.first().map(|(v, _)| *v as u32).unwrap_or(0);
        let names: &[(&str, &str)] = &[
            ("aggregate_tok_s", "tokens/s"),
            ("tok_s", "tokens/s"),
            ("ttft_ms", "ms"),
            ("ttft_p95_ms", "ms"),
            ("itl_p95_ms", "ms"),
            ("peak_mb", "MB"),
        ];
        // In process: no percentiles (one client); the peer and the
        // pass-rows rounds: no peak (not a process of their own).
        let n = match engine {
            "in_process" => 3,
            "llama_cpp_server" | "batched_rows16" | "batched_rows64" => 5,
            _ => 6,
        };
        take(
            figs,
            &format!("{prefix}.{engine}.c{clients}"),
            &names[..n],
            &values[1..],
        )?;
    }
    Ok(())
}

/// Layer streaming within the budget: each run, the budget sweep and the
/// projection for Table 2's 32B model, printed as the printout prints them.
fn stream(dir: &Path, text: &str, prefix: &str, figs: &mut Figures) -> Result<()> {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("llama-3-8b shape:") {
            take(
                figs,
                &format!("{prefix}.summary"),
                &[
                    ("weights_gb", "GB"),
                    ("times_budget", ""),
                    ("peak_mb", "MB"),
                    ("peak_of_budget", ""),
                    ("under_mb", "MB"),
                    ("under_pct", "%"),
                ],
                &numbers(rest),
            )?;
        } else if let Some(rest) = line.strip_prefix("prefetch on:") {
            let n = numbers(rest);
            // s, ratio, goal, s off, ratio off, saved
            let picked: Vec<_> = [0, 1, 3, 4, 5]
                .iter()
                .filter_map(|&i| n.get(i).cloned())
                .collect();
            take(
                figs,
                &format!("{prefix}.summary"),
                &[
                    ("prefetch_s", "s"),
                    ("prefetch_ratio", ""),
                    ("no_prefetch_s", "s"),
                    ("no_prefetch_ratio", ""),
                    ("prefetch_saves_pct", "%"),
                ],
                &picked,
            )?;
        }
    }
    let path = dir.join("stream.json");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", path.display()))?;
    let f = |v: &serde_json::Value, field: &str| -> Result<f64> {
        v[field]
            .as_f64()
            .with_context(|| format!("no number `{field}` in a run"))
    };
    let budget = f(&json, "budget")?;
    let mut add = |name: String, value: f64, decimals: usize, unit: &str| {
        figs.add(&name, value, unit, format!("{value:.decimals$}"));
    };
    let runs = json["runs"].as_array().context("no `runs`")?;
    let sweep = json["sweep"].as_array().context("no `sweep`")?;
    for (list, is_sweep) in [(runs, false), (sweep, true)] {
        for run in list {
            let model = run["model"].as_str().context("a run without a model")?;
            let name = if is_sweep {
                format!("{prefix}.sweep.{}", (f(run, "budget")? / 1e6).round())
            } else {
                format!(
                    "{prefix}.{}.{}.{}",
                    figure_key(model),
                    if run["prefetch"].as_bool() == Some(true) {
                        "prefetch"
                    } else {
                        "no_prefetch"
                    },
                    if run["cold"].as_bool() == Some(true) {
                        "cold"
                    } else {
                        "warm"
                    },
                )
            };
            let peak = f(run, "peak_rss")?;
            add(
                format!("{name}.weights_gb"),
                f(run, "weight_bytes")? / 1e9,
                2,
                "GB",
            );
            add(format!("{name}.peak_mb"), peak / 1e6, 1, "MB");
            add(
                format!("{name}.peak_of_budget"),
                peak / f(run, "budget")?,
                3,
                "",
            );
            add(
                format!("{name}.read_mb_per_token"),
                f(run, "streamed_per_token")? / 1e6,
                1,
                "MB",
            );
            add(
                format!("{name}.s_per_token"),
                f(run, "secs_per_token")?,
                3,
                "s",
            );
            add(
                format!("{name}.read_gb_s"),
                f(run, "read_throughput")? / 1e9,
                2,
                "GB/s",
            );
            if let Some(r) = run["ratio_to_floor"].as_f64() {
                add(format!("{name}.ratio_to_floor"), r, 2, "");
            }
        }
    }
    let t = &json["table2"];
    let name = format!("{prefix}.table2");
    add(
        format!("{name}.weights_gb"),
        f(t, "weight_bytes")? / 1e9,
        1,
        "GB",
    );
    add(
        format!("{name}.read_gb_per_token"),
        f(t, "streamed_per_token")? / 1e9,
        1,
        "GB",
    );
    add(
        format!("{name}.read_gb_s"),
        f(t, "read_throughput")? / 1e9,
        2,
        "GB/s",
    );
    add(
        format!("{name}.s_per_token"),
        f(t, "projected_secs_per_token")?,
        1,
        "s",
    );
    add(
        format!("{name}.resident_layers"),
        f(t, "resident_layers")?,
        0,
        "",
    );
    add(
        format!("{name}.streamed_layers"),
        f(t, "streamed_layers")?,
        0,
        "",
    );
    add(
        format!("{prefix}.budget_mib"),
        budget / (1u64 << 20) as f64,
        0,
        "MiB",
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_numbers_read_as_printed() {
        let (label, values) = row("ours int8-channel A   11.55      425  0.0e0").unwrap();
        assert_eq!(label, "ours int8-channel A");
        let texts: Vec<_> = values.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, ["11.55", "425", "0.0e0"]);
        let (_, values) =
            row("speed-up                                  3.5×                 4.4×").unwrap();
        assert_eq!(values[1].0, 4.4);
        assert!(row("## a heading").is_none());
        let n =
            numbers("96.4 MB of weights per token at 34.5 GB/s read = 358.0 tokens/s; at 0.35x");
        let v: Vec<f64> = n.iter().map(|(v, _)| *v).collect();
        assert_eq!(v, [96.4, 34.5, 358.0, 0.35]);
        assert_eq!(figure_key("RoPE + attention"), "rope_attention");
    }

    #[test]
    fn a_printout_missing_its_rows_is_refused() {
        let mut figs = Figures::default();
        let err = generation(
            Path::new("."),
            "$ cargo run\nengine  prompt tok/s\n",
            "c",
            &mut figs,
        )
        .unwrap_err();
        assert!(err.to_string().contains("engines' rows"), "{err}");
        assert!(first_line("engine table").is_err());
    }
}
