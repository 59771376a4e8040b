//! Several SAEs on one sampled stream end exactly as each trained alone.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use synthsae_data::{preset, SyntheticModel};
use synthsae_train::{
    build_model, run, run_group, run_group_in_order, GroupMember, RunnerConfig, Silent,
};

type Inner = Flex;
type B = Autodiff<Inner>;

fn scratch(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("synthsae-group-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn base(model: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "synthetic_model": model,
        "training_samples": 40_960,
        "batch_size": 512,
        "lr": 3e-3,
        "eval_samples": 2048,
        "eval_frequency": 30,
        "n_checkpoints": 2,
        "log_every": 10,
        "data_seed": 11,
    })
}

/// Three different SAEs (a tuned standard, a BatchTopK, a JumpReLU with
/// input scaling) on the data stream of seed 11, with their own init seeds
/// and, for one, fewer samples.
fn members(model: &serde_json::Value, out: &Path) -> Vec<RunnerConfig> {
    let mut a = base(model);
    a["sae"] = serde_json::json!({"architecture": "standard", "d_in": 32, "d_sae": 24, "l1_coefficient": 0.05});
    a["l0_tuner"] = serde_json::json!({"target_l0": 3.0, "kind": "rate_damped", "start_step": 20});
    a["seed"] = 1.into();
    let mut b = base(model);
    b["sae"] = serde_json::json!({"architecture": "batchtopk", "d_in": 32, "d_sae": 24, "k": 4});
    b["seed"] = 2.into();
    b["training_samples"] = 20_480.into();
    let mut c = base(model);
    c["sae"] = serde_json::json!({"architecture": "jumprelu", "d_in": 32, "d_sae": 24,
        "normalize_activations": "expected_average_only_in"});
    c["n_batches_for_norm_estimate"] = 5.into();
    c["seed"] = 3.into();
    [a, b, c]
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            v["output_path"] = out.join(format!("{i}/output")).display().to_string().into();
            v["checkpoint_path"] = out.join(format!("{i}/ckpt")).display().to_string().into();
            RunnerConfig::from_value(v).unwrap()
        })
        .collect()
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = [
        "sae_weights.safetensors",
        "sparsity.safetensors",
        "eval_stats.json",
        "metrics.jsonl",
    ]
    .iter()
    .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
    .collect();
    v.sort();
    v
}

/// Group members for `cfgs`, resumed from `resume` (fresh where `None`).
fn group(cfgs: &[RunnerConfig], resume: Vec<Option<PathBuf>>) -> Vec<GroupMember> {
    cfgs.iter()
        .zip(resume)
        .map(|(cfg, resume)| GroupMember {
            cfg: cfg.clone(),
            resume,
        })
        .collect()
}

/// Asserts that every member succeeded and wrote the files of its solo run
/// under `out/solo`, apart from `except`.
fn assert_solo_files<T>(
    results: &[synthsae_train::Result<T>],
    out: &Path,
    under: &str,
    except: &[&str],
) {
    for (i, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "{under} member {i}: {:?}", r.as_ref().err());
        let want = files(&out.join(format!("solo/{i}/output")));
        let got = files(&out.join(format!("{under}/{i}/output")));
        for ((name, w), (_, g)) in want.iter().zip(&got) {
            if !except.contains(&name.as_str()) {
                assert!(
                    w == g,
                    "{under} member {i}: {name} differs from its solo run"
                );
            }
        }
    }
}

fn checkpoints(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .parse::<u64>()
                .is_ok()
        })
        .collect();
    v.sort_by_key(|p| {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .parse::<u64>()
            .unwrap()
    });
    v
}

#[test]
fn group_members_equal_solo_runs_and_resume_from_different_steps() {
    let out = scratch("solo-vs-group");
    let model_json = serde_json::to_value(preset("tutorial").unwrap()).unwrap();
    let device = Default::default();
    let solo = members(&model_json, &out.join("solo"));
    let model: SyntheticModel<Inner> = build_model(&solo[0].synthetic_model, &device).unwrap();
    for cfg in &solo {
        run::<B>(cfg.clone(), &model, &device, None, &mut Silent).unwrap();
    }

    let fresh = || vec![None; 3];
    let grouped = members(&model_json, &out.join("group"));
    let results = run_group::<B>(group(&grouped, fresh()), &model, &device, &mut Silent).unwrap();
    assert_eq!(results.len(), 3);
    assert_solo_files(&results, &out, "group", &[]);

    // The members trained one after another give the same files.
    let in_order = members(&model_json, &out.join("in-order"));
    let results =
        run_group_in_order::<B>(group(&in_order, fresh()), &model, &device, &mut Silent).unwrap();
    assert_solo_files(&results, &out, "in-order", &[]);

    // Resume: member 0 from its first checkpoint, member 1 from its last,
    // member 2 from scratch; all end as the solo runs did. (A resumed run's
    // metrics.jsonl, in a new folder here, holds only the steps after its
    // checkpoint.)
    let resumed = members(&model_json, &out.join("resumed"));
    let resume = vec![
        Some(checkpoints(&out.join("group/0/ckpt"))[0].clone()),
        checkpoints(&out.join("group/1/ckpt")).last().cloned(),
        None,
    ];
    let results = run_group::<B>(group(&resumed, resume), &model, &device, &mut Silent).unwrap();
    assert_solo_files(&results, &out, "resumed", &["metrics.jsonl"]);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn members_of_other_streams_are_refused_and_a_failing_member_does_not_stop_the_group() {
    let out = scratch("refused");
    let model_json = serde_json::to_value(preset("tutorial").unwrap()).unwrap();
    let device = Default::default();
    let mut cfgs = members(&model_json, &out);
    let model: SyntheticModel<Inner> = build_model(&cfgs[0].synthetic_model, &device).unwrap();
    let mut other = cfgs[1].clone();
    other.data_seed = Some(12);
    let err = run_group::<B>(
        group(&[cfgs[0].clone(), other], vec![None, None]),
        &model,
        &device,
        &mut Silent,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("data seed 12"), "{err}");

    // Member 0 resumes from a checkpoint that does not exist: it fails, and
    // member 1 still trains.
    cfgs.truncate(2);
    let results = run_group::<B>(
        group(&cfgs, vec![Some(out.join("nowhere")), None]),
        &model,
        &device,
        &mut Silent,
    )
    .unwrap();
    assert!(results[0].is_err());
    assert!(results[1]
        .as_ref()
        .is_ok_and(|r| r.n_training_samples == 20_480));
    std::fs::remove_dir_all(&out).unwrap();
}
