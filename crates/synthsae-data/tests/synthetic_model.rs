//! SyntheticModel against models written by sae-lens 6.54.12
//! (`tests/fixtures/saelens-6.54.12/models`): loading, seed-compatible
//! construction, save/load round trips, sampling behaviour, bad files.

use std::path::PathBuf;

use burn::backend::NdArray;
use safetensors::SafeTensors;
use synthsae_data::{sample_rng, Csr, SyntheticModel, SyntheticModelConfig};

type B = NdArray;
const MODELS: [&str; 3] = ["zipf-256x64", "hier-corr-16x32", "bench-like-1024x96"];

fn dir(model: &str) -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("../../tests/fixtures/saelens-6.54.12/models")
    .join(model)
}

fn read(model: &str, file: &str, name: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(dir(model).join(file)).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (v, t.shape().to_vec())
}

fn max_dev(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("synthsae-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn fixtures_load_and_reproduce_their_io() {
    let device = Default::default();
    for model in MODELS {
        let m = SyntheticModel::<B>::load(dir(model), &device).unwrap();
        let host = m.host_dictionary();
        assert_eq!(
            host.feature_vectors(),
            read(model, "synthetic_model.safetensors", "feature_vectors").0,
            "{model}"
        );
        assert_eq!(
            host.bias(),
            read(model, "synthetic_model.safetensors", "bias").0,
            "{model}"
        );
        let g = m.generator();
        assert_eq!(
            g.firing_probabilities(),
            read(model, "io.safetensors", "firing_probabilities").0,
            "{model}"
        );
        assert_eq!(
            g.mean_firing_magnitudes(),
            read(model, "io.safetensors", "mean_firing_magnitudes").0,
            "{model}"
        );
        // Folded-normal std magnitudes come from torch normals: equal to float rounding.
        let std_dev = max_dev(
            g.std_firing_magnitudes(),
            &read(model, "io.safetensors", "std_firing_magnitudes").0,
        );
        assert!(
            std_dev < 1e-6,
            "{model}: std magnitudes deviate by {std_dev}"
        );
        // hidden = features · F + bias reproduces sae-lens's draws.
        let (feats, shape) = read(model, "io.safetensors", "feature_activations");
        let batch = Csr::from_dense(&feats, shape[0], shape[1]).unwrap();
        let hidden = host.forward_sparse(&batch).unwrap();
        let (want, _) = read(model, "io.safetensors", "hidden_activations");
        assert!(
            max_dev(&hidden, &want) < 1e-5,
            "{model}: {}",
            max_dev(&hidden, &want)
        );
        assert_eq!(
            m.hierarchy().is_some(),
            dir(model).join("hierarchy.json").exists()
        );
    }
}

#[test]
fn seeded_configs_rebuild_the_fixture_models() {
    let device = Default::default();
    for model in MODELS {
        let json = std::fs::read_to_string(dir(model).join("synthetic_model_config.json")).unwrap();
        let cfg = SyntheticModelConfig::from_json(&json).unwrap();
        let ortho = cfg.orthogonalization.is_some();
        let built = SyntheticModel::<B>::new(cfg, &device).unwrap();
        let loaded = SyntheticModel::<B>::load(dir(model), &device).unwrap();
        let fv = max_dev(
            built.host_dictionary().feature_vectors(),
            loaded.host_dictionary().feature_vectors(),
        );
        let bias = max_dev(
            built.host_dictionary().bias(),
            loaded.host_dictionary().bias(),
        );
        if ortho {
            // Orthogonalisation amplifies float rounding differences (reassociated
            // gradient, different summation order) over its steps; report it.
            println!("{model}: orthogonalised feature vectors max deviation {fv:.2e}");
            assert!(fv < 1e-3, "{model}: {fv}");
        } else {
            assert!(fv < 1e-5, "{model}: feature vectors deviate by {fv}");
        }
        assert!(bias < 1e-5, "{model}: bias deviates by {bias}");
        let (gb, gl) = (built.generator(), loaded.generator());
        assert!(
            max_dev(gb.firing_probabilities(), gl.firing_probabilities()) < 2e-6,
            "{model}"
        );
        assert_eq!(
            gb.mean_firing_magnitudes(),
            gl.mean_firing_magnitudes(),
            "{model}"
        );
        assert!(
            max_dev(gb.std_firing_magnitudes(), gl.std_firing_magnitudes()) < 1e-6,
            "{model}"
        );
        assert_eq!(built.hierarchy(), loaded.hierarchy(), "{model}");
        match (built.correlation(), loaded.correlation()) {
            (Some(a), Some(b)) => {
                assert!(max_dev(a.factor(), b.factor()) < 1e-5, "{model}");
                assert!(max_dev(a.diag(), b.diag()) < 1e-5, "{model}");
            }
            (None, None) => {}
            _ => panic!("{model}: correlation presence differs"),
        }
    }
}

#[test]
fn save_load_round_trip_is_exact() {
    let device = Default::default();
    for model in MODELS {
        let m = SyntheticModel::<B>::load(dir(model), &device).unwrap();
        let out = tmpdir(model);
        m.save(&out).unwrap();
        let back = SyntheticModel::<B>::load(&out, &device).unwrap();
        assert_eq!(back.config(), m.config());
        assert_eq!(back.host_dictionary(), m.host_dictionary());
        assert_eq!(
            back.generator().firing_probabilities(),
            m.generator().firing_probabilities()
        );
        assert_eq!(back.hierarchy(), m.hierarchy());
        assert_eq!(back.correlation(), m.correlation());
        // Same bytes as sae-lens for the JSON files.
        for f in ["synthetic_model_config.json", "hierarchy.json"] {
            if dir(model).join(f).exists() {
                let ours: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(out.join(f)).unwrap()).unwrap();
                let theirs: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(dir(model).join(f)).unwrap()).unwrap();
                assert_eq!(ours, theirs, "{model}/{f}");
            }
        }
        assert!(std::fs::read_dir(&out).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp")));
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn samples_obey_the_hierarchy_and_match_saelens_rates() {
    let device = Default::default();
    for model in ["hier-corr-16x32", "bench-like-1024x96"] {
        let m = SyntheticModel::<B>::load(dir(model), &device).unwrap();
        let h = m.hierarchy().unwrap().clone();
        let n = m.config().num_features;
        // Parent of every feature, and ME groups.
        let mut parent = vec![None; n];
        let mut groups: Vec<Vec<usize>> = Vec::new();
        fn walk(
            node: &synthsae_data::HierarchyNode,
            p: Option<usize>,
            parent: &mut [Option<usize>],
            groups: &mut Vec<Vec<usize>>,
        ) {
            if let Some(f) = node.feature_index {
                parent[f] = p;
            }
            if node.mutually_exclusive_children {
                groups.push(
                    node.children
                        .iter()
                        .filter_map(|c| c.feature_index)
                        .collect(),
                );
            }
            for c in &node.children {
                walk(c, node.feature_index.or(p), parent, groups);
            }
        }
        for r in &h.roots {
            walk(r, None, &mut parent, &mut groups);
        }
        let mut rng = sample_rng(Some(5));
        let rows = 100_000;
        let mut counts = vec![0u64; n];
        let mut done = 0;
        while done < rows {
            let b = m.sample_features(1000, &mut rng);
            for (idx, _) in b.rows() {
                let active = |f: usize| idx.binary_search(&(f as u32)).is_ok();
                for &f in idx {
                    counts[f as usize] += 1;
                    if let Some(p) = parent[f as usize] {
                        assert!(
                            active(p),
                            "{model}: feature {f} fired without its parent {p}"
                        );
                    }
                }
                for g in &groups {
                    assert!(
                        g.iter().filter(|&&f| active(f)).count() <= 1,
                        "{model}: ME group {g:?} violated"
                    );
                }
            }
            done += 1000;
        }
        // Rates against sae-lens's 512 draws: two-sample binomial, 5σ.
        let (feats, shape) = read(model, "io.safetensors", "feature_activations");
        let theirs = Csr::from_dense(&feats, shape[0], shape[1]).unwrap();
        let mut tc = vec![0u64; n];
        for &f in theirs.indices() {
            tc[f as usize] += 1;
        }
        let (n1, n2) = (rows as f64, shape[0] as f64);
        for f in 0..n {
            let (a, b) = (counts[f] as f64 / n1, tc[f] as f64 / n2);
            let p = (counts[f] + tc[f]) as f64 / (n1 + n2);
            let se = (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt().max(1.0 / n2);
            assert!(
                (a - b).abs() <= 5.0 * se,
                "{model}: feature {f} rate {a:.4} vs sae-lens {b:.4}"
            );
        }
    }
}

#[test]
fn bad_files_give_clear_errors() {
    let device = Default::default();
    let src = dir("zipf-256x64");
    let copy = |name: &str| {
        let d = tmpdir(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in ["synthetic_model_config.json", "synthetic_model.safetensors"] {
            std::fs::copy(src.join(f), d.join(f)).unwrap();
        }
        d
    };
    // Truncated weights.
    let d = copy("truncated");
    let w = std::fs::read(d.join("synthetic_model.safetensors")).unwrap();
    std::fs::write(d.join("synthetic_model.safetensors"), &w[..w.len() / 2]).unwrap();
    let e = SyntheticModel::<B>::load(&d, &device)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("synthetic_model.safetensors") && e.contains("not a valid safetensors"),
        "{e}"
    );
    // Wrong shape: config claims more features.
    let d = copy("shape");
    let cfg = std::fs::read_to_string(d.join("synthetic_model_config.json")).unwrap();
    std::fs::write(
        d.join("synthetic_model_config.json"),
        cfg.replace("\"num_features\": 256", "\"num_features\": 300"),
    )
    .unwrap();
    let e = SyntheticModel::<B>::load(&d, &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("feature_vectors") && e.contains("shape"), "{e}");
    // Missing file, unknown key, bad value.
    let d = copy("missing");
    std::fs::remove_file(d.join("synthetic_model.safetensors")).unwrap();
    let e = SyntheticModel::<B>::load(&d, &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("synthetic_model.safetensors"), "{e}");
    let d = copy("badkey");
    let cfg = std::fs::read_to_string(d.join("synthetic_model_config.json")).unwrap();
    std::fs::write(
        d.join("synthetic_model_config.json"),
        cfg.replace("\"hidden_dim\"", "\"hiden_dim\""),
    )
    .unwrap();
    let e = SyntheticModel::<B>::load(&d, &device)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("synthetic_model_config.json") && e.contains("hiden_dim"),
        "{e}"
    );
    // Remove the copies (`tmpdir` clears the directory it names).
    for name in ["truncated", "shape", "missing", "badkey"] {
        tmpdir(name);
    }
    let e = SyntheticModelConfig::from_json(r#"{"num_features": 0, "hidden_dim": 4, "firing_probability": {"generator_name": "constant"}}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("num_features"), "{e}");
    let e = SyntheticModelConfig::from_json(r#"{"num_features": 3, "hidden_dim": 4}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("firing_probability"), "{e}");
}
