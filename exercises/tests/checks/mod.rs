//! The checks behind the trials: one file per chapter, one function per
//! trial. A check panics (through `assert!`) when the learner's answer is
//! wrong; its messages say what was expected.

pub mod alchemy_of_compression;
pub mod cantrip_and_ritual;
pub mod mana_crystal;
pub mod nindub;
pub mod speaking_stone;
pub mod transfer_of_wisdom;
