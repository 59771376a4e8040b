//! The tuner of the published SynthSAEBench experiments: a rate-damped,
//! multiplicative integral controller with a tanh-bounded step.
//!
//! ```text
//! ema    ← s · ema + (1 − s) · l0_batch        (the first batch sets ema)
//! rate   ← r · rate + (1 − r) · (ema − ema_prev)
//! from start_step on, with error = ema − target:
//!   |error| ≤ deadband                → no change
//!   gain = convergence_gain if error and rate have opposite signs
//!          (the average already moves toward the target), else 1
//!   a    = integral_gain · gain · tanh(gain_scale · |error| / target)
//!   m    ← clamp(m · (1 + a) if error > 0 else m · (1 − a), min, max)
//! ```
//!
//! The step is at most `integral_gain` of the multiplier, so the
//! coefficient drifts smoothly. While the L0 average already moves toward
//! the target the step is damped by `convergence_gain`, so the controller
//! pushes hard only when the L0 is stuck or moving away, and rarely
//! overshoots; the price is a slow final approach.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Gains of the rate-damped controller (defaults: the published values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateDampedSettings {
    /// Smoothing of the batch-L0 average (0.99).
    pub ema_smoothing: f64,
    /// Smoothing of the average's per-step change (0.95).
    pub rate_smoothing: f64,
    /// No change while |average − target| is at most this (0, in latents).
    pub deadband: f64,
    /// Largest relative change of the multiplier per step (3e-4).
    pub integral_gain: f64,
    /// Gain factor while the average moves toward the target (0.01).
    pub convergence_gain: f64,
    /// Slope of the tanh on the relative error (10).
    pub gain_scale: f64,
    /// Lower bound of the multiplier (0.01).
    pub min_multiplier: f64,
    /// Upper bound of the multiplier (100).
    pub max_multiplier: f64,
}

impl Default for RateDampedSettings {
    fn default() -> Self {
        Self {
            ema_smoothing: 0.99,
            rate_smoothing: 0.95,
            deadband: 0.0,
            integral_gain: 3e-4,
            convergence_gain: 0.01,
            gain_scale: 10.0,
            min_multiplier: 0.01,
            max_multiplier: 100.0,
        }
    }
}

impl RateDampedSettings {
    /// Checks the gains; errors name `l0_tuner.<field>`.
    pub fn validate(&self) -> Result<()> {
        let unit = |name: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(TrainError::config(
                    format!("l0_tuner.{name}"),
                    format!("must be in [0, 1), got {v}"),
                ))
            }
        };
        unit("ema_smoothing", self.ema_smoothing)?;
        unit("rate_smoothing", self.rate_smoothing)?;
        for (name, v) in [
            ("integral_gain", self.integral_gain),
            ("convergence_gain", self.convergence_gain),
            ("gain_scale", self.gain_scale),
            ("min_multiplier", self.min_multiplier),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(TrainError::config(
                    format!("l0_tuner.{name}"),
                    format!("must be finite and > 0, got {v}"),
                ));
            }
        }
        if !(self.deadband.is_finite() && self.deadband >= 0.0) {
            return Err(TrainError::config(
                "l0_tuner.deadband",
                format!("must be finite and ≥ 0, got {}", self.deadband),
            ));
        }
        if self.integral_gain >= 1.0 {
            return Err(TrainError::config(
                "l0_tuner.integral_gain",
                format!(
                    "must be < 1 (a step may not zero the multiplier), got {}",
                    self.integral_gain
                ),
            ));
        }
        if !(self.max_multiplier.is_finite() && self.max_multiplier >= self.min_multiplier) {
            return Err(TrainError::config(
                "l0_tuner.max_multiplier",
                format!(
                    "must be finite and ≥ min_multiplier ({}), got {}",
                    self.min_multiplier, self.max_multiplier
                ),
            ));
        }
        Ok(())
    }
}

/// Running state of the rate-damped controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateDamped {
    /// Average of the batch L0 (`None` before the first batch).
    pub ema_l0: Option<f64>,
    /// Average per-step change of `ema_l0`.
    pub ema_rate: f64,
    /// Multiplier of the steered coefficient.
    pub multiplier: f64,
}

impl Default for RateDamped {
    fn default() -> Self {
        Self {
            ema_l0: None,
            ema_rate: 0.0,
            multiplier: 1.0,
        }
    }
}

impl RateDamped {
    /// Feeds one batch's mean L0; `adjust`: whether the multiplier may move
    /// this step.
    pub fn update(&mut self, c: &RateDampedSettings, target: f64, batch_l0: f64, adjust: bool) {
        let ema = match self.ema_l0 {
            None => batch_l0,
            Some(prev) => {
                let ema = c.ema_smoothing * prev + (1.0 - c.ema_smoothing) * batch_l0;
                self.ema_rate =
                    c.rate_smoothing * self.ema_rate + (1.0 - c.rate_smoothing) * (ema - prev);
                ema
            }
        };
        self.ema_l0 = Some(ema);
        if !adjust {
            return;
        }
        let error = ema - target;
        if error.abs() <= c.deadband {
            return;
        }
        let converging = error * self.ema_rate < 0.0;
        let gain = if converging { c.convergence_gain } else { 1.0 };
        let a = c.integral_gain * gain * (c.gain_scale * error.abs() / target).tanh();
        let m = if error > 0.0 {
            self.multiplier * (1.0 + a)
        } else {
            self.multiplier * (1.0 - a)
        };
        self.multiplier = m.clamp(c.min_multiplier, c.max_multiplier);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_step_follows_the_formula() {
        let c = RateDampedSettings::default();
        let mut s = RateDamped::default();
        // First batch: the average is set, the rate stays 0, so the gain is
        // 1 and the multiplier rises by 3e-4 · tanh(10 · 10 / 20).
        s.update(&c, 20.0, 30.0, true);
        let a = 3e-4 * (10.0f64 * 10.0 / 20.0).tanh();
        assert_eq!(s.ema_l0, Some(30.0));
        assert_eq!(s.multiplier, 1.0 + a);
        // Second batch at 10: the average falls to 29.8 (toward the target
        // from above), the rate is negative, so the damped gain applies.
        let m = s.multiplier;
        s.update(&c, 20.0, 10.0, true);
        let ema = 0.99 * 30.0 + (1.0 - 0.99) * 10.0;
        assert_eq!(s.ema_l0, Some(ema));
        assert_eq!(s.ema_rate, (1.0 - 0.95) * (ema - 30.0));
        let a = 3e-4 * 0.01 * (10.0 * (ema - 20.0) / 20.0).tanh();
        assert_eq!(s.multiplier, m * (1.0 + a));
    }

    #[test]
    fn the_deadband_and_the_bounds_hold() {
        let c = RateDampedSettings {
            deadband: 1.0,
            integral_gain: 0.5,
            max_multiplier: 1.2,
            ..RateDampedSettings::default()
        };
        let mut s = RateDamped::default();
        s.update(&c, 20.0, 20.5, true);
        assert_eq!(s.multiplier, 1.0, "inside the deadband");
        let mut s = RateDamped::default();
        for _ in 0..10 {
            s.update(&c, 20.0, 100.0, true);
        }
        assert_eq!(s.multiplier, 1.2, "clamped at max_multiplier");
    }

    #[test]
    fn bad_gains_are_named() {
        for (c, field) in [
            (
                RateDampedSettings {
                    ema_smoothing: 1.0,
                    ..Default::default()
                },
                "ema_smoothing",
            ),
            (
                RateDampedSettings {
                    integral_gain: 0.0,
                    ..Default::default()
                },
                "integral_gain",
            ),
            (
                RateDampedSettings {
                    max_multiplier: 0.001,
                    ..Default::default()
                },
                "max_multiplier",
            ),
        ] {
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }
}
