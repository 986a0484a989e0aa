//! `results`: the chapters' result generators, run by `cargo codex
//! results` (one process per generator).
//!
//! ```text
//! results list                           the registry, as JSON
//! results run NAME OUT_DIR               one chapter's generator
//! results transcripts OUT_ROOT NINDUB    the command-line transcripts, run with the NINDUB binary
//! results experiment OUT_DIR [digits] [lm]   The Transfer of Wisdom's long experiments
//! results replot OUT_DIR                 their plots again, from their recorded figures
//! results timings GENERATED OUT_ROOT     the benchmarks' printouts as figures
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use lab::results::{GENERATORS, TRANSCRIPTS, timings, transfer_of_wisdom};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["list"] => list(),
        ["run", name, out] => {
            let g = GENERATORS
                .iter()
                .find(|g| g.name == *name)
                .with_context(|| format!("no generator named `{name}`"))?;
            std::fs::create_dir_all(out).with_context(|| format!("creating {out}"))?;
            (g.generate)(Path::new(out))?;
            println!("{name}: wrote results to {out}");
            Ok(())
        }
        ["transcripts", out, nindub] => transcripts(Path::new(out), Path::new(nindub)),
        ["experiment", out, parts @ ..] => {
            let parts = if parts.is_empty() {
                vec!["digits", "lm"]
            } else {
                parts.to_vec()
            };
            transfer_of_wisdom::experiment(Path::new(out), &parts)
        }
        ["replot", out] => transfer_of_wisdom::replot(Path::new(out)),
        ["timings", generated, out] => timings::generate(Path::new(generated), Path::new(out)),
        _ => bail!(
            "usage: results list | run NAME OUT_DIR | transcripts OUT_ROOT NINDUB | experiment OUT_DIR [digits] [lm] | replot OUT_DIR | timings GENERATED OUT_ROOT"
        ),
    }
}

/// The registry, for `cargo codex` (which does not depend on this crate).
fn list() -> Result<()> {
    let generators: Vec<_> = GENERATORS
        .iter()
        .map(|g| serde_json::json!({"name": g.name, "dir": g.dir, "reads_corpus": g.reads_corpus}))
        .collect();
    let transcripts: Vec<_> = TRANSCRIPTS.iter().map(|t| t.file).collect();
    println!(
        "{}",
        serde_json::json!({"generators": generators, "transcripts": transcripts})
    );
    Ok(())
}

/// Runs every transcript's command with `nindub` and writes `$ nindub
/// ARGS` and what it printed on stdout under `out` (the home directory
/// shown as `~`).
fn transcripts(out: &Path, nindub: &Path) -> Result<()> {
    let home = std::env::var("HOME").unwrap_or_default();
    for t in TRANSCRIPTS {
        let args = t.args.concat();
        let run = Command::new(nindub)
            .args(&args)
            .output()
            .with_context(|| format!("running {}", nindub.display()))?;
        if !run.status.success() {
            bail!(
                "nindub {} failed:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&run.stderr)
            );
        }
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains(' ') {
                    format!("{a:?}")
                } else {
                    a.to_string()
                }
            })
            .collect();
        let mut text = format!("$ nindub {}\n", shown.join(" "));
        text.push_str(&String::from_utf8_lossy(&run.stdout));
        if !home.is_empty() {
            text = text.replace(&home, "~");
        }
        let path: PathBuf = out.join(t.file);
        nindub::fsx::write_atomic(&path, text.as_bytes())?;
    }
    println!(
        "transcripts: wrote {} files under {}",
        TRANSCRIPTS.len(),
        out.display()
    );
    Ok(())
}
