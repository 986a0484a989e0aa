//! Trials of "The Merchant's Ledger": reference solutions.

/// Trial 1. The break-even month of owning against renting.
pub fn break_even_months(capex: f64, local_per_month: f64, cloud_per_month: f64) -> Option<f64> {
    let saving = cloud_per_month - local_per_month;
    // `!(x > 0.0)` is true for NaN, where `x <= 0.0` is not: one test
    // refuses no saving, a negative one and NaN alike.
    if !(saving.is_finite() && saving > 0.0 && capex.is_finite() && capex >= 0.0) {
        return None;
    }
    Some(capex / saving)
}
