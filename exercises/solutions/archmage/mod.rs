//! Part III · Archmage.

pub mod nindub;
