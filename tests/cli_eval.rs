//! `synthsae eval` and `synthsae plot`: end to end through the binary.

use std::path::Path;
use std::process::Command;

fn synthsae(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_synthsae"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("synthsae-cli-eval-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A trained tutorial SAE (quickstart output) and the tutorial model it came from.
fn fixture(dir: &Path) -> (String, String) {
    let run = dir.join("run");
    let model = dir.join("model");
    let out = synthsae(&[
        "-q",
        "quickstart",
        "--out",
        run.to_str().unwrap(),
        "--training-samples",
        "50000",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = synthsae(&[
        "-q",
        "model",
        "new",
        "--preset",
        "tutorial",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        run.to_str().unwrap().to_string(),
        model.to_str().unwrap().to_string(),
    )
}

#[test]
fn eval_json_plots_and_usage_errors() {
    let dir = tmp("all");
    let (run, model) = fixture(&dir);
    let out = synthsae(&[
        "-q",
        "eval",
        "--sae",
        &run,
        "--model",
        &model,
        "--samples",
        "5000",
        "--batch-size",
        "1000",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "true_l0",
            "sae_l0",
            "dead_latents",
            "shrinkage",
            "explained_variance",
            "mcc",
            "uniqueness",
            "classification",
            "hierarchy"
        ]
    );
    // The tutorial has no hierarchy: no absorption, splitting still measured.
    assert!(v["hierarchy"]["absorption"].is_null(), "{v}");
    assert!(
        v["hierarchy"]["splitting"]["split_features"].is_u64(),
        "{v}"
    );
    // The trainer's final eval used the same decoder and features: same MCC.
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&run).join("eval_stats.json")).unwrap(),
    )
    .unwrap();
    assert!((v["mcc"].as_f64().unwrap() - saved["mcc"].as_f64().unwrap()).abs() < 1e-9);
    assert!((v["true_l0"].as_f64().unwrap() - 4.0).abs() < 0.2, "{v}");

    let table = synthsae(&[
        "-q",
        "eval",
        "--sae",
        &run,
        "--model",
        &model,
        "--samples",
        "2000",
    ]);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("MCC"));
    assert!(text.contains("the model has no hierarchy"), "{text}");

    for (kind, file, extra) in [
        (
            "similarity",
            "sim.png",
            vec!["--sae", run.as_str(), "--model", model.as_str()],
        ),
        (
            "firing",
            "firing.svg",
            vec![
                "--sae",
                run.as_str(),
                "--model",
                model.as_str(),
                "--samples",
                "3000",
            ],
        ),
        (
            "curves",
            "curves.png",
            vec![
                "--log",
                run.as_str(),
                "--keys",
                "metrics/l0,losses/mse_loss",
            ],
        ),
    ] {
        let out_file = dir.join(file);
        let mut args = vec!["-q", "plot", kind, "--out", out_file.to_str().unwrap()];
        args.extend(extra);
        let out = synthsae(&args);
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&out_file).unwrap();
        if file.ends_with(".png") {
            assert_eq!(&bytes[1..4], b"PNG");
        } else {
            assert!(String::from_utf8_lossy(&bytes).contains("<svg"));
        }
    }

    let bad_ext = synthsae(&["plot", "curves", "--log", &run, "--out", "x.jpg"]);
    assert_eq!(bad_ext.status.code(), Some(2));
    let no_model = synthsae(&["eval", "--sae", &run]);
    assert_eq!(no_model.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_model.stderr).contains("--model"));
    let bad_key = synthsae(&[
        "plot",
        "curves",
        "--log",
        &run,
        "--keys",
        "nope",
        "--out",
        dir.join("c.png").to_str().unwrap(),
    ]);
    assert_eq!(bad_key.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TopK SAE trained on a small model with an 8-tree hierarchy.
fn hierarchical_run(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let model_cfg = dir.join("small.json");
    std::fs::write(
        &model_cfg,
        serde_json::json!({
            "num_features": 64,
            "hidden_dim": 16,
            "firing_probability": {"exponent": 1.0, "max_prob": 0.3, "min_prob": 0.01,
                "generator_name": "zipfian"},
            "hierarchy": {"total_root_nodes": 8, "branching_factor": 3, "max_depth": 1},
            "seed": 1
        })
        .to_string(),
    )
    .unwrap();
    let model = dir.join("small");
    let out = synthsae(&[
        "-q",
        "model",
        "new",
        "--config",
        model_cfg.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = dir.join("run");
    let cfg = dir.join("runner.json");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "synthetic_model": model.to_str().unwrap(),
            "sae": {"architecture": "topk", "d_in": 16, "d_sae": 64, "k": 3},
            "training_samples": 100_000,
            "batch_size": 1024,
            "lr": 3e-3,
            "eval_frequency": 50,
            "eval_samples": 4096,
            "output_path": run.to_str().unwrap(),
            "save_synthetic_model": true
        })
        .to_string(),
    )
    .unwrap();
    let out = synthsae(&["-q", "train", "--config", cfg.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run.to_str().unwrap().to_string()
}

#[test]
fn hierarchy_section_absorption_plot_and_its_errors() {
    let dir = tmp("hier");
    let run = hierarchical_run(&dir);
    // The run wrote its hierarchy section and logged it periodically.
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&run).join("hierarchy_stats.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved["absorption"]["parents"], 8, "{saved}");
    assert_eq!(
        saved["absorption"]["per_parent"].as_array().unwrap().len(),
        8
    );
    let log = std::fs::read_to_string(Path::new(&run).join("metrics.jsonl")).unwrap();
    assert!(log.contains("\"synthetic/hierarchy/absorption\""), "{log}");

    let out = synthsae(&["-q", "eval", "--sae", &run, "--samples", "8000", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = &v["hierarchy"]["absorption"];
    assert_eq!(a["parents"], 8, "{v}");
    for key in ["absorption", "full_absorption", "recall_with_children"] {
        let x = a[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{key}: {x}");
    }
    assert_eq!(v["hierarchy"]["options"]["absorption_cosine"], 0.1);
    let table = synthsae(&["-q", "eval", "--sae", &run, "--samples", "2000"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("full absorption") && text.contains("split features"),
        "{text}"
    );

    for (file, args) in [
        ("abs.png", vec!["--sae", run.as_str(), "--samples", "4000"]),
        ("abs.svg", vec!["--stats", run.as_str()]),
    ] {
        let out_file = dir.join(file);
        let mut all = vec![
            "-q",
            "plot",
            "absorption",
            "--out",
            out_file.to_str().unwrap(),
        ];
        all.extend(args);
        let out = synthsae(&all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(std::fs::metadata(&out_file).unwrap().len() > 1000);
    }

    let png = dir.join("x.png");
    let png = png.to_str().unwrap();
    let bad = synthsae(&["eval", "--sae", &run, "--partial-fraction", "1.5"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--partial-fraction"));
    let neither = synthsae(&["plot", "absorption", "--out", png]);
    assert_eq!(neither.status.code(), Some(2));
    let both = synthsae(&[
        "plot",
        "absorption",
        "--sae",
        &run,
        "--stats",
        &run,
        "--out",
        png,
    ]);
    assert_eq!(both.status.code(), Some(2));
    let missing = synthsae(&[
        "plot",
        "absorption",
        "--stats",
        dir.to_str().unwrap(),
        "--out",
        png,
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("hierarchy_stats.json"));
    assert!(!Path::new(png).exists());
    let _ = std::fs::remove_dir_all(&dir);
}
