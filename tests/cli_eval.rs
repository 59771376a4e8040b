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
            "classification"
        ]
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
    assert!(String::from_utf8_lossy(&table.stdout).contains("MCC"));

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
