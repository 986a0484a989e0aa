//! A run record: what one experiment read, did and wrote, bound to the
//! commit of its code and the hashes of its data. One record answers the
//! three questions a result raises months later: which code (the commit,
//! and whether the tree matched it), which data (DVC's md5 of every input),
//! and what came out (parameters, metrics over steps, artifacts with their
//! md5s).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dvc::{self, DataHash, Remote};
use super::git::{self, GitState};
use crate::error::{Error, Result};

/// A file or directory a run read or wrote, with its DVC hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataRef {
    /// The run's name for it (`model`, `corpus`, `output`).
    pub name: String,
    /// Where it was, absolute.
    pub path: PathBuf,
    /// The command-line argument that named it, if one did (a rerun puts
    /// the restored copy's path in its place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg: Option<String>,
    #[serde(flatten)]
    pub hash: DataHash,
}

/// One value of a metric at a step (MLflow's model of a metric).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    pub step: u64,
    pub timestamp_ms: u64,
}

/// How a rerun is expected to agree with the run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Agreement {
    /// Same code, same data, same bytes out: the computation has no
    /// randomness left and a fixed order of floating-point operations.
    Exact,
    /// Metrics within this relative tolerance; artifacts may differ in
    /// their low bits (threads summing in a different order).
    Within { rel: f64 },
}

/// Everything one run leaves behind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// 32 hex digits, like MLflow's run ids (MLflow gives its own; this one
    /// travels as the tag `nindub.run_id`).
    pub id: String,
    pub experiment: String,
    pub name: String,
    /// The `nindub` arguments that ran it (without the program's name and
    /// the tracking flags).
    pub command: Vec<String>,
    /// `None` only when the run was allowed outside a git repository.
    pub git: Option<GitState>,
    pub inputs: Vec<DataRef>,
    pub params: BTreeMap<String, String>,
    pub metrics: Vec<Metric>,
    pub artifacts: Vec<DataRef>,
    pub agreement: Agreement,
    pub start_ms: u64,
    pub end_ms: u64,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A run being recorded.
pub struct Run {
    record: RunRecord,
}

impl Run {
    /// The record so far (its id is known from the start).
    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    /// Starts a record for the code in the git repository around `dir`.
    /// A tree with uncommitted changes (or no repository at all) cannot be
    /// reproduced from its commit, so it is refused unless `allow_dirty`;
    /// allowed, the record says so.
    pub fn begin(experiment: &str, name: &str, dir: &Path, allow_dirty: bool) -> Result<Run> {
        let git = match GitState::read(dir) {
            Ok(g) => Some(g),
            Err(_) if allow_dirty => None,
            Err(e) => {
                return Err(Error::Unbound {
                    reason: format!("{} is not in a git repository ({e})", dir.display()),
                });
            }
        };
        if let Some(g) = &git
            && g.dirty
            && !allow_dirty
        {
            return Err(Error::Unbound {
                reason: format!(
                    "{} has uncommitted changes, so commit {} does not describe the code that would run",
                    g.root.display(),
                    &g.commit[..g.commit.len().min(12)]
                ),
            });
        }
        Ok(Run {
            record: RunRecord {
                id: format!("{:032x}", rand::random::<u128>()),
                experiment: experiment.into(),
                name: name.into(),
                command: vec![],
                git,
                inputs: vec![],
                params: BTreeMap::new(),
                metrics: vec![],
                artifacts: vec![],
                agreement: Agreement::Exact,
                start_ms: now_ms(),
                end_ms: 0,
            },
        })
    }

    pub fn command(&mut self, args: impl IntoIterator<Item = String>) -> &mut Self {
        self.record.command = args.into_iter().collect();
        self
    }

    /// Hashes an input now, before the work reads it.
    pub fn input(&mut self, name: &str, path: &Path, arg: Option<&str>) -> Result<&mut Self> {
        let r = data_ref(name, path, arg)?;
        self.record.inputs.push(r);
        Ok(self)
    }

    pub fn param(&mut self, key: &str, value: impl fmt::Display) -> &mut Self {
        self.record.params.insert(key.into(), value.to_string());
        self
    }

    pub fn metric(&mut self, key: &str, value: f64, step: u64) -> &mut Self {
        self.record.metrics.push(Metric {
            key: key.into(),
            value,
            step,
            timestamp_ms: now_ms(),
        });
        self
    }

    /// Hashes an output once it is written.
    pub fn artifact(&mut self, name: &str, path: &Path, arg: Option<&str>) -> Result<&mut Self> {
        let r = data_ref(name, path, arg)?;
        self.record.artifacts.push(r);
        Ok(self)
    }

    pub fn agreement(&mut self, agreement: Agreement) -> &mut Self {
        self.record.agreement = agreement;
        self
    }

    pub fn finish(mut self) -> RunRecord {
        self.record.end_ms = now_ms();
        self.record
    }
}

fn data_ref(name: &str, path: &Path, arg: Option<&str>) -> Result<DataRef> {
    let path = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    Ok(DataRef {
        name: name.into(),
        hash: dvc::hash_path(&path)?,
        path,
        arg: arg.map(String::from),
    })
}

impl RunRecord {
    /// The last value of each metric.
    pub fn last_metrics(&self) -> BTreeMap<&str, f64> {
        let mut last = BTreeMap::new();
        for m in &self.metrics {
            last.insert(m.key.as_str(), m.value);
        }
        last
    }

    /// The short commit, or `-`.
    pub fn short_commit(&self) -> String {
        match &self.git {
            Some(g) => format!(
                "{}{}",
                g.commit.get(..10).unwrap_or(&g.commit),
                if g.dirty { "+dirty" } else { "" }
            ),
            None => "-".into(),
        }
    }
}

// ANCHOR: difference
/// One way two runs differ.
#[derive(Clone, Debug, PartialEq)]
pub enum Difference {
    Code {
        a: String,
        b: String,
    },
    Data {
        name: String,
        a: Option<String>,
        b: Option<String>,
    },
    Param {
        key: String,
        a: Option<String>,
        b: Option<String>,
    },
    Metric {
        key: String,
        a: Option<f64>,
        b: Option<f64>,
    },
    Artifact {
        name: String,
        a: Option<String>,
        b: Option<String>,
    },
}
// ANCHOR_END: difference

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let n = |v: &Option<f64>| v.map_or("-".into(), |v| format!("{v}"));
        match self {
            Difference::Code { a, b } => write!(f, "code      {a} → {b}"),
            Difference::Data { name, a, b } => write!(f, "data      {name}: {} → {}", o(a), o(b)),
            Difference::Param { key, a, b } => write!(f, "param     {key}: {} → {}", o(a), o(b)),
            Difference::Metric { key, a, b } => write!(f, "metric    {key}: {} → {}", n(a), n(b)),
            Difference::Artifact { name, a, b } => {
                write!(f, "artifact  {name}: {} → {}", o(a), o(b))
            }
        }
    }
}

fn by_name(refs: &[DataRef]) -> BTreeMap<&str, String> {
    refs.iter()
        .map(|r| (r.name.as_str(), r.hash.md5.clone()))
        .collect()
}

fn params(r: &RunRecord) -> BTreeMap<&str, String> {
    r.params
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect()
}

/// The keys whose values differ between `a` and `b` (compared through
/// `key`), with both values; a key missing on one side differs.
fn changed<V: Clone, K: PartialEq>(
    a: &BTreeMap<&str, V>,
    b: &BTreeMap<&str, V>,
    key: impl Fn(&V) -> K,
) -> Vec<(String, Option<V>, Option<V>)> {
    let mut keys: Vec<&str> = a.keys().chain(b.keys()).copied().collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(k).map(&key) != b.get(k).map(&key))
        .map(|k| (k.to_string(), a.get(k).cloned(), b.get(k).cloned()))
        .collect()
}

/// What differs between two runs: code, data, parameters, the last value
/// of each metric, artifacts. Empty when they agree in everything.
pub fn diff(a: &RunRecord, b: &RunRecord) -> Vec<Difference> {
    let mut out = vec![];
    if a.short_commit() != b.short_commit() {
        out.push(Difference::Code {
            a: a.short_commit(),
            b: b.short_commit(),
        });
    }
    let same = |v: &String| v.clone();
    for (name, a, b) in changed(&by_name(&a.inputs), &by_name(&b.inputs), same) {
        out.push(Difference::Data { name, a, b });
    }
    for (key, a, b) in changed(&params(a), &params(b), same) {
        out.push(Difference::Param { key, a, b });
    }
    for (key, a, b) in changed(&a.last_metrics(), &b.last_metrics(), |v: &f64| v.to_bits()) {
        out.push(Difference::Metric { key, a, b });
    }
    for (name, a, b) in changed(&by_name(&a.artifacts), &by_name(&b.artifacts), same) {
        out.push(Difference::Artifact { name, a, b });
    }
    out
}

/// One comparison of a reproduction: a metric at a step, or an artifact.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub what: String,
    pub recorded: String,
    pub reproduced: String,
    pub ok: bool,
}

/// A rerun held against its record.
#[derive(Clone, Debug, Serialize)]
pub struct Reproduction {
    pub agreement: Agreement,
    pub checks: Vec<Check>,
}

impl Reproduction {
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }
}

// ANCHOR: compare
/// Compares a rerun with the record it reproduces: every metric at every
/// step, and every artifact's md5. Under [`Agreement::Exact`] metrics must
/// be bit-for-bit equal and artifacts identical; under
/// [`Agreement::Within`] metrics may differ by the relative tolerance and
/// artifacts are reported but not required to match.
pub fn compare(recorded: &RunRecord, rerun: &RunRecord) -> Reproduction {
    let agreement = recorded.agreement;
    let mut checks = vec![];
    let steps = |r: &RunRecord| -> BTreeMap<(String, u64), f64> {
        r.metrics
            .iter()
            .map(|m| ((m.key.clone(), m.step), m.value))
            .collect()
    };
    let (a, b) = (steps(recorded), steps(rerun));
    for ((key, step), va) in &a {
        let vb = b.get(&(key.clone(), *step));
        let ok = match (vb, agreement) {
            (None, _) => false,
            (Some(vb), Agreement::Exact) => va.to_bits() == vb.to_bits(),
            (Some(vb), Agreement::Within { rel }) => {
                (va - vb).abs() <= rel * va.abs().max(vb.abs()) || va == vb
            }
        };
        checks.push(Check {
            what: format!("metric {key} @ step {step}"),
            recorded: format!("{va}"),
            reproduced: vb.map_or("missing".into(), |v| format!("{v}")),
            ok,
        });
    }
    let produced = by_name(&rerun.artifacts);
    for art in &recorded.artifacts {
        let got = produced.get(art.name.as_str());
        checks.push(Check {
            what: format!("artifact {}", art.name),
            recorded: art.hash.md5.clone(),
            reproduced: got.cloned().unwrap_or_else(|| "missing".into()),
            ok: match agreement {
                Agreement::Exact => got == Some(&art.hash.md5),
                Agreement::Within { .. } => got.is_some(),
            },
        });
    }
    Reproduction { agreement, checks }
}
// ANCHOR_END: compare

// ANCHOR: disconnect
/// A broken link between a run and the code or data it claims: the
/// "disconnect of time", named.
#[derive(Clone, Debug, PartialEq)]
pub enum Disconnect {
    /// Recorded from a tree with uncommitted changes: the commit is not the
    /// code that ran.
    DirtyTree { commit: String },
    /// Recorded outside any repository.
    NoCommit,
    /// The repository does not have the commit (rewritten history, another
    /// clone).
    UnknownCommit { commit: String },
    /// The data at the recorded path changed after the run.
    DataChanged {
        name: String,
        path: PathBuf,
        recorded: String,
        now: String,
    },
    /// The data at the recorded path is gone.
    DataMissing { name: String, path: PathBuf },
    /// No copy of the recorded version exists in the remote: it cannot be
    /// restored, so the run cannot be reproduced.
    Unrestorable { name: String, md5: String },
}
// ANCHOR_END: disconnect

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disconnect::DirtyTree { commit } => write!(
                f,
                "code: the run was recorded from a dirty tree at {commit}; the commit is not the code that ran"
            ),
            Disconnect::NoCommit => write!(f, "code: the run names no commit"),
            Disconnect::UnknownCommit { commit } => {
                write!(f, "code: commit {commit} is not in this repository")
            }
            Disconnect::DataChanged {
                name,
                path,
                recorded,
                now,
            } => write!(
                f,
                "data: `{name}` ({}) changed after the run: recorded md5 {recorded}, now {now}",
                path.display()
            ),
            Disconnect::DataMissing { name, path } => {
                write!(f, "data: `{name}` ({}) is gone", path.display())
            }
            Disconnect::Unrestorable { name, md5 } => write!(
                f,
                "data: `{name}` version {md5} is not in the DVC remote; it cannot be restored"
            ),
        }
    }
}

/// Checks a record against the world as it is now: the commit still in
/// the repository, each input's data unchanged at its path (hashed again),
/// and, given the DVC remote, each recorded version restorable from it.
pub fn timeline(record: &RunRecord, remote: Option<&Remote>) -> Result<Vec<Disconnect>> {
    let mut out = vec![];
    match &record.git {
        None => out.push(Disconnect::NoCommit),
        Some(g) => {
            if g.dirty {
                out.push(Disconnect::DirtyTree {
                    commit: g.commit.clone(),
                });
            }
            if g.root.is_dir() && !git::has_commit(&g.root, &g.commit) {
                out.push(Disconnect::UnknownCommit {
                    commit: g.commit.clone(),
                });
            }
        }
    }
    for input in &record.inputs {
        if !input.path.exists() {
            out.push(Disconnect::DataMissing {
                name: input.name.clone(),
                path: input.path.clone(),
            });
        } else {
            let now = dvc::hash_path(&input.path)?;
            if now.md5 != input.hash.md5 {
                out.push(Disconnect::DataChanged {
                    name: input.name.clone(),
                    path: input.path.clone(),
                    recorded: input.hash.md5.clone(),
                    now: now.md5,
                });
            }
        }
        if let Some(remote) = remote
            && !remote.has(&input.hash.md5)
        {
            out.push(Disconnect::Unrestorable {
                name: input.name.clone(),
                md5: input.hash.md5.clone(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(commit: &str, data: &str, loss: f64) -> RunRecord {
        RunRecord {
            id: "0".repeat(32),
            experiment: "e".into(),
            name: "n".into(),
            command: vec![],
            git: Some(GitState {
                commit: commit.into(),
                dirty: false,
                root: PathBuf::from("/nonexistent"),
            }),
            inputs: vec![DataRef {
                name: "corpus".into(),
                path: PathBuf::from("/nonexistent/corpus.txt"),
                arg: None,
                hash: DataHash {
                    md5: data.into(),
                    size: 1,
                    nfiles: None,
                },
            }],
            params: BTreeMap::from([("lr".to_string(), "0.1".to_string())]),
            metrics: vec![Metric {
                key: "loss".into(),
                value: loss,
                step: 3,
                timestamp_ms: 0,
            }],
            artifacts: vec![],
            agreement: Agreement::Exact,
            start_ms: 0,
            end_ms: 0,
        }
    }

    #[test]
    fn diff_names_what_changed() {
        let a = record("aaaa", "d1", 1.0);
        assert!(diff(&a, &a).is_empty());
        let b = record("aaaa", "d2", 0.5);
        let d = diff(&a, &b);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(matches!(&d[0], Difference::Data { name, .. } if name == "corpus"));
        assert!(matches!(&d[1], Difference::Metric { key, .. } if key == "loss"));
    }

    #[test]
    fn exact_agreement_is_bitwise_and_tolerance_is_relative() {
        let a = record("c", "d", 1.0);
        let b = record("c", "d", 1.0 + 1e-9);
        assert!(compare(&a, &a).ok());
        assert!(!compare(&a, &b).ok());
        let mut loose = a.clone();
        loose.agreement = Agreement::Within { rel: 1e-6 };
        assert!(compare(&loose, &b).ok());
        let far = record("c", "d", 1.1);
        assert!(!compare(&loose, &far).ok());
    }

    #[test]
    fn a_missing_input_is_named() {
        let a = record("c", &"0".repeat(32), 1.0);
        let found = timeline(&a, None).unwrap();
        assert_eq!(
            found,
            vec![Disconnect::DataMissing {
                name: "corpus".into(),
                path: PathBuf::from("/nonexistent/corpus.txt")
            }]
        );
    }
}
