//! Every SAE written by sae-lens 6.54.12 in `tests/fixtures/saelens-6.54.12/saes/`
//! loads and reproduces sae-lens's `encode(input)` and `decode(feature_acts)`.

use std::path::PathBuf;

use burn::backend::{Flex, NdArray};
use burn::prelude::*;
use synthsae_sae::io::{HostData, TensorFile};
use synthsae_sae::{AnySae, Sae, SaeError};

fn fixtures() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("../../tests/fixtures/saelens-6.54.12/saes")
}

fn host(file: &TensorFile, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = &file.tensors[name];
    match &t.data {
        HostData::F32(v) => (t.shape.clone(), v.clone()),
        HostData::F64(v) => (t.shape.clone(), v.iter().map(|&x| x as f32).collect()),
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check<B: Backend>(name: &str, expected_arch: &str) {
    let device = Default::default();
    let dir = fixtures().join(name);
    let sae = AnySae::<B>::load(&dir, &device).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(sae.architecture(), expected_arch, "{name}");
    let io = TensorFile::read(&dir.join("io.safetensors")).unwrap();
    let (xs, x) = host(&io, "input");
    let (zs, z_ref) = host(&io, "feature_acts");
    let (_, rec_ref) = host(&io, "reconstruction");
    let input = Tensor::<B, 2>::from_data(TensorData::new(x, [xs[0], xs[1]]), &device);
    let z = sae.encode(input);
    let z_vec = z
        .clone()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap();
    let dz = max_abs_diff(&z_vec, &z_ref);
    assert!(dz <= 1e-5, "{name}: encode differs by {dz}");
    // Same support: a latent is active here iff it is active in sae-lens.
    let support_mismatch = z_vec
        .iter()
        .zip(&z_ref)
        .filter(|(a, b)| (**a != 0.0) != (**b != 0.0))
        .count();
    assert_eq!(support_mismatch, 0, "{name}: active sets differ");
    let z_in = Tensor::<B, 2>::from_data(TensorData::new(z_ref, [zs[0], zs[1]]), &device);
    let rec = sae
        .decode(z_in)
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap();
    let dr = max_abs_diff(&rec, &rec_ref);
    assert!(dr <= 1e-5, "{name}: decode differs by {dr}");
}

#[test]
fn standard_fixture() {
    check::<NdArray>("standard", "standard");
    check::<Flex>("standard", "standard");
}

#[test]
fn topk_fixture() {
    check::<NdArray>("topk", "topk");
    check::<Flex>("topk", "topk");
}

#[test]
fn batchtopk_fixture_is_jumprelu() {
    check::<NdArray>("batchtopk", "jumprelu");
    check::<Flex>("batchtopk", "jumprelu");
}

#[test]
fn matryoshka_fixture_is_jumprelu() {
    check::<NdArray>("matryoshka", "jumprelu");
}

#[test]
fn jumprelu_fixture() {
    check::<NdArray>("jumprelu", "jumprelu");
    check::<Flex>("jumprelu", "jumprelu");
}

#[test]
fn gated_fixture() {
    check::<NdArray>("gated", "gated");
    check::<Flex>("gated", "gated");
}

#[test]
fn matching_pursuit_fixture() {
    check::<NdArray>("matching_pursuit", "matching_pursuit");
    check::<Flex>("matching_pursuit", "matching_pursuit");
}

#[test]
fn saved_fixture_reloads_identically() {
    let device = Default::default();
    for name in [
        "standard",
        "topk",
        "batchtopk",
        "jumprelu",
        "gated",
        "matching_pursuit",
    ] {
        let sae = AnySae::<NdArray>::load(fixtures().join(name), &device).unwrap();
        let out =
            std::env::temp_dir().join(format!("synthsae-sae-resave-{name}-{}", std::process::id()));
        sae.save(&out).unwrap();
        let back = AnySae::<NdArray>::load(&out, &device).unwrap();
        assert_eq!(sae.tensors(), back.tensors(), "{name}");
        assert_eq!(sae.config(), back.config(), "{name}");
        let orig =
            TensorFile::read(&fixtures().join(name).join("sae_weights.safetensors")).unwrap();
        let mine = TensorFile::read(&out.join("sae_weights.safetensors")).unwrap();
        assert_eq!(
            orig.tensors, mine.tensors,
            "{name}: tensors differ from sae-lens's file"
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn broken_files_give_clear_errors() {
    let device = Default::default();
    let dir = std::env::temp_dir().join(format!("synthsae-sae-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = fixtures().join("jumprelu");
    // Unknown architecture.
    let cfg = std::fs::read_to_string(src.join("cfg.json")).unwrap();
    std::fs::write(
        dir.join("cfg.json"),
        cfg.replace(
            "\"architecture\": \"jumprelu\"",
            "\"architecture\": \"spiky\"",
        ),
    )
    .unwrap();
    std::fs::copy(
        src.join("sae_weights.safetensors"),
        dir.join("sae_weights.safetensors"),
    )
    .unwrap();
    assert!(matches!(
        AnySae::<NdArray>::load(&dir, &device),
        Err(SaeError::UnknownArchitecture { .. })
    ));
    // Wrong shape: d_sae in the config differs from the tensors.
    std::fs::write(
        dir.join("cfg.json"),
        cfg.replace("\"d_sae\": 64", "\"d_sae\": 65"),
    )
    .unwrap();
    let err = AnySae::<NdArray>::load(&dir, &device).unwrap_err();
    assert!(matches!(err, SaeError::Shape { .. }), "{err}");
    // Missing tensor: a jumprelu config over standard weights.
    std::fs::write(dir.join("cfg.json"), &cfg).unwrap();
    std::fs::copy(
        fixtures().join("standard/sae_weights.safetensors"),
        dir.join("sae_weights.safetensors"),
    )
    .unwrap();
    let err = AnySae::<NdArray>::load(&dir, &device).unwrap_err();
    assert!(
        matches!(err, SaeError::MissingTensor { ref name, .. } if name == "threshold"),
        "{err}"
    );
    // Missing directory.
    assert!(matches!(
        AnySae::<NdArray>::load(dir.join("nope"), &device),
        Err(SaeError::Io { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
