//! Explicit, seeded randomness.
//!
//! Two kinds of randomness are used:
//!
//! * **Construction-time draws** (feature vectors, random probabilities,
//!   folded-normal magnitudes, low-rank factors, random correlation matrices)
//!   go through the [`RandomSource`] trait. The default implementation is
//!   [`ChaChaSource`]; a torch-compatible MT19937 stream can implement the same
//!   trait so a model can be rebuilt value-for-value from a sae-lens config.
//! * **Sampling** uses [`SampleRng`] (ChaCha8) directly. Each batch draws one
//!   64-bit key from the caller's generator and derives independent streams
//!   for fixed-size blocks of work from it, so results do not depend on the
//!   number of threads.
//!
//! `seed: None` always means "fresh entropy from the operating system", for
//! every component alike (the reference mixes fixed default seeds and entropy).

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// The generator used for sampling batches.
pub type SampleRng = ChaCha8Rng;

/// Creates a sampling generator from an optional seed (`None`: OS entropy).
pub fn sample_rng(seed: Option<u64>) -> SampleRng {
    match seed {
        Some(s) => SampleRng::seed_from_u64(s),
        None => SampleRng::from_os_rng(),
    }
}

/// Derives the generator for block `block` of the work keyed by `key`.
///
/// The same `(key, block)` always gives the same stream, independent of which
/// thread runs the block.
pub fn block_rng(key: u64, block: u64) -> SampleRng {
    let mut rng = SampleRng::seed_from_u64(key);
    rng.set_stream(block);
    rng
}

/// A source of construction-time random numbers, filled in bulk.
///
/// Bulk filling lets an implementation reproduce another library's stream
/// layout (torch draws normals in blocks of 16 with Box–Muller, for example).
pub trait RandomSource {
    /// Fills `out` with uniform float32 values in `[0, 1)`.
    fn fill_uniform(&mut self, out: &mut [f32]);
    /// Fills `out` with standard-normal float32 values.
    fn fill_normal(&mut self, out: &mut [f32]);
}

/// The default [`RandomSource`]: ChaCha8 uniforms and ziggurat normals.
#[derive(Debug, Clone)]
pub struct ChaChaSource {
    rng: ChaCha8Rng,
}

impl ChaChaSource {
    /// A source seeded with `seed`, or from OS entropy when `None`.
    pub fn new(seed: Option<u64>) -> Self {
        Self {
            rng: sample_rng(seed),
        }
    }
}

impl RandomSource for ChaChaSource {
    fn fill_uniform(&mut self, out: &mut [f32]) {
        for v in out {
            *v = self.rng.random::<f32>();
        }
    }

    fn fill_normal(&mut self, out: &mut [f32]) {
        for v in out {
            *v = StandardNormal.sample(&mut self.rng);
        }
    }
}

/// A standard-normal draw for the sampling hot path.
#[inline]
pub(crate) fn normal(rng: &mut impl RngCore) -> f32 {
    StandardNormal.sample(rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = ChaChaSource::new(Some(7));
        let mut b = ChaChaSource::new(Some(7));
        let (mut x, mut y) = (vec![0.0; 33], vec![0.0; 33]);
        a.fill_normal(&mut x);
        b.fill_normal(&mut y);
        assert_eq!(x, y);
        let mut c = ChaChaSource::new(Some(8));
        c.fill_normal(&mut y);
        assert_ne!(x, y);
    }

    #[test]
    fn block_streams_differ_and_repeat() {
        let a: u64 = block_rng(1, 0).next_u64();
        let b: u64 = block_rng(1, 1).next_u64();
        assert_ne!(a, b);
        assert_eq!(a, block_rng(1, 0).next_u64());
    }

    #[test]
    fn uniforms_in_unit_interval() {
        let mut s = ChaChaSource::new(Some(1));
        let mut u = vec![0.0; 10_000];
        s.fill_uniform(&mut u);
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
    }
}
