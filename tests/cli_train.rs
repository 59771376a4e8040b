//! End-to-end tests of `synthsae train`, `quickstart` and `synthsaebench`.

use std::path::PathBuf;
use std::process::{Command, Output};

fn synthsae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synthsae"))
        .args(args)
        .output()
        .expect("run synthsae")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("synthsae-cli-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn quickstart_trains_evaluates_and_plots() {
    let dir = tmp("quickstart");
    let out = dir.join("qs");
    let o = synthsae(&[
        "quickstart",
        "--out",
        out.to_str().unwrap(),
        "--training-samples",
        "5000000",
        "--json",
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["final_eval"]["mcc"].as_f64().unwrap() > 0.9, "{r}");
    assert_eq!(r["n_training_samples"], 5_000_192);
    for f in [
        "cfg.json",
        "sae_weights.safetensors",
        "eval_stats.json",
        "similarity.png",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_runs_a_runner_config_and_resumes() {
    let dir = tmp("train");
    let cfg = dir.join("runner_config.json");
    let ckpt = dir.join("ckpt");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "synthetic_model": {
                "num_features": 64, "hidden_dim": 16,
                "firing_probability": {"generator_name": "constant", "probability": 0.05},
                "seed": 3
            },
            "sae": {"architecture": "topk", "d_in": 16, "d_sae": 64, "k": 4},
            "training_samples": 25600,
            "batch_size": 256,
            "eval_samples": 2048,
            "n_checkpoints": 1,
            "checkpoint_path": ckpt.to_str().unwrap(),
            "output_path": dir.join("a").to_str().unwrap(),
        })
        .to_string(),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let o = synthsae(&["train", "--config", c, "--json", "-q", "--seed", "5"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["n_training_samples"], 25600);
    let b = dir.join("b");
    let o = synthsae(&[
        "train",
        "--config",
        c,
        "--json",
        "-q",
        "--seed",
        "5",
        "--resume",
        ckpt.to_str().unwrap(),
        "--output",
        b.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let wa = std::fs::read(dir.join("a/sae_weights.safetensors")).unwrap();
    let wb = std::fs::read(b.join("sae_weights.safetensors")).unwrap();
    assert!(wa == wb, "resumed run differs");

    // Bad input: one line, exit codes 1 (bad config) and 2 (bad flag).
    std::fs::write(
        &cfg,
        r#"{"synthetic_model": "x", "sae": {"architecture": "nope", "d_in": 1, "d_sae": 1}}"#,
    )
    .unwrap();
    let o = synthsae(&["train", "--config", c]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nope") && err.lines().count() == 1, "{err}");
    let o = synthsae(&[
        "synthsaebench",
        "--architecture",
        "gated",
        "--results",
        dir.join("r.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = synthsae(&["synthsaebench", "--l0", "0"]);
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The library's warnings reach the terminal (the binary installs a
/// logger), one line each; `RUST_LOG=error` silences them.
#[test]
fn library_warnings_are_printed_and_rust_log_filters_them() {
    let dir = tmp("log");
    let cfg = dir.join("runner_config.json");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "synthetic_model": {"num_features": 16, "hidden_dim": 8, "seed": 1,
                "firing_probability": {"generator_name": "constant", "probability": 0.1}},
            "sae": {"architecture": "standard", "d_in": 8, "d_sae": 16},
            "training_samples": 512, "batch_size": 256, "eval_samples": 256,
            "autocast_sae": true,
            "output_path": dir.join("out").to_str().unwrap(),
        })
        .to_string(),
    )
    .unwrap();
    let run = |rust_log: &str| {
        Command::new(env!("CARGO_BIN_EXE_synthsae"))
            .args(["train", "--config", cfg.to_str().unwrap(), "-q", "--json"])
            .env("RUST_LOG", rust_log)
            .output()
            .expect("run synthsae")
    };
    let o = run("warn");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.lines().any(|l| l
            .starts_with("warning: autocast_sae / autocast_data: this run computes in float32")),
        "{err}"
    );
    let o = run("error");
    assert!(o.status.success());
    assert!(!String::from_utf8_lossy(&o.stderr).contains("autocast"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--hidden-path device` trains on hidden activations computed on the
/// device from the uploaded sparse batches (here Flex's select/scatter-add):
/// the same run as the host path up to float summation order. `--timings`
/// adds the per-phase breakdown, one span per step where there should be.
#[test]
fn hidden_paths_agree_and_timings_count_every_step() {
    let dir = tmp("paths");
    let cfg = dir.join("runner_config.json");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "synthetic_model": {
                "num_features": 64, "hidden_dim": 16,
                "firing_probability": {"generator_name": "constant", "probability": 0.05},
                "seed": 3
            },
            "sae": {"architecture": "batchtopk", "d_in": 16, "d_sae": 64, "k": 4},
            "training_samples": 25600,
            "batch_size": 256,
            "eval_samples": 2048,
            "eval_frequency": 50,
            "checkpoint_path": null,
        })
        .to_string(),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let run = |path: &str, extra: &[&str]| -> serde_json::Value {
        let out = dir.join(path);
        let mut args = vec![
            "train",
            "--config",
            c,
            "--json",
            "-q",
            "--hidden-path",
            path,
            "--output",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = synthsae(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let host = run("host", &[]);
    let device = run("device", &["--timings"]);
    assert_eq!(host["hidden_path"], "host");
    assert_eq!(device["hidden_path"], "device");
    assert!(host["timings"].is_null());
    // 100 steps of one training stream: the same trajectory up to rounding
    // (relative 1e-3, the conformance suite's tolerance after many steps).
    for key in ["mcc", "explained_variance", "sae_l0", "true_l0"] {
        let (a, b) = (
            host["final_eval"][key].as_f64().unwrap(),
            device["final_eval"][key].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() <= 1e-3 * a.abs().max(0.01),
            "{key}: {a} vs {b}"
        );
    }
    let t = &device["timings"];
    let count = |phase: &str| t[phase]["count"].as_u64().unwrap();
    for phase in ["wait_data", "upload", "step", "read_back"] {
        assert_eq!(count(phase), 100, "{phase}: {t}");
        assert!(t[phase]["seconds"].as_f64().unwrap() >= 0.0);
    }
    // 100 training batches plus the scaling estimate's none (expected-average
    // normalisation is off): exactly 100 sampled on the prefetch thread.
    assert_eq!(count("sampling"), 100, "{t}");
    assert_eq!(count("eval"), 2, "{t}");
    assert_eq!(count("final_eval"), 1, "{t}");
    assert!(count("topk") >= 100, "{t}");

    // The table form names the phases.
    let o = synthsae(&[
        "train",
        "--config",
        c,
        "-q",
        "--timings",
        "--output",
        dir.join("table").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    for label in [
        "time breakdown",
        "waiting for data",
        "top-k on the host",
        "host sampling",
    ] {
        assert!(text.contains(label), "no `{label}` in:\n{text}");
    }

    // Bad values: a usage error for the flag, a config error naming the key.
    let o = synthsae(&["train", "--config", c, "--hidden-path", "gpu"]);
    assert_eq!(o.status.code(), Some(2));
    std::fs::write(
        &cfg,
        r#"{"synthetic_model": "tutorial", "sae": {"architecture": "standard", "d_in": 32, "d_sae": 32}, "hidden_path": "gpu"}"#,
    )
    .unwrap();
    let o = synthsae(&["train", "--config", c]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("hidden_path") && err.contains("gpu"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
