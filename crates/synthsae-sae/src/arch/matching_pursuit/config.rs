//! `matching_pursuit` fields (training and inference, sae-lens
//! `MatchingPursuitSAEConfig`).

use serde::{Deserialize, Serialize};

/// `matching_pursuit` fields, in file order; missing keys take these
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MatchingPursuitConfig {
    /// A row is done when its residual norm falls below this (if > 0).
    pub residual_threshold: f64,
    /// Iteration cap (`None` = `d_in`).
    pub max_iterations: Option<usize>,
    /// A row is done when an iteration leaves its support unchanged.
    pub stop_on_duplicate_support: bool,
}

impl Default for MatchingPursuitConfig {
    fn default() -> Self {
        Self {
            residual_threshold: 1e-2,
            max_iterations: None,
            stop_on_duplicate_support: true,
        }
    }
}
