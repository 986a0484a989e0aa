//! A sequence's KV cache: the keys and values of every position it has
//! seen, per layer, in memory reserved once.
//!
//! A sequence owns its cache; the model's weights are shared. That split
//! is what lets one pass over the weights serve several sequences at
//! once ([`super::fused::FusedLlama::forward_batch`]): each row of the
//! batch attends over its own cache at its own position. The cache is
//! reserved for a number of positions when the sequence starts (the
//! prompt plus the tokens it may generate), and a position past that is
//! refused rather than grown: a growing `Vec` would double its allocation,
//! and whatever budget counted it.

use crate::error::{Error, Result};
use crate::model::arch::Architecture;

/// Keys and values, `[position][kv_heads · head_dim]`, for every layer.
#[derive(Debug, Default)]
pub struct KvCache {
    pub(crate) k: Vec<Vec<f32>>,
    pub(crate) v: Vec<Vec<f32>>,
    kv_dim: usize,
    pos: usize,
    capacity: usize,
}

// ANCHOR: bytes
/// Bytes of a KV cache of `positions` positions: a key and a value vector
/// of `kv_heads · head_dim` f32 per layer and position.
pub fn kv_bytes(arch: &Architecture, positions: usize) -> u64 {
    let kv_dim = arch.num_kv_heads * arch.head_dim;
    2 * arch.num_layers * kv_dim * 4 * positions as u64
}
// ANCHOR_END: bytes

impl KvCache {
    /// A cache for `capacity` positions of `arch`, reserved now (the pages
    /// are the operating system's to hand out as they are written).
    pub fn new(arch: &Architecture, capacity: usize) -> Self {
        let kv_dim = arch.num_kv_heads as usize * arch.head_dim as usize;
        let layers = arch.num_layers as usize;
        KvCache {
            k: (0..layers)
                .map(|_| Vec::with_capacity(capacity * kv_dim))
                .collect(),
            v: (0..layers)
                .map(|_| Vec::with_capacity(capacity * kv_dim))
                .collect(),
            kv_dim,
            pos: 0,
            capacity,
        }
    }

    /// Positions held.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Positions reserved.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes reserved (what a scheduler accounts for this sequence).
    pub fn bytes(&self) -> u64 {
        2 * self.k.len() as u64 * self.kv_dim as u64 * 4 * self.capacity as u64
    }

    /// Forgets every position (the reservation stays).
    pub fn clear(&mut self) {
        for (k, v) in self.k.iter_mut().zip(&mut self.v) {
            k.clear();
            v.clear();
        }
        self.pos = 0;
    }

    // ANCHOR: fork
    /// Takes `other`'s positions as its own: what a sample of `n > 1`
    /// starts from, the prompt run once for all samples. Refused when the
    /// shapes differ or the positions do not fit this reservation.
    pub fn copy_from(&mut self, other: &KvCache) -> Result<()> {
        if other.kv_dim != self.kv_dim || other.k.len() != self.k.len() {
            return Err(Error::invalid(
                "kv cache",
                format!(
                    "a cache of {} layers × {} cannot take one of {} layers × {}",
                    self.k.len(),
                    self.kv_dim,
                    other.k.len(),
                    other.kv_dim
                ),
            ));
        }
        if other.pos > self.capacity {
            return Err(Error::invalid(
                "context",
                format!(
                    "{} positions to copy exceed the {} the KV cache was reserved for",
                    other.pos, self.capacity
                ),
            ));
        }
        for (to, from) in self.k.iter_mut().zip(&other.k) {
            to.clear();
            to.extend_from_slice(from);
        }
        for (to, from) in self.v.iter_mut().zip(&other.v) {
            to.clear();
            to.extend_from_slice(from);
        }
        self.pos = other.pos;
        Ok(())
    }
    // ANCHOR_END: fork

    /// Refuses `n` more positions past the reservation.
    pub(crate) fn check_room(&self, n: usize) -> Result<()> {
        if self.pos + n > self.capacity {
            return Err(Error::invalid(
                "context",
                format!(
                    "{n} positions after {} cached exceed the {} the KV cache was reserved for",
                    self.pos, self.capacity
                ),
            ));
        }
        Ok(())
    }

    /// Counts `n` positions written to every layer.
    pub(crate) fn advance(&mut self, n: usize) {
        self.pos += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch::Architecture;

    #[test]
    fn bytes_match_the_reservation_and_positions_are_bounded() {
        let arch = Architecture::preset("smollm2-135m").unwrap();
        let mut c = KvCache::new(&arch, 10);
        assert_eq!(c.bytes(), kv_bytes(&arch, 10));
        // SmolLM2-135M: 30 layers, 3 KV heads of 64: 46,080 bytes a position.
        assert_eq!(kv_bytes(&arch, 1), 2 * 30 * 192 * 4);
        assert!(c.check_room(10).is_ok());
        c.advance(4);
        assert!(c.check_room(6).is_ok());
        let e = c.check_room(7).unwrap_err().to_string();
        assert!(e.contains("7 positions after 4"), "{e}");
        c.clear();
        assert_eq!(c.position(), 0);
    }

    #[test]
    fn a_copy_takes_the_positions_within_the_reservation() {
        let arch = Architecture::preset("smollm2-135m").unwrap();
        let mut a = KvCache::new(&arch, 4);
        for (k, v) in a.k.iter_mut().zip(&mut a.v) {
            k.extend((0..3 * 192).map(|i| i as f32));
            v.extend((0..3 * 192).map(|i| -(i as f32)));
        }
        a.advance(3);
        let mut b = KvCache::new(&arch, 8);
        b.copy_from(&a).unwrap();
        assert_eq!((b.position(), b.capacity()), (3, 8));
        assert_eq!((b.k.clone(), b.v.clone()), (a.k.clone(), a.v.clone()));
        let mut small = KvCache::new(&arch, 2);
        let e = small.copy_from(&a).unwrap_err().to_string();
        assert!(e.contains("3 positions to copy exceed the 2"), "{e}");
        let other = Architecture::preset("llama-3-8b").unwrap();
        let mut foreign = KvCache::new(&other, 8);
        assert!(foreign.copy_from(&a).is_err());
    }
}
