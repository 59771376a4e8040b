//! End-to-end tests of the `synthsae` binary.

use std::path::PathBuf;
use std::process::{Command, Output};

fn synthsae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synthsae"))
        .args(args)
        .output()
        .expect("run synthsae")
}

fn ok_json(args: &[&str]) -> serde_json::Value {
    let out = synthsae(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("synthsae-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn model_new_info_and_sample_round_trip() {
    let dir = tmp("model");
    let d = dir.to_str().unwrap();
    let r = ok_json(&[
        "model", "new", "--preset", "tutorial", "--out", d, "--json", "-q",
    ]);
    assert_eq!(r["config"]["num_features"], 16);
    assert_eq!(r["orthogonalization"]["num_steps"], 200);
    // 16 features in 32 dimensions orthogonalise completely.
    assert!(r["orthogonalization"]["max_abs_cos"].as_f64().unwrap() < 1e-3);
    assert!(dir.join("synthetic_model.safetensors").exists());
    let info = ok_json(&["model", "info", d, "--samples", "20000", "--json", "-q"]);
    // True L0 of 16 features firing with p = 0.25: 4 ± 5·sqrt(16·0.25·0.75/20000) = 4 ± 0.06.
    let l0 = info["true_l0"].as_f64().unwrap();
    assert!((l0 - 4.0).abs() < 0.06, "{l0}");
    assert!(info["hierarchy"].is_null());

    let out = dir.join("samples.safetensors");
    let o = out.to_str().unwrap();
    let s = ok_json(&[
        "sample",
        d,
        "--samples",
        "300",
        "--out",
        o,
        "--with-features",
        "--json",
        "-q",
    ]);
    assert_eq!(s["samples"], 300);
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("hidden_activations").unwrap().shape(), &[300, 32]);
    assert_eq!(st.tensor("feature_row_offsets").unwrap().shape(), &[301]);
    let nnz = s["nnz"].as_u64().unwrap() as usize;
    assert_eq!(st.tensor("feature_indices").unwrap().shape(), &[nnz]);
    assert_eq!(
        st.tensor("feature_values").unwrap().dtype(),
        safetensors::Dtype::F32
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_files_and_seed_override() {
    let dir = tmp("cfg");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.json");
    std::fs::write(
        &cfg,
        r#"{"num_features": 200, "hidden_dim": 16, "firing_probability": {"generator_name": "zipfian"},
            "hierarchy": {"total_root_nodes": 4, "branching_factor": 3, "max_depth": 2, "mutually_exclusive_portion": 1.0},
            "correlation": {"rank": 4}, "seed": 3}"#,
    )
    .unwrap();
    let out = dir.join("m");
    let r = ok_json(&[
        "model",
        "new",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--seed",
        "9",
        "--json",
        "-q",
    ]);
    assert_eq!(r["config"]["seed"], 9);
    assert_eq!(r["hierarchy"]["roots"], 4);
    assert_eq!(r["correlation"]["rank"], 4);
    assert!(out.join("hierarchy.json").exists());
    // flex and ndarray load the same files and sample the same data.
    let a = ok_json(&[
        "--backend",
        "flex",
        "model",
        "info",
        out.to_str().unwrap(),
        "--samples",
        "3000",
        "--json",
        "-q",
    ]);
    let b = ok_json(&[
        "--backend",
        "ndarray",
        "model",
        "info",
        out.to_str().unwrap(),
        "--samples",
        "3000",
        "--json",
        "-q",
    ]);
    assert_eq!(a["true_l0"], b["true_l0"]);
    let (ha, hb) = (
        a["mean_hidden_norm"].as_f64().unwrap(),
        b["mean_hidden_norm"].as_f64().unwrap(),
    );
    assert!((ha - hb).abs() < 1e-5 * ha);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_one_readable_line_and_an_exit_code() {
    let dir = tmp("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.json");
    std::fs::write(&cfg, r#"{"num_features": 10, "hidden_dim": 4, "firing_probability": {"generator_name": "zipfian", "max_prob": 1.5}}"#).unwrap();
    let out = synthsae(&[
        "model",
        "new",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        dir.join("m").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("bad.json") && err.contains("max_prob"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!dir.join("m").exists(), "nothing written on error");

    let out = synthsae(&[
        "model",
        "new",
        "--preset",
        "nope",
        "--out",
        dir.join("m").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown preset"));

    let out = synthsae(&[
        "sample",
        dir.to_str().unwrap(),
        "--samples",
        "0",
        "--out",
        "x.safetensors",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = synthsae(&[
        "sample",
        dir.join("none").to_str().unwrap(),
        "--samples",
        "5",
        "--out",
        dir.join("x.st").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.join("x.st").exists());
    let model = dir.join("tiny");
    ok_json(&[
        "model",
        "new",
        "--preset",
        "tutorial",
        "--out",
        model.to_str().unwrap(),
        "--json",
        "-q",
    ]);
    let huge = synthsae(&[
        "sample",
        model.to_str().unwrap(),
        "--samples",
        "18446744073709551615",
        "--out",
        dir.join("h.st").to_str().unwrap(),
    ]);
    assert_eq!(
        huge.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&huge.stderr)
    );
    assert!(String::from_utf8_lossy(&huge.stderr).contains("--samples"));
    let out = synthsae(&["--backend", "tpu"]);
    assert_eq!(out.status.code(), Some(2));
    // A known backend that this binary lacks is refused on every command,
    // also on those that use no backend (`presets`).
    if !cfg!(feature = "cuda") {
        let out = synthsae(&["--backend", "cuda", "presets"]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("not compiled") && err.contains("cuda"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
