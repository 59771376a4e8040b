//! The training loop (sae-lens `SAETrainer.fit`, spec §8.4), generic over
//! the Burn autodiff backend and the SAE.
//!
//! Per step: sample (prefetched), scale, dead-latent mask, projection,
//! training forward pass, firing statistics, backward, global-norm-clipped
//! Adam, one small read-back of the scalar results (loss terms, gradient
//! norm, L0) to check they are finite and to feed the progress bar and the
//! L0 tuner. Metrics are assembled only every `log_every` steps.
//!
//! Determinism: training batch `i` comes from its own addressable random
//! stream, the optimizer and the statistics live in [`RunState`], and a
//! checkpoint holds all of it, so a run resumed from any checkpoint ends with
//! the same weights as one that never stopped.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde_json::{Map, Value};
use synthsae_sae::{Coefficient, TrainStepInput, TrainingSae};

use crate::checkpoint::{
    find_resumable, write_atomically, StateJson, TrainerSnapshot, STATE_FORMAT,
};
use crate::config::TrainerConfig;
use crate::data::{stream, BatchSampler, Prefetcher};
use crate::error::{Result, TrainError};
use crate::optim::{Adam, AdamSettings};
use crate::schedule::LrSchedule;
use crate::tuner::L0Tuner;

/// What the trainer needs from an SAE beyond [`TrainingSae`]: its training
/// files and its input-normalisation mode.
pub trait CheckpointSae<B: AutodiffBackend>: TrainingSae<B> {
    /// Writes the SAE's training-form files (`cfg.json`,
    /// `sae_weights.safetensors`) into `dir`; must round-trip exactly.
    fn save_training(&self, dir: &Path) -> Result<()>;

    /// Reads what [`CheckpointSae::save_training`] wrote.
    fn load_training(dir: &Path, device: &B::Device) -> Result<Self>;

    /// sae-lens `normalize_activations` of the SAE's config.
    fn normalize_activations(&self) -> String;

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

/// The optimizer, counters and statistics of a run (everything but the SAE).
#[derive(Debug, Clone)]
pub struct RunState<B: AutodiffBackend> {
    adam: Adam<B>,
    n_training_samples: u64,
    n_training_steps: u64,
    n_frac_active_samples: u64,
    /// `[S]` firings per latent in the current window.
    act_freq_scores: Tensor<B::InnerBackend, 1>,
    /// `[S]` steps since each latent last fired.
    n_since_fired: Tensor<B::InnerBackend, 1>,
    scaling_factor: Option<f64>,
    scaling_estimated: bool,
    tuner: Option<L0Tuner>,
    remaining_checkpoints: Vec<u64>,
}

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

/// Trains one SAE on batches from a [`BatchSampler`].
#[derive(Debug)]
pub struct Trainer<B: AutodiffBackend, M> {
    cfg: TrainerConfig,
    schedule: LrSchedule,
    coefficients: Vec<Coefficient>,
    sampler: BatchSampler,
    device: B::Device,
    sae: M,
    state: RunState<B>,
}

fn to_vec<B: Backend>(t: Tensor<B, 1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 data after convert")
}

impl<B: AutodiffBackend, M: CheckpointSae<B>> Trainer<B, M> {
    /// A trainer for a freshly initialised `sae`.
    pub fn new(
        cfg: TrainerConfig,
        sae: M,
        sampler: BatchSampler,
        device: B::Device,
    ) -> Result<Self> {
        cfg.validate()?;
        Self::check_sampler(&cfg, &sae, &sampler)?;
        let coefficients = sae.coefficients();
        let tuner = Self::make_tuner(&cfg, &coefficients)?;
        let d_sae = sae.d_sae();
        let inner_device = inner_device::<B>(&device);
        let state = RunState {
            adam: Adam::new(Self::adam_settings(&cfg)),
            n_training_samples: 0,
            n_training_steps: 0,
            n_frac_active_samples: 0,
            act_freq_scores: Tensor::zeros([d_sae], &inner_device),
            n_since_fired: Tensor::zeros([d_sae], &inner_device),
            scaling_factor: None,
            scaling_estimated: false,
            tuner,
            remaining_checkpoints: cfg.checkpoint_thresholds(),
        };
        Ok(Self {
            schedule: cfg.schedule()?,
            cfg,
            coefficients,
            sampler,
            device,
            sae,
            state,
        })
    }

    /// A trainer continuing from checkpoint `path` (a checkpoint directory,
    /// or a directory of checkpoints: the one with the most samples is used).
    /// `cfg` must describe the same run (seed, samples, batch size).
    pub fn resume(
        cfg: TrainerConfig,
        path: &Path,
        sampler: BatchSampler,
        device: B::Device,
    ) -> Result<Self> {
        let dir = find_resumable(path)?;
        let snap = TrainerSnapshot::read(&dir)?;
        let j = &snap.json;
        if j.seed != cfg.seed
            || j.total_training_samples != cfg.total_training_samples
            || j.batch_size != cfg.train_batch_size_samples
        {
            return Err(TrainError::checkpoint(
                &dir,
                format!(
                    "written by a run with seed {}, {} samples, batch {}; this run has seed {}, \
                     {} samples, batch {}",
                    j.seed,
                    j.total_training_samples,
                    j.batch_size,
                    cfg.seed,
                    cfg.total_training_samples,
                    cfg.train_batch_size_samples
                ),
            ));
        }
        let sae = M::load_training(&dir, &device)?;
        let mut trainer = Self::new(cfg, sae, sampler, device)?;
        let d_sae = trainer.sae.d_sae();
        for (name, v) in [
            ("act_freq_scores", &snap.act_freq_scores),
            (
                "n_forward_passes_since_fired",
                &snap.n_forward_passes_since_fired,
            ),
        ] {
            if v.len() != d_sae {
                return Err(TrainError::checkpoint(
                    &dir,
                    format!(
                        "`{name}` has {} entries, the SAE has {d_sae} latents",
                        v.len()
                    ),
                ));
            }
        }
        let inner = inner_device::<B>(&trainer.device);
        let st = &mut trainer.state;
        st.adam
            .load_state(&snap.adam, &trainer.sae, &inner)
            .map_err(|reason| TrainError::checkpoint(&dir, reason))?;
        st.n_training_samples = j.n_training_samples;
        st.n_training_steps = j.n_training_steps;
        st.n_frac_active_samples = j.n_frac_active_samples;
        st.act_freq_scores = Tensor::from_data(
            TensorData::new(snap.act_freq_scores.clone(), [d_sae]),
            &inner,
        );
        st.n_since_fired = Tensor::from_data(
            TensorData::new(snap.n_forward_passes_since_fired.clone(), [d_sae]),
            &inner,
        );
        st.scaling_factor = j.scaling_factor;
        st.scaling_estimated = true;
        if j.tuner.is_some() {
            st.tuner = j.tuner.clone();
        }
        st.remaining_checkpoints = j.remaining_checkpoints.clone();
        log::info!(
            "resuming from {} at step {} ({} samples)",
            dir.display(),
            j.n_training_steps,
            j.n_training_samples
        );
        Ok(trainer)
    }

    fn adam_settings(cfg: &TrainerConfig) -> AdamSettings {
        AdamSettings {
            beta1: cfg.adam_beta1,
            beta2: cfg.adam_beta2,
            epsilon: 1e-8,
            max_grad_norm: cfg.max_grad_norm,
        }
    }

    fn check_sampler(cfg: &TrainerConfig, sae: &M, sampler: &BatchSampler) -> Result<()> {
        if sampler.hidden_dim() != sae.d_in() {
            return Err(TrainError::config(
                "sae.d_in",
                format!(
                    "is {}, but the synthetic model's hidden_dim is {}",
                    sae.d_in(),
                    sampler.hidden_dim()
                ),
            ));
        }
        if sampler.batch_size() != cfg.train_batch_size_samples {
            return Err(TrainError::config(
                "batch_size",
                format!(
                    "sampler draws {} rows, config says {}",
                    sampler.batch_size(),
                    cfg.train_batch_size_samples
                ),
            ));
        }
        Ok(())
    }

    fn make_tuner(cfg: &TrainerConfig, coefficients: &[Coefficient]) -> Result<Option<L0Tuner>> {
        let Some(tc) = &cfg.l0_tuner else {
            return Ok(None);
        };
        let mut tc = tc.clone();
        let name = match &tc.coefficient {
            Some(n) => n.clone(),
            None if coefficients.len() == 1 => coefficients[0].name.clone(),
            None => {
                return Err(TrainError::config(
                    "l0_tuner.coefficient",
                    format!(
                        "the SAE has {} coefficients; name the one to steer",
                        coefficients.len()
                    ),
                ))
            }
        };
        if !coefficients.iter().any(|c| c.name == name) {
            return Err(TrainError::config(
                "l0_tuner.coefficient",
                format!(
                    "the SAE has no coefficient `{name}` (it has {:?}); the L0 tuner needs a \
                     coefficient-based SAE such as standard or jumprelu",
                    coefficients
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                ),
            ));
        }
        tc.coefficient = Some(name);
        Ok(Some(L0Tuner::new(tc)))
    }

    /// The SAE being trained.
    pub fn sae(&self) -> &M {
        &self.sae
    }

    /// The run's configuration.
    pub fn config(&self) -> &TrainerConfig {
        &self.cfg
    }

    /// Steps already taken (non-zero after a resume).
    pub fn steps_done(&self) -> u64 {
        self.state.n_training_steps
    }

    /// Steps the whole run takes: training continues while fewer than
    /// `total_training_samples` samples have been seen.
    pub fn total_steps(&self) -> u64 {
        self.cfg
            .total_training_samples
            .div_ceil(self.cfg.train_batch_size_samples as u64)
    }

    /// The scaling factor `sqrt(D) / mean ‖x‖` over
    /// `n_batches_for_norm_estimate` batches of their own stream (spec §8.4).
    fn estimate_scaling_factor(&self) -> Result<f64> {
        let n = self.cfg.n_batches_for_norm_estimate.max(1);
        let d = self.sampler.hidden_dim();
        let mut sum = 0.0f64;
        let mut rows = 0usize;
        for i in 0..n {
            let b =
                self.sampler
                    .sample(stream::NORM_ESTIMATE, i, self.cfg.train_batch_size_samples)?;
            for row in b.hidden.chunks_exact(d) {
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

    fn coefficient_values(&self, step: u64) -> Vec<(String, f64)> {
        let tuned = self
            .state
            .tuner
            .as_ref()
            .map(|t| (t.config.coefficient.clone().unwrap_or_default(), t.factor()));
        self.coefficients
            .iter()
            .map(|c| {
                let mut v = c.at_step(step);
                if let Some((name, f)) = &tuned {
                    if *name == c.name {
                        v *= f;
                    }
                }
                (c.name.clone(), v)
            })
            .collect()
    }

    fn log_sparsity(state: &RunState<B>) -> Vec<f32> {
        let denom = state.n_frac_active_samples.max(1) as f32;
        to_vec(state.act_freq_scores.clone())
            .into_iter()
            .map(|c| (c / denom + 1e-10).log10())
            .collect()
    }

    fn snapshot(&self, sae: &M, state: &RunState<B>) -> TrainerSnapshot {
        let step = state.n_training_steps;
        let coefficient_schedulers = self
            .coefficients
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
        let _ = sae;
        TrainerSnapshot {
            json: StateJson {
                format: STATE_FORMAT.into(),
                n_training_samples: state.n_training_samples,
                n_training_steps: state.n_training_steps,
                n_frac_active_samples: state.n_frac_active_samples,
                adam_step: state.adam.step_count(),
                scaling_factor: state.scaling_factor,
                tuner: state.tuner.clone(),
                coefficient_schedulers,
                remaining_checkpoints: state.remaining_checkpoints.clone(),
                seed: self.cfg.seed,
                total_training_samples: self.cfg.total_training_samples,
                batch_size: self.cfg.train_batch_size_samples,
            },
            act_freq_scores: to_vec(state.act_freq_scores.clone()),
            n_forward_passes_since_fired: to_vec(state.n_since_fired.clone()),
            adam: state.adam.state(),
        }
    }

    fn write_checkpoint(
        &self,
        name: &str,
        sae: &M,
        state: &RunState<B>,
        hooks: &mut dyn TrainerHooks<B, M>,
    ) -> Result<Option<PathBuf>> {
        let Some(root) = &self.cfg.checkpoint_path else {
            return Ok(None);
        };
        let snap = self.snapshot(sae, state);
        let sparsity = Self::log_sparsity(state);
        let dir = write_atomically(&root.join(name), |tmp| {
            sae.save_training(tmp)?;
            snap.write(tmp, &sparsity)?;
            hooks.on_checkpoint(tmp)
        })?;
        log::info!("checkpoint written to {}", dir.display());
        Ok(Some(dir))
    }

    /// Runs the training loop to the end and returns the trained SAE.
    pub fn fit(self, hooks: &mut dyn TrainerHooks<B, M>) -> Result<TrainOutcome<M>> {
        let mut this = self;
        let mut checkpoints = Vec::new();
        let estimate = this.sae.normalize_activations() == "expected_average_only_in";
        if this.sae.normalize_activations() == "covariance_whitening" {
            return Err(TrainError::config(
                "sae.normalize_activations",
                "covariance_whitening is not supported by the synthsae trainer; use none or \
                 expected_average_only_in",
            ));
        }
        if estimate && !this.state.scaling_estimated {
            let s = this.estimate_scaling_factor()?;
            log::info!("estimated input scaling factor {s}");
            this.state.scaling_factor = Some(s);
        }
        this.state.scaling_estimated = true;

        let total_steps = this.total_steps();
        let bs = this.cfg.train_batch_size_samples;
        let d_in = this.sae.d_in();
        let window = this.cfg.dead_feature_window as f32;
        let mut prefetch: Option<Prefetcher> = (this.cfg.prefetch_batches > 0).then(|| {
            this.sampler.prefetch(
                this.state.n_training_steps,
                total_steps,
                this.cfg.prefetch_batches,
            )
        });
        let started = Instant::now();
        let start_samples = this.state.n_training_samples;
        let mut sae = this.sae.clone();
        let mut state = this.state.clone();

        while state.n_training_samples < this.cfg.total_training_samples {
            let step = state.n_training_steps;
            if step > 0 && step.is_multiple_of(this.cfg.feature_sampling_window) {
                state.act_freq_scores = state.act_freq_scores.zeros_like();
                state.n_frac_active_samples = 0;
            }
            let batch = match prefetch.as_mut() {
                Some(p) => p.next_batch().unwrap_or_else(|| {
                    Err(TrainError::config(
                        "training_samples",
                        "data stream ended early",
                    ))
                })?,
                None => this.sampler.train_batch(step)?,
            };
            let last_good = (sae.clone(), state.clone());

            let lr = this.schedule.lr_at(step);
            let coefficients = this.coefficient_values(step);
            let x =
                Tensor::<B, 2>::from_data(TensorData::new(batch.hidden, [bs, d_in]), &this.device);
            let x = match state.scaling_factor {
                Some(s) => x.mul_scalar(s),
                None => x,
            };
            let dead = state.n_since_fired.clone().greater_elem(window);
            let input = TrainStepInput {
                x,
                dead_mask: Some(Tensor::from_inner(dead)),
                coefficients: coefficients.clone(),
                step,
            };
            sae = sae.project();
            let out = sae.training_forward(&input);
            let arch_metrics = sae.after_forward(&out);

            // Firing statistics (no gradient).
            let fired = match &out.firing {
                // Counts ≤ batch size < 2^24: exact in f32.
                Some(f) => Tensor::<B::InnerBackend, 1>::from_data(
                    TensorData::new(
                        f.counts.iter().map(|&n| n as f32).collect::<Vec<_>>(),
                        [sae.d_sae()],
                    ),
                    &state.n_since_fired.device(),
                ),
                None => out
                    .feature_acts
                    .to_dense()
                    .inner()
                    .not_equal_elem(0.0)
                    .float()
                    .sum_dim(0)
                    .reshape([sae.d_sae()]),
            };
            let fired_any = fired.clone().greater_elem(0.0);
            state.n_since_fired = (state.n_since_fired + 1.0).mask_fill(fired_any, 0.0);
            state.act_freq_scores = state.act_freq_scores + fired.clone();
            state.n_frac_active_samples += bs as u64;
            state.n_training_samples += bs as u64;

            let is_log_step = (step + 1).is_multiple_of(this.cfg.log_every);
            let is_eval_step =
                this.cfg.eval_every > 0 && (step + 1).is_multiple_of(this.cfg.eval_every);

            // Scalars read back once: [loss, terms..., grad norm, l0, (ev)].
            let mut scalars = vec![out.loss.clone().inner()];
            scalars.extend(out.losses.iter().map(|(_, t)| t.clone().inner()));
            let l0 = fired.sum().div_scalar(bs as f64);
            let ev = is_log_step.then(|| {
                let x = input.x.clone().inner();
                let xh = out.sae_out.clone().inner();
                let err = (xh - x.clone()).powi_scalar(2).sum_dim(1).mean();
                let centred = x.clone() - x.mean_dim(0);
                let var = centred.powi_scalar(2).sum_dim(1).mean();
                (err, var)
            });

            let grads = out.loss.backward();
            let (new_sae, grad_norm) = state.adam.step(lr, sae, grads);
            sae = new_sae;
            scalars.push(grad_norm);
            scalars.push(l0);
            if let Some((err, var)) = ev {
                scalars.push(err.reshape([1]));
                scalars.push(var.reshape([1]));
            }
            let values = to_vec(Tensor::cat(scalars, 0));
            let n_terms = out.losses.len();
            let bad = if !values[0].is_finite() {
                Some(
                    out.losses
                        .iter()
                        .zip(&values[1..=n_terms])
                        .find(|(_, v)| !v.is_finite())
                        .map(|((n, _), _)| n.clone())
                        .unwrap_or_else(|| "overall_loss".into()),
                )
            } else if !values[n_terms + 1].is_finite() {
                Some("gradient norm".to_string())
            } else {
                None
            };
            if let Some(what) = bad {
                let (good_sae, good_state) = last_good;
                let checkpoint = this.write_checkpoint(
                    &format!("last_good_{}", good_state.n_training_samples),
                    &good_sae,
                    &good_state,
                    hooks,
                )?;
                return Err(TrainError::NonFinite {
                    step,
                    what,
                    checkpoint,
                });
            }
            let batch_l0 = values[n_terms + 2] as f64;
            if let Some(t) = state.tuner.as_mut() {
                t.update(batch_l0);
            }
            state.n_training_steps += 1;

            let mut record = Map::new();
            if is_log_step {
                let (err, var) = (values[n_terms + 3] as f64, values[n_terms + 4] as f64);
                let n_since = to_vec(state.n_since_fired.clone());
                let dead = n_since.iter().filter(|v| **v > window).count();
                let mean_since =
                    n_since.iter().map(|v| *v as f64).sum::<f64>() / n_since.len().max(1) as f64;
                record.insert("step".into(), step.into());
                record.insert("n_training_samples".into(), state.n_training_samples.into());
                record.insert("losses/overall_loss".into(), (values[0] as f64).into());
                for ((name, _), v) in out.losses.iter().zip(&values[1..=n_terms]) {
                    record.insert(format!("losses/{name}"), (*v as f64).into());
                }
                let ev = if var > 0.0 { 1.0 - err / var } else { 0.0 };
                record.insert("metrics/explained_variance".into(), ev.into());
                record.insert("metrics/l0".into(), batch_l0.into());
                record.insert(
                    "metrics/grad_norm".into(),
                    (values[n_terms + 1] as f64).into(),
                );
                record.insert("sparsity/mean_passes_since_fired".into(), mean_since.into());
                record.insert("sparsity/dead_features".into(), dead.into());
                record.insert("details/current_learning_rate".into(), lr.into());
                for (name, v) in &coefficients {
                    record.insert(format!("details/{name}_coefficient"), (*v).into());
                }
                for (name, v) in &arch_metrics {
                    record.insert(format!("metrics/{name}"), (*v).into());
                }
            }
            if is_eval_step {
                if let Some(eval) = hooks.evaluate(&sae, step)? {
                    record.insert("step".into(), step.into());
                    record.insert("n_training_samples".into(), state.n_training_samples.into());
                    record.extend(eval);
                }
            }
            if !record.is_empty() {
                hooks.on_record(&record)?;
            }

            if state
                .remaining_checkpoints
                .first()
                .is_some_and(|t| state.n_training_samples > *t)
            {
                state.remaining_checkpoints.remove(0);
                let name = state.n_training_samples.to_string();
                if let Some(p) = this.write_checkpoint(&name, &sae, &state, hooks)? {
                    checkpoints.push(p);
                }
            }

            let elapsed = started.elapsed().as_secs_f64().max(1e-9);
            hooks.on_progress(&Progress {
                step: state.n_training_steps,
                total_steps,
                n_training_samples: state.n_training_samples,
                loss: values[0] as f64,
                l0: batch_l0,
                samples_per_second: (state.n_training_samples - start_samples) as f64 / elapsed,
            });
        }
        drop(prefetch);

        // Final state before folding, for the final checkpoint.
        let n_since = to_vec(state.n_since_fired.clone());
        let num_dead = n_since.iter().filter(|v| **v > window).count() as u64;
        let l0 = (state.n_frac_active_samples > 0).then(|| {
            to_vec(state.act_freq_scores.clone())
                .iter()
                .map(|v| *v as f64)
                .sum::<f64>()
                / state.n_frac_active_samples as f64
        });
        let log_feature_sparsity = Self::log_sparsity(&state);
        let scaling_factor = state.scaling_factor;
        if let Some(s) = scaling_factor {
            sae = sae.fold_activation_norm_scaling_factor(s);
            state.scaling_factor = None;
        }
        if let Some(l0) = l0 {
            sae.set_metadata("l0", l0.into());
        }
        sae.set_metadata("num_dead_features", num_dead.into());
        if this.cfg.save_final_checkpoint {
            let name = format!("final_{}", state.n_training_samples);
            if let Some(p) = this.write_checkpoint(&name, &sae, &state, hooks)? {
                checkpoints.push(p);
            }
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

fn inner_device<B: AutodiffBackend>(device: &B::Device) -> burn::tensor::Device<B::InnerBackend> {
    // Autodiff backends share their inner backend's device type.
    let probe = Tensor::<B, 1>::zeros([1], device).inner();
    probe.device()
}
