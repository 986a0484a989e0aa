//! Trials of "NINDUB, the Layer-Streamed Sovereign": a model larger than
//! the device, run one layer at a time.
//!
//! A decoder is a stack of identical layers, and a token visits them in
//! order: layer 0, then 1, then 2… Only the layer being computed has to be
//! in device memory. So a model that does not fit can still run: load
//! layer i into a staging buffer, compute it, release the buffer, load layer
//! i + 1, and so on. The price is paid in reads: every streamed layer
//! crosses the slow link (disk, PCIe, network) again for every token.
//!
//! Two refinements make it bearable:
//! - **Residency.** Whatever memory is left once the fixed costs and the
//!   staging buffers are set aside holds the first layers for good; only the
//!   rest streams.
//! - **Prefetch (double buffering).** With two staging buffers, the read of
//!   layer i + 1 runs in the background while layer i computes, so reading
//!   and computing overlap instead of taking turns.
//!
//! The four trials walk that path: the bytes of one layer (trial 1), how
//! many layers stay resident under a budget (trial 2), the time of a token
//! when reads and computes overlap (trial 3), and the speed limit that the
//! reads set (trial 4). All of it is plain arithmetic on `u64` and `f64`,
//! checked against worked examples (SmolLM2-135M, Llama-3-8B, Llama-2-70B)
//! and against invariants that any right answer keeps.
// The stubs do not use their arguments yet: that is your job.
#![allow(unused_variables)]

/// Trial 1. Bytes of one Llama decoder layer, as stored at
/// `bits_per_weight` bits per weight (scales included).
///
/// A layer holds seven matrices and two vectors. With `q = heads ·
/// head_dim` and `kv = kv_heads · head_dim`:
///
/// | tensor              | shape                           |
/// |---------------------|---------------------------------|
/// | q_proj              | `q × hidden`                    |
/// | k_proj, v_proj      | `kv × hidden` each              |
/// | o_proj              | `hidden × q`                    |
/// | gate_proj, up_proj  | `intermediate × hidden` each    |
/// | down_proj           | `hidden × intermediate`         |
/// | two RMSNorm weights | `hidden` each, in f32 (4 bytes) |
///
/// Each matrix is a tensor of its own, stored apart: its bytes are
/// `⌈rows · cols · bits_per_weight / 8⌉`, rounded up *per matrix* (compute
/// the product in f64). The norms stay in f32 whatever the matrices use:
/// `2 · hidden · 4` bytes. Usual values of `bits_per_weight`: 16.0 (f16),
/// 8.5 (Q8_0), 5.0 (Q4_1), 4.5 (Q4_0).
///
/// Examples: SmolLM2-135M (hidden 576, intermediate 1536, 9 heads and 3 KV
/// heads of 64) at 5.0 bits → 2 211 840 bytes of matrices + 4 608 of norms =
/// 2 216 448. Llama-2-70B (8192, 28 672, 64 heads, 8 KV heads of 128) at 4.5
/// bits → 481 361 920 bytes: 481 MB to move for each streamed layer, each
/// token, and 80 such layers (38.5 GB) to place somewhere.
pub fn layer_bytes(
    hidden: u64,
    intermediate: u64,
    heads: u64,
    kv_heads: u64,
    head_dim: u64,
    bits_per_weight: f64,
) -> u64 {
    todo!("seven matrices, each rounded up, plus two f32 norms")
}

/// Trial 2. How many layers stay resident under a memory `budget`, and how
/// many stream: `Ok((resident, streamed))`, with `resident + streamed ==
/// layers.len()`.
///
/// `reserved` bytes are set aside first (the KV cache, the activations, the
/// embedding and the output head); `layers[i]` is the size of layer i. All
/// comparisons are `≤`: a total exactly equal to the budget fits. The sizes
/// are small enough that their sums do not overflow a `u64`.
///
/// 1. If `reserved + Σ layers ≤ budget`, everything is resident:
///    `Ok((n, 0))` (an empty `layers` gives `Ok((0, 0))`).
/// 2. Otherwise some layers must stream, and a streamed layer needs a
///    staging buffer to land in, large enough for the largest layer: one
///    buffer without `prefetch`, two with it (one being computed, one being
///    filled). If `reserved + staging > budget`, return `Err`.
/// 3. Else the *leading* layers stay resident, in order, as long as
///    `reserved + staging + Σ resident ≤ budget`; stop at the first layer
///    that does not fit (a smaller one further on does not jump the queue:
///    the resident layers are a prefix, so a token reads its way through
///    the model in one sweep). The rest stream.
///
/// The `Err` message must name, as a plain decimal number (no separators),
/// the smallest budget with which the model runs at all: the smaller of
/// `reserved + Σ layers` (all resident) and `reserved + staging` (all
/// streamed). With one layer and prefetch, the two buffers are larger than
/// the layer itself, so the minimum is the all-resident one.
///
/// Example: Llama-2-70B in Q4_0 (80 layers of 481 361 920 bytes), 2 GiB
/// reserved, a 24 GiB device: 48 resident and 32 streamed without prefetch,
/// 47 and 33 with it (the second buffer costs a resident layer).
pub fn layers_that_fit(
    budget: u64,
    reserved: u64,
    layers: &[u64],
    prefetch: bool,
) -> Result<(usize, usize), String> {
    todo!("all resident? then staging buffers, then a prefix of residents")
}

/// Trial 3. The time of one token through streamed layers: the finish time
/// of the last compute, starting at time 0 with nothing loaded.
///
/// `read[i]` is the time to read layer i into a staging buffer,
/// `compute[i]` the time to compute it; both slices have the same length
/// (empty: 0.0). A layer's compute starts when its read has finished *and*
/// the previous layer's compute is done.
///
/// - Without `prefetch` (one buffer), the next read can only start when the
///   buffer is released, after the compute: reads and computes take turns,
///   and the time is `Σ (read[i] + compute[i])`.
/// - With `prefetch` (two buffers, used in turn), read i + 1 starts as soon
///   as read i is done (one read at a time: the link is busy) *and* its
///   buffer is free, i.e. the compute of layer i − 1, the last user of that
///   buffer, is done.
///
/// So with `R[i]` the end of read i and `C[i]` the end of compute i
/// (`C[-1] = 0`): `C[i] = max(R[i], C[i−1]) + compute[i]`, and with prefetch
/// `R[i+1] = max(R[i], C[i−1]) + read[i+1]`.
///
/// Two regimes bound the answer: when reads dominate, the computes hide
/// under them (`Σ read + last compute`); when computes dominate, the reads
/// hide (`first read + Σ compute`). Prefetch never loses to the one-buffer
/// schedule.
pub fn prefetch_schedule(read: &[f64], compute: &[f64], prefetch: bool) -> f64 {
    todo!("track when each read and each compute ends")
}

/// Trial 4a. The IO floor of one token: a token that must read
/// `bytes_per_token` bytes over a link of `read_bytes_per_sec` cannot take
/// less than `bytes_per_token / read_bytes_per_sec` seconds.
///
/// Never NaN: no bytes gives `0.0` (whatever the link, even `0.0`); bytes
/// over a link of `0.0` give `f64::INFINITY`. `read_bytes_per_sec ≥ 0`.
///
/// Example: 40 streamed layers of Llama-2-70B in Q4_0, 19 254 476 800 bytes,
/// from an NVMe drive at 7 GB/s: 2.75 s per token, whatever the GPU.
pub fn io_floor_seconds(bytes_per_token: u64, read_bytes_per_sec: f64) -> f64 {
    todo!("bytes over bandwidth, without 0 / 0")
}

/// Trial 4b. The ceiling on tokens per second of a streamed decoder with
/// prefetch: `1 / max(io_floor, compute_seconds_per_token)`.
///
/// With reads and computes overlapped perfectly, a token takes at least as
/// long as the longer of the two: the reads of its streamed bytes
/// (`io_floor_seconds(bytes_per_token, read_bytes_per_sec)`) and its
/// computes (`compute_seconds_per_token`, all layers, resident ones
/// included). A real schedule (trial 3) is slower, never faster.
///
/// Never NaN: nothing to read and nothing to compute gives
/// `f64::INFINITY`; an infinite floor gives `0.0`.
///
/// Example: 2.75 s of reads and 0.4 s of compute → 0.3636 tokens/s: the
/// drive, not the GPU, sets the pace, and a faster GPU buys nothing.
pub fn tokens_per_second_ceiling(
    bytes_per_token: u64,
    read_bytes_per_sec: f64,
    compute_seconds_per_token: f64,
) -> f64 {
    todo!("one over the longer of IO and compute")
}
