//! `synthsae.train`: a run from a sae-lens runner config, as `synthsae train`
//! does it, with progress on stderr and Ctrl-C honoured between steps.

use std::io::Write;
use std::sync::mpsc::sync_channel;

use burn::backend::Autodiff;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use synthsae::train::{build_model, sampler_for, RunObserver, RunnerConfig, StartedRun};

use crate::errors::{bad_argument, PyResultExt};
use crate::json::{from_py, value_to_py};
use crate::model::B;

/// Batches sampled ahead of the step that trains on them.
const PREFETCH: usize = 2;

/// Prints `training: step / total` on stderr, at most every 1 % of the run.
struct StderrProgress {
    total: u64,
    shown: u64,
}

impl RunObserver for StderrProgress {
    fn on_phase(&mut self, phase: &str) {
        eprintln!("synthsae: {phase}");
    }
}

impl StderrProgress {
    fn step(&mut self, step: u64) {
        let every = (self.total / 100).max(1);
        if step == self.total || step >= self.shown + every {
            self.shown = step;
            eprint!("\rsynthsae: training step {step} / {}", self.total);
            if step == self.total {
                eprintln!();
            }
            let _ = std::io::stderr().flush();
        }
    }
}

/// Trains the runner config `runner_config` (a dict with the keys of
/// sae-lens's `runner_config.json` plus synthsae's own, as `synthsae train`
/// reads it) and returns the run's report as a dict (the keys of
/// `synthsae train --json`). The checkpoints it writes are complete and
/// atomic, so a `KeyboardInterrupt` (raised between two steps) leaves the
/// latest one usable for `resume`.
#[pyfunction]
#[pyo3(signature = (runner_config, resume=None))]
pub fn train<'py>(
    py: Python<'py>,
    runner_config: &Bound<'py, PyDict>,
    resume: Option<std::path::PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    let value = from_py(runner_config)?;
    let mut cfg = RunnerConfig::from_value(value).map_err(|e| bad_argument("runner_config", e))?;
    if let synthsae::train::ModelSpec::Source(s) = &cfg.synthetic_model {
        let dir = synthsae::sources::resolve(s, synthsae::sources::MODEL_FILES).py()?;
        cfg.synthetic_model = synthsae::train::ModelSpec::Source(dir.display().to_string());
    }
    let report = py
        .detach(move || -> PyResult<serde_json::Value> {
            type AD = Autodiff<B>;
            let device = Default::default();
            let model = build_model::<B>(&cfg.synthetic_model, &device).py()?;
            let sampler = sampler_for(&cfg, &model);
            let mut run = StartedRun::<AD>::start(cfg, &model, &device, resume.as_deref()).py()?;
            let mut progress = StderrProgress {
                total: run.total_steps(),
                shown: run.next_step(),
            };
            progress.on_phase("training");
            let (first, total) = (run.next_step(), run.total_steps());
            // Batch i of the run's stream is sampled on a producer thread while
            // step i - 1 trains, as `synthsae train` does; leaving the scope
            // early (an error, Ctrl-C) drops the receiver, which ends the
            // producer.
            std::thread::scope(|scope| -> PyResult<()> {
                let (tx, rx) = sync_channel(PREFETCH);
                let sampler = &sampler;
                scope.spawn(move || {
                    for i in first..total {
                        if tx.send(sampler.train_batch(i)).is_err() {
                            return;
                        }
                    }
                });
                while !run.is_done() {
                    let batch = rx
                        .recv()
                        .map_err(|_| PyRuntimeError::new_err("the batch producer stopped"))?;
                    run.step(batch.py()?, &mut progress).py()?;
                    progress.step(run.next_step());
                    // Ctrl-C sets a flag that only the interpreter can read.
                    Python::attach(|py| py.check_signals())?;
                }
                Ok(())
            })?;
            let result = run.finish(&mut progress).py()?;
            Ok(result.summary().to_json())
        })
        .inspect_err(|e: &PyErr| {
            Python::attach(|py| {
                if e.is_instance_of::<PyKeyboardInterrupt>(py) {
                    eprintln!("\nsynthsae: interrupted; the latest checkpoint is complete");
                }
            });
        })?;
    value_to_py(py, &report)
}
