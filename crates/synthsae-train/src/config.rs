//! The trainer's configuration (sae-lens `SAETrainerConfig`, spec §8.1) plus
//! synthsae's own knobs.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::schedule::{LrSchedule, ScheduleKind};
use crate::tuner::L0TunerConfig;

/// Everything the trainer needs to know. Field names follow sae-lens where
/// the field exists there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerConfig {
    /// Total activations to train on; steps = this / batch size (floor).
    pub total_training_samples: u64,
    /// Rows per training batch.
    pub train_batch_size_samples: usize,
    /// Base learning rate.
    pub lr: f64,
    /// End of the cosine phase / start of the decay phase; `None` → `lr / 10`.
    pub lr_end: Option<f64>,
    /// `constant`, `cosineannealing` or `cosineannealingwarmrestarts`.
    pub lr_scheduler_name: String,
    /// Linear warm-up steps.
    pub lr_warm_up_steps: u64,
    /// Linear decay steps at the end.
    pub lr_decay_steps: u64,
    /// Restart cycles for warm restarts.
    pub n_restart_cycles: u64,
    /// Adam β₁.
    pub adam_beta1: f64,
    /// Adam β₂.
    pub adam_beta2: f64,
    /// A latent is dead after more than this many steps without firing.
    pub dead_feature_window: u64,
    /// Firing-rate window in steps.
    pub feature_sampling_window: u64,
    /// Evenly spaced checkpoints during training.
    pub n_checkpoints: u64,
    /// Where checkpoints go (`<path>/<n_training_samples>/`); `None`: nowhere.
    pub checkpoint_path: Option<PathBuf>,
    /// Also write `<path>/final_<n_training_samples>/`.
    pub save_final_checkpoint: bool,
    /// Batches used to estimate the input scaling factor.
    pub n_batches_for_norm_estimate: u64,
    /// Seed of the data streams (synthsae).
    pub seed: u64,
    /// Steps between metric records (sae-lens `wandb_log_frequency`).
    pub log_every: u64,
    /// Steps between periodic evaluations; 0 disables them. Unlike the
    /// reference (spec §13.11) this is a real interval.
    pub eval_every: u64,
    /// Global gradient-norm bound; sae-lens hard-codes 1.0.
    pub max_grad_norm: Option<f64>,
    /// Optional L0 auto-tuner for coefficient-based SAEs.
    pub l0_tuner: Option<L0TunerConfig>,
    /// Batches sampled ahead on a background thread (0: sample inline).
    pub prefetch_batches: usize,
}

impl TrainerConfig {
    /// sae-lens's defaults for `total_training_samples` samples in batches of
    /// `batch_size`.
    pub fn new(total_training_samples: u64, batch_size: usize) -> Self {
        Self {
            total_training_samples,
            train_batch_size_samples: batch_size,
            lr: 3e-4,
            lr_end: None,
            lr_scheduler_name: "constant".into(),
            lr_warm_up_steps: 0,
            lr_decay_steps: 0,
            n_restart_cycles: 1,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            dead_feature_window: 1000,
            feature_sampling_window: 2000,
            n_checkpoints: 0,
            checkpoint_path: None,
            save_final_checkpoint: false,
            n_batches_for_norm_estimate: 1000,
            seed: 0,
            log_every: 10,
            eval_every: 0,
            max_grad_norm: Some(1.0),
            l0_tuner: None,
            prefetch_batches: 2,
        }
    }

    /// Number of optimizer steps: `total_training_samples / batch size`.
    pub fn total_steps(&self) -> u64 {
        self.total_training_samples / self.train_batch_size_samples.max(1) as u64
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.train_batch_size_samples == 0 {
            return Err(TrainError::config("batch_size", "must be at least 1"));
        }
        if self.total_steps() == 0 {
            return Err(TrainError::config(
                "training_samples",
                format!(
                    "{} samples make no full batch of {}",
                    self.total_training_samples, self.train_batch_size_samples
                ),
            ));
        }
        for (field, v) in [
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(TrainError::config(
                    field,
                    format!("must be in [0, 1), got {v}"),
                ));
            }
        }
        if let Some(n) = self.max_grad_norm {
            if !(n.is_finite() && n > 0.0) {
                return Err(TrainError::config(
                    "max_grad_norm",
                    format!("must be finite and > 0, got {n}"),
                ));
            }
        }
        if self.feature_sampling_window == 0 {
            return Err(TrainError::config("feature_sampling_window", "must be ≥ 1"));
        }
        if self.log_every == 0 {
            return Err(TrainError::config("log_every", "must be ≥ 1"));
        }
        if let Some(t) = &self.l0_tuner {
            t.validate()?;
        }
        self.schedule().map(|_| ())
    }

    /// The learning-rate schedule this config describes.
    pub fn schedule(&self) -> Result<LrSchedule> {
        LrSchedule::new(
            ScheduleKind::parse(&self.lr_scheduler_name)?,
            self.lr,
            self.lr_end.unwrap_or(self.lr / 10.0),
            self.total_steps(),
            self.lr_warm_up_steps,
            self.lr_decay_steps,
            self.n_restart_cycles,
        )
    }

    /// Checkpoint thresholds in samples (spec §8.3): a checkpoint is written
    /// after the first step whose sample count exceeds each threshold.
    pub fn checkpoint_thresholds(&self) -> Vec<u64> {
        if self.n_checkpoints == 0 {
            return Vec::new();
        }
        let t = self.total_training_samples;
        let stride = t.div_ceil(self.n_checkpoints + 1).max(1);
        (0..t).step_by(stride as usize).skip(1).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_thresholds_match_the_reference_example() {
        let mut c = TrainerConfig::new(20_000, 100);
        c.n_checkpoints = 2;
        assert_eq!(c.checkpoint_thresholds(), vec![6667, 13334]);
        c.n_checkpoints = 0;
        assert!(c.checkpoint_thresholds().is_empty());
    }

    #[test]
    fn defaults_validate_and_lr_end_defaults_to_a_tenth() {
        let c = TrainerConfig::new(10_240, 1024);
        c.validate().unwrap();
        assert_eq!(c.total_steps(), 10);
        assert_eq!(c.schedule().unwrap().lr_at(5), 3e-4);
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = TrainerConfig::new(100, 1024);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("training_samples"));
        c.total_training_samples = 1 << 20;
        c.adam_beta2 = 1.0;
        assert!(c.validate().unwrap_err().to_string().contains("adam_beta2"));
        c.adam_beta2 = 0.999;
        c.lr_scheduler_name = "step".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("lr_scheduler_name"));
    }
}
