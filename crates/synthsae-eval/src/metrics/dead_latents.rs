//! Latents that never fired.

use burn::prelude::*;

use crate::error::{shape_err, Result};
use crate::readback::nonzero_counts_per_column;

/// Counts latents that were never `≠ 0` over all batches.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLatentsCalculator {
    ever_fired: Vec<bool>,
}

impl DeadLatentsCalculator {
    /// For `num_latents` latents (`S`).
    pub fn new(num_latents: usize) -> Self {
        Self {
            ever_fired: vec![false; num_latents],
        }
    }

    /// Adds a `[batch, S]` batch of latents.
    pub fn add_batch<B: Backend>(&mut self, latents: Tensor<B, 2>) -> Result<()> {
        let counts = nonzero_counts_per_column(latents, "sae_latents")?;
        self.add_fire_counts(&counts)
    }

    /// Adds per-latent firing counts of one batch (`[S]`).
    pub fn add_fire_counts(&mut self, counts: &[u64]) -> Result<()> {
        if counts.len() != self.ever_fired.len() {
            return Err(shape_err(
                "fire counts",
                format!("[{}]", self.ever_fired.len()),
                &[counts.len()],
            ));
        }
        for (f, &c) in self.ever_fired.iter_mut().zip(counts) {
            *f |= c > 0;
        }
        Ok(())
    }

    /// Number of latents never active.
    pub fn compute(&self) -> u64 {
        self.ever_fired.iter().filter(|&&f| !f).count() as u64
    }

    /// Per latent: has it fired (`[S]`).
    pub fn ever_fired(&self) -> &[bool] {
        &self.ever_fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn counts_never_active_latents() {
        let mut c = DeadLatentsCalculator::new(3);
        assert_eq!(c.compute(), 3);
        let t = Tensor::<NdArray, 2>::from_data(
            [[0.0, -0.5, 0.0], [0.0, 0.0, 0.0]],
            &Default::default(),
        );
        c.add_batch(t).unwrap();
        assert_eq!(c.compute(), 2);
        c.add_fire_counts(&[0, 0, 4]).unwrap();
        assert_eq!(c.compute(), 1);
        assert!(c.add_fire_counts(&[1]).is_err());
    }
}
