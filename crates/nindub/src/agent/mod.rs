//! NINDUB the Sovereign: an agent loop on the local model.
//!
//! The model plans, acts and observes: each step it writes a thought, the
//! name of a tool and the tool's input, as JSON held to a schema by the
//! constrained decoder ([`crate::constrain`]), so that every call a small
//! model writes is well formed; the tool answers within bounds of size and
//! time; the answer goes back to the model as an observation. A step
//! budget, a token budget and a loop check end every run.
//!
//! | module | what |
//! |---|---|
//! | [`tool`] | the [`Tool`] trait, and [`call_bounded`]: a call cut to a size and a time, a failure or panic turned into an observation |
//! | [`tools`] | a calculator, a sandboxed file reader, a semantic search over passages, a whitelisted `nindub` command |
//! | [`run`] | the loop ([`Agent::run`]), its step schema, the trace's records |

pub mod run;
pub mod tool;
pub mod tools;

pub use run::{Agent, AgentConfig, Run, StepRecord, Stop};
pub use tool::{Bounds, Tool, call_bounded};
