//! The published SynthSAEBench sweeps as specs (`../reference`: 7 L0s × 5
//! seeds × 5 architectures of width 4096 on the 16k model; and the hidden
//! dimension sweep with samples scaled by `(d / 768)^0.6`).

use serde_json::{json, Value};
use synthsae_train::recipe::ARCHITECTURES;

use crate::error::{Result, SweepError};

/// Names of the presets.
pub const PRESETS: [&str; 2] = ["synthsaebench-l0", "synthsaebench-superposition"];

/// The five architectures of the published sweeps.
pub const SWEEP_ARCHITECTURES: [&str; 5] = [
    "batchtopk",
    "matryoshka_batchtopk",
    "matching_pursuit",
    "standard",
    "jumprelu",
];

/// The L0s of the published L0 sweep.
pub const L0S: [u32; 7] = [15, 20, 25, 30, 35, 40, 45];

/// The hidden dimensions of the published superposition sweep.
pub const HIDDEN_DIMS: [usize; 6] = [256, 384, 512, 768, 1024, 1536];

/// Overrides of a preset, for small tries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresetOptions {
    /// Training samples of each run (the superposition sweep scales them
    /// by hidden dimension from this); published: 200M.
    pub training_samples: Option<u64>,
    /// The model: a source (path or hub id) or a model config object;
    /// default: the embedded `synthsaebench-16k` config.
    pub model: Option<Value>,
    /// Samples per evaluation (published: 1M).
    pub eval_samples: Option<u64>,
    /// Steps between periodic evaluations (published: 10,000).
    pub eval_frequency: Option<u64>,
    /// SAE width (published: 4096).
    pub width: Option<u64>,
}

/// The spec of preset `name`.
pub fn preset_spec(name: &str, opts: &PresetOptions) -> Result<Value> {
    debug_assert!(SWEEP_ARCHITECTURES
        .iter()
        .all(|a| ARCHITECTURES.contains(a)));
    let model = match &opts.model {
        Some(m) => m.clone(),
        None => serde_json::to_value(
            synthsae_data::preset("synthsaebench-16k")
                .map_err(|e| SweepError::spec("model", e.to_string()))?,
        )
        .map_err(|e| SweepError::spec("model", e.to_string()))?,
    };
    let samples = opts.training_samples.unwrap_or(200_000_000);
    let mut recipe = json!({"name": "synthsaebench", "model": model, "training_samples": samples});
    for (k, v) in [
        ("eval_samples", opts.eval_samples),
        ("eval_frequency", opts.eval_frequency),
        ("width", opts.width),
    ] {
        if let Some(v) = v {
            recipe[k] = v.into();
        }
    }
    match name {
        "synthsaebench-l0" => Ok(json!({
            "name": name,
            "recipe": recipe,
            "axes": {
                "recipe.architecture": SWEEP_ARCHITECTURES,
                "recipe.l0": L0S,
                "recipe.seed": [0, 1, 2, 3, 4],
            },
        })),
        "synthsaebench-superposition" => {
            if !recipe["model"].is_object() {
                return Err(SweepError::spec(
                    "model",
                    "the superposition sweep varies the model's hidden_dim, so it needs a model \
                     config (a JSON object), not a saved model",
                ));
            }
            recipe["seed"] = 0.into();
            recipe["l0"] = 25.into();
            let mut runs = Vec::new();
            for d in HIDDEN_DIMS {
                for arch in SWEEP_ARCHITECTURES {
                    runs.push(json!({
                        "name": format!("hidden-dim-{d}_architecture-{}", arch.replace('_', "-")),
                        "set": {
                            "recipe.model.hidden_dim": d,
                            "recipe.d_in": d,
                            "recipe.training_samples": scaled_samples(samples, d),
                            "recipe.architecture": arch,
                        }
                    }));
                }
            }
            Ok(json!({"name": name, "recipe": recipe, "runs": runs}))
        }
        other => Err(SweepError::spec(
            "spec",
            format!(
                "`{other}` is neither a spec file nor a preset ({})",
                PRESETS.join(", ")
            ),
        )),
    }
}

/// `⌊samples · (d / 768)^0.6⌋`, the superposition sweep's sample count at
/// hidden dimension `d`.
pub fn scaled_samples(samples: u64, d: usize) -> u64 {
    (samples as f64 * (d as f64 / 768.0).powf(0.6)).floor() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SweepSpec;

    #[test]
    fn the_l0_preset_is_the_published_grid() {
        let spec = SweepSpec::from_value(
            preset_spec("synthsaebench-l0", &PresetOptions::default()).unwrap(),
        )
        .unwrap();
        let plan = spec.expand().unwrap();
        assert_eq!(plan.runs.len(), 175);
        // One stream per seed: 35 SAEs each.
        assert_eq!(plan.groups.len(), 5);
        assert!(plan.groups.iter().all(|g| g.len() == 35));
        let r = plan.run("architecture-jumprelu_l0-30_seed-3").unwrap();
        assert_eq!(r.config["training_samples"], 200_000_000);
        assert_eq!(r.config["sae"]["d_sae"], 4096);
        assert_eq!(r.config["seed"], 3);
        assert_eq!(r.config["eval_samples"], 1_000_000);
        assert_eq!(r.config["l0_tuner"]["target_l0"], 30.0);
    }

    #[test]
    fn the_superposition_preset_scales_samples() {
        let opts = PresetOptions {
            training_samples: Some(1_000_000),
            ..Default::default()
        };
        let plan =
            SweepSpec::from_value(preset_spec("synthsaebench-superposition", &opts).unwrap())
                .unwrap()
                .expand()
                .unwrap();
        assert_eq!(plan.runs.len(), 30);
        assert_eq!(plan.groups.len(), 6);
        let r = plan.run("hidden-dim-256_architecture-standard").unwrap();
        assert_eq!(r.config["synthetic_model"]["hidden_dim"], 256);
        assert_eq!(r.config["sae"]["d_in"], 256);
        assert_eq!(scaled_samples(200_000_000, 768), 200_000_000);
        assert_eq!(scaled_samples(1_000_000, 256), 517_281);
    }
}
