//! `topk` / `abstopk` training fields (sae-lens `TopKTrainingSAEConfig`).

use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};

/// `topk` / `abstopk` training fields, in file order; missing keys take
/// these defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TopKConfig {
    /// Latents kept per row.
    pub k: usize,
    /// sae-lens's sparse-tensor switch (kept for the file; synthsae's result is the same).
    pub use_sparse_activations: bool,
    /// Coefficient of the aux-k loss.
    pub aux_loss_coefficient: f64,
    /// Select and decode as if decoder rows had unit norm.
    pub rescale_acts_by_decoder_norm: bool,
}

impl Default for TopKConfig {
    fn default() -> Self {
        Self {
            k: 100,
            use_sparse_activations: false,
            aux_loss_coefficient: 1.0,
            rescale_acts_by_decoder_norm: true,
        }
    }
}

impl TopKConfig {
    pub(crate) fn validate(&self, d_sae: usize) -> Result<()> {
        if self.k == 0 || self.k > d_sae {
            return Err(invalid("k", format!("must be in 1..={d_sae} (d_sae)")));
        }
        Ok(())
    }
}
