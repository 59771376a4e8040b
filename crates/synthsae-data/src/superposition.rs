//! How much the feature vectors interfere (sae-lens `compute_superposition_stats`).
//!
//! For every feature `i`, over all `j ≠ i`: the max of `|cos(f_i, f_j)|` and
//! the requested percentiles (linear interpolation, as `torch.quantile`);
//! plus the mean `|cos|` over unordered pairs. Computed in row blocks of
//! `batch_size` (`O(batch_size · N)` memory); the per-feature selection runs
//! in parallel on the host in `O(N)` per feature (no sort).

use std::collections::BTreeMap;

use burn::tensor::{backend::Backend, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};
use crate::orthogonalize::normalize_rows;
use synthsae_host::try_to_vec;

/// Superposition statistics (field names of sae-lens `SuperpositionStats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuperpositionStats {
    /// Per feature, max `|cos|` with any other feature, `[N]`.
    pub max_abs_cos_sims: Vec<f32>,
    /// Per percentile (key: the percentile as written, e.g. `"95"`), `[N]`.
    pub percentile_abs_cos_sims: BTreeMap<String, Vec<f32>>,
    /// Mean over features of `max_abs_cos_sims`.
    pub mean_max_abs_cos_sim: f64,
    /// Mean over features of each percentile vector.
    pub mean_percentile_abs_cos_sim: BTreeMap<String, f64>,
    /// Mean `|cos|` over unordered pairs `i < j`.
    pub mean_abs_cos_sim: f64,
    /// `N`.
    pub num_features: usize,
    /// `D`.
    pub hidden_dim: usize,
}

/// Formats a percentile as a map key (`95.0 → "95"`, `99.5 → "99.5"`).
pub fn percentile_key(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

/// Computes [`SuperpositionStats`] of `vectors` `[N, D]` (rows need not be
/// normalised). `percentiles` default to `[95, 99]` when empty; each must be
/// in `[0, 100]`.
pub fn compute_superposition_stats<B: Backend>(
    vectors: Tensor<B, 2>,
    batch_size: usize,
    percentiles: &[f64],
) -> Result<SuperpositionStats> {
    let [n, d] = vectors.dims();
    if n < 2 {
        return Err(invalid(
            "feature_vectors",
            "need at least 2 features to compute superposition stats",
        ));
    }
    if batch_size == 0 {
        return Err(invalid("batch_size", "must be at least 1"));
    }
    let percentiles: Vec<f64> = if percentiles.is_empty() {
        vec![95.0, 99.0]
    } else {
        percentiles.to_vec()
    };
    if let Some(p) = percentiles.iter().find(|p| !(0.0..=100.0).contains(*p)) {
        return Err(invalid("percentiles", format!("{p} is outside [0, 100]")));
    }
    let e = normalize_rows(vectors);
    let et = e.clone().transpose();
    let mut max_abs = vec![0.0f32; n];
    let mut pct = vec![vec![0.0f32; n]; percentiles.len()];
    let mut total = 0.0f64;
    let mut start = 0;
    while start < n {
        let end = (start + batch_size).min(n);
        let block = e
            .clone()
            .narrow(0, start, end - start)
            .matmul(et.clone())
            .abs();
        let host = try_to_vec(block, "cosine block")?;
        let per_row: Vec<(f32, Vec<f32>, f64)> = host
            .par_chunks_exact(n)
            .enumerate()
            .map(|(k, row)| {
                let i = start + k;
                let mut others: Vec<f32> = row[..i].iter().chain(&row[i + 1..]).copied().collect();
                let sum: f64 = others.iter().map(|&x| x as f64).sum();
                let max = others.iter().copied().fold(0.0f32, f32::max);
                let qs = percentiles
                    .iter()
                    .map(|&p| quantile_in_place(&mut others, p / 100.0))
                    .collect();
                (max, qs, sum)
            })
            .collect();
        for (k, (max, qs, sum)) in per_row.into_iter().enumerate() {
            max_abs[start + k] = max;
            for (slot, q) in pct.iter_mut().zip(qs) {
                slot[start + k] = q;
            }
            total += sum;
        }
        start = end;
    }
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let mut percentile_abs_cos_sims = BTreeMap::new();
    let mut mean_percentile_abs_cos_sim = BTreeMap::new();
    for (p, v) in percentiles.iter().zip(pct) {
        mean_percentile_abs_cos_sim.insert(percentile_key(*p), mean(&v));
        percentile_abs_cos_sims.insert(percentile_key(*p), v);
    }
    Ok(SuperpositionStats {
        mean_max_abs_cos_sim: mean(&max_abs),
        max_abs_cos_sims: max_abs,
        percentile_abs_cos_sims,
        mean_percentile_abs_cos_sim,
        // Every unordered pair was counted twice (once from each side).
        mean_abs_cos_sim: total / (n as f64 * (n as f64 - 1.0)),
        num_features: n,
        hidden_dim: d,
    })
}

/// The `q`-quantile (`0 ≤ q ≤ 1`) with linear interpolation between order
/// statistics, as `torch.quantile`; reorders `values`.
pub fn quantile_in_place(values: &mut [f32], q: f64) -> f32 {
    let m = values.len();
    if m == 0 {
        return f32::NAN;
    }
    let pos = q * (m - 1) as f64;
    let lo = pos.floor() as usize;
    let frac = (pos - lo as f64) as f32;
    let (_, &mut v_lo, right) = values.select_nth_unstable_by(lo, f32::total_cmp);
    if frac == 0.0 || right.is_empty() {
        return v_lo;
    }
    let v_hi = right.iter().copied().fold(f32::INFINITY, f32::min);
    v_lo + frac * (v_hi - v_lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    #[test]
    fn quantile_matches_sorted_interpolation() {
        let mut v = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile_in_place(&mut v, 0.5), 3.0);
        assert_eq!(quantile_in_place(&mut v, 0.0), 1.0);
        assert_eq!(quantile_in_place(&mut v, 1.0), 5.0);
        // pos = 0.95 * 4 = 3.8 → 4 + 0.8 * (5 - 4)
        assert!((quantile_in_place(&mut v, 0.95) - 4.8).abs() < 1e-6);
    }

    #[test]
    fn matches_direct_computation() {
        let (n, d) = (23, 5);
        let mut raw = vec![0.0f32; n * d];
        crate::rng::RandomSource::fill_normal(
            &mut crate::rng::ChaChaSource::new(Some(3)),
            &mut raw,
        );
        let t = Tensor::<NdArray, 2>::from_data(
            TensorData::new(raw.clone(), [n, d]),
            &Default::default(),
        );
        let s = compute_superposition_stats(t, 4, &[]).unwrap();
        let unit: Vec<Vec<f64>> = raw
            .chunks(d)
            .map(|r| {
                let norm = r.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
                r.iter().map(|&x| x as f64 / norm).collect()
            })
            .collect();
        let cos = |i: usize, j: usize| {
            unit[i]
                .iter()
                .zip(&unit[j])
                .map(|(a, b)| a * b)
                .sum::<f64>()
                .abs()
        };
        let mut pair_sum = 0.0;
        for i in 0..n {
            let mut others: Vec<f64> = (0..n).filter(|&j| j != i).map(|j| cos(i, j)).collect();
            others.sort_by(f64::total_cmp);
            let max = *others.last().unwrap();
            assert!((s.max_abs_cos_sims[i] as f64 - max).abs() < 1e-5);
            let pos = 0.99 * (others.len() - 1) as f64;
            let lo = pos.floor() as usize;
            let q = others[lo] + (pos - lo as f64) * (others[lo + 1] - others[lo]);
            assert!((s.percentile_abs_cos_sims["99"][i] as f64 - q).abs() < 1e-5);
            pair_sum += (i + 1..n).map(|j| cos(i, j)).sum::<f64>();
        }
        let mean = pair_sum / (n * (n - 1) / 2) as f64;
        assert!(
            (s.mean_abs_cos_sim - mean).abs() < 1e-5,
            "{} vs {mean}",
            s.mean_abs_cos_sim
        );
        assert_eq!(s.num_features, n);
        assert_eq!(s.hidden_dim, d);
        assert!(s.mean_percentile_abs_cos_sim.contains_key("95"));
    }

    #[test]
    fn errors() {
        let d = Default::default();
        let one = Tensor::<NdArray, 2>::ones([1, 3], &d);
        let e = compute_superposition_stats(one, 8, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 2 features"), "{e}");
        let two = Tensor::<NdArray, 2>::ones([2, 3], &d);
        let e = compute_superposition_stats(two, 8, &[101.0])
            .unwrap_err()
            .to_string();
        assert!(e.contains("percentiles"), "{e}");
    }
}
