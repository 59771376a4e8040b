//! sae-lens's `SyntheticSAERunnerConfig` (`runner_config.json`, spec §7.1),
//! plus synthsae's own optional fields.
//!
//! Reading accepts every sae-lens key (unknown keys are an error, naming the
//! key, as sae-lens's constructor rejects them) and the synthsae keys
//! `seed`, `data_seed`, `backend`, `hidden_path`, `l0_tuner`,
//! `max_grad_norm`, `log_every`. Writing
//! ([`RunnerConfig::to_saelens_json`]) emits only sae-lens's keys in its
//! order, so sae-lens can read the file back; the synthsae keys go to
//! [`RunnerConfig::synthsae_json`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use synthsae_data::{HiddenPath, SyntheticModelConfig};
use synthsae_sae::config::TrainingSaeConfig;

use crate::config::TrainerConfig;
use crate::error::{Result, TrainError};
use crate::tuner::L0TunerConfig;

/// Where the synthetic model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSpec {
    /// Build it from this config.
    Config(Box<SyntheticModelConfig>),
    /// Load it from a source string (a local path, or `repo_id[:subfolder]`
    /// on the HuggingFace hub, resolved by the caller).
    Source(String),
}

/// sae-lens's `LoggingConfig`; kept so configs round-trip. synthsae logs to
/// `metrics.jsonl`, never to wandb.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// sae-lens default `true`; ignored (no wandb).
    #[serde(default = "yes")]
    pub log_to_wandb: bool,
    /// Ignored.
    #[serde(default)]
    pub log_activations_store_to_wandb: bool,
    /// Ignored.
    #[serde(default)]
    pub log_optimizer_state_to_wandb: bool,
    /// Ignored.
    #[serde(default = "yes")]
    pub log_weights_to_wandb: bool,
    /// Ignored.
    #[serde(default = "default_project")]
    pub wandb_project: String,
    /// Ignored.
    #[serde(default)]
    pub wandb_id: Option<String>,
    /// Run name; `None` → `synthetic-{architecture}-{d_sae}-LR-{lr}`.
    #[serde(default)]
    pub run_name: Option<String>,
    /// Ignored.
    #[serde(default)]
    pub wandb_entity: Option<String>,
    /// Steps between metric records (the default for `log_every`).
    #[serde(default = "default_log_frequency")]
    pub wandb_log_frequency: u64,
    /// Ignored (synthsae evaluates every `eval_frequency` steps).
    #[serde(default = "default_eval_every_logs")]
    pub eval_every_n_wandb_logs: u64,
}

fn yes() -> bool {
    true
}
fn default_project() -> String {
    "sae_lens_training".into()
}
fn default_log_frequency() -> u64 {
    10
}
fn default_eval_every_logs() -> u64 {
    100
}

impl Default for LoggingConfig {
    fn default() -> Self {
        serde_json::from_value(Value::Object(Map::new())).expect("defaults deserialise")
    }
}

/// The sae-lens keys other than `synthetic_model`, `sae` and `logger`, with
/// their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scalars {
    #[serde(default = "d_training_samples")]
    training_samples: u64,
    #[serde(default = "d_batch_size")]
    batch_size: usize,
    #[serde(default = "d_lr")]
    lr: f64,
    #[serde(default)]
    lr_warm_up_steps: u64,
    #[serde(default)]
    lr_decay_steps: u64,
    #[serde(default = "d_scheduler")]
    lr_scheduler_name: String,
    #[serde(default)]
    lr_end: Option<f64>,
    #[serde(default = "d_beta1")]
    adam_beta1: f64,
    #[serde(default = "d_beta2")]
    adam_beta2: f64,
    #[serde(default = "d_one")]
    n_restart_cycles: u64,
    #[serde(default = "d_device")]
    device: String,
    #[serde(default)]
    autocast_sae: bool,
    #[serde(default)]
    autocast_data: bool,
    #[serde(default)]
    n_checkpoints: u64,
    #[serde(default = "d_checkpoint_path")]
    checkpoint_path: Option<String>,
    #[serde(default)]
    save_final_checkpoint: bool,
    #[serde(default = "d_output_path")]
    output_path: Option<String>,
    #[serde(default)]
    save_synthetic_model: bool,
    #[serde(default)]
    eval_frequency: u64,
    #[serde(default = "d_eval_samples")]
    eval_samples: usize,
    #[serde(default = "yes")]
    run_final_eval: bool,
    #[serde(default = "d_dead_window")]
    dead_feature_window: u64,
    #[serde(default = "d_sampling_window")]
    feature_sampling_window: u64,
    #[serde(default = "d_norm_batches")]
    n_batches_for_norm_estimate: u64,
    #[serde(default = "d_version")]
    sae_lens_version: String,
    // synthsae's own fields.
    #[serde(default, skip_serializing)]
    seed: Option<u64>,
    #[serde(default, skip_serializing)]
    data_seed: Option<u64>,
    #[serde(default, skip_serializing)]
    backend: Option<String>,
    // Parsed by `HiddenPath::from_str`, so that a bad name is reported under
    // its key (serde's enum error names only the value).
    #[serde(default, skip_serializing)]
    hidden_path: Option<String>,
    #[serde(default, skip_serializing)]
    l0_tuner: Option<L0TunerConfig>,
    #[serde(default = "d_max_grad_norm", skip_serializing)]
    max_grad_norm: Option<f64>,
    #[serde(default, skip_serializing)]
    log_every: Option<u64>,
}

fn d_training_samples() -> u64 {
    100_000_000
}
fn d_batch_size() -> usize {
    1024
}
fn d_lr() -> f64 {
    3e-4
}
fn d_scheduler() -> String {
    "constant".into()
}
fn d_beta1() -> f64 {
    0.9
}
fn d_beta2() -> f64 {
    0.999
}
fn d_one() -> u64 {
    1
}
fn d_device() -> String {
    "cpu".into()
}
fn d_checkpoint_path() -> Option<String> {
    Some("checkpoints".into())
}
fn d_output_path() -> Option<String> {
    Some("output".into())
}
fn d_eval_samples() -> usize {
    500_000
}
fn d_dead_window() -> u64 {
    1000
}
fn d_sampling_window() -> u64 {
    2000
}
fn d_norm_batches() -> u64 {
    1000
}
fn d_version() -> String {
    "6.54.12".into()
}
fn d_max_grad_norm() -> Option<f64> {
    Some(1.0)
}

/// A complete runner configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerConfig {
    /// The synthetic model.
    pub synthetic_model: ModelSpec,
    /// The SAE to train.
    pub sae: TrainingSaeConfig,
    /// Total training samples.
    pub training_samples: u64,
    /// Rows per batch.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Warm-up steps.
    pub lr_warm_up_steps: u64,
    /// Decay steps.
    pub lr_decay_steps: u64,
    /// Scheduler name.
    pub lr_scheduler_name: String,
    /// End learning rate (`lr / 10` when absent).
    pub lr_end: f64,
    /// Adam β₁.
    pub adam_beta1: f64,
    /// Adam β₂.
    pub adam_beta2: f64,
    /// Warm-restart cycles.
    pub n_restart_cycles: u64,
    /// sae-lens device string (`cpu`, `cuda`, ...); picks the backend when
    /// `backend` is absent.
    pub device: String,
    /// Accepted for compatibility; synthsae computes in float32.
    pub autocast_sae: bool,
    /// Accepted for compatibility; synthsae computes in float32.
    pub autocast_data: bool,
    /// Evenly spaced checkpoints.
    pub n_checkpoints: u64,
    /// Checkpoint directory (`None`: no checkpoints).
    pub checkpoint_path: Option<PathBuf>,
    /// Write a final checkpoint.
    pub save_final_checkpoint: bool,
    /// Output directory (`None`: write nothing).
    pub output_path: Option<PathBuf>,
    /// Also save the model under `output/synthetic_model/`.
    pub save_synthetic_model: bool,
    /// Steps between periodic evaluations (0: none).
    pub eval_frequency: u64,
    /// Samples per evaluation.
    pub eval_samples: usize,
    /// Evaluate the final SAE.
    pub run_final_eval: bool,
    /// Dead-latent window in steps.
    pub dead_feature_window: u64,
    /// Firing-rate window in steps.
    pub feature_sampling_window: u64,
    /// Batches for the scaling-factor estimate.
    pub n_batches_for_norm_estimate: u64,
    /// Version string carried in the file.
    pub sae_lens_version: String,
    /// Logging settings (no wandb in synthsae).
    pub logger: LoggingConfig,
    /// synthsae: seed of the SAE's initialisation, and of the data streams
    /// unless `data_seed` is set (default 42).
    pub seed: u64,
    /// synthsae: seed of the data streams (training batches, the scaling
    /// estimate, evaluations); `None`: `seed`. Runs that differ only in
    /// `seed` and share a `data_seed` train on the same batches.
    pub data_seed: Option<u64>,
    /// synthsae: backend name (`flex`, `ndarray`, `wgpu`, `cuda`).
    pub backend: Option<String>,
    /// synthsae: where training and evaluation compute the hidden
    /// activations of sampled batches (`auto`: on the host for CPU backends,
    /// on the device for GPU backends; `host`; `device`).
    pub hidden_path: HiddenPath,
    /// synthsae: L0 auto-tuner.
    pub l0_tuner: Option<L0TunerConfig>,
    /// synthsae: global gradient-norm bound (sae-lens: fixed 1.0).
    pub max_grad_norm: Option<f64>,
    /// synthsae: steps between metric records (default: `logger.wandb_log_frequency`).
    pub log_every: u64,
}

/// Default seed of a runner config without one.
pub const DEFAULT_SEED: u64 = 42;

impl RunnerConfig {
    /// A config with sae-lens's defaults; fails if the model config is invalid.
    pub fn new(synthetic_model: ModelSpec, sae: TrainingSaeConfig) -> Result<Self> {
        Self::from_parts(synthetic_model, sae, Map::new(), LoggingConfig::default())
    }

    fn from_parts(
        synthetic_model: ModelSpec,
        sae: TrainingSaeConfig,
        rest: Map<String, Value>,
        logger: LoggingConfig,
    ) -> Result<Self> {
        let s: Scalars = serde_json::from_value(Value::Object(rest)).map_err(|e| {
            let msg = e.to_string();
            let field = msg.split('`').nth(1).unwrap_or("runner_config").to_string();
            TrainError::config(field, msg)
        })?;
        let cfg = Self {
            synthetic_model,
            sae,
            training_samples: s.training_samples,
            batch_size: s.batch_size,
            lr: s.lr,
            lr_warm_up_steps: s.lr_warm_up_steps,
            lr_decay_steps: s.lr_decay_steps,
            lr_scheduler_name: s.lr_scheduler_name,
            lr_end: s.lr_end.unwrap_or(s.lr / 10.0),
            adam_beta1: s.adam_beta1,
            adam_beta2: s.adam_beta2,
            n_restart_cycles: s.n_restart_cycles,
            device: s.device,
            autocast_sae: s.autocast_sae,
            autocast_data: s.autocast_data,
            n_checkpoints: s.n_checkpoints,
            checkpoint_path: s.checkpoint_path.map(|p| expand_home(&p)),
            save_final_checkpoint: s.save_final_checkpoint,
            output_path: s.output_path.map(|p| expand_home(&p)),
            save_synthetic_model: s.save_synthetic_model,
            eval_frequency: s.eval_frequency,
            eval_samples: s.eval_samples,
            run_final_eval: s.run_final_eval,
            dead_feature_window: s.dead_feature_window,
            feature_sampling_window: s.feature_sampling_window,
            n_batches_for_norm_estimate: s.n_batches_for_norm_estimate,
            sae_lens_version: s.sae_lens_version,
            log_every: s.log_every.unwrap_or(logger.wandb_log_frequency),
            logger,
            seed: s.seed.unwrap_or(DEFAULT_SEED),
            data_seed: s.data_seed,
            backend: s.backend,
            hidden_path: match &s.hidden_path {
                Some(name) => name
                    .parse()
                    .map_err(|e: String| TrainError::config("hidden_path", e))?,
                None => HiddenPath::Auto,
            },
            l0_tuner: s.l0_tuner,
            max_grad_norm: s.max_grad_norm,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses `runner_config.json` text.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| TrainError::config("runner_config", format!("not valid JSON: {e}")))?;
        Self::from_value(value)
    }

    /// Parses a runner config object.
    pub fn from_value(value: Value) -> Result<Self> {
        let Value::Object(mut m) = value else {
            return Err(TrainError::config("runner_config", "must be a JSON object"));
        };
        let sae = m
            .remove("sae")
            .ok_or_else(|| TrainError::config("sae", "is required"))?;
        if sae.get("architecture").is_none() {
            return Err(TrainError::config("sae.architecture", "is required"));
        }
        let sae = TrainingSaeConfig::from_json(&sae)?;
        let model = match m.remove("synthetic_model") {
            None | Some(Value::Null) => {
                return Err(TrainError::config("synthetic_model", "is required"))
            }
            Some(Value::String(s)) => ModelSpec::Source(s),
            Some(v @ Value::Object(_)) => {
                let cfg: SyntheticModelConfig = serde_json::from_value(v)
                    .map_err(|e| TrainError::config("synthetic_model", e.to_string()))?;
                ModelSpec::Config(Box::new(cfg))
            }
            Some(other) => {
                return Err(TrainError::config(
                    "synthetic_model",
                    format!("must be a config object or a source string, got {other}"),
                ))
            }
        };
        let logger = match m.remove("logger") {
            None | Some(Value::Null) => LoggingConfig::default(),
            Some(v) => serde_json::from_value(v)
                .map_err(|e| TrainError::config("logger", e.to_string()))?,
        };
        Self::from_parts(model, sae, m, logger)
    }

    /// Checks the fields.
    pub fn validate(&self) -> Result<()> {
        if self.eval_samples == 0 && self.eval_frequency > 0 {
            return Err(TrainError::config(
                "eval_samples",
                "must be > 0 when eval_frequency is set",
            ));
        }
        if let ModelSpec::Config(c) = &self.synthetic_model {
            c.validate()?;
        }
        self.trainer_config().validate()
    }

    /// The seed of the run's data streams: `data_seed`, else `seed`.
    pub fn data_seed(&self) -> u64 {
        self.data_seed.unwrap_or(self.seed)
    }

    /// Every key: [`RunnerConfig::to_saelens_json`] followed by the
    /// synthsae keys of [`RunnerConfig::synthsae_json`]; reads back with
    /// [`RunnerConfig::from_value`] to an equal config.
    pub fn to_json(&self) -> Value {
        let mut v = self.to_saelens_json();
        if let (Value::Object(m), Value::Object(own)) = (&mut v, self.synthsae_json()) {
            m.extend(own);
        }
        v
    }

    /// Steps of the run (floor of samples / batch size).
    pub fn total_training_steps(&self) -> u64 {
        self.training_samples / self.batch_size.max(1) as u64
    }

    /// `logger.run_name`, or sae-lens's default
    /// `synthetic-{architecture}-{d_sae}-LR-{lr}`.
    pub fn run_name(&self) -> String {
        self.logger.run_name.clone().unwrap_or_else(|| {
            format!(
                "synthetic-{}-{}-LR-{}",
                self.sae.architecture(),
                self.sae.d_sae(),
                python_float(self.lr)
            )
        })
    }

    /// The trainer configuration (sae-lens `to_sae_trainer_config`).
    pub fn trainer_config(&self) -> TrainerConfig {
        TrainerConfig {
            total_training_samples: self.training_samples,
            train_batch_size_samples: self.batch_size,
            lr: self.lr,
            lr_end: Some(self.lr_end),
            lr_scheduler_name: self.lr_scheduler_name.clone(),
            lr_warm_up_steps: self.lr_warm_up_steps,
            lr_decay_steps: self.lr_decay_steps,
            n_restart_cycles: self.n_restart_cycles,
            adam_beta1: self.adam_beta1,
            adam_beta2: self.adam_beta2,
            dead_feature_window: self.dead_feature_window,
            feature_sampling_window: self.feature_sampling_window,
            n_checkpoints: self.n_checkpoints,
            checkpoint_path: self.checkpoint_path.clone(),
            save_final_checkpoint: self.save_final_checkpoint,
            n_batches_for_norm_estimate: self.n_batches_for_norm_estimate,
            seed: self.data_seed(),
            log_every: self.log_every,
            eval_every: self.eval_frequency,
            max_grad_norm: self.max_grad_norm,
            l0_tuner: self.l0_tuner.clone(),
            prefetch_batches: 2,
        }
    }

    /// The config as sae-lens writes `runner_config.json`: its keys only, in
    /// its order.
    pub fn to_saelens_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "synthetic_model".into(),
            match &self.synthetic_model {
                ModelSpec::Config(c) => serde_json::to_value(c).expect("config serialises"),
                ModelSpec::Source(s) => Value::String(s.clone()),
            },
        );
        m.insert("sae".into(), self.sae.to_json());
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| Value::String(p.display().to_string()))
                .unwrap_or(Value::Null)
        };
        let scalars = Scalars {
            training_samples: self.training_samples,
            batch_size: self.batch_size,
            lr: self.lr,
            lr_warm_up_steps: self.lr_warm_up_steps,
            lr_decay_steps: self.lr_decay_steps,
            lr_scheduler_name: self.lr_scheduler_name.clone(),
            lr_end: Some(self.lr_end),
            adam_beta1: self.adam_beta1,
            adam_beta2: self.adam_beta2,
            n_restart_cycles: self.n_restart_cycles,
            device: self.device.clone(),
            autocast_sae: self.autocast_sae,
            autocast_data: self.autocast_data,
            n_checkpoints: self.n_checkpoints,
            checkpoint_path: None,
            save_final_checkpoint: self.save_final_checkpoint,
            output_path: None,
            save_synthetic_model: self.save_synthetic_model,
            eval_frequency: self.eval_frequency,
            eval_samples: self.eval_samples,
            run_final_eval: self.run_final_eval,
            dead_feature_window: self.dead_feature_window,
            feature_sampling_window: self.feature_sampling_window,
            n_batches_for_norm_estimate: self.n_batches_for_norm_estimate,
            sae_lens_version: self.sae_lens_version.clone(),
            seed: None,
            data_seed: None,
            backend: None,
            hidden_path: None,
            l0_tuner: None,
            max_grad_norm: None,
            log_every: None,
        };
        let Value::Object(s) = serde_json::to_value(scalars).expect("scalars serialise") else {
            unreachable!("a struct serialises to an object")
        };
        for (k, v) in s {
            let v = match k.as_str() {
                "checkpoint_path" => path(&self.checkpoint_path),
                "output_path" => path(&self.output_path),
                _ => v,
            };
            m.insert(k, v);
        }
        let mut logger = serde_json::to_value(&self.logger).expect("logger serialises");
        logger["run_name"] = Value::String(self.run_name());
        m.insert("logger".into(), logger);
        Value::Object(m)
    }

    /// synthsae's own fields, as written to `synthsae_config.json`.
    pub fn synthsae_json(&self) -> Value {
        let mut v = serde_json::json!({
            "seed": self.seed,
            "backend": self.backend,
            "l0_tuner": self.l0_tuner,
            "max_grad_norm": self.max_grad_norm,
            "log_every": self.log_every,
        });
        if let Some(d) = self.data_seed {
            v["data_seed"] = d.into();
        }
        if self.hidden_path != HiddenPath::Auto {
            v["hidden_path"] = self.hidden_path.name().into();
        }
        v
    }
}

/// Expands a leading `~/` to `$HOME` (sae-lens does not, spec §13.28).
fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// Python's `str(float)` for the values a learning rate takes (shortest
/// round-trip repr, scientific below 1e-4).
pub fn python_float(v: f64) -> String {
    if v == 0.0 {
        return "0.0".into();
    }
    let a = v.abs();
    if !(1e-4..1e16).contains(&a) {
        // Rust's `{:e}` gives the shortest mantissa: 1e-5 → "1e-5"; Python
        // writes "1e-05".
        let s = format!("{v:e}");
        let (mant, exp) = s.split_once('e').expect("exponent present");
        let exp: i32 = exp.parse().expect("integer exponent");
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let s = format!("{v}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Value {
        serde_json::json!({
            "synthetic_model": "some/repo:model",
            "sae": {"architecture": "batchtopk", "d_in": 16, "d_sae": 20, "k": 4},
            "training_samples": 20000,
            "batch_size": 100,
        })
    }

    #[test]
    fn defaults_follow_saelens() {
        let c = RunnerConfig::from_value(minimal()).unwrap();
        assert_eq!(c.lr, 3e-4);
        assert_eq!(c.lr_end, 3e-4 / 10.0);
        assert_eq!(c.lr_end.to_string(), "0.000029999999999999997");
        assert_eq!(c.eval_samples, 500_000);
        assert_eq!(c.checkpoint_path, Some(PathBuf::from("checkpoints")));
        assert_eq!(c.output_path, Some(PathBuf::from("output")));
        assert_eq!(c.total_training_steps(), 200);
        assert_eq!(c.run_name(), "synthetic-batchtopk-20-LR-0.0003");
        assert_eq!(c.log_every, 10);
        assert_eq!(c.seed, DEFAULT_SEED);
        assert_eq!(
            c.synthetic_model,
            ModelSpec::Source("some/repo:model".into())
        );
    }

    #[test]
    fn saelens_json_has_only_saelens_keys_in_order_and_round_trips() {
        let mut v = minimal();
        v["seed"] = 5.into();
        v["l0_tuner"] = serde_json::json!({"target_l0": 4.0});
        let c = RunnerConfig::from_value(v).unwrap();
        let out = c.to_saelens_json();
        let keys: Vec<&str> = out
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys[..4],
            ["synthetic_model", "sae", "training_samples", "batch_size"]
        );
        assert_eq!(*keys.last().unwrap(), "logger");
        assert!(!keys.contains(&"seed") && !keys.contains(&"l0_tuner"));
        assert_eq!(keys.len(), 28);
        let back = RunnerConfig::from_value(out).unwrap();
        assert_eq!(back.sae, c.sae);
        assert_eq!(back.lr_end, c.lr_end);
        assert_eq!(c.synthsae_json()["seed"], 5);
    }

    #[test]
    fn full_json_round_trips_every_field() {
        let mut v = minimal();
        v["seed"] = 5.into();
        v["data_seed"] = 9.into();
        v["backend"] = "flex".into();
        v["hidden_path"] = "device".into();
        v["max_grad_norm"] = Value::Null;
        v["l0_tuner"] = serde_json::json!({"target_l0": 4.0, "start_step": 3});
        let c = RunnerConfig::from_value(v).unwrap();
        assert_eq!(c.data_seed(), 9);
        assert_eq!(c.trainer_config().seed, 9);
        assert_eq!(c.hidden_path, HiddenPath::Device);
        let mut back = RunnerConfig::from_value(c.to_json()).unwrap();
        assert_eq!(back.logger.run_name.as_deref(), Some(c.run_name().as_str()));
        back.logger.run_name = None;
        assert_eq!(back, c);
        let plain = RunnerConfig::from_value(minimal()).unwrap();
        assert_eq!(plain.data_seed(), plain.seed);
        assert!(plain.synthsae_json().get("data_seed").is_none());
        assert_eq!(plain.hidden_path, HiddenPath::Auto);
        assert!(plain.synthsae_json().get("hidden_path").is_none());
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let cases = [
            (
                serde_json::json!({"sae": {"architecture": "standard", "d_in": 4, "d_sae": 4}}),
                "synthetic_model",
            ),
            (serde_json::json!({"synthetic_model": "x"}), "sae"),
            (
                serde_json::json!({"synthetic_model": "x", "sae": {"d_in": 4, "d_sae": 4}}),
                "sae.architecture",
            ),
            (
                serde_json::json!({"synthetic_model": "x", "sae": {"architecture": "standard", "d_in": 4, "d_sae": 4}, "batchsize": 3}),
                "batchsize",
            ),
            (
                serde_json::json!({"synthetic_model": "x", "sae": {"architecture": "standard", "d_in": 4, "d_sae": 4}, "lr_scheduler_name": "cosine"}),
                "lr_scheduler_name",
            ),
            (
                serde_json::json!({"synthetic_model": "x", "sae": {"architecture": "standard", "d_in": 4, "d_sae": 4}, "training_samples": 10}),
                "training_samples",
            ),
            (
                serde_json::json!({"synthetic_model": 3, "sae": {"architecture": "standard", "d_in": 4, "d_sae": 4}}),
                "synthetic_model",
            ),
            (
                serde_json::json!({"synthetic_model": "x", "sae": {"architecture": "standard", "d_in": 4, "d_sae": 4}, "hidden_path": "gpu"}),
                "hidden_path",
            ),
        ];
        for (v, field) in cases {
            let err = RunnerConfig::from_value(v).unwrap_err().to_string();
            assert!(err.contains(field), "`{err}` does not name `{field}`");
        }
    }

    #[test]
    fn python_float_formatting() {
        assert_eq!(python_float(3e-4), "0.0003");
        assert_eq!(python_float(1e-5), "1e-05");
        assert_eq!(python_float(1.0), "1.0");
        assert_eq!(python_float(0.01), "0.01");
    }
}
