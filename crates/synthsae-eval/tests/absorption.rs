//! Absorption and splitting with values known in advance: the tutorial
//! model's 16 orthogonal features (magnitude 1, firing probability 0.25)
//! under a hand-written hierarchy (feature 0 the parent of 1 and 2), and SAEs
//! built by hand.

use std::path::PathBuf;

use burn::backend::NdArray;
use burn::prelude::*;
use synthsae_data::{preset, sample_rng, SyntheticModel};
use synthsae_eval::{evaluate_sae, EvalOptions, HierarchyOptions};
use synthsae_sae::Sae;

type B = NdArray;

/// `z = relu((x − b_dec) W_enc)`; `x̂ = z W_dec + b_dec`.
struct ReluSae {
    w_enc: Tensor<B, 2>,
    w_dec: Tensor<B, 2>,
    b_dec: Tensor<B, 1>,
}

impl Sae<B> for ReluSae {
    fn d_in(&self) -> usize {
        self.w_enc.dims()[0]
    }
    fn d_sae(&self) -> usize {
        self.w_enc.dims()[1]
    }
    fn encode(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        burn::tensor::activation::relu(
            (x - self.b_dec.clone().unsqueeze()).matmul(self.w_enc.clone()),
        )
    }
    fn decode(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        z.matmul(self.w_dec.clone()) + self.b_dec.clone().unsqueeze()
    }
    fn decoder_weights(&self) -> Tensor<B, 2> {
        self.w_dec.clone()
    }
    fn encoder_weights(&self) -> Tensor<B, 2> {
        self.w_enc.clone()
    }
}

/// The tutorial model saved with `hierarchy.json` (0 → {1, 2}) and loaded
/// back; or without a hierarchy.
fn model(hierarchy: bool) -> SyntheticModel<B> {
    let device = Default::default();
    let model = SyntheticModel::<B>::new(preset("tutorial").unwrap(), &device).unwrap();
    if !hierarchy {
        return model;
    }
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "synthsae-absorption-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    model.save(&dir).unwrap();
    let leaf = |f: usize| {
        serde_json::json!({"feature_index": f, "mutually_exclusive_children": false,
            "scale_children_by_parent": false, "feature_id": null, "children": []})
    };
    let tree = serde_json::json!({"roots": [{"feature_index": 0,
        "mutually_exclusive_children": false, "scale_children_by_parent": false,
        "feature_id": null, "children": [leaf(1), leaf(2)]}]});
    std::fs::write(dir.join("hierarchy.json"), tree.to_string()).unwrap();
    let loaded = SyntheticModel::<B>::load(&dir, &device).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(loaded.hierarchy().is_some());
    loaded
}

/// The true features `[16, 32]` and the model's bias.
fn truth(model: &SyntheticModel<B>) -> (Tensor<B, 2>, Tensor<B, 1>) {
    let d = model.feature_dictionary();
    (d.feature_vectors.val(), d.bias.val())
}

const SAMPLES: usize = 40_000;

#[test]
fn the_truth_itself_absorbs_nothing_and_splits_nothing() {
    let model = model(true);
    let (f, bias) = truth(&model);
    let sae = ReluSae {
        w_enc: f.clone().transpose(),
        w_dec: f,
        b_dec: bias,
    };
    let opts = EvalOptions::new(SAMPLES).with_batch_size(4096);
    let r = evaluate_sae(&sae, &model, &opts, &mut sample_rng(Some(3)), |_| {}).unwrap();
    assert!((r.stats.mcc - 1.0).abs() < 1e-5);
    let a = r.hierarchy.absorption.expect("the model has a hierarchy");
    assert_eq!((a.parents, a.parents_measured), (1, 1));
    assert_eq!(a.absorption, 0.0);
    assert_eq!(a.full_absorption, 0.0);
    assert_eq!(a.partial_absorption, 0.0);
    assert_eq!(a.recall_with_children, 1.0);
    assert_eq!(a.recall_without_children, 1.0);
    assert_eq!(r.hierarchy.splitting.split_features, 0);
    // p(parent) = 0.25: the empirical rate within 4σ.
    let p = &a.per_parent[0];
    let sigma = (0.25f64 * 0.75 / SAMPLES as f64).sqrt();
    assert!((p.firing_rate - 0.25).abs() < 4.0 * sigma, "{p:?}");
    assert_eq!(p.firing_probability, 0.25);
}

#[test]
fn a_child_latent_that_takes_the_parent_direction_absorbs_it() {
    let model = model(true);
    let (f, bias) = truth(&model);
    let rows = |i: usize| f.clone().slice([i..i + 1, 0..32]);
    // Encoder of latent 0: F_0 − 2 F_1, so it reads a_0 − 2 a_1 = −1 (silent)
    // whenever child 1 fires (magnitudes are 1); decoder of latent 1:
    // F_1 + 0.5 F_0 (cosine 0.447 with the parent).
    let mut enc: Vec<Tensor<B, 2>> = (0..16).map(rows).collect();
    enc[0] = rows(0) - rows(1) * 2.0;
    let mut dec: Vec<Tensor<B, 2>> = (0..16).map(rows).collect();
    dec[1] = rows(1) + rows(0) * 0.5;
    let sae = ReluSae {
        w_enc: Tensor::cat(enc, 0).transpose(),
        w_dec: Tensor::cat(dec, 0),
        b_dec: bias,
    };
    let opts = EvalOptions::new(SAMPLES).with_batch_size(4096);
    let r = evaluate_sae(&sae, &model, &opts, &mut sample_rng(Some(5)), |_| {}).unwrap();
    let a = r.hierarchy.absorption.unwrap();
    let p = &a.per_parent[0];
    // Rows where the parent fires with a child: child 1 fires in a share
    // q = 0.25 / (1 − 0.75²) of them (children drawn independently with
    // p = 0.25 where the parent fired). Every such row is fully absorbed.
    let q = 0.25 / (1.0 - 0.75f64 * 0.75);
    let n = p.rows_with_children as f64;
    // Sampling bound: 4 binomial standard deviations at n rows.
    let bound = 4.0 * (q * (1.0 - q) / n).sqrt();
    let full = p.full_absorption.unwrap();
    assert!(
        (full - q).abs() < bound,
        "full {full}, expected {q} ± {bound}"
    );
    assert_eq!(p.partial_absorption, Some(0.0));
    assert_eq!(p.absorption, Some(full));
    assert_eq!(p.recall_with_children, Some(1.0 - full));
    assert_eq!(p.recall_without_children, Some(1.0));
    assert_eq!(a.absorption_weighted, a.absorption);

    // Raising the cosine threshold above 0.447 leaves nothing absorbed.
    let strict = EvalOptions {
        hierarchy: HierarchyOptions {
            absorption_cosine: 0.5,
            ..Default::default()
        },
        ..opts.clone()
    };
    let r = evaluate_sae(&sae, &model, &strict, &mut sample_rng(Some(5)), |_| {}).unwrap();
    assert_eq!(r.hierarchy.absorption.unwrap().absorption, 0.0);

    // Half the parent's activation when the child fires: partial instead.
    let mut enc: Vec<Tensor<B, 2>> = (0..16).map(rows).collect();
    enc[0] = rows(0) - rows(1) * 0.75;
    let sae = ReluSae {
        w_enc: Tensor::cat(enc, 0).transpose(),
        ..sae
    };
    let r = evaluate_sae(&sae, &model, &opts, &mut sample_rng(Some(5)), |_| {}).unwrap();
    let p = r.hierarchy.absorption.unwrap().per_parent[0].clone();
    assert_eq!(p.full_absorption, Some(0.0));
    assert!(
        (p.partial_absorption.unwrap() - full).abs() < 2.0 * bound,
        "{p:?}"
    );
    // a_0 = 1 read through nearly orthogonal features (float rounding).
    assert!((p.mean_activation_without_children.unwrap() - 1.0).abs() < 1e-4);
}

#[test]
fn duplicated_latents_split_and_a_model_without_hierarchy_has_no_absorption() {
    let model = model(false);
    let (f, bias) = truth(&model);
    // Features 3 and 7 get a second latent each; feature 3 a third.
    let extra = Tensor::cat(
        vec![
            f.clone().slice([3..4, 0..32]),
            f.clone().slice([7..8, 0..32]),
            f.clone().slice([3..4, 0..32]) * 0.5,
        ],
        0,
    );
    let w = Tensor::cat(vec![f, extra], 0);
    let sae = ReluSae {
        w_enc: w.clone().transpose(),
        w_dec: w,
        b_dec: bias,
    };
    let opts = EvalOptions::new(2048).with_batch_size(1024);
    let r = evaluate_sae(&sae, &model, &opts, &mut sample_rng(Some(1)), |_| {}).unwrap();
    assert!(r.hierarchy.absorption.is_none());
    assert_eq!(r.hierarchy.splitting.split_features, 2);
    assert_eq!(r.hierarchy.splitting.mean_latents_per_split_feature, 2.5);
    let json = r.to_json();
    assert!(json["hierarchy"]["absorption"].is_null());
    assert_eq!(json["mcc"], serde_json::json!(r.stats.mcc));

    let bad = EvalOptions {
        hierarchy: HierarchyOptions {
            partial_fraction: 2.0,
            ..Default::default()
        },
        ..opts
    };
    let e = evaluate_sae(&sae, &model, &bad, &mut sample_rng(Some(1)), |_| {}).unwrap_err();
    assert!(e.to_string().contains("partial_fraction"), "{e}");
}
