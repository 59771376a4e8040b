//! L0 auto-tuners: steer one sparsity coefficient so that the SAE's mean
//! batch L0 reaches a target, as SynthSAEBench did for its Standard-L1 and
//! JumpReLU runs.
//!
//! Two controllers ([`Controller`]), picked by `kind` in the config:
//! * `rate_damped` (default): the controller of the published SynthSAEBench
//!   experiments ([`rate_damped`]);
//! * `log_integral`: an integral controller on the log of the multiplier
//!   ([`log_integral`]), synthsae's earlier tuner.
//!
//! Both keep an exponential moving average of the batch L0 from the first
//! step on, and change the multiplier only from `start_step` on. The
//! coefficient a step uses is the scheduled one (after its warm-up) times
//! the multiplier the tuner holds before that step's batch is seen.
//!
//! In a runner config:
//!
//! ```json
//! "l0_tuner": {"target_l0": 25, "kind": "rate_damped", "start_step": 0,
//!              "integral_gain": 3e-4, "convergence_gain": 0.01}
//! ```

pub mod log_integral;
pub mod rate_damped;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{Result, TrainError};

pub use log_integral::{LogIntegral, LogIntegralSettings};
pub use rate_damped::{RateDamped, RateDampedSettings};

/// The controller's settings, one variant per `kind`.
#[derive(Debug, Clone, PartialEq)]
pub enum ControllerSettings {
    /// `kind: "rate_damped"`.
    RateDamped(RateDampedSettings),
    /// `kind: "log_integral"`.
    LogIntegral(LogIntegralSettings),
}

impl ControllerSettings {
    /// The `kind` string of these settings.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RateDamped(_) => "rate_damped",
            Self::LogIntegral(_) => "log_integral",
        }
    }
}

/// Settings of the L0 auto-tuner (`l0_tuner` in a runner config).
#[derive(Debug, Clone, PartialEq)]
pub struct L0TunerConfig {
    /// The mean number of active latents per sample to reach.
    pub target_l0: f64,
    /// Name of the coefficient to steer (`"l1"` for standard, `"l0"` for
    /// JumpReLU); `None`: the SAE's only coefficient.
    pub coefficient: Option<String>,
    /// First step at which the multiplier changes (default 0). The L0
    /// average is kept from step 0 regardless.
    pub start_step: u64,
    /// The controller and its gains.
    pub controller: ControllerSettings,
}

/// The keys every kind shares.
const COMMON_KEYS: [&str; 4] = ["kind", "target_l0", "coefficient", "start_step"];

impl L0TunerConfig {
    /// The published SynthSAEBench tuner for `target_l0`, from step 0.
    pub fn new(target_l0: f64) -> Self {
        Self::with_controller(
            target_l0,
            ControllerSettings::RateDamped(RateDampedSettings::default()),
        )
    }

    /// A tuner for `target_l0` with `controller`, from step 0.
    pub fn with_controller(target_l0: f64, controller: ControllerSettings) -> Self {
        Self {
            target_l0,
            coefficient: None,
            start_step: 0,
            controller,
        }
    }

    /// Checks the fields; errors name `l0_tuner.<field>`.
    pub fn validate(&self) -> Result<()> {
        if !(self.target_l0.is_finite() && self.target_l0 > 0.0) {
            return Err(TrainError::config(
                "l0_tuner.target_l0",
                format!("must be > 0, got {}", self.target_l0),
            ));
        }
        match &self.controller {
            ControllerSettings::RateDamped(s) => s.validate(),
            ControllerSettings::LogIntegral(s) => s.validate(),
        }
    }

    /// The config as a JSON object: the common keys, then the controller's.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), self.controller.kind().into());
        m.insert("target_l0".into(), self.target_l0.into());
        m.insert(
            "coefficient".into(),
            self.coefficient.clone().map_or(Value::Null, Value::String),
        );
        m.insert("start_step".into(), self.start_step.into());
        let gains = match &self.controller {
            ControllerSettings::RateDamped(s) => serde_json::to_value(s),
            ControllerSettings::LogIntegral(s) => serde_json::to_value(s),
        }
        .expect("tuner settings serialise");
        if let Value::Object(g) = gains {
            m.extend(g);
        }
        Value::Object(m)
    }

    /// Reads a config from a JSON object; `kind` defaults to `rate_damped`.
    /// Unknown keys are an error naming the key.
    pub fn from_value(value: Value) -> std::result::Result<Self, String> {
        let Value::Object(mut m) = value else {
            return Err("l0_tuner must be a JSON object".into());
        };
        let kind = match m.remove("kind") {
            None | Some(Value::Null) => "rate_damped".to_string(),
            Some(Value::String(s)) => s,
            Some(other) => return Err(format!("l0_tuner.kind must be a string, got {other}")),
        };
        let target_l0 = match m.remove("target_l0") {
            Some(v) => v
                .as_f64()
                .ok_or_else(|| format!("l0_tuner.target_l0 must be a number, got {v}"))?,
            None => return Err("missing field `target_l0` in l0_tuner".into()),
        };
        let coefficient = match m.remove("coefficient") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                return Err(format!(
                    "l0_tuner.coefficient must be a string, got {other}"
                ))
            }
        };
        let start_step = match m.remove("start_step") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_u64().ok_or_else(|| {
                format!("l0_tuner.start_step must be a non-negative integer, got {v}")
            })?,
        };
        let rest = Value::Object(m);
        let named = |e: serde_json::Error| format!("l0_tuner ({kind}): {e}");
        let controller = match kind.as_str() {
            "rate_damped" => {
                ControllerSettings::RateDamped(serde_json::from_value(rest).map_err(named)?)
            }
            "log_integral" => {
                ControllerSettings::LogIntegral(serde_json::from_value(rest).map_err(named)?)
            }
            other => {
                return Err(format!(
                    "l0_tuner.kind `{other}` is not a tuner; use rate_damped or log_integral \
                     (the keys {COMMON_KEYS:?} apply to both)"
                ))
            }
        };
        Ok(Self {
            target_l0,
            coefficient,
            start_step,
            controller,
        })
    }
}

impl Serialize for L0TunerConfig {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for L0TunerConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Self::from_value(Value::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// The controller's running state, one variant per kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControllerState {
    /// State of the rate-damped controller.
    RateDamped(RateDamped),
    /// State of the log-integral controller.
    LogIntegral(LogIntegral),
}

/// A tuner and its running state (saved in checkpoints, so that a resumed
/// run continues with the same multiplier and averages, bit for bit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L0Tuner {
    /// Settings.
    pub config: L0TunerConfig,
    /// Running state.
    pub state: ControllerState,
}

impl L0Tuner {
    /// A tuner with multiplier 1 and no L0 seen yet.
    pub fn new(config: L0TunerConfig) -> Self {
        let state = match &config.controller {
            ControllerSettings::RateDamped(_) => ControllerState::RateDamped(RateDamped::default()),
            ControllerSettings::LogIntegral(_) => {
                ControllerState::LogIntegral(LogIntegral::default())
            }
        };
        Self { config, state }
    }

    /// Current multiplier of the steered coefficient.
    pub fn factor(&self) -> f64 {
        match &self.state {
            ControllerState::RateDamped(s) => s.multiplier,
            ControllerState::LogIntegral(s) => s.log_factor.exp(),
        }
    }

    /// The moving average of the batch L0 (`None` before the first batch).
    pub fn ema_l0(&self) -> Option<f64> {
        match &self.state {
            ControllerState::RateDamped(s) => s.ema_l0,
            ControllerState::LogIntegral(s) => s.ema,
        }
    }

    /// Feeds the mean L0 of step `step`'s batch: the average always moves,
    /// the multiplier only from `start_step` on.
    pub fn update(&mut self, step: u64, batch_l0: f64) {
        let adjust = step >= self.config.start_step;
        let target = self.config.target_l0;
        match (&self.config.controller, &mut self.state) {
            (ControllerSettings::RateDamped(c), ControllerState::RateDamped(s)) => {
                s.update(c, target, batch_l0, adjust)
            }
            (ControllerSettings::LogIntegral(c), ControllerState::LogIntegral(s)) => {
                s.update(c, target, batch_l0, adjust)
            }
            // A config and state of different kinds cannot be built by `new`;
            // a checkpoint holding such a pair is refused when read
            // (`check_consistent`).
            _ => unreachable!("tuner config and state of different kinds"),
        }
    }

    /// Checks that the state has the config's kind (a hand-edited or
    /// corrupted checkpoint may not).
    pub fn check_consistent(&self) -> std::result::Result<(), String> {
        let state_kind = match &self.state {
            ControllerState::RateDamped(_) => "rate_damped",
            ControllerState::LogIntegral(_) => "log_integral",
        };
        if state_kind == self.config.controller.kind() {
            Ok(())
        } else {
            Err(format!(
                "tuner config is `{}` but its state is `{state_kind}`",
                self.config.controller.kind()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A toy plant: L0 falls exponentially with the coefficient,
    /// `l0 = 100 · exp(−coef)`; each tuner must settle where
    /// `coef = ln(100 / 25)`, within 1% of the target L0.
    fn settle(mut t: L0Tuner, base: f64, steps: u64) -> f64 {
        for step in 0..steps {
            let coef = base * t.factor();
            t.update(step, 100.0 * (-coef).exp());
        }
        100.0 * (-(base * t.factor())).exp()
    }

    /// The published controller is slow once the L0 moves toward the
    /// target (its step is then 1% of 3e-4): from `l0 = 30.1` it needs
    /// about 10⁵ steps; after 3·10⁵ it is within 1% of the target.
    #[test]
    fn the_rate_damped_tuner_settles_on_the_target() {
        let l0 = settle(L0Tuner::new(L0TunerConfig::new(25.0)), 1.2, 300_000);
        assert!((l0 - 25.0).abs() < 0.25, "l0 {l0}");
    }

    #[test]
    fn the_log_integral_tuner_settles_on_the_target() {
        let cfg = L0TunerConfig::with_controller(
            25.0,
            ControllerSettings::LogIntegral(LogIntegralSettings {
                gain: 0.05,
                ..LogIntegralSettings::default()
            }),
        );
        let l0 = settle(L0Tuner::new(cfg), 0.1, 20_000);
        assert!((l0 - 25.0).abs() < 0.25, "l0 {l0}");
    }

    #[test]
    fn the_multiplier_waits_for_start_step_but_the_average_does_not() {
        let mut t = L0Tuner::new(L0TunerConfig {
            start_step: 10,
            ..L0TunerConfig::new(25.0)
        });
        for step in 0..10 {
            t.update(step, 50.0);
        }
        assert_eq!(t.factor(), 1.0);
        assert_eq!(t.ema_l0(), Some(50.0));
        t.update(10, 50.0);
        assert!(t.factor() > 1.0, "too many latents must raise the penalty");
    }

    #[test]
    fn configs_round_trip_and_default_to_the_published_kind() {
        let cfg = L0TunerConfig::from_value(json!({"target_l0": 25})).unwrap();
        assert_eq!(cfg, L0TunerConfig::new(25.0));
        for cfg in [
            L0TunerConfig {
                coefficient: Some("l1".into()),
                start_step: 7,
                ..L0TunerConfig::new(3.0)
            },
            L0TunerConfig::with_controller(
                4.0,
                ControllerSettings::LogIntegral(LogIntegralSettings::default()),
            ),
        ] {
            let text = serde_json::to_string(&cfg).unwrap();
            assert_eq!(serde_json::from_str::<L0TunerConfig>(&text).unwrap(), cfg);
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let err = L0TunerConfig::new(0.0).validate().unwrap_err().to_string();
        assert!(err.contains("target_l0"), "{err}");
        for (v, needle) in [
            (json!({"target_l0": 5, "kind": "pid"}), "kind `pid`"),
            (json!({"target_l0": 5, "gian": 1.0}), "gian"),
            (
                json!({"target_l0": 5, "kind": "log_integral", "integral_gain": 1.0}),
                "integral_gain",
            ),
            (json!({"target_l0": 5, "start_step": -1}), "start_step"),
            (json!({"kind": "rate_damped"}), "target_l0"),
        ] {
            let err = L0TunerConfig::from_value(v).unwrap_err();
            assert!(err.contains(needle), "{err} should name {needle}");
        }
    }

    #[test]
    fn state_round_trips_exactly() {
        let mut t = L0Tuner::new(L0TunerConfig::new(25.0));
        for step in 0..500 {
            t.update(step, 30.0 + (step % 7) as f64 * 0.37);
        }
        let text = serde_json::to_string(&t).unwrap();
        let back: L0Tuner = serde_json::from_str(&text).unwrap();
        assert_eq!(back, t);
        assert!(back.check_consistent().is_ok());
    }
}
