//! # nindub
//!
//! The engine of the Technomancy Codex, named for the Sumerian architect who
//! held the temple's plan. Each module is one idea of the book:
//!
//! | module | chapter | idea |
//! |---|---|---|
//! | [`arch`] | The Mana Crystal | a model's shape, from GGUF, `config.json` or a preset |
//! | [`budget`] | The Mana Crystal | bytes of weights, KV cache, activations; verdicts |
//! | [`table2`] | The Mana Crystal | the seed's Table 2, recomputed |
//! | [`gguf`] | (all) | a GGUF header, validated |
//! | [`assets`] | (all) | the pinned real models and data, fetched with pip |
//! | [`corpus`] | (all) | the text corpus named by `NINDUB_CORPUS` |
//! | [`placement`] | The Cantrip and the Ritual | which layers stay resident under a byte budget, which are streamed |
//! | [`plot`] | (all) | SVG plots for the book and the notebooks |
//! | [`tokenizer`] | The Cantrip and the Ritual | the tokenizer rebuilt from GGUF metadata; chat template |
//! | [`llama`] | The Cantrip and the Ritual | a Llama decoder: logits, hidden states, attention, KV cache |
//! | [`lens`] | The Cantrip and the Ritual | hidden-state norms and the logit lens |
//! | [`quant`] | The Alchemy of Compression | affine INT8/INT4 quantization: scales, zero-points, granularity, packing |
//! | [`qlinear`] | The Alchemy of Compression | quantized linear layers: dequantize-on-the-fly and int8×int8 kernels |
//! | [`qmodel`] | The Alchemy of Compression | whole models (SmolLM2, MiniLM) through a scheme, then inference |
//! | [`perplexity`] | The Alchemy of Compression | perplexity on a corpus, llama.cpp's protocol |
//! | [`export`] | The Alchemy of Compression | quantized models written as GGUF (Q8_0, Q4_1) |
//! | [`sample`] | The Cantrip and the Ritual | decoding controls as composable logits processors |
//! | [`fused`] | The Cantrip and the Ritual | one token's forward pass as fused loops over GGUF blocks: the bandwidth floor |
//! | [`generate`] | The Cantrip and the Ritual | the one-call Cantrip and the step-by-step Ritual |
//! | [`digits`] | The Transfer of Wisdom | the digits experiment: teacher, student, distillation at T with and without T² |
//! | [`distill`] | The Transfer of Wisdom | the distillation loss (soft targets at T, T², top-k teachers) |
//! | [`soft_targets`] | The Transfer of Wisdom | the teacher's top-k logits per position, cached once (gzip, hashed) |
//! | [`distill_lm`] | The Transfer of Wisdom | a language-model student trained on hard tokens or on soft targets |
//! | [`student`] | The Transfer of Wisdom | a small trainable Llama, saved loadable by the generation path |
//! | [`serve`] | The Speaking Stone | the model behind an OpenAI-compatible HTTP service: streaming, queue, metrics, a web page |
//! | [`train`] | The Transfer of Wisdom | seeded parameters, AdamW, exact-resume checkpoints, JSONL metrics |
//!
//! The library returns [`Error`], which names the operation, the file and
//! the shapes involved; it does not panic on user input.

pub mod arch;
pub mod assets;
pub mod budget;
pub mod corpus;
pub mod digits;
pub mod distill;
pub mod distill_lm;
pub mod error;
pub mod export;
pub mod fsx;
pub mod fused;
pub mod generate;
pub mod gguf;
pub mod lens;
pub mod llama;
pub mod perplexity;
pub mod placement;
pub mod plot;
pub mod profile;
pub mod qlinear;
pub mod qmodel;
pub mod quant;
pub mod sample;
pub mod serve;
pub mod shard;
pub mod soft_targets;
pub mod source;
pub mod stream;
pub mod student;
pub mod synth;
pub mod table2;
pub mod tokenizer;
pub mod train;

pub use arch::{Architecture, Family};
pub use budget::{Estimate, Machine, Precision, Verdict, Workload};
/// The tensor library underneath, re-exported so that notebooks and users name
/// the same version (`nindub::candle_core::Device`).
pub use candle_core;
pub use error::{Error, Result};
/// JSON, re-exported for the notebooks that talk to the server.
pub use serde_json;
