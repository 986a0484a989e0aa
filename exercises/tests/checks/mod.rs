//! The checks behind the trials: one file per chapter, one function per
//! trial. A check panics (through `assert!`) when the learner's answer is
//! wrong; its messages say what was expected.

pub mod alchemy_of_compression;
pub mod automated_forge;
pub mod cantrip_and_ritual;
pub mod golden_triangle;
pub mod grimoire_of_ownership;
pub mod infrastructure_canon;
pub mod mana_crystal;
pub mod merchants_ledger;
pub mod nindub;
pub mod pocket_worlds;
pub mod sovereign;
pub mod speaking_stone;
pub mod transfer_of_wisdom;

/// A tiny deterministic generator for the checks' random cases (a 64-bit
/// LCG with Knuth's MMIX constants: no RNG crate needed).
pub struct Lcg(pub u64);

impl Lcg {
    /// The next state, all 64 bits (the high ones are the good ones).
    pub fn step(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }

    /// Uniform in `[0, 1)`, 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.step() >> 11) as f64 / (1u64 << 53) as f64
    }
}
