//! The configs `synthsae synthsaebench` builds equal the published
//! SynthSAEBench settings (the experiment code's `sweeps/common.py`),
//! field by field, from the tables below.

use std::process::Command;

use serde_json::{json, Value};

/// `synthsae synthsaebench <args> --print-config`, parsed.
fn printed_config(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_synthsae"))
        .arg("synthsaebench")
        .args(args)
        .arg("--print-config")
        .output()
        .expect("run synthsae");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// `(JSON pointer into the printed config, published value)`.
type Table<'a> = &'a [(&'static str, Value)];

fn check(config: &Value, table: &[(&str, Value)], what: &str) {
    for (pointer, want) in table {
        let got = config
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{what}: {pointer} missing"));
        assert_eq!(got, want, "{what}: {pointer}");
    }
}

/// Settings every published run shares.
fn common() -> Vec<(&'static str, Value)> {
    vec![
        ("/runner_config/training_samples", json!(200_000_000)),
        ("/runner_config/batch_size", json!(1024)),
        ("/runner_config/lr", json!(3e-4)),
        ("/runner_config/lr_warm_up_steps", json!(0)),
        ("/runner_config/lr_decay_steps", json!(0)),
        ("/runner_config/lr_scheduler_name", json!("constant")),
        ("/runner_config/adam_beta1", json!(0.9)),
        ("/runner_config/adam_beta2", json!(0.999)),
        ("/runner_config/autocast_sae", json!(true)),
        ("/runner_config/autocast_data", json!(true)),
        ("/runner_config/eval_frequency", json!(10_000)),
        ("/runner_config/eval_samples", json!(1_000_000)),
        ("/runner_config/run_final_eval", json!(true)),
        ("/runner_config/sae/d_in", json!(768)),
        ("/runner_config/sae/d_sae", json!(4096)),
        ("/runner_config/synthetic_model/num_features", json!(16384)),
        ("/synthsae/max_grad_norm", json!(1.0)),
        ("/synthsae/log_every", json!(100)),
    ]
}

/// The published auto-tuner's gains, at target 25 from `start_step`.
fn published_tuner(start_step: u64) -> Vec<(&'static str, Value)> {
    vec![
        ("/synthsae/l0_tuner/kind", json!("rate_damped")),
        ("/synthsae/l0_tuner/target_l0", json!(25.0)),
        ("/synthsae/l0_tuner/start_step", json!(start_step)),
        ("/synthsae/l0_tuner/ema_smoothing", json!(0.99)),
        ("/synthsae/l0_tuner/rate_smoothing", json!(0.95)),
        ("/synthsae/l0_tuner/deadband", json!(0.0)),
        ("/synthsae/l0_tuner/integral_gain", json!(3e-4)),
        ("/synthsae/l0_tuner/convergence_gain", json!(0.01)),
        ("/synthsae/l0_tuner/gain_scale", json!(10.0)),
        ("/synthsae/l0_tuner/min_multiplier", json!(0.01)),
        ("/synthsae/l0_tuner/max_multiplier", json!(100.0)),
    ]
}

fn recipe(architecture: &str, specific: Table<'_>, tuner_start: Option<u64>) {
    let cfg = printed_config(&["--architecture", architecture, "--l0", "25"]);
    check(&cfg, &common(), architecture);
    check(&cfg, specific, architecture);
    check(
        &cfg,
        &[("/runner_config/sae/architecture", json!(architecture))],
        architecture,
    );
    match tuner_start {
        Some(start) => check(&cfg, &published_tuner(start), architecture),
        None => assert!(
            cfg.pointer("/synthsae/l0_tuner").unwrap().is_null(),
            "{architecture}: no tuner"
        ),
    }
}

#[test]
fn batchtopk_is_the_published_recipe() {
    recipe(
        "batchtopk",
        &[
            ("/runner_config/sae/k", json!(25)),
            ("/runner_config/sae/topk_threshold_lr", json!(0.01)),
            ("/runner_config/sae/aux_loss_coefficient", json!(1.0)),
            (
                "/runner_config/sae/rescale_acts_by_decoder_norm",
                json!(true),
            ),
            ("/runner_config/sae/decoder_init_norm", json!(0.1)),
            ("/runner_config/sae/normalize_activations", json!("none")),
        ],
        None,
    );
}

#[test]
fn matryoshka_is_the_published_recipe() {
    recipe(
        "matryoshka_batchtopk",
        &[
            ("/runner_config/sae/k", json!(25)),
            (
                "/runner_config/sae/matryoshka_widths",
                json!([128, 512, 2048, 4096]),
            ),
            ("/runner_config/sae/use_matryoshka_aux_loss", json!(true)),
            ("/runner_config/sae/normalize_activations", json!("none")),
        ],
        None,
    );
}

#[test]
fn matching_pursuit_is_the_published_recipe() {
    recipe(
        "matching_pursuit",
        &[
            ("/runner_config/sae/residual_threshold", json!(0.0)),
            ("/runner_config/sae/max_iterations", json!(25)),
            ("/runner_config/sae/decoder_init_norm", json!(1.0)),
            ("/runner_config/sae/stop_on_duplicate_support", json!(false)),
        ],
        None,
    );
}

/// 200M samples / 1024 = 195,312 steps; a third is 65,104.
#[test]
fn standard_is_the_published_recipe() {
    recipe(
        "standard",
        &[
            ("/runner_config/sae/l1_coefficient", json!(2.0)),
            ("/runner_config/sae/l1_warm_up_steps", json!(65_104)),
            ("/runner_config/sae/normalize_activations", json!("none")),
            ("/synthsae/l0_tuner/coefficient", Value::Null),
        ],
        Some(65_104),
    );
}

#[test]
fn jumprelu_is_the_published_recipe() {
    recipe(
        "jumprelu",
        &[
            (
                "/runner_config/sae/normalize_activations",
                json!("expected_average_only_in"),
            ),
            (
                "/runner_config/sae/jumprelu_sparsity_loss_mode",
                json!("step"),
            ),
            ("/runner_config/sae/jumprelu_bandwidth", json!(1.0)),
            ("/runner_config/sae/jumprelu_init_threshold", json!(1.0)),
            ("/runner_config/sae/pre_act_loss_coefficient", Value::Null),
            ("/runner_config/sae/decoder_init_norm", json!(0.5)),
            ("/runner_config/sae/l0_coefficient", json!(1.0)),
            ("/runner_config/sae/l0_warm_up_steps", json!(0)),
        ],
        Some(0),
    );
}

/// The flags change what they name and nothing else.
#[test]
fn flags_override_the_published_defaults() {
    let cfg = printed_config(&[
        "--architecture",
        "standard",
        "--l0",
        "20",
        "--training-samples",
        "3072000",
        "--eval-samples",
        "5000",
        "--eval-frequency",
        "0",
        "--width",
        "1024",
    ]);
    check(
        &cfg,
        &[
            ("/runner_config/training_samples", json!(3_072_000)),
            ("/runner_config/eval_samples", json!(5000)),
            ("/runner_config/eval_frequency", json!(0)),
            ("/runner_config/sae/d_sae", json!(1024)),
            // 3000 steps: warm-up and tuner start at step 1000.
            ("/runner_config/sae/l1_warm_up_steps", json!(1000)),
            ("/synthsae/l0_tuner/start_step", json!(1000)),
            ("/synthsae/l0_tuner/target_l0", json!(20.0)),
            ("/runner_config/sae/l1_coefficient", json!(2.0)),
        ],
        "standard overrides",
    );
    let cfg = printed_config(&["--architecture", "matryoshka_batchtopk", "--width", "1024"]);
    check(
        &cfg,
        &[(
            "/runner_config/sae/matryoshka_widths",
            json!([128, 512, 1024]),
        )],
        "matryoshka at width 1024",
    );
}
