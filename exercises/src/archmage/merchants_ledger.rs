//! Trials of "The Merchant's Ledger": owning the crystal against renting the
//! sky, as two cost lines that cross once.
//!
//! Owning a card costs its price up front and then a running cost every
//! month (its electricity); renting (a cloud GPU by the hour, an API by the
//! token) costs a monthly bill and nothing up front. After `m` months:
//!
//! ```text
//! own(m)  = capex + m · local_per_month
//! rent(m) =         m · cloud_per_month
//! ```
//!
//! Two straight lines meet at most once. The month where they meet is when
//! the card has paid for itself; after it, every month saves
//! `cloud − local`, and before it, renting was cheaper. The seed calls
//! owning "exponentially cheaper": the lines show it is a constant saving a
//! month, and nothing grows faster than a line.
// The stub does not use its arguments yet: that is your job.
#![allow(unused_variables)]

/// Trial 1. The break-even month: the `m ≥ 0` at which
/// `capex + m · local_per_month == m · cloud_per_month`, that is
/// `capex / (cloud_per_month − local_per_month)`.
///
/// `None` when owning never catches up, and for inputs that are not costs:
/// - renting saves nothing a month, or less than nothing
///   (`cloud_per_month ≤ local_per_month`): the lines never meet (even for a
///   free card: `0 / 0` is not a month);
/// - any input NaN, a saving that is not finite (an infinite bill), or a
///   negative `capex`.
///
/// A card that cost nothing (`capex = 0`) with a positive saving breaks
/// even at once: `Some(0.0)`.
///
/// Examples: a USD 169 card burning 8.18 a month of electricity, against a
/// rented GPU at 248.37 a month → `169 / 240.19 ≈ 0.7036` months; against
/// an API at 13.25 a month → `169 / 5.07 ≈ 33.33` months; 100 up front, 10
/// against 60 → exactly `2.0`.
pub fn break_even_months(capex: f64, local_per_month: f64, cloud_per_month: f64) -> Option<f64> {
    todo!("the price over the monthly saving, when there is a saving")
}
