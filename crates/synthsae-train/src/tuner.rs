//! L0 auto-tuner: steers a sparsity coefficient so that the SAE's mean L0
//! reaches a target, as SynthSAEBench did for its Standard-L1 and JumpReLU
//! runs.
//!
//! A multiplicative integral controller on an exponential moving average of
//! the batch L0:
//!
//! ```text
//! ema ← d · ema + (1 − d) · l0_batch          (ema starts at the first batch's L0)
//! log f ← clamp(log f + gain · (ema − target) / target, ±max_log_factor)
//! coefficient used = scheduled coefficient · f
//! ```
//!
//! Too many active latents raise the penalty, too few lower it; the integral
//! form removes the steady-state error a proportional controller would leave.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Settings of the L0 auto-tuner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L0TunerConfig {
    /// The mean number of active latents per sample to reach.
    pub target_l0: f64,
    /// Name of the coefficient to steer (`"l1"` for standard, `"l0"` for
    /// JumpReLU); `None`: the SAE's only coefficient.
    #[serde(default)]
    pub coefficient: Option<String>,
    /// Integral gain per step.
    #[serde(default = "default_gain")]
    pub gain: f64,
    /// EMA decay of the batch L0.
    #[serde(default = "default_ema_decay")]
    pub ema_decay: f64,
    /// Bound on |log f| (the factor stays within `[e^-m, e^m]`).
    #[serde(default = "default_max_log_factor")]
    pub max_log_factor: f64,
}

fn default_gain() -> f64 {
    0.01
}
fn default_ema_decay() -> f64 {
    0.99
}
fn default_max_log_factor() -> f64 {
    12.0
}

impl L0TunerConfig {
    /// A tuner for `target_l0` with the default gain and EMA.
    pub fn new(target_l0: f64) -> Self {
        Self {
            target_l0,
            coefficient: None,
            gain: default_gain(),
            ema_decay: default_ema_decay(),
            max_log_factor: default_max_log_factor(),
        }
    }

    /// Checks the fields.
    pub fn validate(&self) -> Result<()> {
        if !(self.target_l0.is_finite() && self.target_l0 > 0.0) {
            return Err(TrainError::config(
                "l0_tuner.target_l0",
                format!("must be > 0, got {}", self.target_l0),
            ));
        }
        if !(self.gain.is_finite() && self.gain > 0.0) {
            return Err(TrainError::config("l0_tuner.gain", "must be > 0"));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(TrainError::config(
                "l0_tuner.ema_decay",
                "must be in [0, 1)",
            ));
        }
        if !(self.max_log_factor.is_finite() && self.max_log_factor > 0.0) {
            return Err(TrainError::config("l0_tuner.max_log_factor", "must be > 0"));
        }
        Ok(())
    }
}

/// The tuner's running state (saved in checkpoints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L0Tuner {
    /// Settings.
    pub config: L0TunerConfig,
    /// EMA of the batch L0 (`None` before the first batch).
    pub ema: Option<f64>,
    /// Natural log of the current multiplier.
    pub log_factor: f64,
}

impl L0Tuner {
    /// A tuner with multiplier 1.
    pub fn new(config: L0TunerConfig) -> Self {
        Self {
            config,
            ema: None,
            log_factor: 0.0,
        }
    }

    /// Current multiplier applied to the steered coefficient.
    pub fn factor(&self) -> f64 {
        self.log_factor.exp()
    }

    /// Feeds one batch's mean L0.
    pub fn update(&mut self, batch_l0: f64) {
        let c = &self.config;
        let ema = match self.ema {
            None => batch_l0,
            Some(e) => c.ema_decay * e + (1.0 - c.ema_decay) * batch_l0,
        };
        self.ema = Some(ema);
        let error = (ema - c.target_l0) / c.target_l0;
        self.log_factor =
            (self.log_factor + c.gain * error).clamp(-c.max_log_factor, c.max_log_factor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy plant: L0 falls exponentially with the coefficient,
    /// `l0 = 100 · exp(−coef)`. The tuner must settle at coef = ln(100/25).
    #[test]
    fn settles_on_the_target_of_a_monotone_plant() {
        let mut t = L0Tuner::new(L0TunerConfig {
            gain: 0.05,
            ..L0TunerConfig::new(25.0)
        });
        let base = 0.1;
        for _ in 0..20_000 {
            let coef = base * t.factor();
            t.update(100.0 * (-coef).exp());
        }
        let coef = base * t.factor();
        let l0 = 100.0 * (-coef).exp();
        assert!((l0 - 25.0).abs() < 0.25, "l0 {l0}, coef {coef}");
    }

    #[test]
    fn invalid_settings_are_named() {
        let err = L0TunerConfig::new(0.0).validate().unwrap_err().to_string();
        assert!(err.contains("target_l0"), "{err}");
    }
}
