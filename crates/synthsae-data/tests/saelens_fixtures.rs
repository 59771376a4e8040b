//! Per-feature vectors derived from sae-lens configs must equal, bit for bit
//! (float32), the ones sae-lens 6.54.12 derived (fixtures written by it).

use std::path::PathBuf;

use safetensors::SafeTensors;
use synthsae_data::{FiringProbabilityConfig, Magnitude};

fn fixture(model: &str, file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
