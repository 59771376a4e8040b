//! The run state: the optimizer, counters and firing statistics of a run
//! (everything but the SAE), and its conversion to and from a checkpoint's
//! trainer state.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use synthsae_host::to_vec;
use synthsae_sae::{Coefficient, TrainingSae};

use crate::checkpoint::{StateJson, TrainerSnapshot, STATE_FORMAT};
use crate::config::TrainerConfig;
use crate::error::{Result, TrainError};
use crate::optim::Adam;
use crate::tuner::L0Tuner;

/// The optimizer, counters and statistics of a run (everything but the SAE).
#[derive(Debug, Clone)]
pub struct RunState<B: AutodiffBackend> {
    pub(super) adam: Adam<B>,
    pub(super) n_training_samples: u64,
    pub(super) n_training_steps: u64,
    pub(super) n_frac_active_samples: u64,
    /// `[S]` firings per latent in the current window.
    pub(super) act_freq_scores: Tensor<B::InnerBackend, 1>,
    /// `[S]` steps since each latent last fired.
    pub(super) n_since_fired: Tensor<B::InnerBackend, 1>,
    pub(super) scaling_factor: Option<f64>,
    pub(super) scaling_estimated: bool,
    pub(super) tuner: Option<L0Tuner>,
    pub(super) remaining_checkpoints: Vec<u64>,
}

impl<B: AutodiffBackend> RunState<B> {
    /// The state of a run that has not started: zero counters and
    /// statistics for `d_sae` latents on `device`.
    pub(super) fn fresh(
        adam: Adam<B>,
        d_sae: usize,
        device: &burn::tensor::Device<B::InnerBackend>,
        tuner: Option<L0Tuner>,
        remaining_checkpoints: Vec<u64>,
    ) -> Self {
        Self {
            adam,
            n_training_samples: 0,
            n_training_steps: 0,
            n_frac_active_samples: 0,
            act_freq_scores: Tensor::zeros([d_sae], device),
            n_since_fired: Tensor::zeros([d_sae], device),
            scaling_factor: None,
            scaling_estimated: false,
            tuner,
            remaining_checkpoints,
        }
    }

    /// Starts a new firing-rate window at step `step` when one is due
    /// (every `window` steps after the first).
    pub(super) fn start_window_if_due(&mut self, step: u64, window: u64) {
        if step > 0 && step.is_multiple_of(window) {
            self.act_freq_scores = self.act_freq_scores.zeros_like();
            self.n_frac_active_samples = 0;
        }
    }

    /// Counts one batch of `rows` rows with `fired[j]` rows in which latent
    /// `j` fired (`[S]`).
    pub(super) fn count_firing(&mut self, fired: Tensor<B::InnerBackend, 1>, rows: usize) {
        let fired_any = fired.clone().greater_elem(0.0);
        self.n_since_fired = (self.n_since_fired.clone() + 1.0).mask_fill(fired_any, 0.0);
        self.act_freq_scores = self.act_freq_scores.clone() + fired;
        self.n_frac_active_samples += rows as u64;
        self.n_training_samples += rows as u64;
    }

    /// Ends a step whose batch had mean L0 `batch_l0`.
    pub(super) fn finish_step(&mut self, batch_l0: f64) {
        if let Some(t) = self.tuner.as_mut() {
            t.update(self.n_training_steps, batch_l0);
        }
        self.n_training_steps += 1;
    }

    /// `[S]` steps since each latent last fired, on the host.
    pub(super) fn steps_since_fired(&self) -> Vec<f32> {
        to_vec(self.n_since_fired.clone())
    }

    /// Latents that have not fired for more than `window` steps.
    pub(super) fn dead_count(n_since: &[f32], window: f32) -> usize {
        n_since.iter().filter(|v| **v > window).count()
    }

    /// Mean L0 over the current firing-rate window (`None` if it is empty).
    pub(super) fn window_l0(&self) -> Option<f64> {
        (self.n_frac_active_samples > 0).then(|| {
            to_vec(self.act_freq_scores.clone())
                .iter()
                .map(|v| *v as f64)
                .sum::<f64>()
                / self.n_frac_active_samples as f64
        })
    }

    /// `[S]` `log10(firing rate + 1e-10)` over the current window.
    pub(super) fn log_sparsity(&self) -> Vec<f32> {
        let denom = self.n_frac_active_samples.max(1) as f32;
        to_vec(self.act_freq_scores.clone())
            .into_iter()
            .map(|c| (c / denom + 1e-10).log10())
            .collect()
    }

    /// The checkpoint form of this state, for the run `cfg` with the SAE
    /// coefficients `coefficients`.
    pub(super) fn snapshot(
        &self,
        cfg: &TrainerConfig,
        coefficients: &[Coefficient],
    ) -> TrainerSnapshot {
        let step = self.n_training_steps;
        let coefficient_schedulers = coefficients
            .iter()
            .map(|c| {
                let k = if c.warm_up_steps == 0 {
                    step
                } else {
                    step.min(c.warm_up_steps)
                };
                (
                    c.name.clone(),
                    [("current_step".to_string(), k)].into_iter().collect(),
                )
            })
            .collect();
        TrainerSnapshot {
            json: StateJson {
                format: STATE_FORMAT.into(),
                n_training_samples: self.n_training_samples,
                n_training_steps: self.n_training_steps,
                n_frac_active_samples: self.n_frac_active_samples,
                adam_step: self.adam.step_count(),
                scaling_factor: self.scaling_factor,
                tuner: self.tuner.clone(),
                coefficient_schedulers,
                remaining_checkpoints: self.remaining_checkpoints.clone(),
                seed: cfg.seed,
                total_training_samples: cfg.total_training_samples,
                batch_size: cfg.train_batch_size_samples,
            },
            act_freq_scores: to_vec(self.act_freq_scores.clone()),
            n_forward_passes_since_fired: to_vec(self.n_since_fired.clone()),
            adam: self.adam.state(),
        }
    }

    /// Restores the state saved in `snap` (read from checkpoint `dir`) for
    /// `sae`; errors name the checkpoint and what does not fit the SAE.
    pub(super) fn restore<M: TrainingSae<B>>(
        &mut self,
        snap: &TrainerSnapshot,
        sae: &M,
        dir: &Path,
        device: &burn::tensor::Device<B::InnerBackend>,
    ) -> Result<()> {
        let d_sae = sae.d_sae();
        for (name, v) in [
            ("act_freq_scores", &snap.act_freq_scores),
            (
                "n_forward_passes_since_fired",
                &snap.n_forward_passes_since_fired,
            ),
        ] {
            if v.len() != d_sae {
                return Err(TrainError::checkpoint(
                    dir,
                    format!(
                        "`{name}` has {} entries, the SAE has {d_sae} latents",
                        v.len()
                    ),
                ));
            }
        }
        self.adam
            .load_state(&snap.adam, sae, device)
            .map_err(|reason| TrainError::checkpoint(dir, reason))?;
        let j = &snap.json;
        self.n_training_samples = j.n_training_samples;
        self.n_training_steps = j.n_training_steps;
        self.n_frac_active_samples = j.n_frac_active_samples;
        self.act_freq_scores = Tensor::from_data(
            TensorData::new(snap.act_freq_scores.clone(), [d_sae]),
            device,
        );
        self.n_since_fired = Tensor::from_data(
            TensorData::new(snap.n_forward_passes_since_fired.clone(), [d_sae]),
            device,
        );
        self.scaling_factor = j.scaling_factor;
        self.scaling_estimated = true;
        if let Some(t) = &j.tuner {
            t.check_consistent()
                .map_err(|reason| TrainError::checkpoint(dir, reason))?;
            self.tuner = Some(t.clone());
        }
        self.remaining_checkpoints = j.remaining_checkpoints.clone();
        Ok(())
    }

    /// Whether a checkpoint threshold has been passed; if so it is removed
    /// from the remaining ones.
    pub(super) fn take_due_checkpoint(&mut self) -> bool {
        let due = self
            .remaining_checkpoints
            .first()
            .is_some_and(|t| self.n_training_samples > *t);
        if due {
            self.remaining_checkpoints.remove(0);
        }
        due
    }
}
