//! CPython's `random.Random` (3.x), for reproducing the draws sae-lens makes
//! with Python's RNG: random hierarchies and random pairwise correlations
//! (spec §11.3).
//!
//! * `Random(seed)`: MT19937 `init_by_array` with the 32-bit little-endian
//!   words of `|seed|` (`[0]` for 0).
//! * `getrandbits(k ≤ 32) = next() >> (32 − k)`; `randbelow(n)` rejects
//!   `getrandbits(bit_length(n))` until `< n`; `randint(a, b) = a + randbelow(b − a + 1)`.
//! * `random() = ((next() >> 5) · 2²⁶ + (next() >> 6)) / 2⁵³`.
//! * `shuffle` and `sample` as CPython implements them (pool and set methods).

use std::collections::HashSet;

use crate::mt19937::Mt19937;

/// A CPython-compatible `random.Random`.
#[derive(Debug, Clone)]
pub struct PyRandom {
    mt: Mt19937,
}

impl PyRandom {
    /// `random.Random(seed)` for an integer seed.
    pub fn new(seed: u64) -> Self {
        let key: Vec<u32> = if seed == 0 {
            vec![0]
        } else if seed >> 32 == 0 {
            vec![seed as u32]
        } else {
            vec![seed as u32, (seed >> 32) as u32]
        };
        Self {
            mt: Mt19937::from_key(&key),
        }
    }

    /// A generator seeded from OS entropy (`random.Random()`).
    pub fn from_entropy() -> Self {
        Self::new(rand::random::<u64>())
    }

    /// `Random(seed)` for `Some(seed)`, else OS entropy.
    pub fn from_seed(seed: Option<u64>) -> Self {
        seed.map_or_else(Self::from_entropy, Self::new)
    }

    /// `getrandbits(k)` for `k ≤ 32`.
    pub fn getrandbits(&mut self, k: u32) -> u32 {
        debug_assert!(k <= 32);
        if k == 0 {
            return 0;
        }
        self.mt.next_u32() >> (32 - k)
    }

    /// A uniform integer in `[0, n)`; `n ≤ 2³²`, `n > 0`.
    pub fn randbelow(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0 && n <= 1 << 32);
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k) as u64;
            if r < n {
                return r;
            }
        }
    }

    /// `randint(a, b)`: uniform in `[a, b]`.
    pub fn randint(&mut self, a: u64, b: u64) -> u64 {
        a + self.randbelow(b - a + 1)
    }

    /// `random()`: a float64 uniform in `[0, 1)`.
    pub fn random(&mut self) -> f64 {
        let a = (self.mt.next_u32() >> 5) as f64;
        let b = (self.mt.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `uniform(a, b) = a + (b − a) · random()`.
    pub fn uniform(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.random()
    }

    /// `shuffle(x)` in place.
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.randbelow(i as u64 + 1) as usize;
            x.swap(i, j);
        }
    }

    /// `sample(range(n), k)`: `k` distinct indices of a population of size
    /// `n`, in CPython's order. Panics if `k > n` (callers check).
    pub fn sample_indices(&mut self, n: usize, k: usize) -> Vec<usize> {
        assert!(k <= n, "sample larger than population");
        let mut setsize = 21usize;
        if k > 5 {
            let exp = ((k * 3) as f64).ln() / 4f64.ln();
            setsize += 4usize.pow(exp.ceil() as u32);
        }
        let mut out = Vec::with_capacity(k);
        if n <= setsize {
            let mut pool: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = self.randbelow((n - i) as u64) as usize;
                out.push(pool[j]);
                pool[j] = pool[n - i - 1];
            }
        } else {
            let mut selected = HashSet::with_capacity(k);
            for _ in 0..k {
                let mut j = self.randbelow(n as u64) as usize;
                while !selected.insert(j) {
                    j = self.randbelow(n as u64) as usize;
                }
                out.push(j);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values printed by CPython 3.11's `random` module.
    #[test]
    fn matches_cpython() {
        let mut r = PyRandom::new(12345);
        let ints: Vec<u64> = (0..8).map(|_| r.randint(2, 4)).collect();
        assert_eq!(ints, vec![3, 4, 2, 3, 3, 2, 3, 4]);
        assert_eq!(
            r.sample_indices(1000, 7),
            vec![446, 165, 382, 127, 895, 443, 267]
        );
        assert_eq!(
            r.sample_indices(30, 10),
            vec![17, 20, 5, 19, 29, 27, 11, 2, 16, 13]
        );
        let mut x: Vec<u32> = (0..10).collect();
        r.shuffle(&mut x);
        assert_eq!(x, vec![4, 7, 3, 5, 0, 6, 1, 2, 8, 9]);
        assert_eq!(r.random(), 0.02352121814220054);
        assert_eq!(r.uniform(0.1, 0.8), 0.3376624406785445);
        assert_eq!(PyRandom::new((1 << 40) + 7).getrandbits(32), 2_635_837_658);
        assert_eq!(PyRandom::new(0).getrandbits(32), 3_626_764_237);
    }
}
