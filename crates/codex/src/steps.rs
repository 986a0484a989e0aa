//! What `cargo codex` does, one function per command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::install::{self, run, say};

/// The repository root (this crate sits at `crates/codex`).
pub fn root() -> PathBuf {
    // The directory cargo gives at run time: a binary built from another
    // checkout sharing the target directory must not test that checkout.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let dir = manifest.join("../..");
    dir.canonicalize().unwrap_or(dir)
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Where the book's corpus (Tiny Shakespeare) is found when
/// `NINDUB_CORPUS` is not set: the shared data folder beside the clone
/// (`../shared/data/tinyshakespeare.txt`), where this workplace keeps it and
/// CI finds it. `None` when the variable is set or no such file exists (the
/// corpus-reading results are then skipped, and said to be).
pub fn default_corpus() -> Option<PathBuf> {
    if std::env::var_os("NINDUB_CORPUS").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let shared = root().join("../shared/data/tinyshakespeare.txt");
    shared
        .is_file()
        .then(|| shared.canonicalize().unwrap_or(shared))
}

/// Where the generated results live, per chapter.
pub fn generated_dir() -> PathBuf {
    root().join("book/src/generated")
}

pub(crate) fn book_out() -> PathBuf {
    root().join("book/build")
}

pub fn build_book() -> Result<()> {
    install::book_tools()?;
    say("building the book (mdbook build)");
    run(
        Command::new(install::tool("mdbook"))
            .arg("build")
            .arg(root())
            .env("PATH", tools_path()),
        "mdbook build",
    )?;
    say(&format!(
        "the book is in {}",
        book_out().join("index.html").display()
    ));
    Ok(())
}

/// PATH with the tools' bin first, so mdBook finds its preprocessor.
fn tools_path() -> std::ffi::OsString {
    let mut paths = vec![install::tools_root().join("bin")];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

pub fn serve(port: u16) -> Result<()> {
    install::book_tools()?;
    // The book needs no model: the notebooks and the CLI fetch theirs on
    // first use (or `cargo codex models`), so serving does not compile the
    // engine first.
    build_book()?;
    say(
        "the models are fetched on first use by the notebooks and `nindub` (or now: `cargo codex models`)",
    );
    say(&format!(
        "serving the Codex at http://127.0.0.1:{port}/ (Ctrl-C to stop; edits rebuild it)"
    ));
    run(
        Command::new(install::tool("mdbook"))
            .args([
                "serve",
                "--hostname",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .arg(root())
            .env("PATH", tools_path()),
        "mdbook serve",
    )
}

pub fn models() -> Result<()> {
    say("fetching the pinned models and data (cached after the first time)");
    run(
        cargo().args([
            "run", "--quiet", "-p", "nindub", "--bin", "nindub", "--", "models",
        ]),
        "nindub models",
    )
}

/// Generated files that are measurements of the machine (timings), written
/// by `cargo codex bench` and `cargo codex experiments`: kept, but not
/// expected to reproduce byte for byte.
pub(crate) const MEASURED_DIRS: &[&str] = &["bench", "experiment"];
pub(crate) const MEASURED_DIR: &str = MEASURED_DIRS[0];

/// Where `cargo codex clients` leaves its screenshot of the web page.
pub(crate) const PAGE_SCREENSHOT: &str = "screenshots/speaking-stone-page.png";

/// The result generators' registry, from the `lab` crate's `results list`.
#[derive(serde::Deserialize)]
struct Registry {
    generators: Vec<RegisteredGenerator>,
}

#[derive(serde::Deserialize)]
struct RegisteredGenerator {
    name: String,
    dir: String,
    reads_corpus: bool,
}

/// `cargo run --release -p lab --bin results -- ARGS`. Release, because the
/// generators run real models for most of the suite's time (the Alchemy's
/// calibration and GPTQ exports run about four times faster than in the
/// dev profile, whose overflow checks and debug assertions stay on); the
/// files they write are the same, as `cargo codex test` checks.
pub(crate) fn lab_results(args: &[&str]) -> Command {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "lab",
        "--bin",
        "results",
        "--",
    ])
    .args(args);
    cmd
}

pub fn results(check: bool) -> Result<()> {
    let target = if check {
        let dir = book_out().join(".results-check");
        let _ = std::fs::remove_dir_all(&dir);
        dir
    } else {
        generated_dir()
    };
    let listed = lab_results(&["list"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running the results registry")?;
    if !listed.status.success() {
        bail!("`results list` failed");
    }
    let registry: Registry =
        serde_json::from_slice(&listed.stdout).context("reading the results registry")?;
    let corpus = std::env::var_os("NINDUB_CORPUS").is_some_and(|v| !v.is_empty());
    let mut skipped = vec![];
    for g in &registry.generators {
        if g.reads_corpus && !corpus {
            say(&format!(
                "skipping {}: it reads the corpus, and none was found; set NINDUB_CORPUS to a text file (the book's results use tinyshakespeare.txt, found by default at ../shared/data/ beside the clone)",
                g.name
            ));
            skipped.push(format!("{}/", g.dir));
            continue;
        }
        say(&format!("generating results: {}", g.name));
        let out = target.join(&g.dir);
        run(
            lab_results(&["run", &g.name]).arg(&out),
            &format!("generator {}", g.name),
        )?;
    }
    say("the command-line transcripts");
    let bin = nindub_binary(false)?;
    run(
        lab_results(&["transcripts"]).arg(&target).arg(&bin),
        "the transcripts",
    )?;
    say("the benchmarks' printouts as figures");
    timings(&target)?;
    if !check {
        say(&format!("results written to {}", target.display()));
        return Ok(());
    }
    let kept = |name: &String| {
        !skipped.iter().any(|s| name.starts_with(s.as_str()))
            && !name.split('/').any(|part| MEASURED_DIRS.contains(&part))
    };
    // A skipped chapter's folder is left out on both sides (its
    // transcripts are written, but the rest of the folder is not).
    let mut fresh = list_files(&target)?;
    fresh.retain(|name, _| kept(name));
    let mut committed = list_files(&generated_dir())?;
    committed.retain(|name, _| kept(name));
    let mut stale = vec![];
    for (name, bytes) in &fresh {
        if !committed
            .get(name)
            .is_some_and(|c| same_result(name, bytes, c))
        {
            stale.push(name.clone());
        }
    }
    for name in committed.keys() {
        if !fresh.contains_key(name) {
            stale.push(format!("{name} (no longer generated)"));
        }
    }
    if !stale.is_empty() {
        bail!(
            "the committed results differ from what the code produces now; run `cargo codex results` and commit:\n  {}",
            stale.join("\n  ")
        );
    }
    say(&format!("results are up to date ({} files)", fresh.len()));
    Ok(())
}

/// Whether a regenerated file says what the committed one says. Byte for
/// byte, except a `figures.json`, whose figures must agree in name, unit
/// and printed text (what the book shows): the full-precision value
/// beside the text carries the last bits of the CPU's float arithmetic
/// (candle's matrix products sum in an order set by the instruction set
/// and the cache sizes), which no reader sees and no machine but the one
/// that wrote it reproduces.
fn same_result(name: &str, fresh: &[u8], committed: &[u8]) -> bool {
    if fresh == committed {
        return true;
    }
    if !name.ends_with("figures.json") {
        return false;
    }
    let shown = |bytes: &[u8]| -> Option<serde_json::Value> {
        let mut v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        for f in v.get_mut("figures")?.as_array_mut()? {
            let value = f.get_mut("value")?;
            *value = serde_json::Value::Bool(!value.is_null());
        }
        Some(v)
    };
    matches!((shown(fresh), shown(committed)), (Some(a), Some(b)) if a == b)
}

/// The lint over the chapters' prose: every figure a generator writes is
/// quoted by name (`{{#fig NAME}}`), none typed by hand, and every name
/// quoted exists.
pub fn figures_bound() -> Result<()> {
    let generated = generated_dir();
    let found = crate::figures::lint_book(&root().join("book/src"), &generated)?;
    if found.is_empty() {
        let n = crate::figures::Figures::load(&generated)?.len();
        say(&format!(
            "the prose quotes its {n} generated figures by name; none is typed by hand"
        ));
        return Ok(());
    }
    let mut lines = vec![];
    for (chapter, findings) in &found {
        let file = chapter.strip_prefix(root()).unwrap_or(chapter);
        for f in findings {
            lines.push(format!(
                "{}:{}: `{}` is typed by hand; the results give {} as {{{{#fig {}}}}}",
                file.display(),
                f.line,
                f.typed,
                f.generated,
                f.figure
            ));
        }
    }
    bail!(
        "numbers in the prose that the results give (write the figure's name, or exempt a number that only lies near one with <!-- not a figure: N -->):\n  {}",
        lines.join("\n  ")
    )
}

/// The committed benchmark printouts' numbers as figures, written under
/// `out` (`CHAPTER/timings/figures.json`).
pub(crate) fn timings(out: &Path) -> Result<()> {
    run(
        lab_results(&["timings"]).arg(generated_dir()).arg(out),
        "the timing figures",
    )
}

fn list_files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir)?.to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&path)?);
            }
        }
    }
    Ok(out)
}

fn notebook_paths(names: &[String]) -> Result<Vec<PathBuf>> {
    let dir = root().join("notebooks");
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ipynb"))
        .collect();
    all.sort();
    if names.is_empty() {
        return Ok(all);
    }
    names
        .iter()
        .map(|n| {
            all.iter()
                .find(|p| p.file_name().is_some_and(|f| f.to_string_lossy() == *n))
                .cloned()
                .with_context(|| format!("no notebook named {n} in {}", dir.display()))
        })
        .collect()
}

pub fn notebooks(names: &[String]) -> Result<()> {
    install::notebook_tools()?;
    models()?;
    let paths = notebook_paths(names)?;
    say(&format!(
        "executing {} notebook(s) with the evcxr kernel",
        paths.len()
    ));
    run(
        Command::new(install::python())
            .arg(root().join("crates/codex/scripts/run_notebooks.py"))
            .args(&paths)
            .current_dir(root()),
        "executing notebooks",
    )
}

pub fn check_notebooks(fix: bool) -> Result<()> {
    let mut dirty = vec![];
    for path in notebook_paths(&[])? {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut nb: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let kernel = nb["metadata"]["kernelspec"]["name"]
            .as_str()
            .unwrap_or_default();
        if kernel != "rust" {
            bail!(
                "{}: kernelspec is `{kernel}`, expected `rust` (evcxr)",
                path.display()
            );
        }
        let mut has_outputs = false;
        for cell in nb["cells"].as_array_mut().into_iter().flatten() {
            if cell["cell_type"] != "code" {
                continue;
            }
            let outputs = cell["outputs"].as_array().is_some_and(|o| !o.is_empty());
            if outputs || !cell["execution_count"].is_null() {
                has_outputs = true;
                cell["outputs"] = serde_json::json!([]);
                cell["execution_count"] = serde_json::Value::Null;
            }
        }
        if has_outputs {
            if fix {
                std::fs::write(&path, serde_json::to_string_pretty(&nb)? + "\n")?;
                say(&format!("stripped outputs from {}", path.display()));
            } else {
                dirty.push(path.display().to_string());
            }
        }
    }
    if !dirty.is_empty() {
        bail!(
            "notebooks must be stored without outputs (run `cargo codex check-notebooks --fix`):\n  {}",
            dirty.join("\n  ")
        );
    }
    say("notebooks are stored without outputs");
    Ok(())
}

pub fn check_book() -> Result<()> {
    build_book()?;
    install::browser()?;
    let shots = book_out().join("screenshots");
    say(&format!(
        "loading every page in headless Chromium (screenshots in {})",
        shots.display()
    ));
    run(
        Command::new(install::python())
            .arg(root().join("crates/codex/scripts/check_book.py"))
            .arg(book_out())
            .arg(&shots)
            .env(
                "CODEX_CHROMIUM",
                install::chromium().context("chromium not found")?,
            ),
        "checking the book in Chromium",
    )
}

/// The served model's id (its file's stem).
const SERVED_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1";

/// Builds `nindub` (optimised with `release`) and returns its executable.
pub(crate) fn nindub_binary(release: bool) -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args(["build", "--quiet", "-p", "nindub", "--bin", "nindub"]);
    if release {
        cmd.arg("--release");
    }
    let out = cmd
        .arg("--message-format=json-render-diagnostics")
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo build -p nindub")?;
    if !out.status.success() {
        bail!("cargo build -p nindub failed");
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("cargo build reported no nindub executable")
}

/// A `nindub serve` child process on a free loopback port, killed on drop.
struct Served {
    child: std::process::Child,
    url: String,
}

impl Served {
    fn start(bin: &Path, key: Option<&str>) -> Result<Served> {
        use std::io::BufRead;
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--port", "0"])
            .env_remove("NINDUB_API_KEY")
            .stdout(std::process::Stdio::piped());
        if let Some(k) = key {
            cmd.env("NINDUB_API_KEY", k);
        }
        let mut child = cmd.spawn().context("starting nindub serve")?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("nindub serve's stdout")?;
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let mut served = Served {
            child,
            url: String::new(),
        };
        match line.trim().strip_prefix("listening on ") {
            Some(url) => {
                served.url = url.to_string();
                Ok(served)
            }
            None => bail!("nindub serve did not start (it printed {line:?})"),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Speaking Stone's independent clients, against real servers: the
/// `openai` package (with an API key; greedy over HTTP must equal `nindub
/// generate --temperature 0`), then the web page in headless Chromium (its
/// screenshot is kept in book/build/screenshots/).
pub fn clients() -> Result<()> {
    install::browser()?;
    let bin = nindub_binary(false)?;
    let scripts = root().join("crates/nindub/tests/clients");
    let work = tempfile_dir()?;
    let (prompt, max_tokens) = ("Once upon a time", 16);
    say("the greedy reference: nindub generate --temperature 0");
    let out = Command::new(&bin)
        .args(["generate", "--temperature", "0"])
        .args(["--max-tokens", &max_tokens.to_string(), "--prompt", prompt])
        .stderr(std::process::Stdio::null())
        .output()
        .context("running nindub generate")?;
    if !out.status.success() {
        bail!("nindub generate failed");
    }
    let text = String::from_utf8(out.stdout).context("nindub generate printed non-UTF-8")?;
    let expected = work.join("greedy.json");
    std::fs::write(
        &expected,
        serde_json::json!({
            "prompt": prompt,
            "max_tokens": max_tokens,
            "text": text.strip_suffix('\n').unwrap_or(&text),
        })
        .to_string(),
    )?;
    let key = "codex-clients-key";
    let served = Served::start(&bin, Some(key))?;
    say(&format!("the openai package against {}", served.url));
    run(
        Command::new(install::python())
            .arg(scripts.join("openai_client.py"))
            .args([&served.url, SERVED_MODEL, key])
            .arg(&expected),
        "the openai client",
    )?;
    drop(served);
    let served = Served::start(&bin, None)?;
    let shot = book_out().join(PAGE_SCREENSHOT);
    say(&format!(
        "the web page in Chromium against {} (screenshot {})",
        served.url,
        shot.display()
    ));
    run(
        Command::new(install::python())
            .arg(scripts.join("page_test.py"))
            .arg(&served.url)
            .arg(&shot)
            .env(
                "CODEX_CHROMIUM",
                install::chromium().context("chromium not found")?,
            ),
        "the web page in Chromium",
    )?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// The Golden Triangle against the real tools: MLflow and DVC installed in
/// their environment, then the integration test that starts its own MLflow
/// server and DVC repository, records a run, reads it back, breaks its
/// timeline and reproduces it from its commit and data hashes.
pub fn golden_triangle() -> Result<()> {
    let bin = install::track_tools()?;
    let mut cmd = cargo();
    cmd.args([
        "test",
        "-p",
        "nindub",
        "--test",
        "golden_triangle",
        "--",
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env("CODEX_TRACK_BIN", &bin);
    if std::env::var_os("NINDUB_CORPUS").is_none()
        && let Some(c) = default_corpus()
    {
        cmd.env("NINDUB_CORPUS", c);
    }
    run(&mut cmd, "the golden triangle's test (MLflow, DVC)")
}

/// The Automated Forge and Pocket Worlds against the real tools: the
/// workflow through actionlint, the Dockerfile through hadolint, then the
/// image built without a registry and checked (`deploy/image.sh`: static
/// binary, one layer holding it alone, non-root, no shell, it runs).
pub fn forge() -> Result<()> {
    let bin = install::forge_tools()?;
    run(
        Command::new(bin.join("actionlint"))
            .arg("-color=false")
            .current_dir(root()),
        "actionlint (.github/workflows)",
    )?;
    run(
        Command::new(bin.join("hadolint"))
            .arg("deploy/Dockerfile")
            .current_dir(root()),
        "hadolint (deploy/Dockerfile)",
    )?;
    run(
        Command::new("bash")
            .args(["deploy/image.sh", "--no-naive"])
            .current_dir(root()),
        "the image, built and run (deploy/image.sh)",
    )
}

/// The Infrastructure Canon against the real Prometheus: Debian's
/// `prometheus` installed, then its test (crates/codex/tests/monitoring.rs,
/// ignored tests included): promtool checks deploy/monitoring's
/// configuration and rules and runs the rules' unit tests, the Grafana
/// dashboard is validated, and a real Prometheus scrapes a real `nindub
/// serve`, evaluates the alerts and answers every dashboard query.
pub fn canon() -> Result<()> {
    let tools = install::canon_tools()?;
    run(
        cargo()
            .args([
                "test",
                "-p",
                "codex",
                "--test",
                "monitoring",
                "--",
                "--include-ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("CODEX_PROMETHEUS", &tools.prometheus)
            .env("CODEX_PROMTOOL", &tools.promtool),
        "the infrastructure canon's test (promtool, Prometheus)",
    )
}

/// A fresh scratch directory under the system's temporary directory.
fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("codex-clients-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

pub fn grade(solutions: bool) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["test", "-p", "exercises"]);
    if solutions {
        cmd.args(["--features", "solutions"]);
    }
    run(&mut cmd, "the trials")
}

/// Every check, in order; a failure is reported and the rest still run.
pub fn test_all() -> Result<()> {
    type Step = (&'static str, Box<dyn Fn() -> Result<()>>);
    let cargo_step = |args: &'static [&'static str],
                      env: &'static [(&'static str, &'static str)]|
     -> Box<dyn Fn() -> Result<()>> {
        Box::new(move || {
            let mut cmd = cargo();
            cmd.args(args);
            for (k, v) in env {
                cmd.env(k, v);
            }
            run(&mut cmd, &format!("cargo {}", args.join(" ")))
        })
    };
    let steps: Vec<Step> = vec![
        ("format", cargo_step(&["fmt", "--all", "--check"], &[])),
        (
            "clippy",
            cargo_step(
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ],
                &[],
            ),
        ),
        (
            "clippy (solutions)",
            cargo_step(
                &[
                    "clippy",
                    "-p",
                    "exercises",
                    "--all-targets",
                    "--features",
                    "solutions",
                    "--",
                    "-D",
                    "warnings",
                ],
                &[],
            ),
        ),
        ("models", Box::new(models)),
        (
            "workspace tests",
            cargo_step(&["test", "--workspace", "--exclude", "exercises"], &[]),
        ),
        (
            "trials: solutions pass",
            cargo_step(&["test", "-p", "exercises", "--features", "solutions"], &[]),
        ),
        (
            "trials: stubs fail",
            cargo_step(&["test", "-p", "exercises"], &[("TRIALS_EXPECT", "fail")]),
        ),
        (
            "trials: grader fixtures",
            cargo_step(
                &["test", "-p", "exercises"],
                &[("TRIALS_FIXTURES", "1"), ("TRIALS_TIMEOUT_S", "3")],
            ),
        ),
        ("results up to date", Box::new(|| results(true))),
        ("figures bound", Box::new(figures_bound)),
        (
            "notebooks stored clean",
            Box::new(|| check_notebooks(false)),
        ),
        ("notebooks execute", Box::new(|| notebooks(&[]))),
        ("book in the browser", Box::new(check_book)),
        ("real clients of the server", Box::new(clients)),
        ("golden triangle", Box::new(golden_triangle)),
        ("forge and pocket worlds", Box::new(forge)),
        ("infrastructure canon", Box::new(canon)),
    ];
    let started = Instant::now();
    let mut report = vec![];
    for (name, step) in &steps {
        say(&format!("── {name} ──"));
        let t = Instant::now();
        let outcome = step();
        let secs = t.elapsed().as_secs_f64();
        if let Err(e) = &outcome {
            eprintln!("codex: step `{name}` FAILED: {e:#}");
        }
        report.push((*name, outcome.is_ok(), secs));
    }
    println!(
        "\ncodex test summary ({:.0} s in all)",
        started.elapsed().as_secs_f64()
    );
    for (name, ok, secs) in &report {
        println!(
            "  {:<4} {name:<26} {secs:>7.1} s",
            if *ok { "ok" } else { "FAIL" }
        );
    }
    let failed = report.iter().filter(|r| !r.1).count();
    println!("codex: {} passed, {failed} failed", report.len() - failed);
    if failed > 0 {
        bail!("{failed} step(s) failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::same_result;

    #[test]
    fn figures_agree_by_what_the_book_shows() {
        let fig = |value: &str, text: &str| {
            format!(
                r#"{{"figures": [{{"name": "a.ppl", "value": {value}, "unit": "", "text": "{text}"}}]}}"#
            )
        };
        let committed = fig("57.03643186380631", "57.036");
        // The last bits of another CPU's arithmetic: the same figure.
        assert!(same_result(
            "x/figures.json",
            fig("57.03644159895249", "57.036").as_bytes(),
            committed.as_bytes()
        ));
        // A printed digit that moved, a figure that lost its value: stale.
        assert!(!same_result(
            "x/figures.json",
            fig("57.0371", "57.037").as_bytes(),
            committed.as_bytes()
        ));
        assert!(!same_result(
            "x/figures.json",
            fig("null", "57.036").as_bytes(),
            committed.as_bytes()
        ));
        // Any other file, byte for byte.
        assert!(!same_result("x/table.md", b"57.036 ", b"57.036"));
        assert!(same_result("x/table.md", b"57.036", b"57.036"));
    }
}
