//! # The Codex's trials
//!
//! One module per chapter, grouped by rank. Each function is a stub: its doc
//! comment states the task and the formula, and its body is `todo!()`.
//! Replace the body, then run `cargo test -p exercises` (or `cargo codex
//! grade`): every trial runs in its own process with a time limit, so a
//! panic or an endless loop fails that trial alone, and the report ends with
//! your grade per rank. The trials are listed in `exercises/info.toml`, in
//! the order to do them, each with its chapter and a hint; the harness
//! prints the hint of every trial that fails. Helpers of your own can be
//! private `fn`s; a `pub fn` in a stub file is taken for a trial's stub, and
//! the build asks for a `// not a trial` line above one that is not.
//!
//! The reference solutions live in `exercises/solutions/`, mirrored file by
//! file; `--features solutions` swaps them in (CI proves they pass, and that
//! every stub fails).

#[cfg(not(feature = "solutions"))]
#[path = "apprentice/mod.rs"]
pub mod apprentice;

#[cfg(feature = "solutions")]
#[path = "../solutions/apprentice/mod.rs"]
pub mod apprentice;

#[cfg(not(feature = "solutions"))]
#[path = "engineer/mod.rs"]
pub mod engineer;

#[cfg(feature = "solutions")]
#[path = "../solutions/engineer/mod.rs"]
pub mod engineer;

#[cfg(not(feature = "solutions"))]
#[path = "archmage/mod.rs"]
pub mod archmage;

#[cfg(feature = "solutions")]
#[path = "../solutions/archmage/mod.rs"]
pub mod archmage;
