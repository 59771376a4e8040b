//! Mean correlation coefficient (spec §9.2) and uniqueness (§9.3).

use burn::prelude::*;

use crate::assignment::linear_sum_assignment;
use crate::cosine::SimilarityMatrix;
use crate::error::Result;

/// MCC between two sets of vectors (`[n_a, d]`, `[n_b, d]`): the mean `|cos|`
/// over an optimal one-to-one matching of `min(n_a, n_b)` pairs (maximising
/// the total `|cos|`, i.e. minimising `Σ (1 − |cos|)`). In `[0, 1]`,
/// independent of norms and signs. 0.0 when either set is empty (sae-lens
/// returns NaN there).
pub fn mean_correlation_coefficient<B: Backend>(
    features_a: Tensor<B, 2>,
    features_b: Tensor<B, 2>,
) -> Result<f64> {
    mcc_from_similarity(&SimilarityMatrix::compute(features_a, features_b)?.into_abs())
}

/// MCC from a precomputed similarity matrix (signed or absolute).
pub fn mcc_from_similarity(sim: &SimilarityMatrix) -> Result<f64> {
    if sim.rows() == 0 || sim.cols() == 0 {
        return Ok(0.0);
    }
    let abs;
    let sim = if sim.is_absolute() {
        sim
    } else {
        abs = sim.clone().into_abs();
        &abs
    };
    let a = linear_sum_assignment(sim.data(), sim.rows(), sim.cols(), true)?;
    let total: f64 = a
        .rows
        .iter()
        .zip(&a.cols)
        .map(|(&i, &j)| sim.get(i, j) as f64)
        .sum();
    Ok(total / a.rows.len() as f64)
}

/// Uniqueness of SAE latents (`[S, d]`) against ground-truth features
/// (`[N, d]`): the number of distinct best-matching (`argmax |cos|`) features
/// divided by `S`; 0.0 when `S = 0`.
pub fn feature_uniqueness<B: Backend>(
    sae_features: Tensor<B, 2>,
    gt_features: Tensor<B, 2>,
) -> Result<f64> {
    let sim = SimilarityMatrix::compute(sae_features, gt_features)?;
    Ok(uniqueness_from_best_matches(
        &sim.row_argmax_abs(),
        sim.rows(),
    ))
}

/// Uniqueness from each latent's best-matching feature index (`[S]`).
pub fn uniqueness_from_best_matches(best_matches: &[u32], num_latents: usize) -> f64 {
    if num_latents == 0 || best_matches.is_empty() {
        return 0.0;
    }
    let mut sorted = best_matches.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.len() as f64 / num_latents as f64
}

/// The permutation of SAE latents that sorts them by their best-matching
/// feature (spec §9.8), given each latent's `argmax |cos|` feature (`[S]`).
/// Stable: latents with the same best match keep their index order (sae-lens
/// leaves that order unspecified).
pub fn best_feature_ordering(best_matches: &[u32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..best_matches.len()).collect();
    order.sort_by_key(|&s| best_matches[s]);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    #[test]
    fn permuted_signed_copy_scores_one() {
        let device = Default::default();
        let f =
            Tensor::<B, 2>::from_data([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.6, 0.8]], &device);
        let a = Tensor::<B, 2>::from_data(
            [[0.0, -1.2, -1.6], [2.0, 0.0, 0.0], [0.0, -3.0, 0.0]],
            &device,
        );
        let mcc = mean_correlation_coefficient(a.clone(), f.clone()).unwrap();
        assert!((mcc - 1.0).abs() < 1e-6, "{mcc}");
        assert_eq!(feature_uniqueness(a, f).unwrap(), 1.0);
    }

    #[test]
    fn duplicates_lower_uniqueness_and_mcc() {
        let device = Default::default();
        let f = Tensor::<B, 2>::from_data([[1.0, 0.0], [0.0, 1.0]], &device);
        let a = Tensor::<B, 2>::from_data([[1.0, 0.0], [1.0, 0.0]], &device);
        assert_eq!(feature_uniqueness(a.clone(), f.clone()).unwrap(), 0.5);
        // One of the duplicates must take feature 1 at |cos| 0.
        assert!((mean_correlation_coefficient(a, f).unwrap() - 0.5).abs() < 1e-7);
    }

    #[test]
    fn ordering_is_stable() {
        assert_eq!(best_feature_ordering(&[2, 0, 2, 1]), vec![1, 3, 0, 2]);
        assert_eq!(uniqueness_from_best_matches(&[], 0), 0.0);
    }
}
