//! `nindub runs`: the Golden Triangle on the command line. Recording
//! (`--track` on `quantize` and `distill`), and reading back: list, show,
//! diff, check a run's timeline, reproduce it from its commit and its data,
//! send the journal to MLflow, and hash data the way DVC does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use nindub::track::Journal;
use nindub::track::dvc::{self, Remote};
use nindub::track::git::{GitState, Worktree};
use nindub::track::mlflow::Mlflow;
use nindub::track::record::{self, Run, RunRecord};

/// The tracking flags, given before or after the subcommand.
#[derive(Args, Clone, Debug, Default)]
pub struct TrackArgs {
    /// Record this run (quantize, distill): the git commit, DVC hashes of
    /// its inputs and outputs, params and metrics, in the journal
    /// ($NINDUB_RUNS, else ~/.cache/nindub/runs.jsonl) and in MLflow when
    /// $MLFLOW_TRACKING_URI names a server.
    #[arg(long, global = true)]
    pub track: bool,
    /// With --track: record even from a tree with uncommitted changes
    /// (the record says so, and `runs reproduce` refuses it).
    #[arg(long, global = true)]
    pub allow_dirty: bool,
}

static TRACKING: OnceLock<TrackArgs> = OnceLock::new();

pub fn set_tracking(args: TrackArgs) {
    let _ = TRACKING.set(args);
}

/// The flags that are not part of a run's command.
const TRACK_FLAGS: [&str; 2] = ["--track", "--allow-dirty"];

/// Starts a record when `--track` was given: refuses a dirty tree before
/// any work is done. `extra` completes the command line with what the run
/// took by default (so that a rerun does not depend on the environment).
pub fn begin(experiment: &str, name: &str, extra: &[String]) -> Result<Option<Run>> {
    let Some(t) = TRACKING.get().filter(|t| t.track) else {
        return Ok(None);
    };
    // The code that runs is this binary's: the source tree it was compiled
    // from (run it with `cargo run`, so that the two are one build).
    let source = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut run = Run::begin(experiment, name, source, t.allow_dirty)?;
    let args = std::env::args()
        .skip(1)
        .filter(|a| !TRACK_FLAGS.contains(&a.as_str()))
        .chain(extra.iter().cloned());
    run.command(args);
    Ok(Some(run))
}

/// Ends a record: the journal first (always), then MLflow if a server is
/// named; a server that fails leaves the record in the journal for `runs
/// sync`.
pub fn finish(run: Option<Run>) -> Result<()> {
    let Some(run) = run else { return Ok(()) };
    let record = run.finish();
    let journal = Journal::new(Journal::default_path());
    journal.append(&record)?;
    eprintln!(
        "nindub: run {} recorded in {} (code {}, data {})",
        record.id,
        journal.path.display(),
        record.short_commit(),
        record
            .inputs
            .iter()
            .map(|i| format!("{}={}", i.name, i.hash.md5))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(server) = Mlflow::from_env() {
        match server.log(&record) {
            Ok(run_id) => eprintln!("nindub: sent to MLflow {} as run {run_id}", server.base()),
            Err(e) => eprintln!(
                "nindub: MLflow: {e}; the record stays in the journal: `nindub runs sync` sends it later"
            ),
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct RunsArgs {
    /// The journal to read (default: $NINDUB_RUNS, else
    /// ~/.cache/nindub/runs.jsonl).
    #[arg(long, global = true)]
    journal: Option<PathBuf>,
    #[command(subcommand)]
    what: RunsCommand,
}

#[derive(Subcommand)]
pub enum RunsCommand {
    /// Every recorded run, oldest first.
    List,
    /// One run: code, data, params, metrics, artifacts (or its JSON).
    Show {
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// What differs between two runs: code, data, params, metrics,
    /// artifacts.
    Diff { a: String, b: String },
    /// The run against the world now: its commit still known, its data
    /// unchanged, and (with --remote) every version restorable.
    Check {
        run: String,
        /// A DVC remote on disk (the folder `dvc remote add` was given).
        #[arg(long)]
        remote: Option<PathBuf>,
    },
    /// Rerun a run from its commit (a temporary git worktree, built there)
    /// and its data (fetched by hash from the DVC remote), and compare.
    Reproduce {
        run: String,
        #[arg(long)]
        remote: Option<PathBuf>,
        /// The git repository with the run's commit (default: the one it
        /// was recorded in).
        #[arg(long)]
        repo: Option<PathBuf>,
        /// Keep the temporary worktree, data and outputs.
        #[arg(long)]
        keep: bool,
    },
    /// Send the journal's runs that the MLflow server lacks.
    Sync {
        /// The server (default: $MLFLOW_TRACKING_URI).
        #[arg(long)]
        mlflow: Option<String>,
    },
    /// The DVC hash of a file or directory (what `dvc add` writes).
    Hash { path: PathBuf },
}

pub fn run(args: RunsArgs) -> Result<()> {
    let journal = Journal::new(args.journal.unwrap_or_else(Journal::default_path));
    match args.what {
        RunsCommand::List => list(&journal),
        RunsCommand::Show { run, json } => show(&journal.find(&run)?, json),
        RunsCommand::Diff { a, b } => {
            let (a, b) = (journal.find(&a)?, journal.find(&b)?);
            let d = record::diff(&a, &b);
            if d.is_empty() {
                println!(
                    "runs {} and {} agree in code, data, params, metrics and artifacts",
                    short(&a),
                    short(&b)
                );
            }
            for line in d {
                println!("{line}");
            }
            Ok(())
        }
        RunsCommand::Check { run, remote } => {
            let rec = journal.find(&run)?;
            let remote = remote.map(Remote::new);
            let found = record::timeline(&rec, remote.as_ref())?;
            if found.is_empty() {
                println!(
                    "run {}: bound: commit {} known, {} input(s) unchanged{}",
                    short(&rec),
                    rec.short_commit(),
                    rec.inputs.len(),
                    if remote.is_some() {
                        " and restorable from the remote"
                    } else {
                        ""
                    }
                );
                return Ok(());
            }
            for d in &found {
                println!("run {}: DISCONNECT {d}", short(&rec));
            }
            bail!(
                "run {} is not bound to its code and data ({} disconnect(s))",
                short(&rec),
                found.len()
            )
        }
        RunsCommand::Reproduce {
            run,
            remote,
            repo,
            keep,
        } => reproduce(
            &journal.find(&run)?,
            remote.as_deref(),
            repo.as_deref(),
            keep,
        ),
        RunsCommand::Sync { mlflow } => {
            let server = match mlflow {
                Some(url) => Mlflow::new(&url),
                None => Mlflow::from_env()
                    .context("no server: pass --mlflow URL or set MLFLOW_TRACKING_URI")?,
            };
            let done = server.replay(&journal)?;
            for (id, run) in &done.sent {
                println!("sent {id} → MLflow run {run}");
            }
            println!(
                "{} sent, {} already in {}",
                done.sent.len(),
                done.already.len(),
                server.base()
            );
            Ok(())
        }
        RunsCommand::Hash { path } => {
            let h = dvc::hash_path(&path)?;
            println!(
                "{}  {}  {} bytes{}",
                h.md5,
                path.display(),
                h.size,
                h.nfiles.map_or(String::new(), |n| format!(", {n} files"))
            );
            Ok(())
        }
    }
}

fn short(r: &RunRecord) -> &str {
    r.id.get(..8).unwrap_or(&r.id)
}

fn list(journal: &Journal) -> Result<()> {
    let read = journal.read()?;
    for (line, why) in &read.bad_lines {
        eprintln!(
            "nindub: {} line {line} is not a record ({why}); skipped",
            journal.path.display()
        );
    }
    println!(
        "{:<10} {:<24} {:<16} {:<38} name",
        "run", "experiment", "code", "first input (DVC md5)"
    );
    for r in &read.records {
        println!(
            "{:<10} {:<24} {:<16} {:<38} {}",
            short(r),
            r.experiment,
            r.short_commit(),
            r.inputs.first().map_or("-", |i| i.hash.md5.as_str()),
            r.name
        );
    }
    Ok(())
}

fn show(r: &RunRecord, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!("run        {} ({}: {})", r.id, r.experiment, r.name);
    println!("code       {}", r.short_commit());
    println!("command    nindub {}", r.command.join(" "));
    println!("agreement  {:?}", r.agreement);
    for i in &r.inputs {
        println!(
            "input      {:<10} {}  {} bytes  {}",
            i.name,
            i.hash.md5,
            i.hash.size,
            i.path.display()
        );
    }
    for (k, v) in &r.params {
        println!("param      {k} = {v}");
    }
    for (k, v) in r.last_metrics() {
        let steps = r.metrics.iter().filter(|m| m.key == k).count();
        println!("metric     {k} = {v} ({steps} step(s))");
    }
    for a in &r.artifacts {
        println!(
            "artifact   {:<10} {}  {} bytes  {}",
            a.name,
            a.hash.md5,
            a.hash.size,
            a.path.display()
        );
    }
    Ok(())
}

// ANCHOR: reproduce
fn reproduce(
    rec: &RunRecord,
    remote: Option<&Path>,
    repo: Option<&Path>,
    keep: bool,
) -> Result<()> {
    let git = rec
        .git
        .as_ref()
        .context("the run names no commit: nothing to check out")?;
    if git.dirty {
        bail!(
            "run {} was recorded from a tree with uncommitted changes: commit {} is not the code that ran",
            short(rec),
            git.commit
        );
    }
    let repo = match repo {
        Some(r) => r.to_path_buf(),
        None if git.root.is_dir() => git.root.clone(),
        None => GitState::read(&std::env::current_dir()?)?.root,
    };
    let scratch = tempfile::Builder::new()
        .prefix("nindub-reproduce-")
        .tempdir()?;
    let work = if keep {
        scratch.keep()
    } else {
        scratch.path().to_path_buf()
    };
    eprintln!(
        "nindub: code: commit {} checked out in {}",
        git.commit,
        work.join("code").display()
    );
    let tree = Worktree::add(&repo, &git.commit, &work.join("code"))?;

    // The data, by hash.
    let mut args = rec.command.clone();
    let mut replace = |arg: &Option<String>, path: &Path| {
        if let Some(a) = arg {
            for x in args.iter_mut().filter(|x| *x == a) {
                *x = path.to_string_lossy().into_owned();
            }
        }
    };
    for input in &rec.inputs {
        let file = input
            .path
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| input.name.clone().into());
        let dest = work.join("data").join(&input.name).join(file);
        match remote {
            Some(r) => {
                eprintln!(
                    "nindub: data: {} {} from the DVC remote {}",
                    input.name,
                    input.hash.md5,
                    r.display()
                );
                Remote::new(r).fetch(&input.hash.md5, &dest)?;
            }
            None => {
                let now = dvc::hash_path(&input.path)?;
                if now.md5 != input.hash.md5 {
                    bail!(
                        "data `{}` changed since the run ({} → {}) and no --remote was given to fetch version {}",
                        input.name,
                        input.hash.md5,
                        now.md5,
                        input.hash.md5
                    );
                }
                eprintln!(
                    "nindub: data: {} {} unchanged at {}",
                    input.name,
                    input.hash.md5,
                    input.path.display()
                );
                // The recorded path is absolute; the argument may have been
                // relative to a directory the rerun does not run in.
                replace(&input.arg, &input.path);
                continue;
            }
        }
        replace(&input.arg, &dest);
    }
    for art in &rec.artifacts {
        if art.arg.is_none() {
            bail!(
                "artifact `{}` was not named on the run's command line: a rerun would write over {}",
                art.name,
                art.path.display()
            );
        }
        let file = art
            .path
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| art.name.clone().into());
        replace(&art.arg, &work.join("out").join(&art.name).join(file));
    }

    // The code, built at its commit, in the target folder this binary was
    // built in (its dependencies are compiled there already).
    eprintln!(
        "nindub: building nindub at {} (cargo build -p nindub)",
        abbrev(&git.commit)
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(own_target_dir)
        .unwrap_or_else(|| repo.join("target"));
    let exe = build_at(&tree.dir, &target, &work)?;

    // The rerun, recorded in a journal of its own.
    let journal = Journal::new(work.join("rerun.jsonl"));
    eprintln!("nindub: rerun: nindub {} --track", args.join(" "));
    let status = Command::new(&exe)
        .args(&args)
        .arg("--track")
        .current_dir(&tree.dir)
        .env("NINDUB_RUNS", &journal.path)
        .env_remove("MLFLOW_TRACKING_URI")
        .status()
        .context("running the rebuilt nindub")?;
    if !status.success() {
        bail!("the rerun failed ({status})");
    }
    let rerun = journal
        .read()?
        .records
        .pop()
        .context("the rerun recorded nothing")?;
    let r = record::compare(rec, &rerun);
    println!(
        "reproduction of run {} (commit {}, agreement {:?}) as run {}",
        short(rec),
        abbrev(&git.commit),
        r.agreement,
        short(&rerun)
    );
    for c in &r.checks {
        println!(
            "  {:<4} {:<40} recorded {:<36} reproduced {}",
            if c.ok { "ok" } else { "DIFF" },
            c.what,
            c.recorded,
            c.reproduced
        );
    }
    if keep {
        // The worktree stays registered, for inspection; `git worktree
        // prune` forgets it once the folder is removed.
        std::mem::forget(tree);
        eprintln!("nindub: kept {}", work.display());
    } else {
        drop(tree);
    }
    if !r.ok() {
        bail!("the rerun does not reproduce run {}", short(rec));
    }
    println!("reproduced: {} check(s) agree", r.checks.len());
    Ok(())
}
// ANCHOR_END: reproduce

/// A commit's first twelve digits (all of it, when shorter).
fn abbrev(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// `TARGET` when this binary is `TARGET/PROFILE/nindub`.
fn own_target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile = exe.parent()?;
    let target = profile.parent()?;
    target
        .join("CACHEDIR.TAG")
        .exists()
        .then(|| target.to_path_buf())
}

/// Builds `nindub` in the worktree `dir` with `target` as cargo's target
/// folder, and returns a copy of the executable kept in `work`. Cargo
/// links the new executable to `target/PROFILE/nindub`, where the user's
/// own build lives: that file is put back as it was, so the user's
/// `nindub` is still theirs after a reproduction.
fn build_at(dir: &Path, target: &Path, work: &Path) -> Result<PathBuf> {
    let mut cmd = Command::new("cargo");
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "nindub",
        "--bin",
        "nindub",
        "--message-format=json-render-diagnostics",
    ])
    .current_dir(dir)
    .env("CARGO_TARGET_DIR", target)
    .stderr(std::process::Stdio::inherit());
    let linked = target.join("debug").join("nindub");
    let saved = work.join("nindub-before");
    let had = std::fs::copy(&linked, &saved).is_ok();
    let out = cmd
        .output()
        .context("running cargo (is the Rust toolchain installed?)");
    let exe = out.and_then(|out| {
        if !out.status.success() {
            bail!("cargo build in {} failed", dir.display());
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|v| v["executable"].as_str().map(PathBuf::from))
            .context("cargo build reported no nindub executable")
    });
    let kept = work.join("nindub-at-commit");
    let copied = exe.and_then(|exe| {
        std::fs::copy(&exe, &kept)
            .map(drop)
            .context("copying the rebuilt nindub")
    });
    if had {
        let back = linked.with_extension("restoring");
        std::fs::copy(&saved, &back)
            .and_then(|_| std::fs::rename(&back, &linked))
            .with_context(|| format!("putting {} back", linked.display()))?;
    }
    copied?;
    Ok(kept)
}
