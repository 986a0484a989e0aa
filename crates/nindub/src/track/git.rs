//! The code side of a run: which commit the process was built and run
//! from, and whether the working tree differed from it. Read with the `git`
//! command itself, so that what is recorded is what `git` will check out.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A commit and whether the tree had uncommitted changes to tracked files
/// or new, unignored files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitState {
    pub commit: String,
    pub dirty: bool,
    /// The repository's top-level directory.
    pub root: PathBuf,
}

/// Runs `git ARGS` in `dir` and returns its standard output.
pub fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| Error::MissingTool {
            tool: "git".into(),
            reason: e.to_string(),
            hint: "install git: runs are bound to a commit".into(),
        })?;
    if !out.status.success() {
        return Err(Error::invalid(
            "git",
            format!(
                "`git {}` in {} failed: {}",
                args.join(" "),
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl GitState {
    /// The state of the repository that contains `dir`.
    pub fn read(dir: &Path) -> Result<GitState> {
        let root = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?.trim());
        let commit = git(&root, &["rev-parse", "HEAD"])?.trim().to_string();
        let dirty = !git(&root, &["status", "--porcelain"])?.trim().is_empty();
        Ok(GitState {
            commit,
            dirty,
            root,
        })
    }
}

/// Whether `repo` has the commit `sha`.
pub fn has_commit(repo: &Path, sha: &str) -> bool {
    sha.bytes().all(|b| b.is_ascii_hexdigit())
        && git(repo, &["cat-file", "-e", &format!("{sha}^{{commit}}")]).is_ok()
}

/// A detached worktree of `repo` at `commit`, removed (with everything in
/// it) when dropped.
pub struct Worktree {
    repo: PathBuf,
    pub dir: PathBuf,
}

impl Worktree {
    pub fn add(repo: &Path, commit: &str, dir: &Path) -> Result<Worktree> {
        if !has_commit(repo, commit) {
            return Err(Error::invalid(
                "commit",
                format!("{} has no commit {commit}", repo.display()),
            ));
        }
        let dir_s = dir.to_string_lossy().into_owned();
        git(
            repo,
            &["worktree", "add", "--quiet", "--detach", &dir_s, commit],
        )?;
        Ok(Worktree {
            repo: repo.to_path_buf(),
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        let dir = self.dir.to_string_lossy().into_owned();
        let _ = git(&self.repo, &["worktree", "remove", "--force", &dir]);
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = git(&self.repo, &["worktree", "prune"]);
    }
}
