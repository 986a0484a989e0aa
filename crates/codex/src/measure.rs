//! What measures the machine, and so is not rerun by CI: the benchmarks
//! (`cargo codex bench`) and the long experiments (`cargo codex
//! experiments`), each writing its printout under
//! `generated/CHAPTER/bench/` or `experiment/`, with the command that ran.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::install::{run, say};
use crate::steps::{
    MEASURED_DIR, MEASURED_DIRS, PAGE_SCREENSHOT, book_out, cargo, clients, generated_dir,
    lab_results, nindub_binary, root, timings,
};

/// Measures speed with release builds and writes the figures where the
/// chapters include them: generation (The Cantrip and the Ritual), the
/// quantized kernels (The Alchemy of Compression), the distillation loss
/// (The Transfer of Wisdom), the server (The Speaking Stone), layer
/// streaming under a budget (NINDUB), the agent's tasks (The Sovereign's
/// Hand).
pub fn bench(only: &[String]) -> Result<()> {
    let known = [
        "generation",
        "kernels",
        "formats",
        "loss",
        "serve",
        "stream",
        "sovereign",
        "image",
    ];
    if let Some(bad) = only.iter().find(|n| !known.contains(&n.as_str())) {
        bail!("unknown benchmark `{bad}` (known: {})", known.join(", "));
    }
    let wanted = |name: &str| only.is_empty() || only.iter().any(|n| n == name);
    if wanted("generation") {
        let fixture = "crates/nindub/tests/fixtures/llama_cpp_speed.json";
        say("benchmarking generation (release build; the first build takes minutes)");
        measure(
            &[
                "run",
                "--release",
                "--quiet",
                "-p",
                "nindub",
                "--bin",
                "nindub",
                "--",
                "bench",
                "--runs",
                "5",
                "--prompt-tokens",
                "64",
                "--gen-tokens",
                "64",
                "--peer",
                fixture,
            ],
            "cantrip-and-ritual",
            "bench.txt",
        )?;
    }
    if wanted("kernels") {
        say("benchmarking the quantized kernels (release build)");
        measure(
            &lab_bench("quant_kernels"),
            "alchemy-of-compression",
            "kernels.txt",
        )?;
    }
    if wanted("formats") {
        say("benchmarking every format of the Alchemy's table, beside llama-bench (release build)");
        measure(
            &lab_bench("quant_formats"),
            "alchemy-of-compression",
            "formats.txt",
        )?;
    }
    if wanted("loss") {
        say("benchmarking the distillation loss (release build)");
        measure(&lab_bench("distill_loss"), "transfer-of-wisdom", "loss.txt")?;
    }
    if wanted("serve") {
        say(
            "benchmarking the server against in-process generation and llama_cpp.server (release build; minutes)",
        );
        let dir = generated_dir().join("speaking-stone").join(MEASURED_DIR);
        measure_with(
            &lab_bench("speaking_stone"),
            "speaking-stone",
            "serve.txt",
            &[("NINDUB_BENCH_OUT", dir.as_os_str())],
        )?;
        say("the web page, for the chapter's screenshot");
        clients()?;
        let shot = book_out().join(PAGE_SCREENSHOT);
        std::fs::copy(&shot, dir.join("page.png"))
            .with_context(|| format!("copying {}", shot.display()))?;
    }
    if wanted("stream") {
        say(
            "benchmarking layer streaming within 768 MiB, synthetic models up to an 8B shape (release build; writes ~6 GB of synthetic models into the cache the first time; minutes)",
        );
        let dir = generated_dir().join("nindub").join(MEASURED_DIR);
        let bin = nindub_binary(true)?;
        measure_with(
            &lab_bench("layer_stream"),
            "nindub",
            "stream.txt",
            &[
                ("NINDUB_BENCH_OUT", dir.as_os_str()),
                ("NINDUB_BIN", bin.as_os_str()),
            ],
        )?;
    }
    if wanted("sovereign") {
        say(
            "NINDUB the Sovereign's tasks, constrained and free, and the constraint's cost per token (release build; about ten minutes)",
        );
        measure(&lab_bench("sovereign"), "sovereign", "agent.txt")?;
    }
    if wanted("image") {
        say(
            "Pocket Worlds: the image and the naive one (release build for musl; a debootstrap the first time)",
        );
        let out = Command::new("bash")
            .arg("deploy/image.sh")
            .current_dir(root())
            .output()
            .context("running deploy/image.sh")?;
        if !out.status.success() {
            bail!(
                "deploy/image.sh failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        let dir = generated_dir().join("pocket-worlds").join(MEASURED_DIR);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(".image.txt.partial");
        std::fs::write(&tmp, text.as_bytes())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join("image.txt")).context("renaming image.txt into place")?;
    }
    say("the printouts' numbers as figures (the chapters quote them by name)");
    timings(&generated_dir())
}

/// `cargo bench --quiet -p lab --bench NAME`'s arguments.
fn lab_bench(name: &str) -> [&str; 6] {
    ["bench", "--quiet", "-p", "lab", "--bench", name]
}

/// Runs the chapters' long experiments (release build) and writes their
/// results where the chapters include them: The Transfer of Wisdom's digits
/// and language-model distillation (a quarter of an hour or more).
pub fn experiments() -> Result<()> {
    if std::env::var_os("NINDUB_CORPUS").is_none_or(|v| v.is_empty()) {
        bail!(
            "the experiments read the corpus, and none was found: set NINDUB_CORPUS (the book uses tinyshakespeare.txt, found by default at ../shared/data/ beside the clone)"
        );
    }
    let dir = generated_dir()
        .join("transfer-of-wisdom")
        .join(MEASURED_DIRS[1]);
    say("running The Transfer of Wisdom's experiments (release build)");
    run(
        lab_results(&["experiment"]).arg(&dir),
        "the distillation experiments",
    )?;
    say(&format!("written to {}", dir.display()));
    Ok(())
}

/// Runs `cargo ARGS`, prints its output and writes it (with the command)
/// to `generated/CHAPTER/bench/FILE`.
fn measure(args: &[&str], chapter: &str, file: &str) -> Result<()> {
    measure_with(args, chapter, file, &[])
}

/// [`measure`] with environment variables for the measured command.
fn measure_with(
    args: &[&str],
    chapter: &str,
    file: &str,
    envs: &[(&str, &std::ffi::OsStr)],
) -> Result<()> {
    let out = cargo()
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "cargo {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = format!(
        "$ cargo {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    print!("{text}");
    let path = generated_dir().join(chapter).join(MEASURED_DIR).join(file);
    std::fs::create_dir_all(path.parent().unwrap_or(&generated_dir()))?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    say(&format!("written to {}", path.display()));
    Ok(())
}
