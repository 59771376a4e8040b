//! `standard` training fields (sae-lens `StandardTrainingSAEConfig`).

use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};

/// `standard` training fields, in file order; missing keys take these
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StandardConfig {
    /// L1 coefficient λ.
    pub l1_coefficient: f64,
    /// `p` of the Lp sparsity penalty.
    pub lp_norm: f64,
    /// Linear warm-up of λ, in steps.
    pub l1_warm_up_steps: u64,
}

impl Default for StandardConfig {
    fn default() -> Self {
        Self {
            l1_coefficient: 1.0,
            lp_norm: 1.0,
            l1_warm_up_steps: 0,
        }
    }
}

impl StandardConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.lp_norm.is_finite() && self.lp_norm > 0.0) {
            return Err(invalid("lp_norm", "must be positive and finite"));
        }
        Ok(())
    }
}
