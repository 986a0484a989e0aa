//! The model: a file's shape and tokenizer, the decoders that run it, and
//! the generation loop on top (The Cantrip and the Ritual).
//!
//! | module | what |
//! |---|---|
//! | [`arch`] | a model's shape, from GGUF metadata, `config.json` or a preset |
//! | [`gguf`] | a GGUF file's header, validated; its tensors by name |
//! | [`tokenizer`] | the tokenizer rebuilt from GGUF metadata; the chat template |
//! | [`decoder`] | the one decoding abstraction: forward positions, step, reset |
//! | [`llama`] | a Llama decoder on candle, open at every step (the reference; GPUs) |
//! | [`fused`] | the same network as fused loops over GGUF blocks (the CPU default; layer streaming; batches of sequences) |
//! | [`kv_cache`] | a sequence's keys and values, reserved once; what a batch is made of |
//! | [`sample`] | decoding controls as composable logits processors |
//! | [`generate`] | the one decode loop: the Cantrip (one call) and the Ritual (every step) |
//! | [`run`] | a measured run under a budget: time per token, bytes streamed, memory timeline |
//! | [`lens`] | hidden-state norms and the logit lens (on [`llama`]) |
//!
//! One way in: [`generate::Generator`] holds exactly one [`decoder::Decoder`],
//! loaded once. The candle model is loaded only when asked for.

pub mod arch;
pub mod decoder;
pub mod fused;
pub mod generate;
pub mod gguf;
pub mod kv_cache;
pub mod lens;
pub mod llama;
pub mod run;
pub mod sample;
pub mod tokenizer;
