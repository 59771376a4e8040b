//! Fraction of the input variance explained by the reconstruction.

use burn::prelude::*;

use crate::error::{shape_err, Result};
use crate::readback::to_f32;

/// `1 − E‖x − x̂‖² / Var(x)` with `Var(x) = E‖x‖² − ‖E x‖²` (summed over
/// dimensions). Cross-batch sums are `f64` on the host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExplainedVarianceCalculator {
    sum_x: Vec<f64>,
    sum_sq_norm: f64,
    sum_sq_residual: f64,
    rows: u64,
}

impl ExplainedVarianceCalculator {
    /// An empty calculator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a batch: SAE output `x̂` and input `x`, both `[batch, D]`.
    pub fn add_batch<B: Backend>(
        &mut self,
        sae_output: Tensor<B, 2>,
        hidden: Tensor<B, 2>,
    ) -> Result<()> {
        let [rows, d] = hidden.dims();
        if sae_output.dims() != [rows, d] {
            return Err(shape_err(
                "sae_output",
                format!("[{rows}, {d}] (the input's shape)"),
                &sae_output.dims(),
            ));
        }
        let col_sum = to_f32(hidden.clone().sum_dim(0).reshape([d]), "hidden sum")?;
        // Per-row sums keep each partial sum small before the f64 total.
        let sq = to_f32(
            hidden.clone().powi_scalar(2).sum_dim(1).reshape([rows]),
            "hidden norms",
        )?;
        let res = to_f32(
            (hidden - sae_output)
                .powi_scalar(2)
                .sum_dim(1)
                .reshape([rows]),
            "residual",
        )?;
        self.add_sums(
            &col_sum,
            sq.iter().map(|&v| v as f64).sum(),
            res.iter().map(|&v| v as f64).sum(),
            rows,
        )
    }

    /// Adds precomputed batch sums: `Σ_rows x` (`[D]`), `Σ ‖x‖²`, `Σ ‖x − x̂‖²`
    /// and the number of rows.
    pub fn add_sums(
        &mut self,
        sum_x: &[f32],
        sum_sq_norm: f64,
        sum_sq_residual: f64,
        rows: usize,
    ) -> Result<()> {
        if self.sum_x.is_empty() && self.rows == 0 {
            self.sum_x = vec![0.0; sum_x.len()];
        }
        if sum_x.len() != self.sum_x.len() {
            return Err(shape_err(
                "hidden",
                format!("[batch, {}] (as earlier batches)", self.sum_x.len()),
                &[rows, sum_x.len()],
            ));
        }
        for (a, &b) in self.sum_x.iter_mut().zip(sum_x) {
            *a += b as f64;
        }
        self.sum_sq_norm += sum_sq_norm;
        self.sum_sq_residual += sum_sq_residual;
        self.rows += rows as u64;
        Ok(())
    }

    /// The explained variance; 0.0 before any row; when the input has no
    /// variance (`< 1e-10`): 1.0 if the MSE is also `< 1e-10`, else 0.0.
    pub fn compute(&self) -> f64 {
        if self.rows == 0 {
            return 0.0;
        }
        let n = self.rows as f64;
        let mean_sq: f64 = self.sum_x.iter().map(|s| (s / n) * (s / n)).sum();
        let total_variance = self.sum_sq_norm / n - mean_sq;
        let mse = self.sum_sq_residual / n;
        if total_variance < 1e-10 {
            return if mse < 1e-10 { 1.0 } else { 0.0 };
        }
        1.0 - mse / total_variance
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn matches_hand_computation_across_batches() {
        let d = Default::default();
        // x rows: (1, 0), (3, 2); mean (2, 1); E‖x‖² = (1 + 13)/2 = 7; ‖E x‖² = 5 → Var 2.
        // Residuals: (0.5, 0) and (0, -1): E‖r‖² = 1.25/2 = 0.625 → EV = 1 − 0.3125.
        let mut c = ExplainedVarianceCalculator::new();
        assert_eq!(c.compute(), 0.0);
        c.add_batch(
            Tensor::<NdArray, 2>::from_data([[0.5, 0.0]], &d),
            Tensor::from_data([[1.0, 0.0]], &d),
        )
        .unwrap();
        c.add_batch(
            Tensor::<NdArray, 2>::from_data([[3.0, 3.0]], &d),
            Tensor::from_data([[3.0, 2.0]], &d),
        )
        .unwrap();
        assert!((c.compute() - 0.6875).abs() < 1e-12, "{}", c.compute());
    }

    #[test]
    fn constant_input_edge_cases() {
        let d = Default::default();
        let x = Tensor::<NdArray, 2>::from_data([[1.0, 1.0], [1.0, 1.0]], &d);
        let mut exact = ExplainedVarianceCalculator::new();
        exact.add_batch(x.clone(), x.clone()).unwrap();
        assert_eq!(exact.compute(), 1.0);
        let mut off = ExplainedVarianceCalculator::new();
        off.add_batch(x.clone() * 0.0, x).unwrap();
        assert_eq!(off.compute(), 0.0);
    }
}
