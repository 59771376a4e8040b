//! What the trainer asks of an SAE beyond [`TrainingSae`], and the
//! callbacks through which a caller observes and extends a run.

use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use serde_json::{Map, Value};
use synthsae_sae::{NormalizeActivations, TrainingSae};

use crate::error::Result;

/// What the trainer needs from an SAE beyond [`TrainingSae`]: its training
/// files and its input-normalisation mode.
pub trait CheckpointSae<B: AutodiffBackend>: TrainingSae<B> {
    /// Writes the SAE's training-form files (`cfg.json`,
    /// `sae_weights.safetensors`) into `dir`; must round-trip exactly.
    fn save_training(&self, dir: &Path) -> Result<()>;

    /// Reads what [`CheckpointSae::save_training`] wrote.
    fn load_training(dir: &Path, device: &B::Device) -> Result<Self>;

    /// sae-lens `normalize_activations` of the SAE's config.
    fn normalize_activations(&self) -> NormalizeActivations;

    /// Sets a `metadata` entry of the SAE's config (`l0`, `num_dead_features`).
    fn set_metadata(&mut self, key: &str, value: Value);
}

/// Callbacks through which a caller observes and extends a run.
pub trait TrainerHooks<B: AutodiffBackend, M: TrainingSae<B>> {
    /// A metrics record (every `log_every` steps, and at evaluation steps).
    fn on_record(&mut self, _record: &Map<String, Value>) -> Result<()> {
        Ok(())
    }

    /// A periodic evaluation after 0-based step `step`; the returned keys are
    /// merged into that step's record.
    fn evaluate(&mut self, _sae: &M, _step: u64) -> Result<Option<Map<String, Value>>> {
        Ok(None)
    }

    /// Called with a checkpoint directory while it is being written (before
    /// it is renamed into place): add files here.
    fn on_checkpoint(&mut self, _dir: &Path) -> Result<()> {
        Ok(())
    }

    /// Called with a checkpoint directory once it is complete and in place.
    fn on_checkpoint_written(&mut self, _dir: &Path) {}

    /// Called after every step.
    fn on_progress(&mut self, _progress: &Progress) {}
}

/// Hooks that do nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl<B: AutodiffBackend, M: TrainingSae<B>> TrainerHooks<B, M> for NoHooks {}

/// Where a run stands, for progress displays.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Steps done.
    pub step: u64,
    /// Steps in the run.
    pub total_steps: u64,
    /// Samples trained on so far.
    pub n_training_samples: u64,
    /// Total loss of the last step.
    pub loss: f64,
    /// Mean L0 of the last batch.
    pub l0: f64,
    /// Samples per second since this process started training.
    pub samples_per_second: f64,
}
