//! The quality monitor: what every served request teaches about the model.
//!
//! Per generated token, the chosen token's probability and the entropy of
//! the model's own distribution ([`crate::model::generate::Step`] carries
//! both) and the token itself; per prompt, its tokens and their embedding
//! norms. Each goes into its windows ([`super::windows`]); a
//! [`Snapshot`] holds the means and the drift scores that `/metrics`
//! exports and the alert rules ([`super::rules`]) read.

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use serde::Serialize;

use super::windows::{Categorical, Numeric, Signal, Test, WindowConfig};
use crate::error::{Error, Result, ctx};
use crate::model::gguf::GgufFile;

/// One drift score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Drift {
    pub signal: Signal,
    pub test: Test,
    pub value: f64,
}

/// The monitor's state at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// The output windows are full: the drift scores and the live means
    /// mean something.
    pub ready: bool,
    /// Tokens in the reference and the live output windows.
    pub reference_tokens: usize,
    pub live_tokens: usize,
    /// (signal, reference mean, live mean) of the numeric output signals.
    pub means: Vec<(Signal, f64, f64)>,
    /// The scores of the windows that are full.
    pub drift: Vec<Drift>,
}

impl Snapshot {
    /// A score, if its windows are full.
    pub fn drift(&self, signal: Signal, test: Test) -> Option<f64> {
        self.drift
            .iter()
            .find(|d| d.signal == signal && d.test == test)
            .map(|d| d.value)
    }

    /// The (reference, live) means of a numeric signal.
    pub fn mean(&self, signal: Signal) -> Option<(f64, f64)> {
        self.means
            .iter()
            .find(|m| m.0 == signal)
            .map(|&(_, r, l)| (r, l))
    }
}

/// Every window of every signal.
#[derive(Debug, Clone)]
pub struct QualityMonitor {
    probability: Numeric,
    entropy: Numeric,
    output: Categorical,
    input: Categorical,
    input_norm: Numeric,
    /// The L2 norm of each token's embedding row, when known.
    norms: Option<Arc<Vec<f32>>>,
}

impl QualityMonitor {
    pub fn new(cfg: WindowConfig, norms: Option<Arc<Vec<f32>>>) -> Self {
        QualityMonitor {
            probability: Numeric::new(cfg),
            entropy: Numeric::new(cfg),
            output: Categorical::new(cfg),
            input: Categorical::new(cfg),
            input_norm: Numeric::new(cfg),
            norms,
        }
    }

    /// A prompt, as the model received it.
    pub fn observe_prompt(&mut self, prompt: &[u32]) {
        for &t in prompt {
            self.input.push(t);
            if let Some(n) = self.norms.as_ref().and_then(|n| n.get(t as usize)) {
                self.input_norm.push(f64::from(*n));
            }
        }
    }

    /// A generated token: its probability and the entropy of the
    /// distribution it was drawn from (the model's own).
    pub fn observe_token(&mut self, token: u32, prob: f32, entropy: f32) {
        self.probability.push(f64::from(prob));
        self.entropy.push(f64::from(entropy));
        self.output.push(token);
    }

    pub fn snapshot(&self) -> Snapshot {
        let (reference_tokens, live_tokens) = self.probability.lens();
        let mut drift = vec![];
        let mut add = |signal, test, value: Option<f64>| {
            if let Some(value) = value {
                drift.push(Drift {
                    signal,
                    test,
                    value,
                });
            }
        };
        for (signal, w) in [
            (Signal::TokenProbability, &self.probability),
            (Signal::TokenEntropy, &self.entropy),
            (Signal::InputEmbeddingNorm, &self.input_norm),
        ] {
            add(signal, Test::Psi, w.psi());
            add(signal, Test::Ks, w.ks());
        }
        add(Signal::OutputTokens, Test::Js, self.output.js());
        add(Signal::InputTokens, Test::Js, self.input.js());
        let (pr, pl) = self.probability.means();
        let (er, el) = self.entropy.means();
        Snapshot {
            ready: self.probability.ready(),
            reference_tokens,
            live_tokens,
            means: vec![
                (Signal::TokenProbability, pr, pl),
                (Signal::TokenEntropy, er, el),
            ],
            drift,
        }
    }
}

/// The L2 norm of every row of a GGUF model's token embedding
/// (`token_embd.weight`, `[vocab, hidden]`): the input-drift signal.
pub fn embedding_norms(model: &Path) -> Result<Vec<f32>> {
    let file = GgufFile::open(model)?;
    let name = "token_embd.weight";
    let mut reader =
        std::io::BufReader::new(std::fs::File::open(model).map_err(|e| Error::io(model, e))?);
    let t = ctx(
        &format!("reading `{name}`"),
        file.content.tensor(&mut reader, name, &Device::Cpu),
    )?;
    let rows = ctx(
        name,
        t.dequantize(&Device::Cpu)
            .and_then(|t| t.sqr())
            .and_then(|t| t.sum(1))
            .and_then(|t| t.sqrt())
            .and_then(|t| t.to_vec1::<f32>()),
    )?;
    Ok(rows)
}

/// What the server watches, and how.
#[derive(Clone)]
pub struct MonitorConfig {
    pub windows: WindowConfig,
    /// Token embedding norms ([`embedding_norms`]) for input drift.
    pub embedding_norms: Option<Arc<Vec<f32>>>,
    pub canaries: Option<super::CanarySet>,
    /// Score the canaries once at start and after every this many
    /// requests served.
    pub canary_every: usize,
    /// Append every request's signals here, a JSON line each
    /// ([`RequestRecord`]): the traffic, recorded for offline analysis.
    pub log: Option<std::path::PathBuf>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            windows: WindowConfig::default(),
            embedding_norms: None,
            canaries: None,
            canary_every: 20,
            log: None,
        }
    }
}

impl std::fmt::Debug for MonitorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorConfig")
            .field("windows", &self.windows)
            .field(
                "embedding_norms",
                &self.embedding_norms.as_ref().map(|n| n.len()),
            )
            .field(
                "canaries",
                &self.canaries.as_ref().map(|c| c.canaries.len()),
            )
            .field("canary_every", &self.canary_every)
            .field("log", &self.log)
            .finish()
    }
}

/// One served request's signals, as the quality log keeps them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct RequestRecord {
    /// 1 for the first request the server served.
    pub request: usize,
    pub prompt: Vec<u32>,
    pub tokens: Vec<u32>,
    /// The chosen token's probability in the model's own distribution.
    pub prob: Vec<f32>,
    /// That distribution's entropy (nats).
    pub entropy: Vec<f32>,
}

/// The quality log: JSON lines appended as requests finish. A write that
/// fails is reported once on stderr and the log stops; serving goes on.
pub struct QualityLog {
    file: Option<std::fs::File>,
    path: std::path::PathBuf,
}

impl QualityLog {
    pub fn open(path: &Path) -> Result<QualityLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(QualityLog {
            file: Some(file),
            path: path.to_path_buf(),
        })
    }

    pub fn write(&mut self, record: &RequestRecord) {
        use std::io::Write;
        let Some(file) = &mut self.file else { return };
        let mut line = serde_json::to_string(record).unwrap_or_default();
        line.push('\n');
        // One write per line: a reader never sees half a record from us.
        if let Err(e) = file.write_all(line.as_bytes()) {
            eprintln!(
                "nindub: the quality log {} stopped: {e}",
                self.path.display()
            );
            self.file = None;
        }
    }
}

/// Reads a quality log back; a line that is not a record (torn by a
/// crash, edited by hand) is an error naming its number.
pub fn read_log(path: &Path) -> Result<Vec<RequestRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                Error::invalid(
                    "quality log",
                    format!("{} line {}: {e}", path.display(), i + 1),
                )
            })
        })
        .collect()
}
