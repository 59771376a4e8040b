//! `gated` training fields (sae-lens `GatedTrainingSAEConfig`).

use serde::{Deserialize, Serialize};

/// `gated` training fields, in file order; missing keys take these
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatedConfig {
    /// L1 coefficient λ.
    pub l1_coefficient: f64,
    /// Linear warm-up of λ, in steps.
    pub l1_warm_up_steps: u64,
}

impl Default for GatedConfig {
    fn default() -> Self {
        Self {
            l1_coefficient: 1.0,
            l1_warm_up_steps: 0,
        }
    }
}
