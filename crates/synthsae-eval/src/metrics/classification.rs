//! SAE latents as binary detectors of their best-matching true feature.

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use synthsae_host::Csr;

use crate::cosine::SimilarityMatrix;
use crate::error::{invalid, shape_err, Result};
use crate::readback::{gather_flat, nonzero_counts_per_column};

/// Mean precision, recall, F1 and accuracy over all SAE latents (dead ones
/// included), each latent scored as a detector of its best-matching feature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    /// Mean of `TP / (TP + FP)` (0 for a latent that never fired).
    pub precision: f64,
    /// Mean of `TP / (TP + FN)` (0 when the matched feature never fired).
    pub recall: f64,
    /// Mean of `2PR / (P + R)` (0 when `P + R = 0`).
    pub f1_score: f64,
    /// Mean of `(TP + TN) / rows`.
    pub accuracy: f64,
}

/// Streaming confusion counts per latent (`u64`, exact at any sample count).
///
/// Latent `s` is matched once, at construction, to `g(s) = argmax_j |cos(W_dec_s, F_j)|`.
/// Per row it *fires* when its activation is `≠ 0`; the truth is "feature
/// `g(s)` has a value `> 0` in that row". From per-latent firing counts,
/// per-feature firing counts and the true positives (gathered only at the
/// `(row, latent)` positions where the matched feature fired), the other three
/// counts follow, so the `[batch, N]` truth is never densified.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationCalculator {
    best_matches: Vec<u32>,
    num_features: usize,
    /// Latents grouped by matched feature (CSR over features).
    by_feature_offsets: Vec<usize>,
    by_feature: Vec<u32>,
    tp: Vec<u64>,
    sae_fired: Vec<u64>,
    gt_fired: Vec<u64>,
    rows: u64,
}

impl ClassificationCalculator {
    /// From each latent's matched feature (`[S]`, values `< num_features`).
    pub fn new(best_matches: Vec<u32>, num_features: usize) -> Result<Self> {
        if let Some(&bad) = best_matches.iter().find(|&&g| g as usize >= num_features) {
            return Err(invalid(
                "best_matches",
                format!("feature {bad} out of range for {num_features} features"),
            ));
        }
        let s = best_matches.len();
        let mut by_feature_offsets = vec![0usize; num_features + 1];
        for &g in &best_matches {
            by_feature_offsets[g as usize + 1] += 1;
        }
        for j in 0..num_features {
            by_feature_offsets[j + 1] += by_feature_offsets[j];
        }
        let mut fill = by_feature_offsets.clone();
        let mut by_feature = vec![0u32; s];
        for (latent, &g) in best_matches.iter().enumerate() {
            by_feature[fill[g as usize]] = latent as u32;
            fill[g as usize] += 1;
        }
        Ok(Self {
            best_matches,
            num_features,
            by_feature_offsets,
            by_feature,
            tp: vec![0; s],
            sae_fired: vec![0; s],
            gt_fired: vec![0; s],
            rows: 0,
        })
    }

    /// Matches decoder rows `[S, D]` to true features `[N, D]` by `|cos|`.
    pub fn from_weights<B: Backend>(
        sae_decoder: Tensor<B, 2>,
        gt_features: Tensor<B, 2>,
    ) -> Result<Self> {
        let [n, _] = gt_features.dims();
        let sim = SimilarityMatrix::compute(sae_decoder, gt_features)?;
        Self::new(sim.row_argmax_abs(), n)
    }

    /// Each latent's matched feature, `[S]`.
    pub fn best_matches(&self) -> &[u32] {
        &self.best_matches
    }

    fn check_batch(&self, rows: usize, latents: usize, gt: &Csr) -> Result<()> {
        if latents != self.best_matches.len() {
            return Err(shape_err(
                "sae_latents",
                format!("[batch, {}]", self.best_matches.len()),
                &[rows, latents],
            ));
        }
        if gt.n_cols() != self.num_features || gt.n_rows() != rows {
            return Err(shape_err(
                "gt_feature_acts",
                format!("[{rows}, {}]", self.num_features),
                &[gt.n_rows(), gt.n_cols()],
            ));
        }
        Ok(())
    }

    /// Per-feature count of rows where it is `> 0`, spread to latents, and
    /// the `(row · S + latent)` positions to test for true positives.
    fn truth(&mut self, gt: &Csr) -> Vec<i64> {
        let s = self.best_matches.len();
        let mut feature_count = vec![0u64; self.num_features];
        let mut positions = Vec::new();
        for (r, (idx, val)) in gt.rows().enumerate() {
            for (&j, &v) in idx.iter().zip(val) {
                if v > 0.0 {
                    let j = j as usize;
                    feature_count[j] += 1;
                    for &latent in
                        &self.by_feature[self.by_feature_offsets[j]..self.by_feature_offsets[j + 1]]
                    {
                        positions.push((r * s) as i64 + latent as i64);
                    }
                }
            }
        }
        for (g, &f) in self.gt_fired.iter_mut().zip(&self.best_matches) {
            *g += feature_count[f as usize];
        }
        positions
    }

    /// Adds a batch: SAE latents `[batch, S]` on any device and the true
    /// feature activations of the same rows (sparse `[batch, N]`).
    pub fn add_batch<B: Backend>(&mut self, sae_latents: Tensor<B, 2>, gt: &Csr) -> Result<()> {
        let [rows, s] = sae_latents.dims();
        self.check_batch(rows, s, gt)?;
        let fired = nonzero_counts_per_column(sae_latents.clone(), "sae_latents")?;
        self.add_batch_counted(sae_latents, &fired, gt)
    }

    /// [`Self::add_batch`] with the per-latent firing counts of the batch
    /// (`[S]`, number of rows where the latent is `≠ 0`) already computed.
    pub fn add_batch_counted<B: Backend>(
        &mut self,
        sae_latents: Tensor<B, 2>,
        fired: &[u64],
        gt: &Csr,
    ) -> Result<()> {
        let [rows, s] = sae_latents.dims();
        self.check_batch(rows, s, gt)?;
        if fired.len() != s {
            return Err(shape_err("fire counts", format!("[{s}]"), &[fired.len()]));
        }
        self.add_fired(fired, rows);
        let positions = self.truth(gt);
        if positions.is_empty() {
            return Ok(());
        }
        let values = gather_flat(sae_latents, &positions, "sae_latents")?;
        self.add_true_positives(&positions, &values, s);
        Ok(())
    }

    /// Adds a batch of sparse latents (`[batch, S]`, e.g. from
    /// [`synthsae_sae::Sae::forward_sparse`]) with their per-latent firing
    /// counts ([`Csr::fire_counts`]). `O(nnz)`: a latent's true
    /// positive is looked up in the row's set of fired features.
    pub fn add_sparse(&mut self, sae_latents: &Csr, fired: &[u64], gt: &Csr) -> Result<()> {
        let (rows, s) = (sae_latents.n_rows(), sae_latents.n_cols());
        self.check_batch(rows, s, gt)?;
        if fired.len() != s {
            return Err(shape_err("fire counts", format!("[{s}]"), &[fired.len()]));
        }
        self.add_fired(fired, rows);
        let mut feature_count = vec![0u64; self.num_features];
        // `fired_in[j] == r + 1` iff feature j is > 0 in row r.
        let mut fired_in = vec![0usize; self.num_features];
        for (r, (idx, val)) in gt.rows().enumerate() {
            for (&j, &v) in idx.iter().zip(val) {
                if v > 0.0 {
                    feature_count[j as usize] += 1;
                    fired_in[j as usize] = r + 1;
                }
            }
            let (cols, _) = sae_latents.row(r);
            for &c in cols {
                let c = c as usize;
                if fired_in[self.best_matches[c] as usize] == r + 1 {
                    self.tp[c] += 1;
                }
            }
        }
        for (g, &f) in self.gt_fired.iter_mut().zip(&self.best_matches) {
            *g += feature_count[f as usize];
        }
        Ok(())
    }

    /// Adds a batch of host latents (row-major `[batch, S]`).
    pub fn add_host(&mut self, sae_latents: &[f32], rows: usize, gt: &Csr) -> Result<()> {
        let s = self.best_matches.len();
        if sae_latents.len() != rows * s {
            return Err(shape_err(
                "sae_latents",
                format!("[{rows}, {s}]"),
                &[sae_latents.len()],
            ));
        }
        self.check_batch(rows, s, gt)?;
        let mut fired = vec![0u64; s];
        for row in sae_latents.chunks_exact(s.max(1)) {
            for (f, &z) in fired.iter_mut().zip(row) {
                *f += (z != 0.0) as u64;
            }
        }
        self.add_fired(&fired, rows);
        let positions = self.truth(gt);
        let values: Vec<f32> = positions.iter().map(|&p| sae_latents[p as usize]).collect();
        self.add_true_positives(&positions, &values, s);
        Ok(())
    }

    fn add_fired(&mut self, fired: &[u64], rows: usize) {
        for (a, &b) in self.sae_fired.iter_mut().zip(fired) {
            *a += b;
        }
        self.rows += rows as u64;
    }

    fn add_true_positives(&mut self, positions: &[i64], values: &[f32], s: usize) {
        for (&p, &z) in positions.iter().zip(values) {
            if z != 0.0 {
                self.tp[p as usize % s] += 1;
            }
        }
    }

    /// Per latent `(TP, FP, FN, TN)`.
    pub fn confusion(&self) -> Vec<[u64; 4]> {
        (0..self.best_matches.len())
            .map(|s| {
                let tp = self.tp[s];
                let fp = self.sae_fired[s] - tp;
                let fn_ = self.gt_fired[s] - tp;
                let tn = self.rows - tp - fp - fn_;
                [tp, fp, fn_, tn]
            })
            .collect()
    }

    /// Means over latents; all zeros when `S = 0`.
    pub fn compute(&self) -> ClassificationMetrics {
        let s = self.best_matches.len();
        if s == 0 {
            return ClassificationMetrics::default();
        }
        let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        let mut m = ClassificationMetrics::default();
        for [tp, fp, fn_, tn] in self.confusion() {
            let p = ratio(tp, tp + fp);
            let r = ratio(tp, tp + fn_);
            m.precision += p;
            m.recall += r;
            m.f1_score += if p + r > 0.0 {
                2.0 * p * r / (p + r)
            } else {
                0.0
            };
            m.accuracy += ratio(tp + tn, self.rows);
        }
        let n = s as f64;
        ClassificationMetrics {
            precision: m.precision / n,
            recall: m.recall / n,
            f1_score: m.f1_score / n,
            accuracy: m.accuracy / n,
        }
    }
}

/// Classification metrics of one batch: latents `[batch, S]`, dense true
/// activations `[batch, N]`, decoder rows `[S, D]`, true features `[N, D]`.
pub fn compute_classification_metrics<B: Backend>(
    sae_latents: Tensor<B, 2>,
    gt_feature_acts: Tensor<B, 2>,
    sae_decoder: Tensor<B, 2>,
    gt_features: Tensor<B, 2>,
) -> Result<ClassificationMetrics> {
    let mut calc = ClassificationCalculator::from_weights(sae_decoder, gt_features)?;
    let gt = Csr::from_tensor(gt_feature_acts)?;
    calc.add_batch(sae_latents, &gt)?;
    Ok(calc.compute())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn counts_match_a_dense_reference() {
        // 2 latents matched to features 1 and 0; 3 features.
        let mut c = ClassificationCalculator::new(vec![1, 0], 3).unwrap();
        let gt = Csr::from_dense(
            &[
                0.0, 1.0, 0.0, /**/ 2.0, 1.0, 0.0, /**/ 0.0, 0.0, 5.0, /**/ 1.0,
                0.0, 0.0,
            ],
            4,
            3,
        )
        .unwrap();
        let z = Tensor::<NdArray, 2>::from_data(
            [[1.0, 0.0], [0.0, -1.0], [3.0, 0.0], [0.0, 0.0]],
            &Default::default(),
        );
        c.add_batch(z.clone(), &gt).unwrap();
        // latent 0 (feature 1): fires rows {0, 2}, truth rows {0, 1}: TP 1 FP 1 FN 1 TN 1.
        // latent 1 (feature 0): fires rows {1}, truth rows {1, 3}: TP 1 FP 0 FN 1 TN 2.
        assert_eq!(c.confusion(), vec![[1, 1, 1, 1], [1, 0, 1, 2]]);
        let m = c.compute();
        assert!((m.precision - 0.75).abs() < 1e-12);
        assert!((m.recall - 0.5).abs() < 1e-12);
        assert!((m.f1_score - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((m.accuracy - 0.625).abs() < 1e-12);
        let mut host = ClassificationCalculator::new(vec![1, 0], 3).unwrap();
        let zh = crate::readback::to_f32(z, "z").unwrap();
        host.add_host(&zh, 4, &gt).unwrap();
        assert_eq!(host.confusion(), c.confusion());
    }

    #[test]
    fn malformed_sparse_latents_are_errors() {
        let mut c = ClassificationCalculator::new(vec![0, 1], 2).unwrap();
        let gt = Csr::zeros(1, 2);
        let mut z = Csr::empty(2);
        z.push_row([(1, 2.0)]);
        assert!(c.add_sparse(&z, &[0, 1], &gt).is_ok());
        // Malformed rows cannot be built: `Csr` checks its parts.
        assert!(Csr::from_parts(2, vec![0, 1], vec![5], vec![2.0]).is_err());
        assert!(Csr::from_parts(2, vec![0], vec![1], vec![2.0]).is_err());
        assert!(Csr::from_parts(2, vec![0, 1], vec![1], vec![2.0, 1.0]).is_err());
        // Well-formed rows of the wrong width are rejected by the calculator.
        let mut wide = Csr::empty(3);
        wide.push_row([(2, 1.0)]);
        assert!(c.add_sparse(&wide, &[0, 1, 0], &gt).is_err());
    }

    #[test]
    fn rejects_bad_shapes_and_indices() {
        assert!(ClassificationCalculator::new(vec![3], 3).is_err());
        let mut c = ClassificationCalculator::new(vec![0], 2).unwrap();
        let gt = Csr::zeros(2, 2);
        let z = Tensor::<NdArray, 2>::zeros([2, 2], &Default::default());
        assert!(c.add_batch(z, &gt).is_err());
        assert_eq!(
            ClassificationCalculator::new(vec![], 2).unwrap().compute(),
            ClassificationMetrics::default()
        );
    }
}
