//! Where one token's time goes: each operation of a forward pass charged
//! the time since the previous one. The fused path and candle's path name
//! their operations alike, so the two profiles read side by side.

/// Where one token's time goes: seconds per operation, summed over the
/// tokens stepped while profiling was on.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub tokens: usize,
    /// (operation, seconds), in the order of the forward pass.
    pub ops: Vec<(&'static str, f64)>,
}

impl Profile {
    pub(crate) fn add(&mut self, op: &'static str, secs: f64) {
        match self.ops.iter_mut().find(|(o, _)| *o == op) {
            Some((_, s)) => *s += secs,
            None => self.ops.push((op, secs)),
        }
    }

    /// Milliseconds per token of each operation.
    pub fn per_token_ms(&self) -> Vec<(&'static str, f64)> {
        let n = self.tokens.max(1) as f64;
        self.ops.iter().map(|(o, s)| (*o, s * 1e3 / n)).collect()
    }
}

/// Charges the time since the last lap to `op`, when profiling.
pub(crate) fn lap(profile: &mut Option<Profile>, last: &mut std::time::Instant, op: &'static str) {
    if let Some(p) = profile {
        let now = std::time::Instant::now();
        p.add(op, (now - *last).as_secs_f64());
        *last = now;
    }
}
