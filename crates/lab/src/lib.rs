//! # lab
//!
//! The Codex's laboratory: what the book needs beside the engine, kept out
//! of `nindub` so that a user of the engine compiles no plot and no
//! experiment.
//!
//! | module | what |
//! |---|---|
//! | [`results`] | one result generator per chapter, and the command-line transcripts the book shows (`cargo codex results`) |
//! | [`plot`] | every plot of the book and the notebooks, as SVG |
//! | [`machine`] | the CPU a benchmark ran on, for its printout |
//! | [`digits`] | The Transfer of Wisdom's digits experiment: teacher, students, distillation at T with and without T² |
//! | [`table2`] | the seed's Table 2, as the seed states it and as [`nindub::budget`] recomputes it |
//!
//! The benchmarks that write into the book are in `benches/`
//! (`cargo codex bench`).

pub mod digits;
pub mod machine;
pub mod plot;
pub mod results;
pub mod table2;
