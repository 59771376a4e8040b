//! `batchtopk` training fields (sae-lens `BatchTopKTrainingSAEConfig`).

use serde::{Deserialize, Serialize};

use crate::config::fields::number;
use crate::error::{invalid, Result};

/// `batchtopk` training fields, in file order; missing keys take these
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchTopKConfig {
    /// Mean latents kept per row; `floor(k · batch)` are kept per batch.
    /// Written as an integer when it is one (as sae-lens: `k: 6`).
    #[serde(serialize_with = "number")]
    pub k: f64,
    /// Kept for the file.
    pub use_sparse_activations: bool,
    /// Coefficient of the aux-k loss.
    pub aux_loss_coefficient: f64,
    /// Select and decode as if decoder rows had unit norm.
    pub rescale_acts_by_decoder_norm: bool,
    /// EMA rate of the inference threshold.
    pub topk_threshold_lr: f64,
}

impl Default for BatchTopKConfig {
    fn default() -> Self {
        Self {
            k: 100.0,
            use_sparse_activations: false,
            aux_loss_coefficient: 1.0,
            rescale_acts_by_decoder_norm: true,
            topk_threshold_lr: 0.01,
        }
    }
}

impl BatchTopKConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.k.is_finite() && self.k > 0.0) {
            return Err(invalid("k", "must be positive and finite"));
        }
        Ok(())
    }
}
