//! Evaluation on the device: `init_weights_to_match_features` (the SAE's
//! weights set to the true features plus seeded noise, on the device), then
//! `eval_sae_on_synthetic_data` (cosine matrix in row blocks, assignment,
//! MCC, L0, dead latents, shrinkage, explained variance, classification) on
//! the backend under test (hidden activations by the host and by the device
//! path) and on the reference, from the same sample stream.

use burn::prelude::*;
use serde_json::json;
use synthsae::data::{sample_rng, HiddenPath, SyntheticModel, SyntheticModelConfig};
use synthsae::eval::{
    eval_sae_on_synthetic_data, init_weights_to_match_features, EvalOptions, InitOptions,
    SaeWeights, SyntheticDataEvalResult,
};
use synthsae::sae::arch::topk::TopKSae;
use synthsae::sae::linear::LinearCore;
use synthsae::sae::ops::param;
use synthsae::sae::{AnySae, AnyTrainingSae, TrainingSaeConfig};

use super::{compare, compare_scalar, host, Report, Target};

fn model_config() -> SyntheticModelConfig {
    SyntheticModelConfig::from_json(
        r#"{"num_features": 256, "hidden_dim": 128,
            "firing_probability": {"exponent": 0.5, "max_prob": 0.2, "min_prob": 0.005,
                                   "generator_name": "zipfian"},
            "std_firing_magnitudes": 0.1, "mean_firing_magnitudes": 1.0,
            "bias": 0.5, "seed": 9}"#,
    )
    .expect("valid model config")
}

/// A TopK SAE (128 → 320, k 5) whose first 256 latents are the true
/// features plus noise 0.02 (seeded) and whose `b_dec` is the model's bias,
/// built on `device`.
fn matched_sae<X: Backend>(model: &SyntheticModel<X>, device: &X::Device) -> AnySae<X> {
    let cfg = TrainingSaeConfig::from_json(
        &json!({"architecture": "topk", "d_in": 128, "d_sae": 320, "k": 5}),
    )
    .expect("valid SAE config");
    let AnyTrainingSae::TopK(s) = cfg.init::<X>(device, 3).expect("init") else {
        unreachable!("a topk config gives a TopK SAE")
    };
    let core = s.core;
    let w = init_weights_to_match_features(
        SaeWeights {
            w_enc: Some(core.w_enc.val()),
            w_dec: core.w_dec.val(),
        },
        model.feature_dictionary().feature_vectors.val(),
        &InitOptions {
            noise_level: 0.02,
            feature_ordering: None,
            seed: Some(8),
        },
    )
    .expect("init to features");
    let core = LinearCore {
        w_enc: param(w.w_enc.expect("untied")),
        w_dec: param(w.w_dec),
        b_enc: core.b_enc,
        b_dec: param(model.feature_dictionary().bias.val()),
    };
    AnySae::TopK(TopKSae::new(core, cfg.inference_config()))
}

fn evaluate<X: Backend>(
    device: &X::Device,
    path: HiddenPath,
) -> (SyntheticDataEvalResult, Vec<f32>) {
    let model = SyntheticModel::<X>::new(model_config(), device).expect("model builds");
    let sae = matched_sae(&model, device);
    let weights = host("matched decoder", synthsae::sae::Sae::decoder_weights(&sae));
    let options = EvalOptions::new(8192)
        .with_batch_size(1024)
        .with_hidden_path(path);
    let result = eval_sae_on_synthetic_data(&sae, &model, &options, &mut sample_rng(Some(17)))
        .expect("evaluation");
    (result, weights)
}

/// The evaluation on the backend, by each hidden path, equals the
/// reference's (host path) metric by metric, and the matched SAE scores as
/// it should (MCC > 0.9).
pub fn matches_reference<B: Backend, R: Backend>(t: &Target<B>) {
    let mut report = Report::default();
    let (want, want_w) = evaluate::<R>(&Default::default(), HiddenPath::Host);
    for path in [HiddenPath::Host, HiddenPath::Device] {
        let (got, got_w) = evaluate::<B>(&t.device, path);
        let what = |p: &str| format!("{} evaluation ({path} path): {p}", t.name);
        report.add(
            "matched weights",
            compare(&what("matched decoder"), &got_w, &want_w, t.tol.rel) as f64,
        );
        for ((k, a), (_, b)) in got.to_log_dict("").into_iter().zip(want.to_log_dict("")) {
            report.add("metrics", compare_scalar(&what(&k), a, b, t.tol.rel as f64));
        }
        eprintln!(
            "conformance[{}] eval ({path} path): MCC {:.4}, L0 {:.2} (true {:.2}), explained \
             variance {:.4}, F1 {:.4}",
            t.name,
            got.mcc,
            got.sae_l0,
            got.true_l0,
            got.explained_variance,
            got.classification.f1_score
        );
        assert_eq!(
            got.dead_latents,
            want.dead_latents,
            "{}",
            what("dead latents")
        );
        assert!(got.mcc > 0.9, "{}", what(&format!("MCC {} ≤ 0.9", got.mcc)));
        assert!(
            got.explained_variance > 0.5,
            "{}",
            what(&format!("explained variance {}", got.explained_variance))
        );
    }
    report.print(t.name, "eval");
}
