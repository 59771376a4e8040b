//! Trainer behaviour with a minimal SAE: exact resume (including a crash in
//! the middle of writing a checkpoint), non-finite detection, scaling-factor
//! folding, statistics.

mod common;

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, NdArray};
use common::{sampler, ToySae};
use serde_json::{Map, Value};
use synthsae_train::{NoHooks, Result, TrainError, Trainer, TrainerConfig, TrainerHooks};

type B = Autodiff<NdArray>;

fn scratch(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("synthsae-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn config(checkpoints: &Path) -> TrainerConfig {
    let mut c = TrainerConfig::new(64 * 40, 64);
    c.lr = 1e-2;
    c.seed = 11;
    c.n_checkpoints = 3;
    c.checkpoint_path = Some(checkpoints.to_path_buf());
    c.dead_feature_window = 5;
    c.feature_sampling_window = 15;
    c
}

fn weights(sae: &ToySae<B>) -> Vec<Vec<f32>> {
    [sae.w_enc.val(), sae.w_dec.val()]
        .into_iter()
        .map(|t| t.into_data().into_vec::<f32>().unwrap())
        .chain(
            [sae.b_enc.val(), sae.b_dec.val()]
                .into_iter()
                .map(|t| t.into_data().into_vec::<f32>().unwrap()),
        )
        .collect()
}

fn fresh(cfg: TrainerConfig) -> Trainer<B, ToySae<B>> {
    let device = Default::default();
    let sae = ToySae::<B>::new(16, 32, 0.05, &device);
    Trainer::new(cfg.clone(), sae, sampler(cfg.seed, 64), device).unwrap()
}

/// Fails while writing the second checkpoint, as a process killed between
/// two checkpoint writes would.
struct CrashOnSecondCheckpoint {
    seen: usize,
}

impl TrainerHooks<B, ToySae<B>> for CrashOnSecondCheckpoint {
    fn on_checkpoint(&mut self, dir: &Path) -> Result<()> {
        self.seen += 1;
        if self.seen == 2 {
            // Some files are already in the temporary directory.
            assert!(dir.join("trainer_state.json").is_file());
            return Err(TrainError::checkpoint(dir, "simulated crash"));
        }
        Ok(())
    }
}

#[test]
fn resumed_run_ends_bit_identical_to_uninterrupted_run() {
    let root = scratch("resume");
    let full = fresh(config(&root.join("full"))).fit(&mut NoHooks).unwrap();
    assert_eq!(full.n_training_steps, 40);
    // 2560 samples, 3 checkpoints: thresholds 640, 1280, 1920 → after 704, 1344, 1984.
    let names: Vec<_> = full
        .checkpoints
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["704", "1344", "1984"]);

    // Resume from the first checkpoint.
    let cfg = config(&root.join("resumed"));
    let device = Default::default();
    let resumed = Trainer::<B, ToySae<B>>::resume(
        cfg.clone(),
        &root.join("full").join("704"),
        sampler(cfg.seed, 64),
        device,
    )
    .unwrap();
    assert_eq!(resumed.steps_done(), 11);
    let resumed = resumed.fit(&mut NoHooks).unwrap();
    assert_eq!(weights(&full.sae), weights(&resumed.sae));
    assert_eq!(full.log_feature_sparsity, resumed.log_feature_sparsity);
    assert_eq!(full.num_dead_features, resumed.num_dead_features);

    // A run that dies while writing its second checkpoint...
    let crash_root = root.join("crash");
    let err = fresh(config(&crash_root))
        .fit(&mut CrashOnSecondCheckpoint { seen: 0 })
        .unwrap_err();
    assert!(err.to_string().contains("simulated crash"), "{err}");
    assert!(crash_root.join("704").is_dir());
    assert!(
        !crash_root.join("1344").exists(),
        "a half-written checkpoint is visible"
    );
    // ...resumes from the last complete one and ends identical.
    let cfg = config(&crash_root);
    let again =
        Trainer::<B, ToySae<B>>::resume(cfg.clone(), &crash_root, sampler(cfg.seed, 64), device)
            .unwrap();
    assert_eq!(again.steps_done(), 11);
    let again = again.fit(&mut NoHooks).unwrap();
    assert_eq!(weights(&full.sae), weights(&again.sae));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn resume_rejects_a_different_run() {
    let root = scratch("mismatch");
    fresh(config(&root)).fit(&mut NoHooks).unwrap();
    let mut cfg = config(&root);
    cfg.seed = 12;
    let err = Trainer::<B, ToySae<B>>::resume(cfg, &root, sampler(12, 64), Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("seed 11"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn non_finite_loss_names_step_and_term_and_saves_last_good_state() {
    let root = scratch("nan");
    let device = Default::default();
    let mut sae = ToySae::<B>::new(16, 32, 0.05, &device);
    sae.l1 = f64::INFINITY; // warm-up: coefficient 0·∞ = NaN at step 0
    let cfg = config(&root);
    let err = Trainer::new(cfg.clone(), sae, sampler(cfg.seed, 64), device)
        .unwrap()
        .fit(&mut NoHooks)
        .unwrap_err();
    match &err {
        TrainError::NonFinite {
            step,
            what,
            checkpoint,
        } => {
            assert_eq!(*step, 0);
            assert_eq!(what, "l1_loss");
            let dir = checkpoint.as_ref().expect("a checkpoint");
            assert!(dir.join("trainer_state.json").is_file());
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains("step 0"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[derive(Default)]
struct Records(Vec<Map<String, Value>>);

impl TrainerHooks<B, ToySae<B>> for Records {
    fn on_record(&mut self, record: &Map<String, Value>) -> Result<()> {
        self.0.push(record.clone());
        Ok(())
    }
    fn evaluate(&mut self, _sae: &ToySae<B>, step: u64) -> Result<Option<Map<String, Value>>> {
        let mut m = Map::new();
        m.insert("synthetic/probe".into(), step.into());
        Ok(Some(m))
    }
}

#[test]
fn records_eval_schedule_and_scaling_fold() {
    let root = scratch("records");
    let mut cfg = config(&root);
    cfg.checkpoint_path = None;
    cfg.log_every = 10;
    cfg.eval_every = 15;
    cfg.n_batches_for_norm_estimate = 4;
    let device = Default::default();
    let mut sae = ToySae::<B>::new(16, 32, 0.05, &device);
    sae.normalize = "expected_average_only_in".into();
    let trainer = Trainer::new(cfg.clone(), sae, sampler(cfg.seed, 64), device).unwrap();
    let mut rec = Records::default();
    let out = trainer.fit(&mut rec).unwrap();
    let steps: Vec<u64> = rec.0.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    // Log steps 9, 19, 29, 39 and eval steps 14, 29.
    assert_eq!(steps, [9, 14, 19, 29, 39]);
    assert!(rec.0[1].contains_key("synthetic/probe"));
    assert!(!rec.0[1].contains_key("losses/mse_loss"));
    assert!(rec.0[3].contains_key("synthetic/probe") && rec.0[3].contains_key("metrics/l0"));
    let r = &rec.0[0];
    for key in [
        "losses/overall_loss",
        "losses/mse_loss",
        "losses/l1_loss",
        "metrics/explained_variance",
        "metrics/l0",
        "sparsity/dead_features",
        "details/current_learning_rate",
        "details/l1_coefficient",
    ] {
        assert!(r.contains_key(key), "missing {key}");
    }
    // Coefficient warm-up over 5 steps: full value at step 9.
    assert_eq!(r["details/l1_coefficient"].as_f64().unwrap(), 0.05);
    let ev = r["metrics/explained_variance"].as_f64().unwrap();
    assert!(ev > -1.0 && ev <= 1.0, "{ev}");
    let s = out.scaling_factor.expect("scaling factor estimated");
    assert!(s > 0.0 && s.is_finite());
    assert_eq!(out.sae.normalize, "none");
    let l0 = out.l0.unwrap();
    assert!(l0 > 0.0 && l0 <= 32.0, "{l0}");
    assert_eq!(out.log_feature_sparsity.len(), 32);
}
