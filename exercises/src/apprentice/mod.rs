//! Part I · Apprentice.

pub mod cantrip_and_ritual;
pub mod mana_crystal;
