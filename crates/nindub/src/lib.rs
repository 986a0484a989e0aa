//! # nindub
//!
//! The engine of the Technomancy Codex, named for the Sumerian architect who
//! held the temple's plan. Its folders mirror the book:
//!
//! | folder | chapter | what |
//! |---|---|---|
//! | [`budget`] | The Mana Crystal | bytes of weights, KV cache, activations; verdicts |
//! | [`model`] | The Cantrip and the Ritual | GGUF, tokenizer, the decoders (candle's and the fused one), sampling, the one generation loop |
//! | [`search`] | The Cantrip and the Ritual | hidden states as embeddings: passages, an index, cosine ranking, recall |
//! | [`ggml`] | The Cantrip and the Ritual | GGML's block types, defined once, and the kernels over them |
//! | [`compress`] | The Alchemy of Compression | quantization, quantized layers, whole-model evaluation, GGUF export |
//! | [`distill`] | The Transfer of Wisdom | the distillation loss, soft targets, students and their training |
//! | [`serve`] | The Speaking Stone | an OpenAI-compatible HTTP service (features `server`, `client`) |
//! | [`track`] | The Golden Triangle | run records bound to a git commit and DVC data hashes; a journal; MLflow over REST; reproduction |
//! | [`federation`] | The Automated Forge | OIDC tokens verified (JWKS, rotation, skew), trust policies, the exchange, short-lived credentials, a local identity provider |
//! | [`monitor`] | The Infrastructure Canon | quality signals (token probability, entropy), drift (PSI, KS, Jensen–Shannon) between a reference and a live window, canaries, alert rules |
//! | [`provenance`] | The Grimoire of Ownership | content manifests (a hash per tensor and layer, a Merkle root), lineage, Ed25519 signatures, Story Protocol IP metadata and license terms, royalty splits |
//! | [`ledger`] | The Merchant's Ledger | owning against renting: cost lines, break-even, energy per token, from the engine's measured throughput |
//! | [`stream`] | NINDUB | model files, placement under a byte budget, layer streaming, shards, synthetic models |
//! | [`constrain`] | NINDUB the Sovereign | constrained decoding: a JSON Schema compiled to an automaton over bytes, token masks |
//! | [`agent`] | NINDUB the Sovereign | the plan–act–observe loop, its tools, their bounds, the trace |
//!
//! and a few modules every chapter uses: [`assets`] (the pinned real
//! models, fetched with pip), [`corpus`] (the text named by
//! `NINDUB_CORPUS`), [`fsx`] (atomic writes, hashes), [`peers`] (llama.cpp's
//! tools, built outside the repository, for side-by-side benchmarks),
//! [`process`] (the process's resident memory), [`progress`] and [`profile`] (where time
//! goes), [`error`].
//!
//! Dependencies point one way: `ggml` and `stream` know nothing of the
//! decoders; `constrain` knows bytes and token ids, nothing of models; `model` uses both; `compress`, `distill` and `serve` use
//! `model`; `search` knows only an embedding function; `track` knows files,
//! git and MLflow, and nothing of models; `federation` knows tokens, keys
//! and policies, and `serve` uses it to check credentials; `provenance`
//! reads tensors through `stream` and knows no decoder; `ledger` is
//! arithmetic over its inputs. The book's own support (its result generators, plots, the
//! digits experiment, the seed's tables) is in the `lab` crate, which
//! depends on this one and never the reverse.
//!
//! The library returns [`Error`], which names the operation, the file and
//! the shapes involved; it does not panic on user input.

pub mod agent;
pub mod assets;
pub mod budget;
pub mod compress;
pub mod constrain;
pub mod corpus;
pub mod distill;
pub mod error;
pub mod federation;
pub mod fsx;
pub mod ggml;
pub mod ledger;
pub mod model;
pub mod monitor;
pub mod peers;
pub mod process;
pub mod profile;
pub mod progress;
pub mod provenance;
pub mod search;
pub mod serve;
#[cfg(feature = "server")]
pub(crate) mod service;
pub mod stream;
pub mod track;

pub use budget::{Estimate, Machine, Precision, Verdict, Workload};
/// The tensor library underneath, re-exported so that notebooks and users name
/// the same version (`nindub::candle_core::Device`).
pub use candle_core;
pub use error::{Error, Result};
pub use model::arch::{Architecture, Family};
/// JSON, re-exported for the notebooks that talk to the server.
pub use serde_json;
