//! An integral controller on the log of the multiplier:
//!
//! ```text
//! ema   ← d · ema + (1 − d) · l0_batch         (the first batch sets ema)
//! log f ← clamp(log f + gain · (ema − target) / target, ±max_log_factor)
//! ```
//!
//! Faster than the published rate-damped controller (its step is not
//! bounded by a tanh), at the price of more overshoot on a slow plant.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Gains of the log-integral controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogIntegralSettings {
    /// Integral gain per step on the relative error (0.01).
    pub gain: f64,
    /// Smoothing of the batch-L0 average (0.99).
    pub ema_decay: f64,
    /// Bound on |log f| (12: the multiplier stays within `[e^-12, e^12]`).
    pub max_log_factor: f64,
}

impl Default for LogIntegralSettings {
    fn default() -> Self {
        Self {
            gain: 0.01,
            ema_decay: 0.99,
            max_log_factor: 12.0,
        }
    }
}

impl LogIntegralSettings {
    /// Checks the gains; errors name `l0_tuner.<field>`.
    pub fn validate(&self) -> Result<()> {
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

/// Running state of the log-integral controller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogIntegral {
    /// Average of the batch L0 (`None` before the first batch).
    pub ema: Option<f64>,
    /// Natural log of the multiplier.
    pub log_factor: f64,
}

impl LogIntegral {
    /// Feeds one batch's mean L0; `adjust`: whether the multiplier may move
    /// this step.
    pub fn update(&mut self, c: &LogIntegralSettings, target: f64, batch_l0: f64, adjust: bool) {
        let ema = match self.ema {
            None => batch_l0,
            Some(e) => c.ema_decay * e + (1.0 - c.ema_decay) * batch_l0,
        };
        self.ema = Some(ema);
        if adjust {
            let error = (ema - target) / target;
            self.log_factor =
                (self.log_factor + c.gain * error).clamp(-c.max_log_factor, c.max_log_factor);
        }
    }
}
