//! End-to-end runs of the runner with real architectures.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use synthsae_data::{preset, SyntheticModel};
use synthsae_sae::AnySae;
use synthsae_train::{build_model, run, ModelSpec, RunnerConfig, Silent};

type Inner = Flex;
type B = Autodiff<Inner>;

fn scratch(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("synthsae-runner-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

/// `base` with its output and checkpoints under `out/name`.
fn with_paths(base: &serde_json::Value, out: &Path, name: &str) -> RunnerConfig {
    let mut v = base.clone();
    v["output_path"] = out.join(name).join("output").display().to_string().into();
    v["checkpoint_path"] = out.join(name).join("ckpt").display().to_string().into();
    RunnerConfig::from_value(v).unwrap()
}

/// The checkpoint with the fewest samples under `dir` (numbered folders only).
fn first_checkpoint(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .parse::<u64>()
                .is_ok()
        })
        .min()
        .unwrap()
}

/// Resumes run `out/a` (config `base`) from its first checkpoint as run
/// `out/b` and asserts that both end with the same weights file.
fn resume_and_compare(
    base: &serde_json::Value,
    out: &Path,
    model: &SyntheticModel<Inner>,
    what: &str,
) -> synthsae_train::RunnerResult<B> {
    let device = Default::default();
    let first = first_checkpoint(&out.join("a/ckpt"));
    let resumed = run::<B>(
        with_paths(base, out, "b"),
        model,
        &device,
        Some(&first),
        &mut Silent,
    )
    .unwrap();
    let a = std::fs::read(out.join("a/output/sae_weights.safetensors")).unwrap();
    let b = std::fs::read(out.join("b/output/sae_weights.safetensors")).unwrap();
    assert!(
        a == b,
        "resumed {what} run differs from the uninterrupted one"
    );
    resumed
}

/// The seed document's tutorial: 16 features in 32 dimensions, a standard SAE
/// with 16 latents and l1 coefficient 5e-2. sae-lens reaches MCC 0.99999 after
/// 10M samples; 1.5M samples already recover every feature here.
#[test]
fn tutorial_standard_sae_recovers_the_features_and_writes_saelens_outputs() {
    let out = scratch("tutorial");
    let model_cfg = preset("tutorial").unwrap();
    let cfg = RunnerConfig::from_value(serde_json::json!({
        "synthetic_model": serde_json::to_value(&model_cfg).unwrap(),
        "sae": {"architecture": "standard", "d_in": 32, "d_sae": 16, "l1_coefficient": 5e-2},
        "training_samples": 1_500_000,
        "batch_size": 1024,
        "lr": 3e-3,
        "eval_samples": 20_000,
        "eval_frequency": 500,
        "output_path": out.join("output").display().to_string(),
        "checkpoint_path": out.join("checkpoints").display().to_string(),
        "n_checkpoints": 1,
        "save_synthetic_model": true,
        "seed": 3,
    }))
    .unwrap();
    let device = Default::default();
    let model: SyntheticModel<Inner> = build_model(&cfg.synthetic_model, &device).unwrap();
    let result = run::<B>(cfg.clone(), &model, &device, None, &mut Silent).unwrap();
    let eval = result.final_eval.expect("final eval ran");
    assert!(eval.mcc > 0.99, "MCC {}", eval.mcc);
    assert!(
        eval.explained_variance > 0.95,
        "EV {}",
        eval.explained_variance
    );
    assert!((eval.true_l0 - 4.0).abs() < 0.1, "true L0 {}", eval.true_l0);

    let o = out.join("output");
    for f in [
        "cfg.json",
        "sae_weights.safetensors",
        "sparsity.safetensors",
        "runner_config.json",
        "synthsae_config.json",
        "eval_stats.json",
        "metrics.jsonl",
        "synthetic_model/synthetic_model_config.json",
    ] {
        assert!(o.join(f).is_file(), "missing {f}");
    }
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(o.join("eval_stats.json")).unwrap()).unwrap();
    assert!((stats["mcc"].as_f64().unwrap() - eval.mcc).abs() < 1e-12);
    let log = std::fs::read_to_string(o.join("metrics.jsonl")).unwrap();
    let evals = log.lines().filter(|l| l.contains("synthetic/mcc")).count();
    assert_eq!(evals, 2, "periodic evals at steps 499 and 999");
    // The runner config written is readable again.
    let back =
        RunnerConfig::from_json(&std::fs::read_to_string(o.join("runner_config.json")).unwrap())
            .unwrap();
    assert_eq!(back.sae, cfg.sae);
    // The exported SAE loads and has the trained metadata.
    let sae = AnySae::<Inner>::load(&o, &device).unwrap();
    assert_eq!(sae.architecture(), "standard");
    let cfg_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(o.join("cfg.json")).unwrap()).unwrap();
    assert!(cfg_json["metadata"]["l0"].as_f64().unwrap() > 3.0);
    assert!(out.join("checkpoints").read_dir().unwrap().count() >= 1);
    std::fs::remove_dir_all(&out).unwrap();
}

/// BatchTopK with aux-k on a Zipfian model: trains, exports as jumprelu.
#[test]
fn batchtopk_run_exports_jumprelu_and_resumes_bit_identically() {
    let out = scratch("btk");
    let mut model_cfg = synthsae_data::SyntheticModelConfig::new(64, 24);
    model_cfg.seed = Some(1);
    let base = serde_json::json!({
        "synthetic_model": serde_json::to_value(&model_cfg).unwrap(),
        "sae": {"architecture": "batchtopk", "d_in": 24, "d_sae": 64, "k": 4},
        "training_samples": 40 * 256,
        "batch_size": 256,
        "lr": 1e-3,
        "eval_samples": 2048,
        "n_checkpoints": 2,
        "dead_feature_window": 5,
        "seed": 9,
    });
    let with_paths = |name: &str| with_paths(&base, &out, name);
    let device = Default::default();
    let cfg = with_paths("a");
    let model: SyntheticModel<Inner> = build_model(&cfg.synthetic_model, &device).unwrap();
    let full = run::<B>(cfg, &model, &device, None, &mut Silent).unwrap();
    let cfg_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("a/output/cfg.json")).unwrap())
            .unwrap();
    assert_eq!(cfg_json["architecture"], "jumprelu");
    let resumed = resume_and_compare(&base, &out, &model, "BatchTopK");
    assert_eq!(full.num_dead_features, resumed.num_dead_features);
    std::fs::remove_dir_all(&out).unwrap();
}

/// A Standard SAE steered by the rate-damped tuner: the tuner's multiplier
/// reaches the L1 coefficient within the run (the coefficient logged after
/// `start_step` departs from the bare schedule), the checkpoint holds the
/// moved multiplier, and a run resumed from it ends with the same weights
/// (which depend on every step's multiplier).
#[test]
fn tuned_standard_run_moves_its_coefficient_and_resumes_bit_identically() {
    let out = scratch("tuned");
    let mut model_cfg = synthsae_data::SyntheticModelConfig::new(64, 24);
    model_cfg.seed = Some(3);
    let base = serde_json::json!({
        "synthetic_model": serde_json::to_value(&model_cfg).unwrap(),
        "sae": {"architecture": "standard", "d_in": 24, "d_sae": 64,
                "l1_coefficient": 2.0, "l1_warm_up_steps": 10},
        "training_samples": 40 * 256,
        "batch_size": 256,
        "lr": 1e-3,
        "eval_samples": 1024,
        "n_checkpoints": 2,
        "seed": 5,
        "log_every": 1,
        // A large gain so that 30 steps move the multiplier visibly; the
        // target (1 latent) is far below a fresh SAE's L0, so it rises.
        "l0_tuner": {"target_l0": 1.0, "start_step": 10, "integral_gain": 0.05},
    });
    let with_paths = |name: &str| with_paths(&base, &out, name);
    let device = Default::default();
    let cfg = with_paths("a");
    let model: SyntheticModel<Inner> = build_model(&cfg.synthetic_model, &device).unwrap();
    run::<B>(cfg, &model, &device, None, &mut Silent).unwrap();
    let records: Vec<serde_json::Value> =
        std::fs::read_to_string(out.join("a/output/metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let coefficient = |step: u64| {
        records
            .iter()
            .find(|r| r["step"] == step)
            .and_then(|r| r["details/l1_coefficient"].as_f64())
            .unwrap()
    };
    // Warm-up: 2.0 · step / 10, untouched by the tuner before step 10.
    assert_eq!(coefficient(5), 1.0);
    assert_eq!(coefficient(10), 2.0);
    // Step 11 uses the multiplier after step 10's update: larger than 1.
    assert!(coefficient(11) > 2.0, "{}", coefficient(11));
    assert!(coefficient(39) > coefficient(11), "{}", coefficient(39));

    let first_ckpt = first_checkpoint(&out.join("a/ckpt"));
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(first_ckpt.join("trainer_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["tuner"]["state"]["kind"], "rate_damped");
    assert!(state["tuner"]["state"]["multiplier"].as_f64().unwrap() > 1.0);
    resume_and_compare(&base, &out, &model, "tuned standard");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn model_sources_must_exist() {
    let device = Default::default();
    let err = build_model::<Inner>(&ModelSpec::Source("/nonexistent/model".into()), &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/model"), "{err}");
}
