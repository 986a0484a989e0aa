//! Trials of "The Cantrip and the Ritual": reference solutions.

use ndarray::{Array1, ArrayView1, ArrayView2};

/// Trial 1. Softmax at temperature `t > 0`.
pub fn softmax_t(logits: ArrayView1<f32>, t: f32) -> Array1<f32> {
    let scaled = logits.mapv(|z| z / t);
    let max = scaled.fold(f32::NEG_INFINITY, |m, &z| m.max(z));
    if max == f32::NEG_INFINITY {
        return Array1::zeros(logits.len());
    }
    let exps = scaled.mapv(|z| (z - max).exp());
    let sum = exps.sum();
    exps / sum
}

/// Trial 2. Top-k.
pub fn top_k(logits: &mut [f32], k: usize) {
    if k >= logits.len() {
        return;
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    // A stable sort keeps the lower index first among equal logits.
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    for &i in &order[k..] {
        logits[i] = f32::NEG_INFINITY;
    }
}

/// Trial 3. Top-p (nucleus).
pub fn top_p(logits: &mut [f32], p: f32) {
    let probs = softmax_t(ArrayView1::from(&*logits), 1.0);
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let mut cumulative = 0.0;
    let mut keep = order.len();
    for (rank, &i) in order.iter().enumerate() {
        cumulative += probs[i];
        if cumulative >= p {
            keep = rank + 1;
            break;
        }
    }
    for &i in &order[keep..] {
        logits[i] = f32::NEG_INFINITY;
    }
}

/// Trial 4. Repetition penalty (CTRL).
pub fn repetition_penalty(logits: &mut [f32], history: &[u32], penalty: f32) {
    let mut seen = history.to_vec();
    seen.sort_unstable();
    seen.dedup();
    for t in seen {
        if let Some(z) = logits.get_mut(t as usize) {
            *z = if *z > 0.0 { *z / penalty } else { *z * penalty };
        }
    }
}

/// Trial 5. A greedy decoding loop.
pub fn greedy_decode(
    prompt: &[u32],
    max_new: usize,
    eos: u32,
    next_logits: &mut dyn FnMut(&[u32]) -> Vec<f32>,
) -> Vec<u32> {
    let mut sequence = prompt.to_vec();
    let mut new = vec![];
    while new.len() < max_new {
        let logits = next_logits(&sequence);
        let mut best = 0;
        for (i, z) in logits.iter().enumerate() {
            if *z > logits[best] {
                best = i;
            }
        }
        let token = best as u32;
        if token == eos {
            break;
        }
        sequence.push(token);
        new.push(token);
    }
    new
}

/// Trial 6. Bytes of `params` weights at `bits_per_weight` bits each.
pub fn weight_bytes(params: u64, bits_per_weight: f64) -> u64 {
    (params as f64 * bits_per_weight / 8.0).ceil() as u64
}

/// Trial 7. The memory-bandwidth floor: `(tokens/s limit, measured / limit)`.
pub fn bandwidth_floor(
    weight_bytes_per_token: u64,
    read_bandwidth_bytes_per_s: f64,
    measured_tokens_per_s: f64,
) -> (f64, f64) {
    // No bytes: nothing bounds the speed (and 0 / 0 would be NaN).
    let floor = if weight_bytes_per_token == 0 {
        f64::INFINITY
    } else {
        read_bandwidth_bytes_per_s / weight_bytes_per_token as f64
    };
    // Nothing measured: 0, even over a floor of 0 (0 / 0 would be NaN).
    let fraction = if measured_tokens_per_s == 0.0 {
        0.0
    } else {
        measured_tokens_per_s / floor
    };
    (floor, fraction)
}

/// Trial 8. The `k` rows most similar to `query` by cosine, best first.
pub fn cosine_top_k(
    query: ArrayView1<f32>,
    passages: ArrayView2<f32>,
    k: usize,
) -> Vec<(usize, f32)> {
    let norm = |v: ArrayView1<f32>| v.dot(&v).sqrt();
    let q = norm(query);
    let mut scored: Vec<(usize, f32)> = passages
        .rows()
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let d = norm(row) * q;
            (i, if d > 0.0 { row.dot(&query) / d } else { 0.0 })
        })
        .collect();
    // A stable sort keeps the earlier row first among ties.
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored
}
