//! SplitMix64: the PRNG both sides of the peer comparison implement (here and in
//! `bench/peer/peer.js`, with `BigInt`), so one seed gives the same workload in Rust and
//! in JS. Small, fast, and trivially portable: a 64-bit add and two xor-shift-multiplies.

/// Steele, Lea and Flood's SplitMix64 (the generator Java's `SplittableRandom` uses).
///
/// ```
/// use datoms_bench::rng::SplitMix64;
/// let mut rng = SplitMix64::new(1);
/// // The reference sequence for seed 1 (the JS peer checks the same numbers).
/// assert_eq!(rng.next_u64(), 0x910a_2dec_8902_5cc1);
/// ```
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`next_u64() % n`: the tiny modulo bias is the same on both
    /// sides, which is all that matters here). `n` must not be 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// 64-bit FNV-1a over bytes: the checksum both sides print, fed the same canonical text.
#[derive(Clone, Copy, Debug)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Fnv64 {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash so far, as 16 hex digits (how both sides print it).
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        let mut rng = SplitMix64::new(1234567);
        let got: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(
            got,
            vec![
                6457827717110365317,
                3203168211198807973,
                9817491932198370423
            ]
        );
    }

    #[test]
    fn fnv1a_matches_the_reference_value() {
        let mut h = Fnv64::default();
        h.write(b"a");
        assert_eq!(h.hex(), "af63dc4c8601ec8c");
    }
}
