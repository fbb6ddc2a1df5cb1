//! A small seeded generator for node shuffles and dynamic port picks.
//!
//! SplitMix64: tiny, fast, and fully determined by its seed, so a plan is a
//! pure function of the state, the evaluation and the seed (Nomad seeds its
//! shuffle from the eval ID and the state index the same way). Not for
//! secrets.

#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (`bound > 0`), by multiply-shift (no modulo bias
    /// worth caring about for shuffles and port picks).
    pub fn below(&mut self, bound: u64) -> u64 {
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }

    /// Fisher–Yates, as Nomad's `shuffleNodes`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// Nomad's shuffle seed: the last 8 bytes of the eval ID (hex, dashes
/// dropped) XOR the state index. An ID that is not hex is hashed instead.
pub fn eval_seed(eval_id: &str, index: u64) -> u64 {
    let hex: String = eval_id.chars().filter(|c| *c != '-').collect();
    let tail = &hex[hex.len().saturating_sub(16)..];
    let base = u64::from_str_radix(tail, 16).unwrap_or_else(|_| fnv1a(eval_id.as_bytes()));
    base ^ index
}

/// FNV-1a, for stable hashes (computed classes, non-hex seeds).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// FxHash (rustc's hasher): the scheduler's internal maps are keyed by node
/// IDs, classes and group names from one snapshot, hashed millions of times
/// per large evaluation; SipHash's DoS resistance buys nothing there.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FxBuildHasher = std::hash::BuildHasherDefault<FxHasher>;
/// A `HashMap` with [`FxHasher`].
pub type FxHashMap<K, V> = std::collections::HashMap<K, V, FxBuildHasher>;
