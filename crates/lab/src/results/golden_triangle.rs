//! Generates the Results of "The Golden Triangle":
//! `cargo run -p lab --bin results -- run golden_triangle book/src/generated/golden-triangle`.
//!
//! The seed's Table 3 with the project's own files and their DVC hashes; a
//! quantization run recorded against a commit and the model's hash, rerun
//! and compared; a timeline broken on purpose and named; the run's lineage
//! as a figure. The run's commit is made in a scratch repository with a
//! fixed author and date (its `.dvc` pointer and parameters, as a DVC
//! project keeps them), so it is the same commit at every regeneration;
//! nothing written depends on the clock.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use nindub::compress::export::{ExportOptions, quantize_gguf};
use nindub::compress::quant::Scheme;
use nindub::track::dvc::{self, DataHash, Remote};
use nindub::track::record::{self, Disconnect, Run, RunRecord};
use nindub::{assets, corpus};

use super::{Figures, write};
use crate::plot;

const FIXED_DATE: &str = "2026-12-01T00:00:00+00:00";

/// `git ARGS` in `dir` with a fixed identity and date, no user config.
fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Codex")
        .env("GIT_AUTHOR_EMAIL", "codex@localhost")
        .env("GIT_COMMITTER_NAME", "Codex")
        .env("GIT_COMMITTER_EMAIL", "codex@localhost")
        .env("GIT_AUTHOR_DATE", FIXED_DATE)
        .env("GIT_COMMITTER_DATE", FIXED_DATE)
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn quantize(run: &mut Run, model: &Path, out: &Path) -> Result<()> {
    let scheme = Scheme::parse("int8-g32")?;
    let r = quantize_gguf(model, out, scheme, &ExportOptions::REQUANTIZE)?;
    run.metric("tensors_quantized", r.quantized as f64, 0)
        .metric("file_bytes", r.file_bytes as f64, 0)
        .metric("max_dequant_diff", f64::from(r.max_dequant_diff), 0)
        .artifact("output", out, None)?;
    Ok(())
}

fn recorded(repo: &Path, model: &Path, out: &Path) -> Result<RunRecord> {
    let mut run = Run::begin(
        "alchemy-of-compression",
        "quantize int8-g32 smollm2",
        repo,
        false,
    )?;
    run.input("model", model, Some("smollm2"))?
        .param("scheme", "int8-g32");
    quantize(&mut run, model, out)?;
    Ok(run.finish())
}

pub fn generate(out: &Path) -> Result<()> {
    let mut figs = Figures::default();
    let scratch = tempfile::tempdir()?;

    // 1. Table 3, with the project's files.
    let gguf = assets::resolve("smollm2")?;
    let minilm = assets::resolve("minilm")?;
    let minilm = if minilm.is_dir() {
        minilm
    } else {
        minilm.parent().context("minilm's folder")?.to_path_buf()
    };
    let digits = assets::cache_dir().join("digits");
    let corpus = corpus::path()?;
    let q8 = scratch.path().join("q8.gguf");
    let repo = scratch.path().join("experiment");
    std::fs::create_dir_all(&repo)?;
    git(&repo, &["init", "-q"])?;
    let model_hash = dvc::hash_file(&gguf)?;
    let pointer = dvc::pointer_yaml("SmolLM2-135M-Instruct.Q4_1.gguf", &model_hash);
    std::fs::write(repo.join("SmolLM2-135M-Instruct.Q4_1.gguf.dvc"), &pointer)?;
    std::fs::write(repo.join("params.json"), "{\"scheme\": \"int8-g32\"}\n")?;
    std::fs::write(
        repo.join(".gitignore"),
        "/SmolLM2-135M-Instruct.Q4_1.gguf\n",
    )?;
    git(&repo, &["add", "-A"])?;
    git(
        &repo,
        &[
            "commit",
            "-q",
            "-m",
            "Pin SmolLM2 and the int8-g32 parameters",
        ],
    )?;
    let commit = git(&repo, &["rev-parse", "HEAD"])?.trim().to_string();

    let run = recorded(&repo, &gguf, &q8)?;
    let q8_hash = run.artifacts[0].hash.clone();
    let (minilm_hash, minilm_entries) = dvc::hash_dir(&minilm)?;
    let digits_hash = dvc::hash_path(&digits)?;
    let corpus_hash = dvc::hash_file(&corpus)?;

    let mut t = String::new();
    writeln!(t, "| artifact | what it is | kept by | its identity |")?;
    writeln!(t, "|---|---|---|---|")?;
    let mut row = |a: &str, what: &str, tool: &str, id: String| {
        writeln!(t, "| {a} | {what} | {tool} | {id} |")
    };
    let dvc_id = |h: &DataHash| {
        format!(
            "md5 `{}`, {} bytes{}",
            h.md5,
            h.size,
            h.nfiles.map_or(String::new(), |n| format!(
                ", {n} file{}",
                if n == 1 { "" } else { "s" }
            ))
        )
    };
    row(
        "`crates/nindub/src/compress/`",
        "the quantizer's code",
        "git",
        "the run's commit".into(),
    )?;
    row(
        "`params.json`, `*.dvc`",
        "parameters, data pointers",
        "git",
        format!("commit `{}`", &commit[..12]),
    )?;
    row(
        "`SmolLM2-135M-Instruct.Q4_1.gguf`",
        "the model quantized",
        "DVC",
        dvc_id(&model_hash),
    )?;
    row(
        "`minilm/`",
        "the embedding model (a folder)",
        "DVC",
        dvc_id(&minilm_hash),
    )?;
    row(
        "`digits/`",
        "the Transfer's classic data set",
        "DVC",
        dvc_id(&digits_hash),
    )?;
    row(
        "`tinyshakespeare.txt`",
        "the corpus",
        "DVC",
        dvc_id(&corpus_hash),
    )?;
    row(
        "`q8.gguf`",
        "the run's output (int8-g32)",
        "DVC, and MLflow as an artifact",
        dvc_id(&q8_hash),
    )?;
    row(
        "scheme, metrics",
        "the run's parameters and results",
        "MLflow",
        format!("{} params, {} metrics", run.params.len(), run.metrics.len()),
    )?;
    row(
        "`target/`, `~/.cache/`, `mlartifacts/`",
        "builds, caches, a server's store",
        "none (ignored)",
        "rebuilt or re-fetched".into(),
    )?;
    write(out, "table3.md", &t)?;
    write(out, "pointer.txt", &pointer)?;
    let mut listing = dvc::dir_listing_json(&minilm_entries);
    listing.push('\n');
    write(out, "minilm-listing.txt", &listing)?;
    figs.text("golden.commit", &commit[..12]);
    figs.text("golden.smollm2.md5", &model_hash.md5);
    figs.text("golden.minilm.md5", &minilm_hash.md5);
    figs.text("golden.q8.md5", &q8_hash.md5);
    figs.add(
        "golden.q8.bytes",
        q8_hash.size as f64,
        "bytes",
        nindub::budget::human(q8_hash.size),
    );
    figs.number(
        "golden.minilm.nfiles",
        minilm_entries.len() as f64,
        0,
        "files",
    );

    // 2. The run as a record.
    let mut r = String::new();
    writeln!(
        r,
        "code      commit {} (clean: {})",
        &commit[..12],
        run.git.as_ref().is_some_and(|g| !g.dirty)
    )?;
    for i in &run.inputs {
        writeln!(
            r,
            "input     {:<9} md5 {}  {} bytes",
            i.name, i.hash.md5, i.hash.size
        )?;
    }
    for (k, v) in &run.params {
        writeln!(r, "param     {k} = {v}")?;
    }
    for (k, v) in run.last_metrics() {
        writeln!(r, "metric    {k} = {v}")?;
    }
    for a in &run.artifacts {
        writeln!(
            r,
            "artifact  {:<9} md5 {}  {} bytes",
            a.name, a.hash.md5, a.hash.size
        )?;
    }
    write(out, "record.txt", &r)?;

    // 3. The same run again: bit for bit.
    let q8_again = scratch.path().join("q8-again.gguf");
    let again = recorded(&repo, &gguf, &q8_again)?;
    let rep = record::compare(&run, &again);
    let mut c = String::new();
    writeln!(c, "| check | recorded | rerun | agrees |")?;
    writeln!(c, "|---|---|---|---|")?;
    for ch in &rep.checks {
        writeln!(
            c,
            "| {} | `{}` | `{}` | {} |",
            ch.what,
            ch.recorded,
            ch.reproduced,
            if ch.ok { "yes" } else { "**no**" }
        )?;
    }
    write(out, "rerun.md", &c)?;
    figs.number("golden.rerun.checks", rep.checks.len() as f64, 0, "checks");
    figs.text(
        "golden.rerun.verdict",
        if rep.ok() {
            "bit for bit"
        } else {
            "NOT reproduced"
        },
    );
    if !rep.ok() {
        bail!(
            "quantization did not reproduce bit for bit: {:?}",
            rep.checks
        );
    }

    // 4. A timeline broken on purpose: the data changes after the run, and
    // the remote never received the version the run read.
    let data = scratch.path().join("config.json");
    std::fs::copy(minilm.join("config.json"), &data)?;
    let mut probe = Run::begin("golden-triangle", "read a config", &repo, false)?;
    probe.input("config", &data, None)?;
    let probe = probe.finish();
    let mut f = std::fs::OpenOptions::new().append(true).open(&data)?;
    std::io::Write::write_all(&mut f, b"\n")?;
    drop(f);
    let empty = Remote::new(scratch.path().join("empty-remote"));
    let found = record::timeline(&probe, Some(&empty))?;
    let mut d = String::new();
    for x in &found {
        let line = match x {
            // The path is a scratch folder's: say the name, which is stable.
            Disconnect::DataChanged {
                name,
                recorded,
                now,
                ..
            } => {
                format!("data: `{name}` changed after the run: recorded md5 {recorded}, now {now}")
            }
            other => other.to_string(),
        };
        writeln!(d, "DISCONNECT {line}")?;
    }
    write(out, "disconnect.txt", &d)?;
    figs.number("golden.disconnects", found.len() as f64, 0, "");

    // 5. The lineage.
    let svg = plot::lineage(&[
        (
            "code (git)",
            vec![
                format!("commit {}", &commit[..12]),
                "params.json".into(),
                "SmolLM2…gguf.dvc".into(),
                "clean tree".into(),
            ],
        ),
        (
            "data (DVC)",
            vec![
                "model".into(),
                format!("md5 {}", &model_hash.md5[..16]),
                format!("   {}", &model_hash.md5[16..]),
                format!("{} bytes", model_hash.size),
            ],
        ),
        (
            "run (MLflow)",
            vec![
                "quantize int8-g32".into(),
                "param scheme".into(),
                format!("tensors {}", run.last_metrics()["tensors_quantized"]),
                format!("max |Δ| {}", run.last_metrics()["max_dequant_diff"]),
            ],
        ),
        (
            "artifact (DVC)",
            vec![
                "q8.gguf".into(),
                format!("md5 {}", &q8_hash.md5[..16]),
                format!("   {}", &q8_hash.md5[16..]),
                format!("{} bytes", q8_hash.size),
            ],
        ),
    ])?;
    svg.save(out.join("lineage.svg"))?;
    figs.write(out)?;
    Ok(())
}
