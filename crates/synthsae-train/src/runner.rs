//! The synthetic-data runner (sae-lens `SyntheticSAERunner`, spec §7): model
//! + SAE + trainer + evaluations + the output folder.
//!
//! Output layout (sae-lens §7.4, plus `metrics.jsonl` and
//! `synthsae_config.json`):
//!
//! ```text
//! cfg.json, sae_weights.safetensors   inference SAE (BatchTopK/Matryoshka as jumprelu)
//! sparsity.safetensors                log10 firing rate over the last window
//! runner_config.json                  sae-lens keys only (loadable by sae-lens)
//! synthsae_config.json                synthsae's own fields (seed, backend, tuner)
//! eval_stats.json                     final evaluation, if it ran
//! hierarchy_stats.json                its hierarchy section (absorption, splitting)
//! metrics.jsonl                       one JSON object per logging / evaluation step
//! synthetic_model/                    if save_synthetic_model
//! ```
//!
//! Unlike sae-lens, periodic evaluations really run every `eval_frequency`
//! steps and draw from their own random stream, so they do not change the
//! training data (spec §13.11–12); the final evaluation runs on the exported
//! inference SAE, i.e. the model that is saved (§13.24).

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use serde_json::{Map, Value};
use synthsae_data::SyntheticModel;
use synthsae_eval::{
    evaluate_sae, EvalOptions, EvalReport, HierarchyMetrics, SyntheticDataEvalResult,
};
use synthsae_sae::any::AnyTrainingSae;
use synthsae_sae::{NormalizeActivations, TrainingSae};

use crate::autocast::Autocast;
use crate::checkpoint::write_sparsity;
use crate::data::{batch_rng, stream, BatchSampler};
use crate::error::{Result, TrainError};
use crate::runner_config::{ModelSpec, RunnerConfig};
use crate::trainer::{CheckpointSae, Progress, TrainOutcome, Trainer, TrainerHooks};
use synthsae_host::profile::{self, Phase};

impl<B: AutodiffBackend> CheckpointSae<B> for AnyTrainingSae<B> {
    fn save_training(&self, dir: &Path) -> Result<()> {
        Ok(self.save_checkpoint(dir)?)
    }

    fn load_training(dir: &Path, device: &B::Device) -> Result<Self> {
        Ok(Self::load_checkpoint(dir, device)?)
    }

    fn normalize_activations(&self) -> NormalizeActivations {
        self.config().normalize_activations()
    }

    fn set_metadata(&mut self, key: &str, value: Value) {
        self.metadata_mut().insert(key.to_string(), value);
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunnerResult<B: AutodiffBackend> {
    /// The trained SAE (scaling folded in).
    pub sae: AnyTrainingSae<B>,
    /// The final evaluation, if it ran.
    pub final_eval: Option<SyntheticDataEvalResult>,
    /// Its hierarchy section (absorption, splitting), if it ran.
    pub final_hierarchy: Option<HierarchyMetrics>,
    /// The output folder, if outputs were written.
    pub output_path: Option<PathBuf>,
    /// Samples trained on.
    pub n_training_samples: u64,
    /// Mean L0 over the last firing-rate window.
    pub l0: Option<f64>,
    /// Dead latents at the end of training.
    pub num_dead_features: u64,
    /// Wall-clock seconds spent in the training loop.
    pub train_seconds: f64,
}

impl<B: AutodiffBackend> RunnerResult<B> {
    /// What the run reports, without the SAE.
    pub fn summary(&self) -> RunSummary {
        RunSummary {
            output_path: self.output_path.clone(),
            n_training_samples: self.n_training_samples,
            train_seconds: self.train_seconds,
            l0: self.l0,
            num_dead_features: self.num_dead_features,
            final_eval: self.final_eval,
            final_hierarchy: self.final_hierarchy.clone(),
        }
    }
}

/// What a finished run reports, without its SAE ([`RunnerResult::summary`]):
/// the fields of [`RunnerResult`] of the same names.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The output folder, if outputs were written.
    pub output_path: Option<PathBuf>,
    /// Samples trained on.
    pub n_training_samples: u64,
    /// Wall-clock seconds spent in the training loop.
    pub train_seconds: f64,
    /// Mean L0 over the last firing-rate window.
    pub l0: Option<f64>,
    /// Dead latents at the end of training.
    pub num_dead_features: u64,
    /// The final evaluation, if it ran.
    pub final_eval: Option<SyntheticDataEvalResult>,
    /// Its hierarchy section, if it ran.
    pub final_hierarchy: Option<HierarchyMetrics>,
}

impl RunSummary {
    /// Training samples per second of training-loop time.
    pub fn samples_per_second(&self) -> f64 {
        self.n_training_samples as f64 / self.train_seconds.max(1e-9)
    }

    /// The report as JSON (what `synthsae train --json` prints and the
    /// Python `train` returns): `output_path`, `n_training_samples`,
    /// `train_seconds`, `samples_per_second`, `l0`, `num_dead_features`,
    /// `final_eval` (the evaluation's keys, with its hierarchy section under
    /// `hierarchy`; `null` when none ran).
    pub fn to_json(&self) -> Value {
        let final_eval = self.final_eval.as_ref().map(|e| {
            let mut v = serde_json::to_value(e).expect("an evaluation serialises");
            if let Some(h) = &self.final_hierarchy {
                v["hierarchy"] = serde_json::to_value(h).expect("hierarchy metrics serialise");
            }
            v
        });
        serde_json::json!({
            "output_path": self.output_path.as_ref().map(|p| p.display().to_string()),
            "n_training_samples": self.n_training_samples,
            "train_seconds": self.train_seconds,
            "samples_per_second": self.samples_per_second(),
            "l0": self.l0,
            "num_dead_features": self.num_dead_features,
            "final_eval": final_eval,
        })
    }
}

/// Observes a run (progress bars, logs).
pub trait RunObserver {
    /// After each training step.
    fn on_progress(&mut self, _progress: &Progress) {}
    /// A metrics record was written.
    fn on_record(&mut self, _record: &Map<String, Value>) {}
    /// A phase starts (`"training"`, `"final evaluation"`, `"saving"`).
    fn on_phase(&mut self, _phase: &str) {}
    /// A periodic checkpoint is complete and in place at `dir`.
    fn on_checkpoint(&mut self, _dir: &Path) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl RunObserver for Silent {}

struct Hooks<'a, B: AutodiffBackend> {
    cfg: &'a RunnerConfig,
    model: &'a SyntheticModel<B::InnerBackend>,
    metrics: Option<&'a mut std::fs::File>,
    metrics_path: Option<&'a Path>,
    observer: &'a mut dyn RunObserver,
}

impl<B: AutodiffBackend> TrainerHooks<B, AnyTrainingSae<B>> for Hooks<'_, B> {
    fn on_record(&mut self, record: &Map<String, Value>) -> Result<()> {
        if let (Some(f), Some(p)) = (self.metrics.as_mut(), self.metrics_path) {
            let line = serde_json::to_string(record).expect("record serialises");
            writeln!(f, "{line}").map_err(|e| TrainError::io(p, e))?;
        }
        self.observer.on_record(record);
        Ok(())
    }

    fn evaluate(
        &mut self,
        sae: &AnyTrainingSae<B>,
        step: u64,
    ) -> Result<Option<Map<String, Value>>> {
        // The eval stream of each step is its own: turning evaluations on or
        // off does not change the training data.
        let report = evaluate(self.cfg, self.model, sae, stream::EVAL, step)?;
        Ok(Some(
            report
                .stats
                .to_log_dict("synthetic/")
                .into_iter()
                .chain(report.hierarchy.to_log_dict("synthetic/hierarchy/"))
                .map(|(k, v)| (k, Value::from(v)))
                .collect(),
        ))
    }

    fn on_checkpoint(&mut self, dir: &Path) -> Result<()> {
        write_json(&dir.join("runner_config.json"), &self.cfg.to_saelens_json())
    }

    fn on_checkpoint_written(&mut self, dir: &Path) {
        self.observer.on_checkpoint(dir);
    }

    fn on_progress(&mut self, progress: &Progress) {
        self.observer.on_progress(progress);
    }
}

/// Evaluates the inference form of `sae` (the model that is saved) on
/// `cfg.eval_samples` samples of `model`, drawn from batch `index` of the
/// random stream `stream`.
fn evaluate<B: AutodiffBackend>(
    cfg: &RunnerConfig,
    model: &SyntheticModel<B::InnerBackend>,
    sae: &AnyTrainingSae<B>,
    stream: u64,
    index: u64,
) -> Result<EvalReport> {
    let phase = match stream {
        stream::FINAL_EVAL => Phase::FinalEval,
        _ => Phase::Eval,
    };
    let _span = profile::synced_span::<B::InnerBackend>(
        phase,
        &model.feature_dictionary().feature_vectors.device(),
    );
    let mut rng = batch_rng(cfg.data_seed(), stream, index);
    let options = EvalOptions::new(cfg.eval_samples)
        .with_batch_size(cfg.batch_size)
        .with_hidden_path(cfg.hidden_path);
    let inference = sae.to_inference();
    evaluate_sae(&inference, model, &options, &mut rng, |_| {})
        .map_err(|e| TrainError::Eval(e.to_string()))
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON serialises");
    write_atomic(path, text.as_bytes())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(synthsae_sae::io::write_atomic(path, bytes)?)
}

/// Runs a complete training job.
///
/// * `model`: the synthetic model (built or loaded by the caller from
///   `cfg.synthetic_model`: see [`build_model`]); it lives on the inner
///   (non-autodiff) backend, the SAE on `B`.
/// * `resume`: a checkpoint (or checkpoint directory) to continue from.
pub fn run<B: AutodiffBackend>(
    cfg: RunnerConfig,
    model: &SyntheticModel<B::InnerBackend>,
    device: &B::Device,
    resume: Option<&Path>,
    observer: &mut dyn RunObserver,
) -> Result<RunnerResult<B>> {
    let mut run = StartedRun::start(cfg, model, device, resume)?;
    observer.on_phase("training");
    let mut prefetch = run.fitting.prefetch();
    while !run.is_done() {
        let batch = run.fitting.own_batch(prefetch.as_mut())?;
        run.step(batch, observer)?;
    }
    drop(prefetch);
    run.finish(observer)
}

/// A run that is set up (model checked, SAE initialised or resumed,
/// `metrics.jsonl` open) and takes its training batches from the caller,
/// so that one sampled stream can feed several runs ([`crate::group`]).
/// Fed batch `i` of its stream at step `i`, it ends exactly as [`run`].
#[derive(Debug)]
pub struct StartedRun<'m, B: AutodiffBackend> {
    cfg: RunnerConfig,
    model: &'m SyntheticModel<B::InnerBackend>,
    fitting: crate::trainer::Fitting<B, AnyTrainingSae<B>>,
    metrics: Option<std::fs::File>,
    metrics_path: Option<PathBuf>,
    started: std::time::Instant,
    train_seconds: Option<f64>,
}

impl<'m, B: AutodiffBackend> StartedRun<'m, B> {
    /// Sets up `cfg` on `model` (see [`run`] for the arguments).
    pub fn start(
        mut cfg: RunnerConfig,
        model: &'m SyntheticModel<B::InnerBackend>,
        device: &B::Device,
        resume: Option<&Path>,
    ) -> Result<Self> {
        let hidden_dim = model.config().hidden_dim;
        if cfg.sae.d_in() != hidden_dim {
            log::warn!(
                "sae.d_in is {} but the synthetic model's hidden_dim is {hidden_dim}; using {hidden_dim}",
                cfg.sae.d_in()
            );
            cfg.sae.set_d_in(hidden_dim)?;
        }
        let autocast = run_autocast::<B>(&cfg, device);
        let sampler = sampler_for(&cfg, model);
        let started = std::time::Instant::now();
        let fitting = make_trainer::<B>(&cfg, model, sampler, device, resume)?
            .with_autocast(autocast)
            .start()?;
        let resumed_at = resume.map(|_| fitting.next_step());
        let (metrics, metrics_path) = open_metrics(&cfg, resumed_at)?;
        Ok(Self {
            cfg,
            model,
            fitting,
            metrics,
            metrics_path,
            started,
            train_seconds: None,
        })
    }

    /// The run's config (with `sae.d_in` set to the model's).
    pub fn config(&self) -> &RunnerConfig {
        &self.cfg
    }

    /// The step the next batch is for: batch [`StartedRun::next_step`] of
    /// the run's training stream.
    pub fn next_step(&self) -> u64 {
        self.fitting.next_step()
    }

    /// Steps the run takes.
    pub fn total_steps(&self) -> u64 {
        self.fitting.total_steps()
    }

    /// Whether training is over.
    pub fn is_done(&self) -> bool {
        self.fitting.is_done()
    }

    /// Trains one step on `batch` (batch [`StartedRun::next_step`] of the
    /// stream [`sampler_for`] gives for this config): records, periodic
    /// evaluations and checkpoints as in [`run`].
    pub fn step(
        &mut self,
        batch: crate::data::Batch,
        observer: &mut dyn RunObserver,
    ) -> Result<()> {
        let mut hooks = Hooks::<B> {
            cfg: &self.cfg,
            model: self.model,
            metrics: self.metrics.as_mut(),
            metrics_path: self.metrics_path.as_deref(),
            observer,
        };
        self.fitting.step(batch, &mut hooks)?;
        if self.fitting.is_done() {
            self.train_seconds = Some(self.started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Ends the run: the trainer's end, the final evaluation and the
    /// output folder.
    pub fn finish(mut self, observer: &mut dyn RunObserver) -> Result<RunnerResult<B>> {
        let train_seconds = self
            .train_seconds
            .unwrap_or_else(|| self.started.elapsed().as_secs_f64());
        let outcome = {
            let mut hooks = Hooks::<B> {
                cfg: &self.cfg,
                model: self.model,
                metrics: self.metrics.as_mut(),
                metrics_path: self.metrics_path.as_deref(),
                observer: &mut *observer,
            };
            self.fitting.finish(&mut hooks)?
        };
        let cfg = &self.cfg;
        let model = self.model;
        let final_eval = if cfg.run_final_eval && cfg.eval_samples > 0 {
            observer.on_phase("final evaluation");
            Some(evaluate(cfg, model, &outcome.sae, stream::FINAL_EVAL, 0)?)
        } else {
            None
        };
        if let Some(out) = &cfg.output_path {
            observer.on_phase("saving");
            write_outputs(out, cfg, &outcome, final_eval.as_ref(), model)?;
        }
        Ok(RunnerResult {
            sae: outcome.sae,
            final_eval: final_eval.as_ref().map(|r| r.stats),
            final_hierarchy: final_eval.map(|r| r.hierarchy),
            output_path: cfg.output_path.clone(),
            n_training_samples: outcome.n_training_samples,
            l0: outcome.l0,
            num_dead_features: outcome.num_dead_features,
            train_seconds,
        })
    }
}

/// The sampler of `cfg`'s data streams on `model` (its `data_seed` and
/// batch size). Runs whose samplers agree on the model, the data seed and
/// the batch size read the same training batches.
pub fn sampler_for<B: burn::prelude::Backend>(
    cfg: &RunnerConfig,
    model: &SyntheticModel<B>,
) -> BatchSampler {
    BatchSampler::new(
        model.generator().clone(),
        model.host_dictionary().clone(),
        cfg.data_seed(),
        cfg.batch_size,
    )
    .with_hidden_path(cfg.hidden_path.resolve::<B>())
}

/// What the run's `autocast_sae` / `autocast_data` give on `B`
/// ([`Autocast::resolve`]), with its one line: a warning when a request is
/// not honoured, an info line when bf16 is on.
fn run_autocast<B: AutodiffBackend>(cfg: &RunnerConfig, device: &B::Device) -> Autocast {
    let hidden = cfg.hidden_path.resolve::<B>();
    let resolved = Autocast::resolve::<B>(cfg.autocast_sae, cfg.autocast_data, hidden, device);
    let a = resolved.autocast;
    match &resolved.warning {
        Some(w) => log::warn!("{w}"),
        None if a != Autocast::default() => log::info!(
            "bf16 autocast: SAE products {}, device hidden activations {}; float32 weights and \
             optimizer state",
            a.sae.name(),
            a.data.name()
        ),
        None => {}
    }
    a
}

/// The trainer of a run: resumed from `resume`, or with a freshly
/// initialised SAE.
fn make_trainer<B: AutodiffBackend>(
    cfg: &RunnerConfig,
    model: &SyntheticModel<B::InnerBackend>,
    sampler: BatchSampler,
    device: &B::Device,
    resume: Option<&Path>,
) -> Result<Trainer<B, AnyTrainingSae<B>>> {
    let trainer_cfg = cfg.trainer_config();
    let trainer = match resume {
        Some(path) => Trainer::resume(trainer_cfg, path, sampler, device.clone())?,
        None => {
            let sae = cfg.sae.init::<B>(device, cfg.seed)?;
            Trainer::new(trainer_cfg, sae, sampler, device.clone())?
        }
    };
    // A cheap handle: the trainer computes hidden activations with it for
    // batches sampled without them (the device path).
    Ok(trainer.with_device_dictionary(model.feature_dictionary().clone()))
}

/// `metrics.jsonl` in the output folder (created if needed), opened for
/// writing, or, for a run resumed at step `resumed_at`, for appending after
/// the records of the steps before it: the records a killed run wrote after
/// its checkpoint (and a line cut short by the kill) are dropped, since the
/// resumed run writes them again. `None` without an output folder.
fn open_metrics(
    cfg: &RunnerConfig,
    resumed_at: Option<u64>,
) -> Result<(Option<std::fs::File>, Option<PathBuf>)> {
    let Some(out) = &cfg.output_path else {
        return Ok((None, None));
    };
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let p = out.join("metrics.jsonl");
    if let Some(step) = resumed_at {
        if p.exists() {
            let text = std::fs::read_to_string(&p).map_err(|e| TrainError::io(&p, e))?;
            write_atomic(&p, records_before(&text, step).as_bytes())?;
        }
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(resumed_at.is_some())
        .write(true)
        .truncate(resumed_at.is_none())
        .open(&p)
        .map_err(|e| TrainError::io(&p, e))?;
    Ok((Some(f), Some(p)))
}

/// The complete lines of a `metrics.jsonl` text whose `step` is below
/// `step`, each ending in a newline.
fn records_before(text: &str, step: u64) -> String {
    let mut kept = String::new();
    for line in text.split_inclusive('\n') {
        let Some(body) = line.strip_suffix('\n') else {
            continue;
        };
        let before = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v.get("step").and_then(Value::as_u64))
            .is_some_and(|s| s < step);
        if before {
            kept.push_str(line);
        }
    }
    kept
}

/// Writes the run's outputs into `out` (layout in the module docs).
fn write_outputs<B: AutodiffBackend>(
    out: &Path,
    cfg: &RunnerConfig,
    outcome: &TrainOutcome<AnyTrainingSae<B>>,
    final_eval: Option<&EvalReport>,
    model: &SyntheticModel<B::InnerBackend>,
) -> Result<()> {
    outcome.sae.save_inference(out)?;
    write_sparsity(
        &out.join("sparsity.safetensors"),
        &outcome.log_feature_sparsity,
    )?;
    write_json(&out.join("runner_config.json"), &cfg.to_saelens_json())?;
    write_json(&out.join("synthsae_config.json"), &cfg.synthsae_json())?;
    if let Some(e) = final_eval {
        write_atomic(
            &out.join("eval_stats.json"),
            e.stats.to_json_pretty().as_bytes(),
        )?;
        write_json(
            &out.join("hierarchy_stats.json"),
            &serde_json::to_value(&e.hierarchy).expect("hierarchy serialises"),
        )?;
    }
    if cfg.save_synthetic_model {
        model.save(out.join("synthetic_model"))?;
    }
    Ok(())
}

/// Builds or loads the model a runner config names. Source strings are
/// local paths here; hub sources must be resolved to a local directory by
/// the caller first (the CLI does it with `synthsae-hub`).
pub fn build_model<B: burn::prelude::Backend>(
    spec: &ModelSpec,
    device: &B::Device,
) -> Result<SyntheticModel<B>> {
    match spec {
        ModelSpec::Config(c) => Ok(SyntheticModel::new((**c).clone(), device)?),
        ModelSpec::Source(s) => Ok(SyntheticModel::load(s, device)?),
    }
}

#[cfg(test)]
mod tests {
    use super::records_before;

    #[test]
    fn resumed_metrics_keep_only_the_steps_before_the_checkpoint() {
        let text = "{\"step\":0}\n{\"step\":9}\n{\"step\":10}\n{\"step\":19}\n{\"st";
        assert_eq!(records_before(text, 10), "{\"step\":0}\n{\"step\":9}\n");
        assert_eq!(records_before(text, 0), "");
        assert_eq!(records_before(text, 100).lines().count(), 4);
    }
}
