//! The Infrastructure Canon: watching the model's quality, not only its
//! uptime.
//!
//! A server can answer `200 OK` to every request while its model writes
//! nonsense. What catches that is second-order: how confident the model is
//! in what it writes, whether that confidence (and what it writes, and
//! what it is asked) has drifted from when it was approved, and whether it
//! still answers its canaries as it did then.
//!
//! | module | what |
//! |---|---|
//! | [`stats`] | PSI, the KS statistic, Jensen–Shannon divergence, quantile bins (entropy: [`crate::model::sample`]) |
//! | [`windows`] | the signals, a frozen reference window and a sliding live one, drift between them |
//! | [`quality`] | the monitor the server feeds, token by token and prompt by prompt; its snapshot; the quality log |
//! | [`canary`] | prompts with the approved model's answers, scored by teacher forcing |
//! | [`rules`] | the alert rules, defined once: Prometheus's rule file and the in-process decision |
//!
//! The server exports all of it on `/metrics` ([`crate::serve::metrics`]).

pub mod canary;
pub mod quality;
pub mod rules;
pub mod stats;
pub mod windows;

pub use canary::{Canary, CanaryScore, CanarySet};
pub use quality::{
    Drift, MonitorConfig, QualityLog, QualityMonitor, RequestRecord, Snapshot, embedding_norms,
    read_log,
};
pub use rules::{RULES, Rule, prometheus_rules};
pub use windows::{Signal, Test, WindowConfig};
