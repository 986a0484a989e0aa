//! The benchmark peers: llama.cpp's own tools (`llama-bench`,
//! `llama-server`) and llama-cpp-python, built outside the repository by
//! the fixture scripts (`crates/nindub/tests/fixtures/build-llama-cpp.sh`,
//! `regenerate-llama-cpp.sh`). A benchmark that finds them runs them in the
//! same run as nindub, so that a ratio compares two measurements of one
//! machine at one moment; nothing in the test suite needs them.
//!
//! They live under `$CODEX_HOME/peers` (else `~/.cache/codex/peers`);
//! `NINDUB_LLAMA_CPP_BIN` names another folder holding llama.cpp's tools.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The llama.cpp release the fixture script builds (the one vendored by
/// llama-cpp-python 0.3.36, the peer the other fixtures record).
pub const LLAMA_CPP_PYTHON: &str = "0.3.36";

/// Where the peers are built: `$CODEX_HOME/peers`, else
/// `~/.cache/codex/peers`.
pub fn peers_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("CODEX_HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h).join("peers"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/codex/peers"))
}

/// One of llama.cpp's tools (`llama-bench`, `llama-server`), where the
/// fixture script built it; `None` when it is not there.
pub fn llama_cpp_tool(name: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("NINDUB_LLAMA_CPP_BIN").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => peers_dir()?
            .join(format!("llama.cpp-{LLAMA_CPP_PYTHON}"))
            .join("bin"),
    };
    let path = dir.join(name);
    path.is_file().then_some(path)
}

/// llama.cpp's speed on one file, as its own `llama-bench` measures it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlamaBench {
    /// Prompt tokens per second (`pp`), mean over the repetitions.
    pub prompt_tokens_per_s: f64,
    /// Generated tokens per second (`tg`), mean over the repetitions.
    pub gen_tokens_per_s: f64,
}

impl LlamaBench {
    /// Runs `llama-bench` at `bin` on `model`: a prompt of `prompt` tokens
    /// and a generation of `gen`, on `threads` threads, `reps` repetitions.
    pub fn run(
        bin: &Path,
        model: &Path,
        prompt: usize,
        gen_tokens: usize,
        threads: usize,
        reps: usize,
    ) -> Result<Self> {
        let out = Command::new(bin)
            .arg("-m")
            .arg(model)
            .args(["-p", &prompt.to_string(), "-n", &gen_tokens.to_string()])
            .args(["-t", &threads.to_string(), "-r", &reps.to_string()])
            .args(["-o", "json"])
            .output()
            .map_err(|e| Error::io(bin, e))?;
        if !out.status.success() {
            return Err(Error::invalid(
                "llama-bench",
                format!(
                    "{} exited with {}: {}",
                    bin.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                ),
            ));
        }
        Self::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// Reads `llama-bench -o json`: an array of tests, each with `n_prompt`,
    /// `n_gen` and `avg_ts`; the prompt test has `n_gen` 0, the generation
    /// test `n_prompt` 0.
    pub fn parse(json: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid("reading llama-bench's JSON", why.to_string());
        let tests: serde_json::Value =
            serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
        let tests = tests
            .as_array()
            .ok_or_else(|| bad("not an array of tests"))?;
        let speed = |prompt: bool| -> Result<f64> {
            tests
                .iter()
                .find(|t| {
                    let (p, g) = (t["n_prompt"].as_u64(), t["n_gen"].as_u64());
                    if prompt {
                        p.is_some_and(|p| p > 0) && g == Some(0)
                    } else {
                        g.is_some_and(|g| g > 0) && p == Some(0)
                    }
                })
                .and_then(|t| t["avg_ts"].as_f64())
                .ok_or_else(|| {
                    bad(if prompt {
                        "no prompt test (n_prompt > 0, n_gen 0) with avg_ts"
                    } else {
                        "no generation test (n_gen > 0, n_prompt 0) with avg_ts"
                    })
                })
        };
        Ok(LlamaBench {
            prompt_tokens_per_s: speed(true)?,
            gen_tokens_per_s: speed(false)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_llama_bench_json() {
        let json = r#"[
          {"model_type": "llama ?B Q4_1", "n_threads": 2, "n_prompt": 64, "n_gen": 0, "avg_ts": 301.5, "stddev_ts": 2.0},
          {"model_type": "llama ?B Q4_1", "n_threads": 2, "n_prompt": 0, "n_gen": 64, "avg_ts": 150.25, "stddev_ts": 1.0}
        ]"#;
        let b = LlamaBench::parse(json).unwrap();
        assert_eq!(b.prompt_tokens_per_s, 301.5);
        assert_eq!(b.gen_tokens_per_s, 150.25);
    }

    #[test]
    fn refuses_what_is_not_llama_bench_json() {
        assert!(LlamaBench::parse("pp64 | 300").is_err());
        assert!(LlamaBench::parse(r#"[{"n_prompt": 64, "n_gen": 0, "avg_ts": 1.0}]"#).is_err());
        assert!(LlamaBench::parse(r#"{"n_prompt": 64}"#).is_err());
    }
}
