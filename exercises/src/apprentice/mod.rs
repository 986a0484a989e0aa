//! Part I · Apprentice.

pub mod mana_crystal;
