//! Ratio of reconstruction norm to input norm.

use burn::prelude::*;

use crate::error::{shape_err, Result};
use crate::readback::to_f32;

/// Mean of `‖x̂‖ / ‖x‖` over rows with `‖x‖ > min_input_norm`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShrinkageCalculator {
    min_input_norm: f64,
    total: f64,
    rows: u64,
}

impl Default for ShrinkageCalculator {
    fn default() -> Self {
        Self::new(1e-6)
    }
}

impl ShrinkageCalculator {
    /// Skips rows whose input norm is `≤ min_input_norm` (sae-lens: 1e-6).
    pub fn new(min_input_norm: f64) -> Self {
        Self {
            min_input_norm,
            total: 0.0,
            rows: 0,
        }
    }

    /// Adds a batch: SAE output and input, both `[batch, D]`.
    pub fn add_batch<B: Backend>(
        &mut self,
        sae_output: Tensor<B, 2>,
        hidden: Tensor<B, 2>,
    ) -> Result<()> {
        if sae_output.dims() != hidden.dims() {
            return Err(shape_err(
                "sae_output",
                format!("{:?} (the input's shape)", hidden.dims()),
                &sae_output.dims(),
            ));
        }
        let out = to_f32(
            sae_output.powi_scalar(2).sum_dim(1).sqrt(),
            "sae_output norms",
        )?;
        let inp = to_f32(hidden.powi_scalar(2).sum_dim(1).sqrt(), "hidden norms")?;
        self.add_norms(&out, &inp)
    }

    /// Adds per-row norms `‖x̂‖` and `‖x‖` (`[batch]` each).
    pub fn add_norms(&mut self, output_norms: &[f32], input_norms: &[f32]) -> Result<()> {
        if output_norms.len() != input_norms.len() {
            return Err(shape_err(
                "output_norms",
                format!("[{}]", input_norms.len()),
                &[output_norms.len()],
            ));
        }
        for (&o, &i) in output_norms.iter().zip(input_norms) {
            if i as f64 > self.min_input_norm {
                self.total += (o / i) as f64;
                self.rows += 1;
            }
        }
        Ok(())
    }

    /// Mean ratio; 0.0 when no row qualified.
    pub fn compute(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.total / self.rows as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn skips_zero_rows() {
        let d = Default::default();
        let x = Tensor::<NdArray, 2>::from_data([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]], &d);
        let y = Tensor::<NdArray, 2>::from_data([[0.0, 2.5], [1.0, 1.0], [0.0, 2.0]], &d);
        let mut c = ShrinkageCalculator::default();
        assert_eq!(c.compute(), 0.0);
        c.add_batch(y, x).unwrap();
        assert!((c.compute() - (0.5 + 2.0) / 2.0).abs() < 1e-7);
    }
}
