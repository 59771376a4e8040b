//! The scalar random draws of the sparse sampler: a 53-bit uniform, an
//! `Exp(1)` and a geometric skip.

use rand::RngCore;
use rand_distr::{Distribution, Exp1};

/// A uniform in `[0, 1)` with 53 random bits.
#[inline(always)]
pub(super) fn unit_uniform(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// An `Exp(1)` draw (ziggurat).
#[inline(always)]
pub(super) fn exp1(rng: &mut impl RngCore) -> f64 {
    Exp1.sample(rng)
}

/// `⌊E / h⌋` with `E ~ Exp(1)`: the number of failures before the first
/// success of Bernoulli(`1 − e^{−h}`) trials, saturating for tiny `h`.
#[inline(always)]
pub(super) fn exp_skip(rng: &mut impl RngCore, h: f64) -> u64 {
    let k = exp1(rng) / h;
    if k >= u64::MAX as f64 {
        u64::MAX
    } else {
        k as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;

    #[test]
    fn exp_skip_is_geometric() {
        // Mean failures before success = (1 - p) / p = 9 for p = 0.1.
        // Variance (1 - p)/p^2 = 90; with n = 200_000 the standard error of the
        // mean is sqrt(90 / 2e5) = 0.0212; 5 sigma = 0.106.
        let h = -(-0.1f64).ln_1p();
        let mut rng = sample_rng(Some(11));
        let n = 200_000;
        let mean = (0..n).map(|_| exp_skip(&mut rng, h) as f64).sum::<f64>() / n as f64;
        assert!((mean - 9.0).abs() < 0.106, "mean {mean}");
    }
}
