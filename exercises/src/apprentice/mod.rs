//! Part I · Apprentice.

pub mod alchemy_of_compression;
pub mod cantrip_and_ritual;
pub mod mana_crystal;
pub mod speaking_stone;
pub mod transfer_of_wisdom;
