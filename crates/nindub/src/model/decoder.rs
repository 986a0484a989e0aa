//! The one decoding abstraction: what every engine that turns tokens into
//! next-token logits offers the generation loop.
//!
//! Two engines implement it: [`super::fused::FusedLlama`] (fused CPU loops
//! over the GGUF's blocks, within a byte budget, layers streamed when they
//! do not fit; the CPU default) and [`super::llama::Llama`] (candle: the
//! reference, open at every step, GPUs). [`super::generate::Generator`]
//! holds exactly one, as a `Box<dyn Decoder>`.

use std::any::Any;

use crate::error::Result;
use crate::model::arch::Architecture;
use crate::profile::Profile;
use crate::stream::placement::Placement;

// ANCHOR: decoder
/// An engine with a KV cache: positions go in, logits come out.
pub trait Decoder: Send {
    /// The model's shape.
    fn arch(&self) -> &Architecture;

    /// The engine's name, as the command line prints it (`fused`, `candle`).
    fn name(&self) -> &'static str;

    /// Runs `tokens` (a prompt, or one token) after the cached positions,
    /// caches their keys and values, and returns the raw logits of the
    /// position after the last one.
    fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>>;

    /// One token: the same as `forward(&[token])`.
    fn step(&mut self, token: u32) -> Result<Vec<f32>> {
        self.forward(&[token])
    }

    /// Forgets every cached position: the next forward starts a sequence.
    fn reset(&mut self);

    /// Positions held in the KV cache.
    fn position(&self) -> usize;

    /// Positions the KV cache can hold: what the run reserved (never more
    /// than the model's context).
    fn capacity(&self) -> usize;

    /// Where the weights are held, when a budget placed them.
    fn placement(&self) -> Option<&Placement> {
        None
    }

    /// Set to `Some` to time every operation of the coming steps.
    fn profile_mut(&mut self) -> &mut Option<Profile>;

    /// The engine itself, to reach what only it offers (candle's hidden
    /// states, the fused engine's streaming statistics).
    fn as_any_mut(&mut self) -> &mut dyn Any;
}
// ANCHOR_END: decoder
