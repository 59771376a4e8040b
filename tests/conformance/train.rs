//! A short training run through the runner (`synthsae::train::run`: model
//! built on the backend, trainer with Adam, firing statistics, the scaling
//! factor estimate and fold, periodic and final evaluations, the output
//! folder) on the backend under test and on the reference backend. The run
//! under test computes its hidden activations by the given path (the host
//! gather-sum uploaded, or the device gather-sum from the uploaded sparse
//! batch); the reference always takes the host path.

use burn::backend::Autodiff;
use burn::module::Module;
use burn::prelude::*;
use serde_json::json;
use synthsae::data::HiddenPath;
use synthsae::host::Precision;
use synthsae::sae::{AnySae, Sae};
use synthsae::train::{
    build_model, run, sampler_for, Autocast, Progress, RunObserver, RunnerConfig, RunnerResult,
    Trainer,
};

use super::{compare, compare_scalar, Report, Target, TempDir};

/// Training steps of a run.
const STEPS: u64 = 80;
/// Rows per step.
const BATCH: usize = 256;

/// Records the loss of every step.
#[derive(Default)]
struct Losses(Vec<f64>);

impl RunObserver for Losses {
    fn on_progress(&mut self, p: &Progress) {
        self.0.push(p.loss);
    }
}

fn config(architecture: &str, output: &std::path::Path, path: HiddenPath) -> RunnerConfig {
    let sae = match architecture {
        "standard" => json!({"architecture": "standard", "d_in": 32, "d_sae": 32,
                             "l1_coefficient": 0.05,
                             "normalize_activations": "expected_average_only_in"}),
        "batchtopk" => json!({"architecture": "batchtopk", "d_in": 32, "d_sae": 64, "k": 4.0}),
        other => panic!("no training case {other}"),
    };
    RunnerConfig::from_value(json!({
        "synthetic_model": {
            "num_features": 32, "hidden_dim": 32,
            "firing_probability": {"probability": 0.12, "generator_name": "constant"},
            "std_firing_magnitudes": 0.1, "mean_firing_magnitudes": 1.0,
            "bias": 1.0, "seed": 42
        },
        "sae": sae,
        "training_samples": STEPS * BATCH as u64,
        "batch_size": BATCH,
        "lr": 3e-3,
        "eval_frequency": 40,
        "eval_samples": 2048,
        "log_every": 10,
        "n_batches_for_norm_estimate": 4,
        "dead_feature_window": 20,
        "feature_sampling_window": 20,
        "seed": 5,
        "output_path": output.to_str().expect("UTF-8 temp path"),
        "checkpoint_path": null,
        "hidden_path": path.name(),
    }))
    .expect("valid runner config")
}

fn train<X: Backend>(
    architecture: &str,
    output: &std::path::Path,
    device: &X::Device,
    path: HiddenPath,
) -> (RunnerResult<Autodiff<X>>, Vec<f64>) {
    let cfg = config(architecture, output, path);
    let model = build_model::<X>(&cfg.synthetic_model, device).expect("model builds");
    let mut losses = Losses::default();
    let result = run::<Autodiff<X>>(cfg, &model, device, None, &mut losses).expect("training run");
    (result, losses.0)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Trains `architecture` for [`STEPS`] steps on the backend under test and on
/// the reference: every step's loss is finite, the loss decreases, the
/// trajectory and the final evaluation match the reference's, and the output
/// folder holds what was trained. The run under test takes hidden path
/// `path`; the reference the host path.
pub fn short_run<B: Backend, R: Backend>(t: &Target<B>, architecture: &str, path: HiddenPath) {
    let mut report = Report::default();
    let dir = TempDir::new(&format!("train-{}-{architecture}-{path}", t.name));
    let (result, losses) = train::<B>(architecture, &dir.path().join("run"), &t.device, path);
    let (reference, ref_losses) = train::<R>(
        architecture,
        &dir.path().join("reference"),
        &Default::default(),
        HiddenPath::Host,
    );
    let what = |p: &str| format!("{} training {architecture} ({path} path): {p}", t.name);

    assert_eq!(losses.len() as u64, STEPS, "{}", what("steps"));
    assert_eq!(result.n_training_samples, STEPS * BATCH as u64);
    for (i, l) in losses.iter().enumerate() {
        assert!(l.is_finite(), "{}", what(&format!("loss {l} at step {i}")));
    }
    let (first, last) = (mean(&losses[..10]), mean(&losses[losses.len() - 10..]));
    assert!(
        last < 0.8 * first,
        "{}",
        what(&format!(
            "loss did not decrease: first 10 steps {first:.4}, last 10 {last:.4}"
        ))
    );
    eprintln!(
        "conformance[{}] train_{architecture} ({path} path): loss {first:.4} (first 10 steps) -> {last:.4} (last 10)",
        t.name
    );

    // Same data, same initialisation: the same trajectory up to rounding.
    let got: Vec<f32> = losses.iter().map(|&l| l as f32).collect();
    let want: Vec<f32> = ref_losses.iter().map(|&l| l as f32).collect();
    report.add(
        "loss trajectory",
        compare(&what("loss trajectory"), &got, &want, t.tol.drift) as f64,
    );
    let (e, r) = (
        result.final_eval.expect("final evaluation ran"),
        reference
            .final_eval
            .expect("reference final evaluation ran"),
    );
    for ((k, a), (_, b)) in e.to_log_dict("").into_iter().zip(r.to_log_dict("")) {
        report.add(
            "final eval",
            compare_scalar(&what(&format!("final eval {k}")), a, b, t.tol.drift as f64),
        );
    }
    match (result.l0, reference.l0) {
        (Some(a), Some(b)) => {
            report.add("l0", compare_scalar(&what("l0"), a, b, t.tol.drift as f64))
        }
        (a, b) => assert_eq!(a.is_some(), b.is_some(), "{}", what("l0 presence")),
    }
    if architecture == "batchtopk" {
        let th = result.sae.topk_threshold().expect("BatchTopK threshold");
        assert!(
            th.is_finite() && th > 0.0,
            "{}",
            what(&format!("threshold {th}"))
        );
        report.add(
            "threshold",
            compare_scalar(
                &what("topk_threshold"),
                th,
                reference.sae.topk_threshold().expect("reference threshold"),
                t.tol.drift as f64,
            ),
        );
    }

    // The output folder: what was saved is what the device holds.
    let out = result.output_path.as_ref().expect("output folder");
    for f in [
        "cfg.json",
        "sae_weights.safetensors",
        "eval_stats.json",
        "metrics.jsonl",
        "runner_config.json",
        "sparsity.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{}", what(&format!("{f} missing")));
    }
    let saved = AnySae::<R>::load(out, &Default::default()).expect("load the trained SAE");
    let trained = result.sae.to_inference_sae();
    assert_eq!(saved.architecture(), trained.architecture());
    for ((n, a), (_, b)) in saved.tensors().into_iter().zip(trained.tensors()) {
        assert_eq!(
            a,
            b,
            "{}",
            what(&format!("saved {n} differs from the device's"))
        );
    }
    assert_eq!(saved.d_sae(), trained.d_sae());
    report.print(t.name, &format!("train_{architecture}_{path}"));
}

/// Records the loss of every step of a [`Trainer`] run.
impl<B: burn::tensor::backend::AutodiffBackend, M: synthsae::sae::TrainingSae<B>>
    synthsae::train::TrainerHooks<B, M> for Losses
{
    fn on_progress(&mut self, p: &Progress) {
        self.0.push(p.loss);
    }
}

/// Trains BatchTopK for [`STEPS`] steps with the hidden activations on the
/// device and the given arithmetic (`autocast`, forced: the runner would
/// resolve it to float32 on a CPU backend). Returns the losses and the
/// dtypes of the trained SAE's parameters.
fn train_at<X: Backend>(
    device: &X::Device,
    autocast: Autocast,
) -> (Vec<f64>, Vec<burn::tensor::DType>) {
    let dir = TempDir::new("bf16");
    let cfg = config("batchtopk", &dir.path().join("run"), HiddenPath::Device);
    let model = build_model::<X>(&cfg.synthetic_model, device).expect("model builds");
    let sae = cfg
        .sae
        .init::<Autodiff<X>>(device, cfg.seed)
        .expect("SAE initialises");
    let trainer = Trainer::new(
        cfg.trainer_config(),
        sae,
        sampler_for(&cfg, &model),
        device.clone(),
    )
    .expect("trainer")
    .with_device_dictionary(model.feature_dictionary().clone())
    .with_autocast(autocast);
    let mut losses = Losses::default();
    let outcome = trainer.fit(&mut losses).expect("training run");
    let mut dtypes = ParamDtypes::default();
    outcome.sae.visit(&mut dtypes);
    (losses.0, dtypes.0)
}

/// The dtype of every float parameter of a module.
#[derive(Default)]
struct ParamDtypes(Vec<burn::tensor::DType>);

impl<B: Backend> burn::module::ModuleVisitor<B> for ParamDtypes {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
        self.0.push(param.val().dtype());
    }
}

/// bf16 autocast (`autocast_sae`, `autocast_data`) on the backend under
/// test, forced, against float32 on the reference: the loss falls, its
/// trajectory stays within bf16 error of the float32 one, it is not the
/// float32 trajectory (the products really ran in bf16), and the master
/// weights stay float32.
///
/// Tolerance: one bf16 rounding is a relative error of at most 2^-9 ≈ 2e-3
/// per operand; the encoder and decoder products (32 and 64 terms, float32
/// accumulation) and the gather-sum keep the loss of one step within a few
/// 1e-3, and 80 Adam steps through a TopK selection amplify that. Measured
/// on flex: 2.5e-2 (`--nocapture` prints it); the bound is 5e-2.
///
/// First, what the runner makes of `autocast_sae` / `autocast_data` here:
/// bf16 exactly where the backend has accelerated bf16 (CUDA), float32 with
/// a warning elsewhere. A backend without bf16 arithmetic (ndarray, wgpu)
/// stops after that check.
pub fn bf16_autocast<B: Backend, R: Backend>(t: &Target<B>) {
    use burn::tensor::backend::DTypeUsage;
    const BF16_DRIFT: f32 = 5e-2;
    let what = |p: &str| format!("{} bf16 autocast training: {p}", t.name);

    type A<X> = Autodiff<X>;
    let resolved = Autocast::resolve::<A<B>>(true, true, HiddenPath::Device, &t.device);
    if Precision::bf16_accelerated::<A<B>>(&t.device) {
        assert_eq!(
            resolved.autocast,
            Autocast {
                sae: Precision::Bf16,
                data: Precision::Bf16
            },
            "{}",
            what("accelerated bf16 but the runner would not use it")
        );
        assert_eq!(resolved.warning, None, "{}", what("warning"));
    } else {
        assert_eq!(
            resolved.autocast,
            Autocast::default(),
            "{}",
            what("no accelerated bf16 but the runner would use it")
        );
        let w = resolved.warning.unwrap_or_default();
        assert!(
            w.contains("computes in float32"),
            "{}",
            what(&format!("warning {w:?}"))
        );
    }
    let usage = B::dtype_usage(&t.device, burn::tensor::DType::BF16);
    if !usage.is_superset(DTypeUsage::Storage | DTypeUsage::Arithmetic) {
        eprintln!(
            "conformance[{}] train_batchtopk_bf16: no bf16 arithmetic; the run would be float32",
            t.name
        );
        return;
    }
    let bf16 = Autocast {
        sae: Precision::Bf16,
        data: Precision::Bf16,
    };
    let (losses, dtypes) = train_at::<B>(&t.device, bf16);
    let (f32_losses, _) = train_at::<B>(&t.device, Autocast::default());
    let (ref_losses, _) = train_at::<R>(&Default::default(), Autocast::default());

    assert_eq!(losses.len() as u64, STEPS, "{}", what("steps"));
    assert!(
        losses.iter().all(|l| l.is_finite()),
        "{}",
        what("non-finite loss")
    );
    let (first, last) = (mean(&losses[..10]), mean(&losses[losses.len() - 10..]));
    assert!(
        last < 0.8 * first,
        "{}",
        what(&format!("loss did not decrease: {first:.4} -> {last:.4}"))
    );
    assert_ne!(
        losses,
        f32_losses,
        "{}",
        what("the trajectory is the float32 one: bf16 was not used")
    );
    let as32 = |v: &[f64]| v.iter().map(|&l| l as f32).collect::<Vec<_>>();
    let err = compare(
        &what("loss trajectory against float32"),
        &as32(&losses),
        &as32(&ref_losses),
        BF16_DRIFT,
    );
    assert!(!dtypes.is_empty(), "{}", what("no parameters visited"));
    for d in &dtypes {
        assert_eq!(
            *d,
            burn::tensor::DType::F32,
            "{}",
            what("a master weight is not float32")
        );
    }
    let mut report = Report::default();
    report.add("loss trajectory vs float32", err as f64);
    report.print(t.name, "train_batchtopk_bf16");
}
