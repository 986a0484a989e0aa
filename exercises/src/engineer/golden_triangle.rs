//! Trials of "The Golden Triangle": every run bound to its code, its data
//! and its record.
//!
//! A result you cannot reproduce is an anecdote. To reproduce a training
//! run you need three things, and each has its own keeper:
//!
//! - **the code**, kept by git: a commit, named by its SHA;
//! - **the data**, kept by DVC: too large for git, so git keeps a small
//!   pointer file (`data.dvc`) holding the data's *content hash*, and the
//!   bytes live in a cache and on a remote, filed under that hash;
//! - **the record**, kept by MLflow: a run with its parameters, its metrics
//!   and two tags, the git commit it ran from and the data hash it read.
//!
//! The three corners hold each other: the commit pins a data hash (through
//! its `.dvc` file), the run names both, and the remote must still hold the
//! bytes behind the hash. Break one edge and the run can no longer be
//! rebuilt, even though every record looks fine on its own.
//!
//! The trials walk that triangle: the hash DVC gives a file (trial 1), the
//! hash of a directory, the listing DVC hashes and the `.dir` name it gets
//! (trial 2), a check that the three records still agree (trial 3), and the
//! rule of what belongs in git and what in DVC (trial 4). The checks compare
//! your hashes with those the real `dvc` 3.67.1 and `md5sum` produced.
// The stubs do not use their arguments yet: that is your job.
#![allow(unused_variables)]

use md5::{Digest, Md5};

// not a trial
/// The md5 of `bytes` as 32 lowercase hex digits, what `md5sum` prints.
/// Given, so that you do not write MD5 yourself.
///
/// Example: `md5_hex(b"hello\n")` → `"b1946ac92492d2347c6235b4d2611184"`.
pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Trial 1. The hash DVC gives a file's content.
///
/// DVC 3.x (`legacy_dos2unix == false`): `md5_hex` of the raw bytes, the
/// same hex as `md5sum`.
///
/// DVC 2.x (`legacy_dos2unix == true`, the hash DVC 3 still reads as
/// `md5-dos2unix` in old `.dvc` files): if the file is *text*, every
/// `"\r\n"` is replaced by `"\n"` (one pass, left to right, as Python's
/// `bytes.replace` does) before hashing, so a checkout with Windows line
/// endings keeps its hash; a *binary* file is hashed raw.
///
/// Text or binary is decided once, from the first 512 bytes only
/// (`dvc/utils/istextfile.py`):
///
/// 1. no bytes at all → text;
/// 2. a NUL byte (`0x00`) among them → binary;
/// 3. otherwise count the *non-text* bytes among them: every byte except the
///    printable ASCII `0x20..=0x7e` and the five controls `\n`, `\r`, `\t`,
///    `\x0c` (form feed) and `\x08` (backspace). Bytes `0x80..=0xff` are
///    non-text, and so is ESC (`0x1b`): a file of UTF-8 Cyrillic is
///    "binary" to DVC 2. The file is text when `non_text / sampled ≤ 0.30`
///    (exactly 30 % is still text), binary above.
///
/// (DVC 2.x replaced 1 MiB at a time, so a `"\r\n"` split across two such
/// chunks survived; here the whole file is converted at once.)
///
/// Examples: `"line one\r\nline two\r\n"` → `a775daab…` in 3.x, `987929d6…`
/// (the md5 of `"line one\nline two\n"`) in 2.x.
pub fn file_md5(bytes: &[u8], legacy_dos2unix: bool) -> String {
    todo!("raw md5; in legacy mode, CRLF → LF first, for text files only")
}

/// Trial 2a. The exact bytes DVC hashes for a directory, from its files as
/// `(relpath, md5)` pairs (in any order).
///
/// DVC lists the files as objects `{"md5": …, "relpath": …}`, sorted by
/// `relpath` (as whole strings: `"sub-x.txt"` comes before `"sub/b.bin"`,
/// since `-` is below `/`), then serialises the list as Python's
/// `json.dumps(listing, sort_keys=True)` does:
///
/// - the keys of an object in order (`"md5"` before `"relpath"`);
/// - `", "` between items and `": "` after a key: not compact JSON;
/// - `ensure_ascii`: in a string, `"` → `\"`, `\` → `\\`, `\n` → `\n`,
///   `\r` → `\r`, `\t` → `\t`, `\x08` → `\b`, `\x0c` → `\f`; every other
///   character below U+0020 or from U+007F up is written `\uXXXX` with four
///   *lowercase* hex digits, and a character beyond U+FFFF as its UTF-16
///   surrogate pair (`🚀`, U+1F680 → `\ud83d\ude80`); the rest as is.
///
/// A relpath written with `\` (from Windows) is the same file as with `/`:
/// turn every `\` into `/` first, and sort after that.
///
/// Example: `[("a.txt", "b1946ac92492d2347c6235b4d2611184")]` →
/// `[{"md5": "b1946ac92492d2347c6235b4d2611184", "relpath": "a.txt"}]`; no
/// entries → `[]`.
pub fn dir_listing_json(entries: &[(String, String)]) -> String {
    todo!("normalise, sort by relpath, then write JSON the way Python does")
}

/// Trial 2b. The hash DVC gives a directory: `md5_hex` of the listing's
/// bytes (trial 2a), followed by `".dir"`.
///
/// Example: the one file `a.txt` (`"hello\n"`) →
/// `"b47e3488a546e2214c42aa9bec8396e2.dir"`; an empty directory →
/// `"d751713988987e9331980363e24189ce.dir"` (the md5 of `[]`).
pub fn dir_md5(entries: &[(String, String)]) -> String {
    todo!("hash the listing, then add the suffix")
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
/// DVC remote (`remote`: the hashes it holds).
///
/// Checked in this order, the first problem found is the verdict:
///
/// 1. `run.git_commit != commit.sha` (compared exactly, as full strings) →
///    `UnknownCommit { run: run.git_commit, commit: commit.sha }`: the run
///    was not made from this code, so nothing else about it can be judged
///    against this commit;
/// 2. `run.dvc_hash != commit.pinned_md5` → `DataDrift { pinned:
///    commit.pinned_md5, used: run.dvc_hash }`: the data changed after the
///    commit (a `dvc add` never committed, or a commit never re-run);
/// 3. `run.dvc_hash` is not in `remote` → `Unrestorable { hash:
///    run.dvc_hash }`: the records agree, but no `dvc push` kept the bytes;
/// 4. otherwise `Bound`.
pub fn timeline(commit: &CommitPin, run: &RunTags, remote: &[String]) -> Verdict {
    todo!("commit first, then the pinned hash, then the remote")
}

/// Where a file of a project belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    Git,
    Dvc,
    /// Neither: never versioned (rebuilt, cached, or secret).
    Neither,
}

/// Trial 4. Whether the file at `path` (relative to the repository root,
/// components separated by `/`), of `bytes` bytes, goes in git, in DVC or
/// nowhere. The rules, checked in this order (the first that applies wins):
///
/// 1. **Nowhere** (`Neither`): build outputs, caches, run stores and
///    secrets. Any component of the path is `target`, `mlruns`,
///    `mlartifacts` or `__pycache__`; or the path is `.dvc/cache` or
///    `.dvc/tmp` or starts with one of them and `/`; or the path is
///    `.dvc/config.local` (a machine's own settings, credentials
///    included); or the file's name is `.env`, or ends with `.pem` or
///    `.key`.
/// 2. **Git**: DVC's own pointers and configuration. The file's name ends
///    with `.dvc`, or is `dvc.yaml`, `dvc.lock`, `.gitignore` or
///    `.dvcignore`; or the path is `.dvc/config`.
/// 3. **DVC**: model and data formats, whatever their size. The name ends
///    with `.gguf`, `.safetensors`, `.bin`, `.npy`, `.pt`, `.onnx` or
///    `.parquet`.
/// 4. **DVC**: anything else larger than 1 MiB (`bytes > 1_048_576`).
/// 5. **Git**: the rest (code, configuration, small text).
///
/// Examples: `("src/train.py", 4_000)` → `Git`; `("model.gguf.dvc", 120)` →
/// `Git` (a pointer, not a model); `("models/tiny.safetensors", 10)` →
/// `Dvc`; `("target/release/app", 9_000_000)` → `Neither`.
pub fn where_it_goes(path: &str, bytes: u64) -> Store {
    todo!("secrets and caches first, then pointers, then formats, then size")
}
