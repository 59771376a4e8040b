//! The toy of *A is for Absorption* (Chanin et al., 2024), trained by
//! synthsae: 4 orthogonal features in 50 dimensions, each firing with
//! probability 0.25 at magnitude 1, and a standard (L1) SAE with 4 latents.
//! When feature 1 fires only together with feature 0 (a hierarchy, 0 → 1),
//! the SAE folds feature 0 into the latent of feature 1 and the latent of
//! feature 0 goes silent whenever feature 1 fires: feature 0 is absorbed.
//! Trained on the same features firing independently, it is not. Both SAEs
//! are evaluated on the hierarchical model, so only the training data
//! differ.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use serde_json::json;
use synthsae::data::{sample_rng, SyntheticModel, SyntheticModelConfig};
use synthsae::eval::{evaluate_sae, AbsorptionMetrics, EvalOptions};
use synthsae::sae::TrainingSae;
use synthsae::train::{run, RunnerConfig, Silent};

type B = Autodiff<Flex>;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("synthsae-toy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The toy model saved in `dir`, with `hierarchy.json` (0 → 1) or without.
fn save_model(dir: &Path, hierarchy: bool) {
    let cfg = SyntheticModelConfig::from_json(
        &json!({
            "num_features": 4,
            "hidden_dim": 50,
            "firing_probability": {"probability": 0.25, "generator_name": "constant"},
            "hierarchy": null,
            "orthogonalization": {"num_steps": 200, "lr": 0.01, "chunk_size": 1024},
            "correlation": null,
            "std_firing_magnitudes": 0.0,
            "mean_firing_magnitudes": 1.0,
            "bias": 0.0,
            "dtype": "float32",
            "seed": 7
        })
        .to_string(),
    )
    .unwrap();
    SyntheticModel::<Flex>::new(cfg, &Default::default())
        .unwrap()
        .save(dir)
        .unwrap();
    if hierarchy {
        let node = |f: usize, children: Vec<serde_json::Value>| {
            json!({"feature_index": f, "mutually_exclusive_children": false,
                "scale_children_by_parent": false, "feature_id": null, "children": children})
        };
        let tree =
            json!({"roots": [node(0, vec![node(1, vec![])]), node(2, vec![]), node(3, vec![])]});
        std::fs::write(dir.join("hierarchy.json"), tree.to_string()).unwrap();
    }
}

/// Trains the toy SAE on the model in `train_on` and evaluates it on the
/// hierarchical model in `eval_on`.
fn absorption(train_on: &Path, eval_on: &SyntheticModel<Flex>) -> AbsorptionMetrics {
    let device = Default::default();
    let cfg = RunnerConfig::from_value(json!({
        "synthetic_model": train_on.display().to_string(),
        "sae": {"architecture": "standard", "d_in": 50, "d_sae": 4, "l1_coefficient": 0.01},
        "training_samples": 3_000_000,
        "batch_size": 1024,
        "lr": 1e-2,
        "eval_samples": 0,
        "run_final_eval": false,
        "output_path": null,
        "checkpoint_path": null,
        // A latent whose encoder starts with a negative product with all four
        // features never fires, and the toy then ends with a dead latent
        // instead of absorption (seeds 3 and 4 do); seed 1 trains all four.
        "seed": 1,
    }))
    .unwrap();
    let train_model = SyntheticModel::<Flex>::load(train_on, &device).unwrap();
    let result = run::<B>(cfg, &train_model, &device, None, &mut Silent).unwrap();
    let sae = result.sae.to_inference();
    let options = EvalOptions::new(40_000).with_batch_size(4096);
    let r = evaluate_sae(&sae, eval_on, &options, &mut sample_rng(Some(11)), |_| {}).unwrap();
    assert!(r.stats.explained_variance > 0.99, "{:?}", r.stats);
    r.hierarchy
        .absorption
        .expect("evaluated on the hierarchical model")
}

#[test]
fn feature_0_is_absorbed_only_when_feature_1_depends_on_it() {
    let (hier, indep) = (temp_dir("hier"), temp_dir("indep"));
    save_model(&hier, true);
    save_model(&indep, false);
    let eval_model = SyntheticModel::<Flex>::load(&hier, &Default::default()).unwrap();
    let absorbed = absorption(&hier, &eval_model);
    let independent = absorption(&indep, &eval_model);
    eprintln!("hierarchy: {absorbed:?}\nindependent: {independent:?}");
    let (a, i) = (&absorbed.per_parent[0], &independent.per_parent[0]);
    assert_eq!((a.feature, i.feature), (0, 0));
    assert!(
        a.full_absorption.unwrap() > 0.9,
        "with the hierarchy, feature 0 is absorbed: {a:?}"
    );
    assert!(a.recall_with_children.unwrap() < 0.1, "{a:?}");
    assert!(a.recall_without_children.unwrap() > 0.95, "{a:?}");
    assert!(
        i.absorption.unwrap() < 0.05,
        "with independent features it is not: {i:?}"
    );
    assert!(i.recall_with_children.unwrap() > 0.95, "{i:?}");
    std::fs::remove_dir_all(&hier).unwrap();
    std::fs::remove_dir_all(&indep).unwrap();
}
