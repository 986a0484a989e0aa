//! The Merchant's Ledger: what it costs to own the crystal (a GPU bought
//! once, then paid for in electricity) against renting the sky (a cloud GPU
//! by the hour, on demand or spot) or paying the oracle (an API by the
//! token), as numbers computed from inputs, each of them a parameter with a
//! sourced or measured default.
//!
//! | module | what |
//! |---|---|
//! | [`inputs`] | the inputs, their sourced defaults, their validation |
//! | [`cost`] | the cost lines, cumulative costs, the break-even month and utilisation, the long-run ratio |
//! | [`energy`] | energy per token: measured from RAPL where the kernel exposes it, otherwise estimated (and said to be) |
//! | [`measured`] | the project's own measured throughput, read from the committed benchmark records |
//! | [`report`] | the comparison as `nindub ledger` prints it |
//!
//! Every cost is in US dollars; a month is [`DAYS_PER_MONTH`] days. Two
//! linear costs meet once: owning is a purchase plus a monthly running cost,
//! renting a monthly cost only, and the ledger says where the lines cross,
//! for how many hours of use a day, and what the ratio of the two tends to.

pub mod cost;
pub mod energy;
pub mod inputs;
pub mod measured;
pub mod report;

pub use cost::{BreakEven, Choice, Crossing, Ledger, Monthly, break_even_months};
pub use energy::{EnergyPerToken, Rapl};
pub use inputs::{Inputs, SOURCES, Sourced};

/// Days in an average month (a Julian year over twelve).
pub const DAYS_PER_MONTH: f64 = 365.25 / 12.0;

/// Hours in an average month.
pub const HOURS_PER_MONTH: f64 = DAYS_PER_MONTH * 24.0;
