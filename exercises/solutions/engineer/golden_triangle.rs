//! Trials of "The Golden Triangle": reference solutions.

use md5::{Digest, Md5};
use std::fmt::Write as _;

// not a trial
/// The md5 of `bytes` as 32 lowercase hex digits, what `md5sum` prints.
pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// DVC 2.x's text heuristic on the first 512 bytes (`istextfile.py`).
fn is_text(bytes: &[u8]) -> bool {
    let block = &bytes[..bytes.len().min(512)];
    if block.is_empty() {
        return true;
    }
    if block.contains(&0) {
        return false;
    }
    let text = |b: u8| matches!(b, 0x20..=0x7e | b'\n' | b'\r' | b'\t' | 0x0c | 0x08);
    let non_text = block.iter().filter(|&&b| !text(b)).count();
    // non_text / len ≤ 0.30, in integers (the same verdict as Python's floats).
    non_text * 10 <= block.len() * 3
}

/// `bytes.replace(b"\r\n", b"\n")`: one pass, left to right.
fn dos2unix(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            out.push(b'\n');
            i += 2;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Trial 1. The hash DVC gives a file's content.
pub fn file_md5(bytes: &[u8], legacy_dos2unix: bool) -> String {
    if legacy_dos2unix && is_text(bytes) {
        md5_hex(&dos2unix(bytes))
    } else {
        md5_hex(bytes)
    }
}

/// A JSON string as Python's `json.dumps` writes it with `ensure_ascii`.
fn python_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                // Below U+0020, DEL and beyond: UTF-16 units, lowercase hex.
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Trial 2a. The exact bytes DVC hashes for a directory.
pub fn dir_listing_json(entries: &[(String, String)]) -> String {
    let mut listing: Vec<(String, &str)> = entries
        .iter()
        .map(|(relpath, md5)| (relpath.replace('\\', "/"), md5.as_str()))
        .collect();
    // Rust orders strings by their UTF-8 bytes, which is Python's order by
    // code point.
    listing.sort();
    let mut out = String::from("[");
    for (i, (relpath, md5)) in listing.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str("{\"md5\": ");
        python_json_string(&mut out, md5);
        out.push_str(", \"relpath\": ");
        python_json_string(&mut out, relpath);
        out.push('}');
    }
    out.push(']');
    out
}

/// Trial 2b. The hash DVC gives a directory.
pub fn dir_md5(entries: &[(String, String)]) -> String {
    md5_hex(dir_listing_json(entries).as_bytes()) + ".dir"
}

/// A git commit, and the data hash that its `.dvc` file pins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitPin {
    /// The commit's SHA, 40 hex digits.
    pub sha: String,
    /// The `md5` written in the commit's `.dvc` file.
    pub pinned_md5: String,
}

/// What an MLflow run recorded of its code and its data (its tags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunTags {
    /// The commit the run says it ran from (`mlflow.source.git.commit`).
    pub git_commit: String,
    /// The data hash the run says it read.
    pub dvc_hash: String,
}

/// Whether a run is still bound to its code and its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The three records agree and the data can be fetched.
    Bound,
    /// The run names another commit than the one at hand.
    UnknownCommit { run: String, commit: String },
    /// The run read other data than the commit pins.
    DataDrift { pinned: String, used: String },
    /// The data the run read is on no remote: it cannot be restored.
    Unrestorable { hash: String },
}

/// Trial 3. Detect a "disconnect of time" between a commit, a run and the
/// DVC remote.
pub fn timeline(commit: &CommitPin, run: &RunTags, remote: &[String]) -> Verdict {
    if run.git_commit != commit.sha {
        Verdict::UnknownCommit {
            run: run.git_commit.clone(),
            commit: commit.sha.clone(),
        }
    } else if run.dvc_hash != commit.pinned_md5 {
        Verdict::DataDrift {
            pinned: commit.pinned_md5.clone(),
            used: run.dvc_hash.clone(),
        }
    } else if !remote.contains(&run.dvc_hash) {
        Verdict::Unrestorable {
            hash: run.dvc_hash.clone(),
        }
    } else {
        Verdict::Bound
    }
}

/// Where a file of a project belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    Git,
    Dvc,
    /// Neither: never versioned (rebuilt, cached, or secret).
    Neither,
}

/// Trial 4. Whether the file at `path`, of `bytes` bytes, goes in git, in
/// DVC or nowhere.
pub fn where_it_goes(path: &str, bytes: u64) -> Store {
    let name = path.rsplit('/').next().unwrap_or(path);
    let never = ["target", "mlruns", "mlartifacts", "__pycache__"];
    if path.split('/').any(|c| never.contains(&c))
        || [".dvc/cache", ".dvc/tmp", ".dvc/config.local"].contains(&path)
        || path.starts_with(".dvc/cache/")
        || path.starts_with(".dvc/tmp/")
        || name == ".env"
        || name.ends_with(".pem")
        || name.ends_with(".key")
    {
        return Store::Neither;
    }
    if name.ends_with(".dvc")
        || ["dvc.yaml", "dvc.lock", ".gitignore", ".dvcignore"].contains(&name)
        || path == ".dvc/config"
    {
        return Store::Git;
    }
    let formats = [
        ".gguf",
        ".safetensors",
        ".bin",
        ".npy",
        ".pt",
        ".onnx",
        ".parquet",
    ];
    if formats.iter().any(|ext| name.ends_with(ext)) || bytes > 1_048_576 {
        Store::Dvc
    } else {
        Store::Git
    }
}
