//! Pieces shared by the hand-timed benchmarks (`group_gemm`, `sweep_group`,
//! `bf16_autocast`): best-of-rounds timing, the config of a training-step
//! timing and `--flag value` arguments.
//! Each benchmark includes it with `mod common;` and uses what it needs.

#![allow(dead_code)]

use std::time::Instant;

use serde_json::{json, Value};
use synthsae::train::RunnerConfig;

/// Rows per batch of the training-step timings.
pub const STEP_BATCH: usize = 1024;

/// The runner config of a training-step timing: `sae` on `model`, enough
/// samples for `steps` steps of [`STEP_BATCH`] rows, every output and
/// evaluation off, seed 0, data seed 42.
pub fn step_config(model: &Value, sae: &Value, lr: f64, steps: usize) -> RunnerConfig {
    RunnerConfig::from_value(json!({
        "synthetic_model": model,
        "sae": sae,
        "training_samples": (steps as u64 + 1) * 64 * STEP_BATCH as u64,
        "batch_size": STEP_BATCH,
        "lr": lr,
        "eval_samples": 0,
        "run_final_eval": false,
        "output_path": null,
        "checkpoint_path": null,
        "seed": 0,
        "data_seed": 42,
    }))
    .expect("valid runner config")
}

/// Best time in milliseconds of `rounds` rounds of `reps` calls of `f`,
/// per call (after one warm-up call).
pub fn best_ms(rounds: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() * 1e3 / reps as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// The command line's `--flag value` arguments.
pub struct Args(Vec<String>);

impl Args {
    /// This process's arguments.
    pub fn from_env() -> Self {
        Self(std::env::args().collect())
    }

    /// The value after `flag`, if given.
    pub fn value(&self, flag: &str) -> Option<String> {
        let i = self.0.iter().position(|a| a == flag)?;
        match self.0.get(i + 1) {
            Some(v) => Some(v.clone()),
            None => fail(&format!("{flag}: a value is missing")),
        }
    }

    /// The positive count after `flag`, or `default`; anything else ends
    /// the process with a message naming the flag.
    pub fn count(&self, flag: &str, default: usize) -> usize {
        match self.value(flag) {
            None => default,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => fail(&format!("{flag}: `{v}` is not a positive whole number")),
            },
        }
    }
}

/// Prints `message` and exits with status 2.
pub fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}
