//! End-to-end tests of the `synthsae` binary.

use std::process::Command;

fn synthsae(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_synthsae"))
        .args(args)
        .output()
        .expect("run synthsae")
}

#[test]
fn sample_json_reports_consistent_statistics() {
    let out = synthsae(&[
        "sample",
        "--num-features",
        "300",
        "--hidden-dim",
        "16",
        "--samples",
        "20000",
        "--correlation-rank",
        "4",
        "--orthogonalize-steps",
        "20",
        "--bias",
        "1.0",
        "--json",
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["backend"], "flex");
    assert_eq!(r["orthogonalization"]["num_steps"], 20);
    let (expected, mean) = (
        r["expected_l0"].as_f64().unwrap(),
        r["mean_l0"].as_f64().unwrap(),
    );
    // 20 000 samples: the mean L0 is within a few percent of Σp.
    assert!(
        (mean - expected).abs() < 0.05 * expected,
        "{mean} vs {expected}"
    );
    assert!(r["correlation"]["rms_correlation"].as_f64().unwrap() > 0.0);
    assert!(r["samples_per_second"].as_f64().unwrap() > 0.0);
    let max_cos = r["superposition"]["mean_max_abs_cos_sim"].as_f64().unwrap();
    assert!(max_cos > 0.0 && max_cos < 1.0);
}

#[test]
fn backends_agree_on_the_sampled_data() {
    let args = [
        "sample",
        "--num-features",
        "200",
        "--hidden-dim",
        "8",
        "--samples",
        "3000",
        "--json",
        "-q",
    ];
    let run = |backend: &str| {
        let mut a = vec!["--backend", backend];
        a.extend_from_slice(&args);
        let out = synthsae(&a);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (f, n) = (run("flex"), run("ndarray"));
    // Sampling is seeded host code: identical L0 on both backends.
    assert_eq!(f["mean_l0"], n["mean_l0"]);
    let (hf, hn) = (
        f["mean_hidden_norm"].as_f64().unwrap(),
        n["mean_hidden_norm"].as_f64().unwrap(),
    );
    assert!((hf - hn).abs() < 1e-4 * hf, "{hf} vs {hn}");
}

#[test]
fn bad_input_is_one_readable_line_and_an_exit_code() {
    let out = synthsae(&["sample", "--max-prob", "1.5", "--samples", "10"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: invalid `min_prob/max_prob`"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    let out = synthsae(&["sample", "--samples", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--samples"));

    let out = synthsae(&["--backend", "tpu"]);
    assert_eq!(out.status.code(), Some(2));

    let out = synthsae(&["sample", "--num-features", "0", "--samples", "10"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("num_features"));
}
