//! `jumprelu` training fields (sae-lens `JumpReLUTrainingSAEConfig`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::fields::{read, read_field};
use crate::error::{invalid, Result};

/// JumpReLU sparsity-loss mode (`jumprelu_sparsity_loss_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SparsityLossMode {
    /// `λ · L0` with the step pseudo-gradient.
    #[default]
    Step,
    /// `λ · Σ tanh(c · z · ‖W_dec‖)`.
    Tanh,
    /// `λ · 2/target · (L0 − target)²`.
    Quadratic,
}

/// `jumprelu` training fields, in file order; missing keys take these
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JumpReluConfig {
    /// Initial threshold θ of every latent.
    pub jumprelu_init_threshold: f64,
    /// Bandwidth ε of the rectangle kernel.
    pub jumprelu_bandwidth: f64,
    /// Sparsity loss mode.
    pub jumprelu_sparsity_loss_mode: SparsityLossMode,
    /// λ of the sparsity loss.
    pub l0_coefficient: f64,
    /// Linear warm-up of λ, in steps.
    pub l0_warm_up_steps: u64,
    /// Coefficient of the pre-activation loss (`None` = off).
    pub pre_act_loss_coefficient: Option<f64>,
    /// `c` of the tanh loss.
    pub jumprelu_tanh_scale: f64,
    /// Straight-through gradient also to the pre-activations.
    pub jumprelu_ste_to_input: bool,
    /// Target L0 of the quadratic loss.
    pub target_l0: Option<f64>,
}

impl Default for JumpReluConfig {
    fn default() -> Self {
        Self {
            jumprelu_init_threshold: 0.01,
            jumprelu_bandwidth: 0.05,
            jumprelu_sparsity_loss_mode: SparsityLossMode::Step,
            l0_coefficient: 1.0,
            l0_warm_up_steps: 0,
            pre_act_loss_coefficient: None,
            jumprelu_tanh_scale: 4.0,
            jumprelu_ste_to_input: false,
            target_l0: None,
        }
    }
}

impl JumpReluConfig {
    /// Reads the fields from a `cfg.json` object; the loss mode is checked
    /// before the others.
    pub(crate) fn from_map(m: &Map<String, Value>) -> Result<Self> {
        read_field::<SparsityLossMode>(m, "jumprelu_sparsity_loss_mode")?;
        read(m)
    }

    pub(crate) fn validate(&self, d_sae: usize) -> Result<()> {
        if !(self.jumprelu_bandwidth.is_finite() && self.jumprelu_bandwidth > 0.0) {
            return Err(invalid("jumprelu_bandwidth", "must be positive and finite"));
        }
        if self.jumprelu_sparsity_loss_mode == SparsityLossMode::Quadratic {
            match self.target_l0 {
                None => {
                    return Err(invalid(
                        "target_l0",
                        "must be set for quadratic sparsity loss mode",
                    ))
                }
                Some(t) if t.is_nan() || t <= 0.0 => {
                    return Err(invalid("target_l0", "must be greater than 0"))
                }
                Some(t) if t > d_sae as f64 => {
                    return Err(invalid(
                        "target_l0",
                        format!("must be at most d_sae ({d_sae}), got {t}"),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
