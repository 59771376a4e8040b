//! The training loop (sae-lens `SAETrainer.fit`, spec §8.4), generic over
//! the Burn autodiff backend and the SAE.
//!
//! Per step (`step::train_step`): sample (prefetched), scale, dead-latent
//! mask, projection, training forward pass, firing statistics, backward,
//! global-norm-clipped Adam, and one small read-back of the scalar results
//! (`scalars::StepScalars`: loss terms, gradient norm, L0) to check they
//! are finite and to feed the progress display and the L0 tuner. Metrics are
//! assembled only every `log_every` steps (`record`).
//!
//! Determinism: training batch `i` comes from its own addressable random
//! stream, the optimizer and the statistics live in [`RunState`], and a
//! checkpoint holds all of it, so a run resumed from any checkpoint ends with
//! the same weights as one that never stopped.
//!
//! * `fit`: the named steps of [`Trainer::fit`] and the run's fixed setup;
//! * `hooks`: what the trainer asks of an SAE, and the caller's callbacks;
//! * `state`: [`RunState`] and its checkpoint form;
//! * `step`: one training step;
//! * `scalars`: the step's named read-back;
//! * `record`: the metrics record of a log step.

mod fit;
mod hooks;
mod record;
mod scalars;
mod state;
mod step;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use synthsae_sae::Coefficient;

use crate::autocast::Autocast;
use crate::checkpoint::{find_resumable, TrainerSnapshot};
use crate::config::TrainerConfig;
use crate::data::{Batch, BatchSampler, Prefetcher};
use crate::error::{Result, TrainError};
use crate::optim::{Adam, AdamSettings};
use crate::tuner::L0Tuner;

pub use fit::TrainOutcome;
pub use hooks::{CheckpointSae, NoHooks, Progress, TrainerHooks};
pub use state::RunState;

use fit::{tuned_coefficient, Meter, Setup};
use step::{train_step, StepOutput};

/// Trains one SAE on batches from a [`BatchSampler`].
#[derive(Debug)]
pub struct Trainer<B: AutodiffBackend, M> {
    setup: Setup<B>,
    sae: M,
    state: RunState<B>,
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
        let state = RunState::fresh(
            Adam::new(Self::adam_settings(&cfg)),
            sae.d_sae(),
            &inner_device::<B>(&device),
            tuner,
            cfg.checkpoint_thresholds(),
        );
        Ok(Self {
            setup: Setup {
                schedule: cfg.schedule()?,
                cfg,
                coefficients,
                sampler,
                device,
                dictionary: None,
                autocast: Autocast::default(),
            },
            sae,
            state,
        })
    }

    /// Gives the trainer the model's feature dictionary on the device, for
    /// batches whose hidden activations are left to the device
    /// ([`synthsae_data::HiddenPath::Device`]; the sampler's choice).
    pub fn with_device_dictionary(
        mut self,
        dictionary: synthsae_data::FeatureDictionary<B::InnerBackend>,
    ) -> Self {
        self.setup.dictionary = Some(dictionary);
        self
    }

    /// Sets the arithmetic of the SAE's products and of the device
    /// gather-sum (float32 unless set; [`Autocast::resolve`] decides what a
    /// run's `autocast_sae` / `autocast_data` give on its backend).
    pub fn with_autocast(mut self, autocast: Autocast) -> Self {
        self.setup.autocast = autocast;
        self
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
        let inner = inner_device::<B>(&trainer.setup.device);
        trainer.state.restore(&snap, &trainer.sae, &dir, &inner)?;
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
        &self.setup.cfg
    }

    /// Steps already taken (non-zero after a resume).
    pub fn steps_done(&self) -> u64 {
        self.state.n_training_steps
    }

    /// Steps the whole run takes: training continues while fewer than
    /// `total_training_samples` samples have been seen.
    pub fn total_steps(&self) -> u64 {
        self.setup.total_steps()
    }

    /// Runs the training loop to the end and returns the trained SAE:
    /// [`Trainer::start`], then every batch from the run's own (prefetched)
    /// stream through [`Fitting::step`], then [`Fitting::finish`].
    pub fn fit(self, hooks: &mut dyn TrainerHooks<B, M>) -> Result<TrainOutcome<M>> {
        let mut fitting = self.start()?;
        let mut prefetch = fitting.prefetch();
        while !fitting.is_done() {
            let batch = fitting.own_batch(prefetch.as_mut())?;
            fitting.step(batch, hooks)?;
        }
        drop(prefetch);
        fitting.finish(hooks)
    }

    /// Prepares the run (the input scaling estimate, when the SAE asks for
    /// one) and returns it ready to take batches one at a time, so that a
    /// caller can feed one sampled stream to several runs.
    pub fn start(self) -> Result<Fitting<B, M>> {
        let Self {
            setup,
            sae,
            mut state,
        } = self;
        setup.prepare_scaling(&sae, &mut state)?;
        let meter = Meter::start(&setup, &state);
        Ok(Fitting {
            setup,
            sae: Some(sae),
            state,
            meter,
            checkpoints: Vec::new(),
        })
    }
}

/// A started run that takes its training batches from the caller: batch
/// `i` of the run's data stream ([`BatchSampler::train_batch`]) for step
/// `i`. Fed the same batches, it ends exactly as [`Trainer::fit`] does.
#[derive(Debug)]
pub struct Fitting<B: AutodiffBackend, M> {
    setup: Setup<B>,
    /// `None` only inside [`Fitting::step`].
    sae: Option<M>,
    state: RunState<B>,
    meter: Meter,
    checkpoints: Vec<PathBuf>,
}

impl<B: AutodiffBackend, M: CheckpointSae<B>> Fitting<B, M> {
    /// The step the next batch is for (= the index of that batch in the
    /// training stream).
    pub fn next_step(&self) -> u64 {
        self.state.n_training_steps
    }

    /// Steps the whole run takes.
    pub fn total_steps(&self) -> u64 {
        self.setup.total_steps()
    }

    /// Whether the run has seen all its training samples.
    pub fn is_done(&self) -> bool {
        self.state.n_training_samples >= self.setup.cfg.total_training_samples
    }

    /// The sampler whose training stream this run expects.
    pub fn sampler(&self) -> &BatchSampler {
        &self.setup.sampler
    }

    /// The run's own training batches from its next step on, sampled ahead
    /// on a background thread (`None` when `prefetch_batches` is 0).
    pub fn prefetch(&self) -> Option<Prefetcher> {
        self.setup.prefetch(&self.state)
    }

    /// Batch [`Fitting::next_step`] of the run's own stream: the
    /// prefetcher's next one, or sampled here.
    pub fn own_batch(&self, prefetch: Option<&mut Prefetcher>) -> Result<Batch> {
        self.setup.next_batch(prefetch, self.next_step())
    }

    /// Trains one step on `batch`, which must be batch
    /// [`Fitting::next_step`] of the run's training stream; writes the
    /// step's record and, when due, a checkpoint.
    pub fn step(&mut self, batch: Batch, hooks: &mut dyn TrainerHooks<B, M>) -> Result<()> {
        let setup = &self.setup;
        let state = &mut self.state;
        let step = state.n_training_steps;
        let x = setup.input(
            batch,
            self.sae.as_ref().expect("the SAE is present between steps"),
            state,
        )?;
        let sae = self.sae.take().expect("the SAE is present between steps");
        state.start_window_if_due(step, setup.cfg.feature_sampling_window);
        let last_good = (sae.clone(), state.clone());
        let plan = setup.plan(step, tuned_coefficient(state).as_ref());
        let StepOutput {
            sae: trained,
            scalars,
            arch_metrics,
        } = train_step(sae, state, x, &plan);
        if let Some(what) = scalars.non_finite() {
            return Err(setup.stop_non_finite(step, what, last_good, hooks));
        }
        let sae = self.sae.insert(trained);
        state.finish_step(scalars.batch_l0 as f64);
        setup.record(sae, state, &plan, &scalars, &arch_metrics, hooks)?;
        if let Some(dir) = setup.maybe_checkpoint(sae, state, hooks)? {
            hooks.on_checkpoint_written(&dir);
            self.checkpoints.push(dir);
        }
        hooks.on_progress(&self.meter.progress(state, &scalars));
        Ok(())
    }

    /// Ends the run (see [`TrainOutcome`]).
    pub fn finish(self, hooks: &mut dyn TrainerHooks<B, M>) -> Result<TrainOutcome<M>> {
        let sae = self.sae.expect("the SAE is present between steps");
        self.setup.finish(sae, self.state, self.checkpoints, hooks)
    }
}

pub(super) fn inner_device<B: AutodiffBackend>(
    device: &B::Device,
) -> burn::tensor::Device<B::InnerBackend> {
    // Autodiff backends share their inner backend's device type.
    let probe = Tensor::<B, 1>::zeros([1], device).inner();
    probe.device()
}
