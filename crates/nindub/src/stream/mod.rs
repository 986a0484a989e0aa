//! NINDUB, the Layer-Streamed Sovereign: a model larger than its budget,
//! run a layer at a time from storage.
//!
//! | module | what |
//! |---|---|
//! | [`source`] | a model as files (one GGUF, or a verified shard directory), its tensors by file and offset |
//! | [`placement`] | what a model demands in bytes, and which layers stay resident under a budget |
//! | [`streamer`] | staging buffers, a prefetching reader thread, cold reads, storage throughput |
//! | [`manifest`] | a shard directory's `manifest.json` and the checks against it |
//! | [`shard`] | `nindub split`: per-layer GGUF shards with a hashed manifest, written atomically |
//! | [`synth`] | seeded synthetic Llama shapes up to 8B, written as shards |
//!
//! The engine that computes with streamed layers is [`crate::model::fused`];
//! this folder only decides where bytes live and moves them.

pub mod manifest;
pub mod placement;
pub mod shard;
pub mod source;
pub mod streamer;
pub mod synth;
