//! The one deterministic random source of the engine. Every random draw (initialisation, masks,
//! data order, token sampling) comes from an `Rng` seeded by the user's `--seed`, so a run is
//! reproducible. The state is four u64 words (xoshiro256**), small enough to store in a
//! checkpoint for bit-exact resume.
//!
//! Sampling kernels take uniforms as *input*, drawn here on the host, so the CPU and GPU
//! backends draw the same tokens from the same seed.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    s: [u64; 4],
}

/// SplitMix64 step: used to expand a seed into a full state (the generator's authors' advice).
fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        Rng { s: [splitmix64(&mut x), splitmix64(&mut x), splitmix64(&mut x), splitmix64(&mut x)] }
    }

    /// An independent generator for a named sub-stream (e.g. one per data-loader worker),
    /// derived without advancing `self`.
    pub fn fork(&self, stream: u64) -> Rng {
        let mut x = self.s[0] ^ self.s[3].rotate_left(17) ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        Rng::new(splitmix64(&mut x))
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 24 random bits (every value exactly representable in f32).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub fn uniform_range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in 0..n (n > 0), by rejection so there is no modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Standard normal by Box-Muller (one value per call; simple and exactly reproducible).
    pub fn normal(&mut self) -> f32 {
        let u1 = 1.0 - self.uniform_f64(); // (0, 1]: log is finite
        let u2 = self.uniform_f64();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    pub fn bernoulli(&mut self, p: f32) -> bool {
        self.uniform() < p
    }

    pub fn fill_uniform(&mut self, out: &mut [f32], lo: f32, hi: f32) {
        out.iter_mut().for_each(|x| *x = self.uniform_range(lo, hi));
    }

    pub fn fill_normal(&mut self, out: &mut [f32], mean: f32, std: f32) {
        out.iter_mut().for_each(|x| *x = mean + std * self.normal());
    }

    /// Draw an index from unnormalised non-negative weights (inverse CDF with one uniform).
    /// Returns None when every weight is zero or any is negative/NaN.
    pub fn categorical(&mut self, weights: &[f32]) -> Option<usize> {
        categorical_with_uniform(weights, self.uniform())
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Inverse-CDF draw with a given uniform `u` in [0,1): the first index whose running sum exceeds
/// `u * total`. Shared by the CPU sampler and the reference of the GPU sampling kernel.
pub fn categorical_with_uniform(weights: &[f32], u: f32) -> Option<usize> {
    let mut total = 0.0f64;
    for &w in weights {
        if !(w >= 0.0) || !w.is_finite() {
            return None;
        }
        total += w as f64;
    }
    if total <= 0.0 {
        return None;
    }
    let target = u as f64 * total;
    let mut acc = 0.0f64;
    let mut last_positive = 0;
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            last_positive = i;
            acc += w as f64;
            if target < acc {
                return Some(i);
            }
        }
    }
    Some(last_positive) // rounding at the top end: the last index with weight
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_same_seed_same_stream_cpu() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }

    #[test]
    fn rng_uniform_and_normal_moments_cpu() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let u: Vec<f32> = (0..n).map(|_| r.uniform()).collect();
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = u.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "uniform mean {mean}");
        let z: Vec<f64> = (0..n).map(|_| r.normal() as f64).collect();
        let m = z.iter().sum::<f64>() / n as f64;
        let v = z.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
        assert!(m.abs() < 0.01 && (v - 1.0).abs() < 0.02, "normal mean {m} var {v}");
    }

    #[test]
    fn categorical_follows_weights_cpu() {
        // Literal: weights [1, 0, 3]: u < 0.25 -> 0, else 2; index 1 never drawn.
        assert_eq!(categorical_with_uniform(&[1.0, 0.0, 3.0], 0.0), Some(0));
        assert_eq!(categorical_with_uniform(&[1.0, 0.0, 3.0], 0.2499), Some(0));
        assert_eq!(categorical_with_uniform(&[1.0, 0.0, 3.0], 0.25), Some(2));
        assert_eq!(categorical_with_uniform(&[1.0, 0.0, 3.0], 0.999_999), Some(2));
        assert_eq!(categorical_with_uniform(&[0.0, 0.0], 0.5), None);
        assert_eq!(categorical_with_uniform(&[1.0, f32::NAN], 0.5), None);
        let mut r = Rng::new(3);
        let mut counts = [0usize; 3];
        for _ in 0..40_000 {
            counts[r.categorical(&[1.0, 0.0, 3.0]).unwrap()] += 1;
        }
        assert_eq!(counts[1], 0);
        let frac = counts[0] as f64 / 40_000.0;
        assert!((frac - 0.25).abs() < 0.01, "frac {frac}");
    }

    #[test]
    fn shuffle_is_a_permutation_cpu() {
        let mut v: Vec<u32> = (0..1000).collect();
        Rng::new(5).shuffle(&mut v);
        assert_ne!(v, (0..1000).collect::<Vec<_>>());
        v.sort();
        assert_eq!(v, (0..1000).collect::<Vec<_>>());
    }
}
