//! Adam's hyper-parameters.

/// Adam hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamSettings {
    /// β₁ (sae-lens `adam_beta1`, default 0.9).
    pub beta1: f64,
    /// β₂ (sae-lens `adam_beta2`, default 0.999).
    pub beta2: f64,
    /// ε added to the denominator (PyTorch default 1e-8).
    pub epsilon: f64,
    /// Global L2 gradient-norm bound (sae-lens: 1.0, fixed); `None` disables.
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamSettings {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            max_grad_norm: Some(1.0),
        }
    }
}
