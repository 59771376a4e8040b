//! The named steps of [`super::Trainer::fit`] and what stays fixed during
//! a run ([`Setup`]): scaling, batches, the step plan, the input, the
//! non-finite stop, records, checkpoints and the end of the run.

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde_json::Map;
use synthsae_data::FeatureDictionary;
use synthsae_host::profile::{self, Phase};
use synthsae_sae::{Coefficient, NormalizeActivations};

use crate::autocast::Autocast;
use crate::checkpoint::write_atomically;
use crate::config::TrainerConfig;
use crate::data::{stream, Batch, BatchSampler, Prefetcher};
use crate::error::{Result, TrainError};
use crate::schedule::LrSchedule;

use super::hooks::{CheckpointSae, Progress, TrainerHooks};
use super::inner_device;
use super::record::{insert_position, log_record, RecordCounts};
use super::scalars::StepScalars;
use super::state::RunState;
use super::step::StepPlan;

/// The result of [`Trainer::fit`].
#[derive(Debug)]
pub struct TrainOutcome<M> {
    /// The trained SAE, scaling factor folded in, metadata set.
    pub sae: M,
    /// Mean L0 over the last firing-rate window (`None` if empty).
    pub l0: Option<f64>,
    /// Latents dead at the end (no firing for more than `dead_feature_window` steps).
    pub num_dead_features: u64,
    /// `[S]` `log10(firing rate + 1e-10)` over the last window.
    pub log_feature_sparsity: Vec<f32>,
    /// Samples trained on.
    pub n_training_samples: u64,
    /// Steps taken.
    pub n_training_steps: u64,
    /// The input scaling factor that was folded into the weights.
    pub scaling_factor: Option<f64>,
    /// Checkpoints written, in order.
    pub checkpoints: Vec<PathBuf>,
}

/// What stays fixed during a run: its configuration, schedule, the SAE's
/// coefficients, the data and the device.
#[derive(Debug)]
pub(super) struct Setup<B: AutodiffBackend> {
    pub(super) cfg: TrainerConfig,
    pub(super) schedule: LrSchedule,
    pub(super) coefficients: Vec<Coefficient>,
    pub(super) sampler: BatchSampler,
    pub(super) device: B::Device,
    /// The model's feature dictionary on the device, for batches without
    /// host-computed hidden activations ([`synthsae_data::HiddenPath::Device`]).
    pub(super) dictionary: Option<FeatureDictionary<B::InnerBackend>>,
    /// The arithmetic of the SAE's products and of the device gather-sum.
    pub(super) autocast: Autocast,
}

impl<B: AutodiffBackend> Setup<B> {
    /// Steps of the run (see [`Trainer::total_steps`]).
    pub(super) fn total_steps(&self) -> u64 {
        self.cfg
            .total_training_samples
            .div_ceil(self.cfg.train_batch_size_samples as u64)
    }

    /// A latent is dead after more than this many steps without firing.
    fn dead_after(&self) -> f32 {
        self.cfg.dead_feature_window as f32
    }

    /// Checks the SAE's input normalisation and, for
    /// `expected_average_only_in`, estimates the scaling factor unless the
    /// state (a resumed run) already has it.
    pub(super) fn prepare_scaling<M: CheckpointSae<B>>(
        &self,
        sae: &M,
        state: &mut RunState<B>,
    ) -> Result<()> {
        let mode = sae.normalize_activations();
        if mode == NormalizeActivations::CovarianceWhitening {
            return Err(TrainError::config(
                "sae.normalize_activations",
                "covariance_whitening is not supported by the synthsae trainer; use none or \
                 expected_average_only_in",
            ));
        }
        if mode == NormalizeActivations::ExpectedAverageOnlyIn && !state.scaling_estimated {
            let s = self.estimate_scaling_factor()?;
            log::info!("estimated input scaling factor {s}");
            state.scaling_factor = Some(s);
        }
        state.scaling_estimated = true;
        Ok(())
    }

    /// The scaling factor `sqrt(D) / mean ‖x‖` over
    /// `n_batches_for_norm_estimate` batches of their own stream (spec §8.4).
    fn estimate_scaling_factor(&self) -> Result<f64> {
        let n = self.cfg.n_batches_for_norm_estimate.max(1);
        let d = self.sampler.hidden_dim();
        let mut sum = 0.0f64;
        let mut rows = 0usize;
        for i in 0..n {
            let hidden = self.sampler.sample_hidden(
                stream::NORM_ESTIMATE,
                i,
                self.cfg.train_batch_size_samples,
            )?;
            for row in hidden.chunks_exact(d) {
                sum += row
                    .iter()
                    .map(|v| (*v as f64) * (*v as f64))
                    .sum::<f64>()
                    .sqrt();
                rows += 1;
            }
        }
        let mean = sum / rows.max(1) as f64;
        if !(mean.is_finite() && mean > 0.0) {
            return Err(TrainError::config(
                "normalize_activations",
                format!("cannot estimate a scaling factor: mean input norm is {mean}"),
            ));
        }
        Ok((d as f64).sqrt() / mean)
    }

    /// Batches sampled ahead on a background thread, from the state's next
    /// step on (`None` when `prefetch_batches` is 0).
    pub(super) fn prefetch(&self, state: &RunState<B>) -> Option<Prefetcher> {
        (self.cfg.prefetch_batches > 0).then(|| {
            self.sampler.prefetch(
                state.n_training_steps,
                self.total_steps(),
                self.cfg.prefetch_batches,
            )
        })
    }

    /// Training batch `step`: the prefetcher's next one, or sampled inline.
    pub(super) fn next_batch(&self, prefetch: Option<&mut Prefetcher>, step: u64) -> Result<Batch> {
        let _wait = profile::span(Phase::WaitData);
        match prefetch {
            Some(p) => p.next_batch().unwrap_or_else(|| {
                Err(TrainError::config(
                    "training_samples",
                    "data stream ended early",
                ))
            }),
            None => self.sampler.train_batch(step),
        }
    }

    /// The plan of step `step`: learning rate, coefficient values (the one
    /// named in `tuned` multiplied by its factor), dead-latent window and
    /// whether it is a log step.
    pub(super) fn plan(&self, step: u64, tuned: Option<&(String, f64)>) -> StepPlan {
        let coefficients = self
            .coefficients
            .iter()
            .map(|c| {
                let mut v = c.at_step(step);
                if let Some((name, f)) = tuned {
                    if *name == c.name {
                        v *= f;
                    }
                }
                (c.name.clone(), v)
            })
            .collect();
        StepPlan {
            step,
            lr: self.schedule.lr_at(step),
            coefficients,
            dead_after: self.dead_after(),
            log: (step + 1).is_multiple_of(self.cfg.log_every),
            precision: self.autocast.sae,
        }
    }

    /// The SAE input of `batch`: `[batch, d_in]` on the device, multiplied
    /// by the scaling factor when there is one. Hidden activations computed
    /// on the host are uploaded; a batch without them (the device path) is
    /// turned into them on the device from its sparse features.
    pub(super) fn input<M: CheckpointSae<B>>(
        &self,
        batch: Batch,
        sae: &M,
        state: &RunState<B>,
    ) -> Result<Tensor<B, 2>> {
        let _span = profile::synced_span::<B>(Phase::Upload, &self.device);
        let shape = [self.cfg.train_batch_size_samples, sae.d_in()];
        if batch.features.n_rows() != shape[0] {
            return Err(TrainError::config(
                "batch_size",
                format!(
                    "a batch of {} rows was handed to a run of batch size {}",
                    batch.features.n_rows(),
                    shape[0]
                ),
            ));
        }
        let x = match (batch.hidden, &self.dictionary) {
            (Some(hidden), _) => {
                Tensor::<B, 2>::from_data(TensorData::new(hidden, shape), &self.device)
            }
            (None, Some(dictionary)) => Tensor::from_inner(
                dictionary
                    .forward_sparse_at(&batch.features, self.autocast.data)?
                    .to_device(&inner_device::<B>(&self.device)),
            ),
            (None, None) => {
                return Err(TrainError::config(
                    "hidden_path",
                    "the batch has no hidden activations (device path) and the trainer has no \
                     feature dictionary on the device to compute them",
                ))
            }
        };
        Ok(match state.scaling_factor {
            Some(s) => x.mul_scalar(s),
            None => x,
        })
    }

    /// The error that ends a run whose step `step` gave a non-finite `what`,
    /// after writing the last good state as checkpoint
    /// `last_good_<samples>` (when checkpoints are on).
    pub(super) fn stop_non_finite<M: CheckpointSae<B>>(
        &self,
        step: u64,
        what: String,
        (good_sae, good_state): (M, RunState<B>),
        hooks: &mut dyn TrainerHooks<B, M>,
    ) -> TrainError {
        let name = format!("last_good_{}", good_state.n_training_samples);
        match self.write_checkpoint(&name, &good_sae, &good_state, hooks) {
            Ok(checkpoint) => TrainError::NonFinite {
                step,
                what,
                checkpoint,
            },
            Err(e) => e,
        }
    }

    /// Hands the step's record to the hooks: the metrics on a log step, the
    /// hooks' evaluation on an evaluation step, nothing on other steps.
    pub(super) fn record<M: CheckpointSae<B>>(
        &self,
        sae: &M,
        state: &RunState<B>,
        plan: &StepPlan,
        scalars: &StepScalars,
        arch_metrics: &[(String, f64)],
        hooks: &mut dyn TrainerHooks<B, M>,
    ) -> Result<()> {
        let step = plan.step;
        let mut record = Map::new();
        if plan.log {
            let n_since = state.steps_since_fired();
            let counts = RecordCounts {
                n_training_samples: state.n_training_samples,
                mean_passes_since_fired: n_since.iter().map(|v| *v as f64).sum::<f64>()
                    / n_since.len().max(1) as f64,
                dead_features: RunState::<B>::dead_count(&n_since, plan.dead_after),
            };
            record = log_record(plan, scalars, arch_metrics, counts);
        }
        let is_eval_step =
            self.cfg.eval_every > 0 && (step + 1).is_multiple_of(self.cfg.eval_every);
        if is_eval_step {
            if let Some(eval) = hooks.evaluate(sae, step)? {
                insert_position(&mut record, step, state.n_training_samples);
                record.extend(eval);
            }
        }
        if !record.is_empty() {
            hooks.on_record(&record)?;
        }
        Ok(())
    }

    /// Writes checkpoint `<samples>` when the state has passed its next
    /// threshold.
    pub(super) fn maybe_checkpoint<M: CheckpointSae<B>>(
        &self,
        sae: &M,
        state: &mut RunState<B>,
        hooks: &mut dyn TrainerHooks<B, M>,
    ) -> Result<Option<PathBuf>> {
        if !state.take_due_checkpoint() {
            return Ok(None);
        }
        let name = state.n_training_samples.to_string();
        self.write_checkpoint(&name, sae, state, hooks)
    }

    /// Writes checkpoint `name` of `sae` and `state` under `checkpoint_path`
    /// (`None` when checkpoints are off).
    fn write_checkpoint<M: CheckpointSae<B>>(
        &self,
        name: &str,
        sae: &M,
        state: &RunState<B>,
        hooks: &mut dyn TrainerHooks<B, M>,
    ) -> Result<Option<PathBuf>> {
        let Some(root) = &self.cfg.checkpoint_path else {
            return Ok(None);
        };
        let snap = state.snapshot(&self.cfg, &self.coefficients);
        let sparsity = state.log_sparsity();
        let dir = write_atomically(&root.join(name), |tmp| {
            sae.save_training(tmp)?;
            snap.write(tmp, &sparsity)?;
            hooks.on_checkpoint(tmp)
        })?;
        log::info!("checkpoint written to {}", dir.display());
        Ok(Some(dir))
    }

    /// The end of a run: final statistics (taken before the scaling factor
    /// is folded, for the final checkpoint), the factor folded into the
    /// SAE, its metadata set, and the final checkpoint if asked for.
    pub(super) fn finish<M: CheckpointSae<B>>(
        &self,
        mut sae: M,
        mut state: RunState<B>,
        mut checkpoints: Vec<PathBuf>,
        hooks: &mut dyn TrainerHooks<B, M>,
    ) -> Result<TrainOutcome<M>> {
        let num_dead =
            RunState::<B>::dead_count(&state.steps_since_fired(), self.dead_after()) as u64;
        let l0 = state.window_l0();
        let log_feature_sparsity = state.log_sparsity();
        let scaling_factor = state.scaling_factor;
        if let Some(s) = scaling_factor {
            sae = sae.fold_activation_norm_scaling_factor(s);
            state.scaling_factor = None;
        }
        if let Some(l0) = l0 {
            sae.set_metadata("l0", l0.into());
        }
        sae.set_metadata("num_dead_features", num_dead.into());
        if self.cfg.save_final_checkpoint {
            let name = format!("final_{}", state.n_training_samples);
            checkpoints.extend(self.write_checkpoint(&name, &sae, &state, hooks)?);
        }
        Ok(TrainOutcome {
            sae,
            l0,
            num_dead_features: num_dead,
            log_feature_sparsity,
            n_training_samples: state.n_training_samples,
            n_training_steps: state.n_training_steps,
            scaling_factor,
            checkpoints,
        })
    }
}

/// The steered coefficient and the factor the L0 tuner holds now (after
/// the batches of all earlier steps).
pub(super) fn tuned_coefficient<B: AutodiffBackend>(state: &RunState<B>) -> Option<(String, f64)> {
    state
        .tuner
        .as_ref()
        .map(|t| (t.config.coefficient.clone().unwrap_or_default(), t.factor()))
}

/// Throughput since `fit` started, for [`Progress`].
#[derive(Debug)]
pub(super) struct Meter {
    started: Instant,
    start_samples: u64,
    total_steps: u64,
}

impl Meter {
    pub(super) fn start<B: AutodiffBackend>(setup: &Setup<B>, state: &RunState<B>) -> Self {
        Self {
            started: Instant::now(),
            start_samples: state.n_training_samples,
            total_steps: setup.total_steps(),
        }
    }

    pub(super) fn progress<B: AutodiffBackend>(
        &self,
        state: &RunState<B>,
        scalars: &StepScalars,
    ) -> Progress {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        Progress {
            step: state.n_training_steps,
            total_steps: self.total_steps,
            n_training_samples: state.n_training_samples,
            loss: scalars.overall_loss as f64,
            l0: scalars.batch_l0 as f64,
            samples_per_second: (state.n_training_samples - self.start_samples) as f64 / elapsed,
        }
    }
}
