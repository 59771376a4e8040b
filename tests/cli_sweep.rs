//! `synthsae sweep` end to end: a 2 architectures × 3 L0s × 2 seeds grid on
//! the tutorial model; every run equal to `synthsae train` on its config; a
//! sweep killed with SIGKILL mid-run and started again ends with the same
//! files and report; bad specs refused before anything trains.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn synthsae() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_synthsae"));
    c.arg("--quiet");
    c
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `synthsae --quiet --json <args>`, which must succeed, parsed.
fn json_of(args: &[&str], what: &str) -> Value {
    let out = ok(synthsae().arg("--json").args(args).output().unwrap(), what);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A path as a command-line word.
fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

fn scratch(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("synthsae-cli-sweep-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// The grid: BatchTopK and TopK at k 2, 4, 6, seeds 0 and 1; checkpoints
/// every tenth of a run so that a kill lands between two of them.
fn spec(samples: u64) -> Value {
    json!({
        "name": "grid",
        "base": {
            "synthetic_model": {
                "num_features": 16,
                "hidden_dim": 32,
                "firing_probability": {"generator_name": "constant", "probability": 0.25},
                "hierarchy": {"total_root_nodes": 4, "branching_factor": 2, "max_depth": 1},
                "seed": 42
            },
            "sae": {"architecture": "batchtopk", "d_in": 32, "d_sae": 16, "k": 4},
            "training_samples": samples,
            "batch_size": 512,
            "lr": 0.003,
            "eval_samples": 4096,
            "eval_frequency": 100,
            "log_every": 20
        },
        "axes": {
            "sae.architecture": ["batchtopk", "topk"],
            "sae.k": [2, 4, 6],
            "seed": [0, 1]
        },
        "checkpoints": 10
    })
}

fn write_spec(dir: &Path, spec: &Value) -> PathBuf {
    let p = dir.join("spec.json");
    std::fs::write(&p, serde_json::to_string_pretty(spec).unwrap()).unwrap();
    p
}

/// Every run's result files.
fn results(sweep: &Path) -> Vec<(String, Vec<u8>)> {
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(sweep.join("sweep.json")).unwrap()).unwrap();
    let mut out = Vec::new();
    for r in plan["runs"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        for f in [
            "sae_weights.safetensors",
            "cfg.json",
            "sparsity.safetensors",
            "eval_stats.json",
            "hierarchy_stats.json",
            "metrics.jsonl",
        ] {
            let p = sweep.join("runs").join(name).join(f);
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.push((format!("{name}/{f}"), bytes));
        }
    }
    out
}

fn assert_same(a: &[(String, Vec<u8>)], b: &[(String, Vec<u8>)], what: &str) {
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(b) {
        assert!(x == y, "{what}: {name} differs");
    }
}

#[test]
fn sweep_runs_equal_train_runs_and_survive_kill_9() {
    let dir = scratch("grid");
    let spec_path = write_spec(&dir, &spec(61_440));
    let a = dir.join("a");
    let summary = json_of(
        &["sweep", "run", p(&spec_path), "--out", p(&a), "--jobs", "2"],
        "sweep run",
    );
    assert_eq!(summary["runs"], 12);
    assert_eq!(summary["trained"], 12);
    assert!(
        std::fs::read_dir(a.join("checkpoints"))
            .unwrap()
            .next()
            .is_none(),
        "finished runs keep no checkpoints"
    );

    // Each run equals `synthsae train` on the config sweep.json holds.
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("sweep.json")).unwrap()).unwrap();
    for r in plan["runs"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        let mut cfg = r["config"].clone();
        cfg["checkpoint_path"] = Value::Null;
        let cfg_path = dir.join(format!("{name}.json"));
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let solo = dir.join("solo").join(name);
        ok(
            synthsae()
                .arg("train")
                .arg("--config")
                .arg(&cfg_path)
                .arg("--output")
                .arg(&solo)
                .output()
                .unwrap(),
            "train",
        );
        for f in [
            "sae_weights.safetensors",
            "eval_stats.json",
            "hierarchy_stats.json",
            "metrics.jsonl",
        ] {
            let x = std::fs::read(a.join("runs").join(name).join(f)).unwrap();
            let y = std::fs::read(solo.join(f)).unwrap();
            assert!(
                x == y,
                "{name}/{f}: the sweep's run differs from `synthsae train`"
            );
        }
    }
    ok(
        synthsae()
            .args(["sweep", "report"])
            .arg(&a)
            .output()
            .unwrap(),
        "report",
    );

    // The same sweep, killed with SIGKILL once group 1 has written a
    // checkpoint, then run again.
    let b = dir.join("b");
    let mut child = synthsae()
        .args(["sweep", "run"])
        .arg(&spec_path)
        .arg("--out")
        .arg(&b)
        .args(["--jobs", "1"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let seed1_checkpointed = || {
        std::fs::read_dir(b.join("checkpoints"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("seed-1"))
            .any(|e| std::fs::read_dir(e.path()).is_ok_and(|mut d| d.next().is_some()))
    };
    while !seed1_checkpointed() {
        assert!(
            Instant::now() < deadline,
            "no checkpoint of group 1 within 120 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done_before = std::fs::read_dir(b.join("status")).unwrap().count();
    assert!(done_before < 12, "killed after every run was done");
    let summary = json_of(
        &["sweep", "run", p(&spec_path), "--out", p(&b)],
        "sweep run after kill",
    );
    assert_eq!(summary["already_done"], done_before);
    assert_eq!(
        summary["trained"].as_u64().unwrap() as usize,
        12 - done_before
    );
    assert_same(&results(&a), &results(&b), "killed and restarted sweep");
    ok(
        synthsae()
            .args(["sweep", "report"])
            .arg(&b)
            .output()
            .unwrap(),
        "report",
    );
    for f in ["report.md", "report.csv", "report.json"] {
        assert_eq!(
            std::fs::read_to_string(a.join("report").join(f)).unwrap(),
            std::fs::read_to_string(b.join("report").join(f)).unwrap(),
            "{f}"
        );
    }
    let md = std::fs::read_to_string(a.join("report/report.md")).unwrap();
    assert!(md.contains("12 of 12 runs done"), "{md}");
    // The hierarchy metrics are columns too (the model has 4 parents).
    assert!(md.contains("| absorption | split features |"), "{md}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("report/report.json")).unwrap())
            .unwrap();
    for row in report["rows"].as_array().unwrap() {
        let a = row["metrics"]["absorption"]["mean"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&a), "{row}");
    }
    assert!(a.join("report/metrics.png").is_file() && a.join("report/metrics.svg").is_file());

    // A third run has nothing to do; another spec is refused for this folder.
    let out = ok(
        synthsae()
            .args(["--json", "sweep", "run"])
            .arg(&spec_path)
            .arg("--out")
            .arg(&b)
            .output()
            .unwrap(),
        "third run",
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["trained"],
        0
    );
    let other = write_spec(&dir.join("other"), &{
        std::fs::create_dir_all(dir.join("other")).unwrap();
        spec(30_720)
    });
    let out = synthsae()
        .args(["sweep", "run"])
        .arg(&other)
        .arg("--out")
        .arg(&b)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another spec"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_partial_sweep_reports_what_is_done_and_lists_the_rest() {
    let dir = scratch("partial");
    let mut s = spec(10_240);
    s["axes"]["seed"] = json!([0]);
    let spec_path = write_spec(&dir, &s);
    let out_dir = dir.join("sweep");
    // Plan the folder by running one group as a task; the other stays open.
    ok(
        synthsae()
            .args(["sweep", "plan"])
            .arg(&spec_path)
            .output()
            .unwrap(),
        "plan",
    );
    ok(
        synthsae()
            .args(["sweep", "submit"])
            .arg(&spec_path)
            .arg("--out")
            .arg(&out_dir)
            .args(["--slurm", "--dry-run", "--max-parallel", "2"])
            .output()
            .unwrap(),
        "submit --dry-run",
    );
    let script = std::fs::read_to_string(out_dir.join("slurm/sweep.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0%2"), "{script}");
    assert!(script.contains("sweep run-task"), "{script}");
    // Mark one run failed by hand: the report lists it, and the rest.
    std::fs::write(
        out_dir.join("status/architecture-topk_k-2_seed-0.json"),
        r#"{"state": "failed", "error": "non-finite mse_loss at step 3"}"#,
    )
    .unwrap();
    let report = json_of(&["sweep", "report", p(&out_dir)], "report");
    assert_eq!(report["runs_done"], 0);
    assert_eq!(report["missing"].as_array().unwrap().len(), 6);
    assert!(report["missing"]
        .to_string()
        .contains("non-finite mse_loss"));
    ok(
        synthsae()
            .args(["sweep", "run-task"])
            .arg(&out_dir)
            .args(["--task", "0"])
            .output()
            .unwrap(),
        "run-task",
    );
    let report = json_of(&["sweep", "report", p(&out_dir)], "report");
    assert_eq!(report["runs_done"], 6);
    assert_eq!(report["rows"].as_array().unwrap().len(), 6);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A change to the spec, and the text the error must contain.
type Case = (Box<dyn Fn(&mut Value)>, &'static str);

#[test]
fn bad_specs_are_refused_before_anything_trains() {
    let dir = scratch("bad");
    let cases: Vec<Case> = vec![
        (Box::new(|s| s["axes"]["sae.kk"] = json!([1])), "sae.kk"),
        (Box::new(|s| s["axes"]["lrr"] = json!([1])), "lrr"),
        (Box::new(|s| s["axes"]["sae.k"] = json!([])), "axes.sae.k"),
        (
            Box::new(|s| s["axes"]["sae"] = json!([{}])),
            "sets the same key",
        ),
        (Box::new(|s| s["axes"]["lr"] = json!([-1.0])), "lr"),
        (
            Box::new(|s| s["axes"]["sae.k"] = json!([2, 40])),
            "run `architecture-topk_k-40_seed-0`: invalid `k`",
        ),
        (
            Box::new(|s| s["axes"]["synthetic_model.hidden_dimm"] = json!([8])),
            "hidden_dimm",
        ),
        (Box::new(|s| s["bogus"] = json!(1)), "bogus"),
        (
            Box::new(|s| s["axes"]["recipe.l0"] = json!([1])),
            "recipe.l0",
        ),
        (
            Box::new(|s| s["runs"] = json!([{"name": "x", "set": {}}, {"name": "x", "set": {}}])),
            "both named `x`",
        ),
    ];
    for (i, (mutate, want)) in cases.iter().enumerate() {
        let mut s = spec(10_240);
        mutate(&mut s);
        let case = dir.join(format!("case{i}"));
        std::fs::create_dir_all(&case).unwrap();
        let p = write_spec(&case, &s);
        let out = synthsae()
            .args(["sweep", "run"])
            .arg(&p)
            .arg("--out")
            .arg(case.join("sweep"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} ({want}) was accepted");
        assert!(
            err.contains(want),
            "case {i}: `{err}` does not name `{want}`"
        );
        assert_eq!(err.lines().count(), 1, "case {i}: one line: {err}");
        assert!(!case.join("sweep").exists(), "case {i}: a folder was made");
    }
    // A non-empty folder that is not a sweep folder is refused.
    let p = write_spec(&dir, &spec(10_240));
    let busy = dir.join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    let out = synthsae()
        .args(["sweep", "run"])
        .arg(&p)
        .arg("--out")
        .arg(&busy)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a sweep folder"));
    std::fs::remove_dir_all(&dir).unwrap();
}
