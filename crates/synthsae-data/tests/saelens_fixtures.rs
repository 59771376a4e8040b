//! Per-feature vectors derived from sae-lens configs must equal, bit for bit
//! (float32), the ones sae-lens 6.54.12 derived (fixtures written by it).

use std::path::PathBuf;

use safetensors::SafeTensors;
use synthsae_data::{FiringProbabilityConfig, Magnitude};

fn fixture(model: &str, file: &str) -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("../../tests/fixtures/saelens-6.54.12/models")
    .join(model)
    .join(file)
}

fn read_f32(model: &str, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture(model, "io.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn config(model: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture(model, "synthetic_model_config.json")).unwrap())
        .unwrap()
}

#[test]
fn zipfian_probabilities_are_bit_exact() {
    let cfg = config("zipf-256x64");
    let fp: FiringProbabilityConfig =
        serde_json::from_value(cfg["firing_probability"].clone()).unwrap();
    let ours = fp.generate(256, None).unwrap();
    let theirs = read_f32("zipf-256x64", "firing_probabilities");
    let diffs: Vec<_> = ours
        .iter()
        .zip(&theirs)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .take(5)
        .collect();
    assert!(
        diffs.is_empty(),
        "first differences (index, (ours, sae-lens)): {diffs:?}"
    );
}

#[test]
fn magnitudes_are_bit_exact() {
    for (model, n) in [
        ("zipf-256x64", 256usize),
        ("bench-like-1024x96", 1024),
        ("hier-corr-16x32", 16),
    ] {
        let cfg = config(model);
        let mean: Magnitude =
            serde_json::from_value(cfg["mean_firing_magnitudes"].clone()).unwrap();
        let ours = mean.generate(n, None).unwrap();
        let theirs = read_f32(model, "mean_firing_magnitudes");
        let diffs: Vec<_> = ours
            .iter()
            .zip(&theirs)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .collect();
        assert!(
            diffs.is_empty(),
            "{model}: {} differences, first {:?}",
            diffs.len(),
            &diffs[..diffs.len().min(4)]
        );
    }
    let std: Magnitude =
        serde_json::from_value(config("zipf-256x64")["std_firing_magnitudes"].clone()).unwrap();
    assert_eq!(
        std.generate(256, None).unwrap(),
        read_f32("zipf-256x64", "std_firing_magnitudes")
    );
}

fn read_weights(model: &str, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture(model, "synthetic_model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn seeded_feature_vectors_match_saelens_draws() {
    // zipf-256x64: seed 12, no bias, no orthogonalisation.
    use synthsae_data::{Bias, FeatureDictionaryConfig, TorchGenerator};
    let cfg = FeatureDictionaryConfig::new(256, 64).with_bias(Bias::Flag(false));
    let (fd, _) = cfg
        .init_with_source::<burn::backend::NdArray>(
            &mut TorchGenerator::manual_seed(12),
            &Default::default(),
            None,
        )
        .unwrap();
    let ours = fd.to_host().unwrap();
    let theirs = read_weights("zipf-256x64", "feature_vectors");
    let max_dev = ours
        .feature_vectors()
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_dev < 1e-5, "max deviation {max_dev}");
}

#[test]
fn seeded_folded_normal_magnitudes_match_saelens() {
    // std magnitudes use seed + 1 (bench-like: seed in its config).
    use synthsae_data::TorchGenerator;
    for (model, n) in [("bench-like-1024x96", 1024usize), ("hier-corr-16x32", 16)] {
        let cfg = config(model);
        let seed = cfg["seed"].as_u64().unwrap();
        let std: Magnitude = serde_json::from_value(cfg["std_firing_magnitudes"].clone()).unwrap();
        let ours = std
            .generate_with(n, &mut TorchGenerator::manual_seed(seed + 1))
            .unwrap();
        let theirs = read_f32(model, "std_firing_magnitudes");
        let max_dev = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_dev < 1e-6, "{model}: max deviation {max_dev}");
    }
}

#[test]
fn generated_hierarchies_and_compensated_probabilities_match_saelens() {
    use synthsae_data::{generate_hierarchy, Hierarchy, HierarchyConfig};
    for (model, n) in [("hier-corr-16x32", 16usize), ("bench-like-1024x96", 1024)] {
        let cfg = config(model);
        let seed = cfg["seed"].as_u64().unwrap();
        let hcfg: HierarchyConfig = serde_json::from_value(cfg["hierarchy"].clone()).unwrap();
        // Hierarchy: seed + 3, CPython's random.
        let ours = generate_hierarchy(n, &hcfg, Some(seed + 3)).unwrap();
        let theirs: Hierarchy =
            serde_json::from_slice(&std::fs::read(fixture(model, "hierarchy.json")).unwrap())
                .unwrap();
        assert_eq!(ours, theirs, "{model}");
        // Compensated probabilities, float32-exact.
        let fp: FiringProbabilityConfig =
            serde_json::from_value(cfg["firing_probability"].clone()).unwrap();
        let base = fp.generate(n, None).unwrap();
        let (p, _, _) = ours.compensate(&base).unwrap();
        let saved = read_f32(model, "firing_probabilities");
        // In bench-like-1024x96 two saved probabilities (features 266 and
        // 267) differ from ours by a few ulp. sae-lens's float32 results are
        // themselves machine-dependent at that level: sae-lens 6.54.12 with
        // torch 2.15 on the development machine reproduces ours for these two
        // and differs from this fixture in 165 of 1024 values (see
        // `cargo xtask interop`). Bounded so that any new deviation fails.
        let ulps = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs();
        let diffs: Vec<_> = p
            .iter()
            .zip(&saved)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .collect();
        assert!(
            diffs.len() <= 2,
            "{model}: probabilities differ (index, (ours, sae-lens)): {diffs:?}"
        );
        assert!(
            diffs.iter().all(|(_, (a, b))| ulps(**a, **b) <= 4),
            "{model}: {diffs:?}"
        );
        // The saved weights file holds the same final probabilities.
        assert_eq!(
            read_weights(model, "firing_probabilities"),
            saved,
            "{model}"
        );
    }
}
