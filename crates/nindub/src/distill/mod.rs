//! The Transfer of Wisdom: a small student taught by a large teacher's
//! soft targets.
//!
//! | module | what |
//! |---|---|
//! | [`loss`] | the distillation loss: soft targets at T, the T² factor, top-k teachers |
//! | [`soft_targets`] | the teacher's top-k logits per position, cached once (gzip, hashed) |
//! | [`student`] | a small trainable Llama, saved loadable by the generation path |
//! | [`train`] | seeded parameters, AdamW, exact-resume checkpoints, JSONL metrics |
//! | [`lm`] | a language-model student trained on hard tokens or on soft targets |
//!
//! The digits experiment of the chapter is the book's, not the engine's:
//! it lives in the `lab` crate.

pub mod lm;
pub mod loss;
pub mod soft_targets;
pub mod student;
pub mod train;
