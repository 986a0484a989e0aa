//! GGML's block types, defined once, and the kernels that read them.
//!
//! A GGUF file stores a quantized matrix as blocks of [`QK`] = 32 weights
//! (an f16 scale, for some types an f16 offset, then the codes) or as
//! super-blocks of 256 with small integer scales per 32 or 16. This folder
//! is the one place where those layouts are written down and the one place
//! where products over them are computed:
//!
//! | module | what |
//! |---|---|
//! | [`blocks`] | `#[repr(C)]` blocks of 32 with their sizes asserted; encode and decode |
//! | [`superblocks`] | llama.cpp's K-quants: super-blocks of 256 with 6-bit sub-block scales |
//! | [`dtype`] | every type by name: bits per weight, decode of any of them |
//! | [`format`] | the quantized types the fused engine computes with ([`Format`]): block sizes, a row's decode |
//! | [`activation`] | an activation quantized once per product, in blocks of 32 ([`Activation`], llama.cpp's Q8_1) |
//! | [`matrix`] | a weight matrix as its blocks ([`QMatrix`]); matrix-vector and matrix-matrix products |
//! | [`kernels`] | one row · one activation: the portable reference, and the dispatcher that picks AVX2 when the CPU has it |
//! | `avx2` | the same dot products in AVX2 (x86-64 only), apart from the reference as in candle's `k_quants.rs` / `avx.rs` |
//!
//! The fused decoder ([`crate::model::fused`]) computes with them, the
//! exporter ([`crate::compress::export`]) writes blocks through them, and the
//! streamer ([`crate::stream::streamer`]) only moves their bytes.

pub mod activation;
#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod blocks;
pub mod dtype;
pub mod format;
pub mod kernels;
pub mod matrix;
pub mod superblocks;

pub use activation::Activation;
pub use blocks::QK;
pub use format::Format;
pub use kernels::{PREFETCH_AHEAD, Prefetch};
pub use matrix::QMatrix;
