//! The Golden Triangle (Part II): every run bound to its code (a git
//! commit), its data (DVC's content hashes) and its record (an MLflow run).
//!
//! | module | what |
//! |---|---|
//! | [`dvc`] | file and directory hashes exactly as DVC computes them; `.dvc` pointers; fetching by hash from a DVC remote |
//! | [`git`] | the commit and dirtiness of the code; temporary worktrees |
//! | [`record`] | a run's record, the difference between two, a reproduction held against its record, the disconnects of time |
//! | [`journal`] | the local JSON-lines journal every record goes to first |
//! | [`mlflow`] | the same records in an MLflow tracking server, over its REST API (feature `client`) |

pub mod dvc;
pub mod git;
pub mod journal;
#[cfg(feature = "client")]
pub mod mlflow;
pub mod record;

pub use journal::Journal;
pub use record::{Agreement, Disconnect, Run, RunRecord};
