//! The correlation of the firing events (a Gaussian copula): the public
//! [`Correlation`], the factorised form the samplers read ([`Copula`]) and
//! the Gaussian thresholds `τ_j = Φ⁻¹(1 − p_j)`.

use statrs::distribution::{ContinuousCDF, Normal};

use crate::correlation::{CorrelationMatrix, LowRankCorrelation};
use crate::error::{bad_shape, Result};

/// The correlation structure of the firing events.
#[derive(Debug, Clone, PartialEq)]
pub enum Correlation {
    /// A dense `[N, N]` correlation matrix.
    Dense(CorrelationMatrix),
    /// A low-rank factor plus diagonal.
    LowRank(LowRankCorrelation),
}

/// The copula in the form the samplers read: feature `j` fires in a row iff
/// `z_j > τ_j`, with `z ~ N(0, Σ)`.
#[derive(Debug, Clone)]
pub(super) enum Copula {
    Independent,
    /// Lower Cholesky factor `L` of `Σ`, row-major `[N, N]` (`z = L ε`).
    Dense {
        cholesky: Vec<f32>,
    },
    /// Factor `F` `[N, R]` and `1 / sqrt(diag)` `[N]`
    /// (`z = F ε + sqrt(d) ⊙ η`).
    LowRank {
        factor: Vec<f32>,
        inv_sqrt_diag: Vec<f32>,
        rank: usize,
    },
}

impl Copula {
    /// The copula of `correlation` for `n` features; a dense matrix is
    /// factorised here, once.
    pub(super) fn new(correlation: &Correlation, n: usize) -> Result<Self> {
        Ok(match correlation {
            Correlation::Dense(m) => {
                if m.num_features() != n {
                    return Err(bad_shape(
                        "correlation_matrix",
                        format!("[N, N] = [{n}, {n}]"),
                        &[m.num_features(), m.num_features()],
                    ));
                }
                Copula::Dense {
                    cholesky: m.cholesky()?,
                }
            }
            Correlation::LowRank(lr) => {
                if lr.num_features() != n {
                    return Err(bad_shape(
                        "correlation_factor",
                        format!("[N, rank] = [{n}, {}]", lr.rank()),
                        &[lr.num_features(), lr.rank()],
                    ));
                }
                Copula::LowRank {
                    factor: lr.factor().to_vec(),
                    inv_sqrt_diag: lr.diag().iter().map(|d| 1.0 / d.sqrt()).collect(),
                    rank: lr.rank(),
                }
            }
        })
    }
}

/// Gaussian threshold `τ = Φ⁻¹(1 − p)` of a firing probability:
/// `p = 1 → −∞` (always fires), `p = 0 → +∞` (never fires).
pub fn correlation_threshold(p: f32) -> f32 {
    if p >= 1.0 {
        f32::NEG_INFINITY
    } else if p <= 0.0 {
        f32::INFINITY
    } else {
        // Φ⁻¹(1 − p) = −Φ⁻¹(p), accurate for small p.
        let normal = Normal::standard();
        (-normal.inverse_cdf(p as f64)) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::excessive_precision)] // golden values verbatim from the reference
    fn threshold_golden() {
        let want = [0.0, 0.52440047, 2.3263483, f32::NEG_INFINITY, f32::INFINITY];
        for (p, w) in [0.5f32, 0.3, 0.01, 1.0, 0.0].iter().zip(want) {
            let t = correlation_threshold(*p);
            if w.is_infinite() {
                assert_eq!(t, w);
            } else {
                assert!((t - w).abs() < 1e-6, "p={p}: {t} vs {w}");
            }
        }
    }
}
