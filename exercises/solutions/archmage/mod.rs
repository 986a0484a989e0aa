//! Part III · Archmage.

pub mod grimoire_of_ownership;
pub mod merchants_ledger;
pub mod nindub;
pub mod sovereign;
