//! sae-lens 6.54.12's own values for MCC, uniqueness and classification
//! metrics (`tests/fixtures/saelens-6.54.12/evals/`, see its README.txt)
//! reproduce to 1e-6.

use burn::backend::NdArray;
use burn::prelude::*;
use safetensors::SafeTensors;
use synthsae_eval::{
    compute_classification_metrics, feature_uniqueness, mean_correlation_coefficient,
};

type B = NdArray;

fn fixture() -> Vec<u8> {
    // The package directory at run time (cargo sets it for tests): a test
    // binary reused from a build in another checkout must not read there.
    let path = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("../../tests/fixtures/saelens-6.54.12/evals/metrics.safetensors");
    std::fs::read(path).expect("fixture file")
}

fn tensor(st: &SafeTensors, name: &str) -> (Vec<f32>, Vec<usize>) {
    let t = st.tensor(name).unwrap_or_else(|_| panic!("{name} missing"));
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (v, t.shape().to_vec())
}

fn matrix(st: &SafeTensors, name: &str) -> Tensor<B, 2> {
    let (v, shape) = tensor(st, name);
    Tensor::from_data(
        TensorData::new(v, [shape[0], shape[1]]),
        &Default::default(),
    )
}

#[test]
fn mcc_and_uniqueness_cases() {
    let bytes = fixture();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for case in 0..4 {
        let a = matrix(&st, &format!("case{case}_a"));
        let b = matrix(&st, &format!("case{case}_b"));
        let mcc = mean_correlation_coefficient(a.clone(), b.clone()).unwrap();
        let uniq = feature_uniqueness(a, b).unwrap();
        let want_mcc = tensor(&st, &format!("case{case}_mcc")).0[0] as f64;
        let want_uniq = tensor(&st, &format!("case{case}_uniqueness")).0[0] as f64;
        assert!(
            (mcc - want_mcc).abs() < 1e-6,
            "case {case}: mcc {mcc} vs {want_mcc}"
        );
        assert!(
            (uniq - want_uniq).abs() < 1e-6,
            "case {case}: uniqueness {uniq} vs {want_uniq}"
        );
    }
}

#[test]
fn classification_case() {
    let bytes = fixture();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let m = compute_classification_metrics(
        matrix(&st, "cls_sae_latents"),
        matrix(&st, "cls_gt_feature_acts"),
        matrix(&st, "cls_sae_decoder"),
        matrix(&st, "cls_gt_features"),
    )
    .unwrap();
    let want = tensor(&st, "cls_expected_precision_recall_f1_accuracy").0;
    let got = [m.precision, m.recall, m.f1_score, m.accuracy];
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - *w as f64).abs() < 1e-6, "metric {k}: {g} vs {w}");
    }
}
