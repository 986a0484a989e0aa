//! The Speaking Stone: the model behind an HTTP service.
//!
//! An OpenAI-compatible API (what every client already speaks) on axum:
//! `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions`
//! (streamed as server-sent events with `stream: true`), `GET /health`,
//! `GET /metrics` (Prometheus) and a web page at `/`. The model is loaded
//! once and owned by one worker thread; requests wait in a bounded
//! [`queue`] and beyond it get a 503 with `Retry-After`.
//!
//! | module | idea |
//! |---|---|
//! | [`protocol`] | request bodies parsed and validated; the errors clients read |
//! | [`admission`] | the admission rule (503 + `Retry-After`) and the stop-string hold-back |
//! | [`queue`] | the bounded queue and the worker that owns the model (feature `server`) |
//! | [`batch`] | continuous batching: sequences join and leave at token boundaries, prompts in chunks, admission by KV bytes (feature `server`) |
//! | [`sse`] | server-sent events, parsed incrementally (the client's side) |
//! | [`auth`] | the API key, compared in constant time |
//! | [`metrics`] | the Prometheus series (feature `server`) |
//! | [`connections`] | how many connections are held, and for how long (feature `server`) |
//! | [`guard`] | Host, Content-Type and framing rules against browser attacks (feature `server`) |
//! | `server` | the axum application: routes, limits, a request from body to worker (feature `server`) |
//! | `reply` | the answers' bodies: collected or streamed as SSE chunks, usage, logprobs, errors (feature `server`) |
//! | [`client`] | a small blocking client: the tests, the benchmark and the notebook use it (feature `client`) |
//!
//! The parsing and the rules compile without features (the trials use
//! them); the server needs `server`, the client `client`.

pub mod admission;
pub mod auth;
#[cfg(feature = "server")]
pub mod batch;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod connections;
#[cfg(feature = "server")]
pub mod guard;
#[cfg(feature = "server")]
pub mod metrics;
pub mod protocol;
#[cfg(feature = "server")]
pub mod queue;
#[cfg(feature = "server")]
mod reply;
#[cfg(feature = "server")]
mod server;
pub mod sse;
#[cfg(feature = "server")]
mod web;

#[cfg(feature = "server")]
pub use server::{PASS_ROWS, SCOPE_INFERENCE, SCOPE_METRICS, ServeConfig, Server};
