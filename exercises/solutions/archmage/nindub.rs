//! Trials of "NINDUB, the Layer-Streamed Sovereign": reference solutions.

/// Trial 1. Bytes of one Llama decoder layer at `bits_per_weight`.
pub fn layer_bytes(
    hidden: u64,
    intermediate: u64,
    heads: u64,
    kv_heads: u64,
    head_dim: u64,
    bits_per_weight: f64,
) -> u64 {
    let q = heads * head_dim;
    let kv = kv_heads * head_dim;
    let matrices = [
        (q, hidden),            // q_proj
        (kv, hidden),           // k_proj
        (kv, hidden),           // v_proj
        (hidden, q),            // o_proj
        (intermediate, hidden), // gate_proj
        (intermediate, hidden), // up_proj
        (hidden, intermediate), // down_proj
    ];
    // Each tensor is stored apart: a partial byte is rounded up per matrix.
    let weights: u64 = matrices
        .iter()
        .map(|&(rows, cols)| ((rows * cols) as f64 * bits_per_weight / 8.0).ceil() as u64)
        .sum();
    // Two RMSNorm vectors in f32.
    weights + 2 * hidden * 4
}

/// Trial 2. `(resident, streamed)` layers under a memory budget.
pub fn layers_that_fit(
    budget: u64,
    reserved: u64,
    layers: &[u64],
    prefetch: bool,
) -> Result<(usize, usize), String> {
    let all: u64 = reserved + layers.iter().sum::<u64>();
    if all <= budget {
        return Ok((layers.len(), 0));
    }
    let buffers = if prefetch { 2 } else { 1 };
    let staging = buffers * layers.iter().copied().max().unwrap_or(0);
    let floor = reserved + staging;
    if floor > budget {
        let minimum = all.min(floor);
        return Err(format!(
            "a budget of {budget} bytes is too small: the model needs at least {minimum} bytes \
             ({reserved} reserved + {buffers} staging buffer(s) of the largest layer, or every layer resident)"
        ));
    }
    let mut used = floor;
    let mut resident = 0;
    for &layer in layers {
        if used + layer > budget {
            break;
        }
        used += layer;
        resident += 1;
    }
    Ok((resident, layers.len() - resident))
}

/// Trial 3. The finish time of the last compute of one token.
pub fn prefetch_schedule(read: &[f64], compute: &[f64], prefetch: bool) -> f64 {
    assert_eq!(
        read.len(),
        compute.len(),
        "one read and one compute per layer"
    );
    if !prefetch {
        return read.iter().zip(compute).map(|(r, c)| r + c).sum();
    }
    // `read_end`: end of read i; `prev_compute`: end of compute i − 1, the
    // moment the buffer that read i + 1 will fill is released.
    let mut read_end = 0.0f64;
    let mut prev_compute = 0.0f64;
    for i in 0..read.len() {
        if i == 0 {
            read_end = read[0];
        }
        let start = read_end.max(prev_compute);
        let compute_end = start + compute[i];
        if i + 1 < read.len() {
            // Read i + 1: after read i, and once compute i − 1 freed its buffer.
            read_end = start + read[i + 1];
        }
        prev_compute = compute_end;
    }
    prev_compute
}

/// Trial 4a. The IO floor of one token, in seconds.
pub fn io_floor_seconds(bytes_per_token: u64, read_bytes_per_sec: f64) -> f64 {
    if bytes_per_token == 0 {
        // Nothing to read (and 0 / 0 would be NaN).
        return 0.0;
    }
    bytes_per_token as f64 / read_bytes_per_sec
}

/// Trial 4b. The tokens/s ceiling with reads and computes overlapped.
pub fn tokens_per_second_ceiling(
    bytes_per_token: u64,
    read_bytes_per_sec: f64,
    compute_seconds_per_token: f64,
) -> f64 {
    let floor =
        io_floor_seconds(bytes_per_token, read_bytes_per_sec).max(compute_seconds_per_token);
    // 1 / 0 = ∞ and 1 / ∞ = 0: the edge cases need no branch.
    1.0 / floor
}
