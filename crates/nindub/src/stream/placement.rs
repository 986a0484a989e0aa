//! Placement under a byte budget: which layers stay resident, which are
//! streamed from the file for every token.
//!
//! llama.cpp asks for a number of layers (`-ngl N`); a budget is what one
//! actually has. The order of the reservations matters: the KV cache and
//! the activations must exist whatever happens, so they are reserved first;
//! the embedding and the output head are read for every token and stay;
//! then, if the layers do not all fit, staging buffers as large as the
//! largest layer are set aside for the streamed layers (one, or two when
//! the next layer is prefetched while this one computes), and as many
//! layers as still fit stay resident. Every layer is read once per token, so
//! which ones stay does not change the bytes streamed; the first ones stay,
//! so that streaming the rest can begin while they are computed.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::stream::source::{ModelSource, Range};
use crate::stream::streamer::MATRICES;

/// What must be placed, in bytes.
#[derive(Debug, Clone, Serialize)]
pub struct Demand {
    /// Read every token and always resident: embedding, output head, norms.
    pub fixed: u64,
    /// Each decoder layer's weights.
    pub layers: Vec<u64>,
    /// The KV cache for the context asked for.
    pub kv_cache: u64,
    /// Working buffers of one forward pass.
    pub activations: u64,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    pub budget: u64,
    /// KV cache + activations + fixed weights.
    pub reserved: u64,
    /// The buffers streamed layers are read into (0 when none is streamed).
    pub staging: u64,
    /// How many staging buffers (2 with prefetch).
    pub buffers: u64,
    pub resident: Vec<usize>,
    pub streamed: Vec<usize>,
    /// Bytes held in all.
    pub used: u64,
    /// Bytes read from the file per token.
    pub streamed_per_token: u64,
}

// ANCHOR: plan
/// Places `demand` in `budget` bytes, with `buffers` staging buffers for
/// the streamed layers, or says why it cannot.
pub fn plan(demand: &Demand, budget: u64, buffers: u64) -> Result<Placement> {
    let all = demand
        .total()
        .ok_or_else(|| Error::invalid("memory budget", "the demand exceeds a 64-bit byte count"))?;
    // Below the total, so none of these sums overflow.
    let reserved = demand.kv_cache + demand.activations + demand.fixed;
    let all = all - reserved;
    if reserved + all <= budget {
        return Ok(Placement {
            budget,
            reserved,
            staging: 0,
            buffers: 0,
            resident: (0..demand.layers.len()).collect(),
            streamed: vec![],
            used: reserved + all,
            streamed_per_token: 0,
        });
    }
    let buffers = buffers.max(1);
    let (largest, layer) = demand
        .layers
        .iter()
        .enumerate()
        .map(|(i, &b)| (b, i))
        .max_by_key(|&(b, i)| (b, std::cmp::Reverse(i)))
        .unwrap_or((0, 0));
    let staging = buffers * largest;
    if reserved + staging > budget {
        return Err(Error::invalid(
            "memory budget",
            format!(
                "{budget} bytes cannot hold the KV cache and activations ({}), the embedding and \
                 output head ({}) and {buffers} staging buffer(s) for the largest layer \
                 (layer {layer}, {largest} bytes): the minimum budget is {} bytes",
                demand.kv_cache + demand.activations,
                demand.fixed,
                reserved + staging
            ),
        ));
    }
    let mut used = reserved + staging;
    let mut resident = vec![];
    let mut streamed = vec![];
    for (i, &bytes) in demand.layers.iter().enumerate() {
        if streamed.is_empty() && used + bytes <= budget {
            used += bytes;
            resident.push(i);
        } else {
            streamed.push(i);
        }
    }
    let streamed_per_token = streamed.iter().map(|&i| demand.layers[i]).sum();
    Ok(Placement {
        budget,
        reserved,
        staging,
        buffers,
        resident,
        streamed,
        used,
        streamed_per_token,
    })
}
// ANCHOR_END: plan

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = |b: u64| b as f64 / 1e6;
        writeln!(
            f,
            "budget {:.1} MB: reserved {:.1} MB (KV cache, activations, embedding and head), staging {:.1} MB ({} buffer{}), used {:.1} MB",
            mb(self.budget),
            mb(self.reserved),
            mb(self.staging),
            self.buffers,
            if self.buffers == 1 { "" } else { "s" },
            mb(self.used)
        )?;
        write!(
            f,
            "{} layers resident, {} streamed ({:.1} MB read from the file per token)",
            self.resident.len(),
            self.streamed.len(),
            mb(self.streamed_per_token)
        )
    }
}

/// Layer `l`'s seven matrices' ranges, in [`Weights`] order.
pub fn tensor_ranges(source: &ModelSource, l: u64) -> Result<[Range; 7]> {
    let mut r = [Range {
        file: 0,
        offset: 0,
        bytes: 0,
    }; 7];
    for (slot, m) in r.iter_mut().zip(MATRICES) {
        *slot = source.range(&format!("blk.{l}.{m}.weight"))?;
    }
    Ok(r)
}

/// What the fused engine must place for `context` positions, in bytes, read
/// from the GGUF header without loading a weight.
pub fn demand(source: &ModelSource, context: usize) -> Result<Demand> {
    let arch = source.architecture()?;
    let (d, f) = (arch.hidden_size as usize, arch.intermediate_size as usize);
    let hd = arch.head_dim as usize;
    let (q_out, kv_out) = (
        arch.num_heads as usize * hd,
        arch.num_kv_heads as usize * hd,
    );
    let too_large = || {
        Error::invalid(
            "context",
            format!(
                "{context} positions of a model with {} layers and {kv_out} key/value features \
                 need more bytes than a 64-bit count holds",
                arch.num_layers
            ),
        )
    };
    let kv_cache = [arch.num_layers, 2, kv_out as u64, 4]
        .into_iter()
        .try_fold(context as u64, u64::checked_mul)
        .ok_or_else(too_large)?;
    let activations = activation_bytes(
        (d as u64, f as u64, q_out as u64, kv_out as u64),
        arch.num_heads,
        arch.vocab_size,
        context as u64,
    )
    .ok_or_else(too_large)?;
    let mut demand = Demand {
        fixed: source.range("token_embd.weight")?.bytes as u64,
        layers: vec![],
        kv_cache,
        activations,
    };
    if !arch.tied_embeddings {
        demand.fixed += source.range("output.weight")?.bytes as u64;
    }
    for l in 0..arch.num_layers {
        let r = tensor_ranges(source, l)?;
        demand.layers.push(r.iter().map(|r| r.bytes as u64).sum());
    }
    demand.total().ok_or_else(too_large)?;
    Ok(demand)
}

// ANCHOR: machine
/// The budget of a run that gave none: the machine's physical memory,
/// after checking that the whole demand fits it, so that a model or a
/// context too large for the machine is refused before anything is
/// allocated (not killed mid-allocation).
pub fn machine_budget(demand: &Demand, context: usize) -> Result<u64> {
    let Some(memory) = crate::process::physical_memory() else {
        return Ok(u64::MAX);
    };
    let total = demand.total().unwrap_or(u64::MAX);
    if total > memory {
        return Err(Error::invalid(
            "context",
            format!(
                "{} for the weights, {} for a KV cache of {context} positions and {} of \
                 activations come to {}, more than this machine's {}: ask for fewer positions \
                 (--context) or give a budget (--budget) to stream the layers",
                crate::budget::human(total - demand.kv_cache - demand.activations),
                crate::budget::human(demand.kv_cache),
                crate::budget::human(demand.activations),
                crate::budget::human(total),
                crate::budget::human(memory),
            ),
        ));
    }
    Ok(memory)
}
// ANCHOR_END: machine

impl Demand {
    /// Every byte of the demand, or `None` past a 64-bit count.
    pub fn total(&self) -> Option<u64> {
        self.layers
            .iter()
            .try_fold(self.fixed, |t, &l| t.checked_add(l))?
            .checked_add(self.kv_cache)?
            .checked_add(self.activations)
    }
}

/// The most prompt tokens the fused engine runs through a layer at once: a
/// longer prompt is processed in chunks, so its working buffers are
/// bounded by this and accounted in [`activation_bytes`].
pub const PREFILL_CHUNK: usize = 64;

/// The working memory of a forward pass, in bytes, for a model of hidden
/// size `d`, MLP width `f`, `q_out` query and `kv_out` key (or value)
/// features, `heads` query heads and `vocab` tokens, at `context`
/// positions: one step's f32 buffers and quantized activations, a prompt
/// chunk's ([`PREFILL_CHUNK`] tokens: residual, norms, Q/K/V, attention,
/// MLP, their 8-bit copies and the matrix-matrix product's transpose), the
/// attention scores over the context, and the logits.
pub fn activation_bytes(
    (d, f, q_out, kv_out): (u64, u64, u64, u64),
    heads: u64,
    vocab: u64,
    context: u64,
) -> Option<u64> {
    // Sizes read from a file are bounded by its tensors, but the context is
    // a flag: the arithmetic is done in u128 and refused past 64 bits.
    let (d, f, q_out, kv_out) = (d as u128, f as u128, q_out as u128, kv_out as u128);
    // An activation quantized once: a byte per value, an f32 scale and sum
    // per block of 32.
    let act = |n: u128| n + n / 4;
    let step = 4 * (4 * d + 3 * q_out + 2 * kv_out + 2 * f) + act(d.max(q_out)) + act(f);
    let chunk = PREFILL_CHUNK as u128;
    let prefill = chunk
        * (4 * (3 * d + 2 * q_out + 2 * kv_out + 2 * f)
            + act(d.max(q_out))
            + act(f)
            + 4 * f.max(d).max(q_out));
    let scores = 4 * heads as u128 * (context as u128).max(chunk);
    u64::try_from(step + prefill + scores + 4 * vocab as u128).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand() -> Demand {
        Demand {
            fixed: 30,
            layers: vec![10; 6],
            kv_cache: 8,
            activations: 2,
        }
    }

    #[test]
    fn everything_fits_or_some_layers_stream_or_it_is_refused() {
        let all = plan(&demand(), 100, 1).unwrap();
        assert_eq!(
            (all.resident.len(), all.streamed.len(), all.used),
            (6, 0, 100)
        );
        let some = plan(&demand(), 75, 1).unwrap();
        // 40 reserved + 10 staging leaves 25: two layers stay.
        assert_eq!(some.resident, vec![0, 1]);
        assert_eq!(some.streamed, vec![2, 3, 4, 5]);
        assert_eq!((some.used, some.streamed_per_token), (70, 40));
        let none = plan(&demand(), 50, 1).unwrap();
        assert!(none.resident.is_empty() && none.streamed.len() == 6);
        let e = plan(&demand(), 49, 1).unwrap_err().to_string();
        assert!(e.contains("minimum budget is 50 bytes"), "{e}");
    }

    #[test]
    fn prefetch_needs_a_second_buffer_and_the_error_names_the_largest_layer() {
        let mut d = demand();
        d.layers[3] = 12;
        // 40 reserved + 2 × 12 staging = 64 leaves 11: one layer stays.
        let p = plan(&d, 75, 2).unwrap();
        assert_eq!((p.staging, p.buffers), (24, 2));
        assert_eq!(p.resident, vec![0]);
        assert!(p.used <= 75);
        let e = plan(&d, 63, 2).unwrap_err().to_string();
        assert!(
            e.contains("layer 3, 12 bytes") && e.contains("minimum budget is 64 bytes"),
            "{e}"
        );
    }
}
