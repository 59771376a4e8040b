//! The dense reference sampler: sae-lens's algorithm, entry by entry.
//!
//! Every feature is decided in every row (`O(B·N)`, `O(B·N·R)` with a
//! low-rank copula, `O(B·N²)` with a dense one): independent firing draws
//! one uniform per entry (fires iff `u < p_j`); a low-rank copula draws
//! `ε ~ N(0, I_R)` and `η ~ N(0, I_N)` and fires iff
//! `F_j·ε + √d_j η_j > τ_j`; a dense copula fires iff `(L ε)_j > τ_j`.
//! Then a magnitude for every fired entry (no parent-first shortcut, no
//! thinning). Slow; the sparse sampler draws from the same distribution,
//! and the tests check that it does.

use rand::Rng;

use super::copula::Copula;
use super::dense::dense_row;
use crate::per_feature::FeatureParams;
use crate::rng::{normal, SampleRng};
use synthsae_host::Csr;

/// A batch `[batch_size, N]` by the reference algorithm, before modifiers
/// (zero magnitudes are kept); `tau` `[N]`: the copula's thresholds (empty
/// without a copula).
pub(super) fn sample_reference(
    features: &FeatureParams,
    copula: &Copula,
    tau: &[f32],
    batch_size: usize,
    rng: &mut SampleRng,
) -> Csr {
    let n = features.num_features();
    let mut row_offsets = Vec::with_capacity(batch_size + 1);
    row_offsets.push(0);
    let mut indices = Vec::new();
    let mut z = vec![0.0f32; n];
    for _ in 0..batch_size {
        match copula {
            Copula::Independent => {
                for (j, &p) in features.firing_probabilities().iter().enumerate() {
                    if rng.random::<f32>() < p {
                        indices.push(j as u32);
                    }
                }
            }
            Copula::LowRank {
                factor,
                inv_sqrt_diag,
                rank,
                ..
            } => {
                let eps: Vec<f32> = (0..*rank).map(|_| normal(rng)).collect();
                for j in 0..n {
                    let zj = dot(&factor[j * rank..(j + 1) * rank], &eps)
                        + normal(rng) / inv_sqrt_diag[j];
                    if zj > tau[j] {
                        indices.push(j as u32);
                    }
                }
            }
            Copula::Dense { cholesky } => dense_row(cholesky, tau, &mut z, rng, &mut indices),
        }
        row_offsets.push(indices.len());
    }
    let values = indices
        .iter()
        .map(|&f| features.drawn_magnitude(f, rng))
        .collect();
    Csr::from_parts_unchecked(n, row_offsets, indices, values)
}

/// `Σ_r a_r b_r`, accumulated from 0 in order.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (&x, &y) in a.iter().zip(b) {
        acc += y * x;
    }
    acc
}
