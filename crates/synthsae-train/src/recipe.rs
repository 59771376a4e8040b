//! The SynthSAEBench recipes: the runner configs of the published L0-sweep
//! experiments, one per architecture, with every value the published runs
//! set (the SynthSAEBench experiment code, `sweeps/common.py`, of
//! arXiv 2602.14687), and the published result rows.
//!
//! Shared by all recipes: batch 1024, Adam lr 3e-4 (β 0.9 / 0.999, constant
//! schedule, no warm-up), gradient-norm clipping 1.0, bf16 autocast of SAE
//! and data, an evaluation on `eval_samples` samples every `eval_frequency`
//! steps and a final one, metrics every 100 steps. Per architecture:
//!
//! | architecture | settings |
//! |---|---|
//! | `batchtopk`, `topk` | k = L0, sae-lens defaults |
//! | `matryoshka_batchtopk` | k = L0, widths 128, 512, 2048 below the width, then the width; matryoshka aux loss |
//! | `matching_pursuit` | residual threshold 0, max iterations = L0, decoder init norm 1.0, no stop on duplicate support |
//! | `standard` | L1 coefficient 2.0 warmed up over the first third of the steps; rate-damped L0 tuner from a third of the steps on |
//! | `jumprelu` | `expected_average_only_in`, step-mode loss, bandwidth 1.0, init threshold 1.0, no pre-activation loss, decoder init norm 0.5, L0 coefficient 1.0 without warm-up; rate-damped tuner from step 0 |
//!
//! "A third of the steps" is `⌊⌊samples / batch⌋ / 3⌋`.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::error::{Result, TrainError};
use crate::runner_config::{ModelSpec, RunnerConfig};
use crate::tuner::L0TunerConfig;

/// Architectures with a SynthSAEBench recipe.
pub const ARCHITECTURES: [&str; 6] = [
    "batchtopk",
    "matryoshka_batchtopk",
    "matching_pursuit",
    "standard",
    "jumprelu",
    "topk",
];

/// Batch size of every recipe.
pub const BATCH_SIZE: usize = 1024;
/// Learning rate of every recipe.
pub const LR: f64 = 3e-4;
/// Steps between metric records.
pub const LOG_EVERY: u64 = 100;

/// One SynthSAEBench training run: an architecture at a target L0, with
/// the published defaults for everything else.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSaeBenchRecipe {
    /// One of [`ARCHITECTURES`].
    pub architecture: String,
    /// Target L0: k of the TopK family, the tuner's target for standard and
    /// jumprelu, the iteration count of matching pursuit.
    pub l0: u32,
    /// SAE input dimension (the model's hidden dimension; 768 on the 16k model).
    pub d_in: usize,
    /// SAE width (published: 4096).
    pub width: usize,
    /// Training samples (published: 200M).
    pub training_samples: u64,
    /// Seed of SAE initialisation and data streams.
    pub seed: u64,
    /// Samples per evaluation, periodic and final (published: 1M).
    pub eval_samples: usize,
    /// Steps between periodic evaluations (published: 10,000; 0: none).
    pub eval_frequency: u64,
}

impl Default for SynthSaeBenchRecipe {
    fn default() -> Self {
        Self {
            architecture: "batchtopk".into(),
            l0: 25,
            d_in: 768,
            width: 4096,
            training_samples: 200_000_000,
            seed: 42,
            eval_samples: 1_000_000,
            eval_frequency: 10_000,
        }
    }
}

impl SynthSaeBenchRecipe {
    /// The published recipe of `architecture` at `l0`.
    pub fn new(architecture: &str, l0: u32) -> Self {
        Self {
            architecture: architecture.into(),
            l0,
            ..Self::default()
        }
    }

    /// Steps of the run, `⌊samples / batch⌋`.
    pub fn total_steps(&self) -> u64 {
        self.training_samples / BATCH_SIZE as u64
    }

    /// The step at which Standard's L1 warm-up ends and its tuner starts.
    pub fn standard_tuner_start(&self) -> u64 {
        self.total_steps() / 3
    }

    /// Checks the recipe; errors name the field (`architecture`, `l0`,
    /// `width`, `training_samples`).
    pub fn check(&self) -> Result<()> {
        if !ARCHITECTURES.contains(&self.architecture.as_str()) {
            return Err(TrainError::config(
                "architecture",
                format!(
                    "`{}` has no SynthSAEBench recipe; use one of {}",
                    self.architecture,
                    ARCHITECTURES.join(", ")
                ),
            ));
        }
        if self.l0 == 0 {
            return Err(TrainError::config("l0", "must be at least 1"));
        }
        if self.width == 0 {
            return Err(TrainError::config("width", "must be at least 1"));
        }
        if self.training_samples < BATCH_SIZE as u64 {
            return Err(TrainError::config(
                "training_samples",
                format!("must be at least one batch ({BATCH_SIZE})"),
            ));
        }
        Ok(())
    }

    /// The `sae` object of the runner config.
    pub fn sae_json(&self) -> Result<Value> {
        self.check()?;
        let mut sae = Map::new();
        sae.insert("architecture".into(), self.architecture.clone().into());
        sae.insert("d_in".into(), self.d_in.into());
        sae.insert("d_sae".into(), self.width.into());
        let extra = match self.architecture.as_str() {
            "batchtopk" | "topk" => json!({"k": self.l0}),
            "matryoshka_batchtopk" => {
                let widths: Vec<usize> = [128, 512, 2048]
                    .into_iter()
                    .filter(|w| *w < self.width)
                    .chain([self.width])
                    .collect();
                json!({"k": self.l0, "matryoshka_widths": widths, "use_matryoshka_aux_loss": true})
            }
            "matching_pursuit" => json!({
                "residual_threshold": 0.0,
                "max_iterations": self.l0,
                "decoder_init_norm": 1.0,
                "stop_on_duplicate_support": false,
            }),
            "standard" => json!({
                "l1_coefficient": 2.0,
                "l1_warm_up_steps": self.standard_tuner_start(),
            }),
            "jumprelu" => json!({
                "normalize_activations": "expected_average_only_in",
                "jumprelu_sparsity_loss_mode": "step",
                "jumprelu_bandwidth": 1.0,
                "jumprelu_init_threshold": 1.0,
                "pre_act_loss_coefficient": null,
                "decoder_init_norm": 0.5,
                "l0_coefficient": 1.0,
                "l0_warm_up_steps": 0,
            }),
            _ => unreachable!("checked above"),
        };
        if let Value::Object(e) = extra {
            sae.extend(e);
        }
        Ok(Value::Object(sae))
    }

    /// The L0 tuner of the recipe (standard and jumprelu only).
    pub fn tuner(&self) -> Option<L0TunerConfig> {
        let start_step = match self.architecture.as_str() {
            "standard" => self.standard_tuner_start(),
            "jumprelu" => 0,
            _ => return None,
        };
        Some(L0TunerConfig {
            start_step,
            ..L0TunerConfig::new(self.l0 as f64)
        })
    }

    /// The complete runner config: `model` as the synthetic model, outputs
    /// under `output` (checkpoints, none by default, in `output/checkpoints`).
    pub fn runner_config(&self, model: &ModelSpec, output: Option<&Path>) -> Result<RunnerConfig> {
        let model = match model {
            ModelSpec::Config(c) => serde_json::to_value(c)
                .map_err(|e| TrainError::config("synthetic_model", e.to_string()))?,
            ModelSpec::Source(s) => Value::String(s.clone()),
        };
        let path = |p: Option<&Path>| p.map_or(Value::Null, |p| p.display().to_string().into());
        let mut v = json!({
            "synthetic_model": model,
            "sae": self.sae_json()?,
            "training_samples": self.training_samples,
            "batch_size": BATCH_SIZE,
            "lr": LR,
            "lr_warm_up_steps": 0,
            "lr_scheduler_name": "constant",
            "adam_beta1": 0.9,
            "adam_beta2": 0.999,
            "autocast_sae": true,
            "autocast_data": true,
            "eval_frequency": self.eval_frequency,
            "eval_samples": self.eval_samples,
            "run_final_eval": true,
            "output_path": path(output),
            "checkpoint_path": path(output.map(|o| o.join("checkpoints")).as_deref()),
            "n_checkpoints": 0,
            "seed": self.seed,
            "max_grad_norm": 1.0,
            "log_every": LOG_EVERY,
        });
        if let Some(t) = self.tuner() {
            v["l0_tuner"] = t.to_value();
        }
        RunnerConfig::from_value(v)
    }
}

/// A published result row: the mean over 5 seeds, width 4096, 200M samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PublishedRow {
    /// Target L0.
    pub l0: u32,
    /// Architecture name.
    pub architecture: &'static str,
    /// F1 score.
    pub f1: f64,
    /// Mean matched |cos| (MCC).
    pub mcc: f64,
    /// Distinct matched features / latents.
    pub uniqueness: f64,
    /// Explained variance.
    pub explained_variance: f64,
    /// The model the row was measured on.
    pub model: &'static str,
}

/// The model version of the published tables: v1, uploaded without parent
/// scaling (v2, the current upload, scales children by their parent).
pub const PUBLISHED_MODEL: &str = "synth-sae-bench-16k v1 (no parent scaling)";

const fn row(
    l0: u32,
    architecture: &'static str,
    f1: f64,
    mcc: f64,
    uniqueness: f64,
    explained_variance: f64,
) -> PublishedRow {
    PublishedRow {
        l0,
        architecture,
        f1,
        mcc,
        uniqueness,
        explained_variance,
        model: PUBLISHED_MODEL,
    }
}

/// The published rows.
pub const PUBLISHED: [PublishedRow; 8] = [
    row(25, "batchtopk", 0.7316, 0.7574, 0.9837, 0.7923),
    row(25, "matryoshka_batchtopk", 0.8793, 0.7927, 0.9987, 0.7792),
    row(25, "matching_pursuit", 0.4464, 0.6930, 0.8281, 0.8351),
    row(25, "standard", 0.5562, 0.6039, 0.8976, 0.7654),
    row(25, "jumprelu", 0.7317, 0.7527, 0.9885, 0.7951),
    row(20, "batchtopk", 0.8183, 0.7526, 0.9760, 0.7889),
    row(20, "matryoshka_batchtopk", 0.8601, 0.7455, 0.9874, 0.7699),
    row(20, "jumprelu", 0.8241, 0.7434, 0.9781, 0.7906),
];

/// The published row of `architecture` at `l0`, if there is one.
pub fn published(architecture: &str, l0: u32) -> Option<&'static PublishedRow> {
    PUBLISHED
        .iter()
        .find(|r| r.l0 == l0 && r.architecture == architecture)
}
