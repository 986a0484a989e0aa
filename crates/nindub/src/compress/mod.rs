//! The Alchemy of Compression: fewer bits per weight, and what they cost.
//!
//! | module | what |
//! |---|---|
//! | [`quant`] | affine INT8/INT4 quantization: scales, zero-points, granularity, clipping, packing |
//! | [`qlinear`] | quantized linear layers: dequantize-on-the-fly and int8×int8 kernels |
//! | [`qmodel`] | whole models (SmolLM2, MiniLM) through a scheme, then inference |
//! | [`calibrate`] | what a calibration text measures: `XᵀX` of every matrix's inputs |
//! | [`gptq`] | GPTQ: rounding that spreads each error where the inputs hide it |
//! | [`perplexity`] | perplexity on a corpus, llama.cpp's protocol |
//! | [`export`] | quantized models written as GGUF (through [`crate::ggml`]'s block types) |

pub mod calibrate;
pub mod export;
pub mod gptq;
pub mod perplexity;
pub mod qlinear;
pub mod qmodel;
pub mod quant;
