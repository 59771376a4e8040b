//! Every SAE architecture on the backend under test against the reference
//! backend, with the same weights loaded on both: the training forward pass
//! (reconstruction, latents, pre-activations, every named loss term, the
//! total), the gradient of every parameter, the per-step state update
//! (BatchTopK's threshold EMA), and the exported inference SAE (its tensors,
//! `encode`, `decode`).
//!
//! Weights are random, not the initialiser's (`W_enc = W_decᵀ`, zero biases):
//! a fixture is written as a training checkpoint in sae-lens's layout and
//! loaded on each backend. Inputs are hidden activations of a synthetic model
//! (host path), some latents are marked dead so that the aux-k losses run.
//!
//! Selections (TopK, BatchTopK, the aux-k pick among dead latents, JumpReLU's
//! threshold and its rectangle kernel, the gated SAE's gate) are
//! discontinuous; a fixture is only used if every selection margin on the
//! reference is at least [`MARGIN`], far above float rounding, so any
//! disagreement is a backend bug rather than a near-tie. (Matching pursuit's
//! greedy argmax is not margin-checked.)

use std::path::Path;

use burn::backend::Autodiff;
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde_json::{json, Value};
use synthsae::data::{sample_rng, SyntheticModel, SyntheticModelConfig};
use synthsae::sae::io::{write_json, write_tensors, HostData, HostTensor};
use synthsae::sae::{
    AnyTrainingSae, Sae, TrainStepInput, TrainingArch, TrainingSae, TrainingSaeConfig,
};

use super::{compare, compare_scalar, host, tensor2, Report, Target, TempDir, TestRng};

/// Rows per batch.
const BATCH: usize = 32;
/// Input dimension.
const D_IN: usize = 32;
/// Smallest accepted selection margin on the reference (inputs and weights are O(1)).
pub const MARGIN: f32 = 2e-5;

/// The cases: every architecture, plus variants that take other code paths
/// (sparse decode below 0.5 % density, per-sample input normalisation, the
/// tanh sparsity loss).
pub fn case(name: &str) -> Value {
    let d = D_IN;
    match name {
        "standard" => json!({"architecture": "standard", "d_in": d, "d_sae": 128,
                             "l1_coefficient": 0.3}),
        "standard_lp2_norm_rescale" => json!({"architecture": "standard", "d_in": d,
                             "d_sae": 128, "l1_coefficient": 0.3, "lp_norm": 2.0,
                             "normalize_activations": "constant_norm_rescale"}),
        "topk" => json!({"architecture": "topk", "d_in": d, "d_sae": 128, "k": 8}),
        // k·B = 64 of 32·512 entries (0.39 %): the sparse gather/scatter decode.
        "topk_sparse" => json!({"architecture": "topk", "d_in": d, "d_sae": 512, "k": 2}),
        "abstopk" => json!({"architecture": "abstopk", "d_in": d, "d_sae": 128, "k": 6,
                            "rescale_acts_by_decoder_norm": false}),
        "batchtopk" => json!({"architecture": "batchtopk", "d_in": d, "d_sae": 128, "k": 4.0}),
        "batchtopk_sparse" => json!({"architecture": "batchtopk", "d_in": d, "d_sae": 512,
                                     "k": 2.0}),
        "matryoshka_batchtopk" => json!({"architecture": "matryoshka_batchtopk", "d_in": d,
                             "d_sae": 128, "k": 6.0, "matryoshka_widths": [16, 48, 128],
                             "use_matryoshka_aux_loss": true}),
        "jumprelu" => json!({"architecture": "jumprelu", "d_in": d, "d_sae": 128,
                             "jumprelu_bandwidth": 0.05, "l0_coefficient": 0.5,
                             "pre_act_loss_coefficient": 0.1, "jumprelu_ste_to_input": true}),
        "jumprelu_tanh" => json!({"architecture": "jumprelu", "d_in": d, "d_sae": 128,
                             "jumprelu_sparsity_loss_mode": "tanh", "l0_coefficient": 0.5}),
        "gated" => json!({"architecture": "gated", "d_in": d, "d_sae": 128,
                          "l1_coefficient": 0.3, "normalize_activations": "layer_norm"}),
        "matching_pursuit" => json!({"architecture": "matching_pursuit", "d_in": d,
                             "d_sae": 128, "residual_threshold": 0.05, "max_iterations": 12}),
        other => panic!("unknown case {other}"),
    }
}

/// Inputs: hidden activations of a small synthetic model (256 features in
/// 32 dimensions, host gather-sum), `[BATCH, D_IN]`.
fn inputs() -> Vec<f32> {
    let cfg = SyntheticModelConfig::from_json(
        r#"{"num_features": 256, "hidden_dim": 32,
            "firing_probability": {"exponent": 0.6, "max_prob": 0.3, "min_prob": 0.01,
                                   "generator_name": "zipfian"},
            "std_firing_magnitudes": 0.2,
            "mean_firing_magnitudes": {"start": 2.0, "end": 0.5, "generator_name": "linear"},
            "bias": 0.5, "seed": 3}"#,
    )
    .expect("valid model config");
    let model =
        SyntheticModel::<burn::backend::Flex>::new(cfg, &Default::default()).expect("input model");
    let features = model.sample_features(BATCH, &mut sample_rng(Some(4)));
    model
        .host_dictionary()
        .forward_sparse(&features)
        .expect("host hidden")
}

/// Latent `s` is dead iff `s % 5 == 1`.
fn dead_mask(d_sae: usize) -> Vec<bool> {
    (0..d_sae).map(|s| s % 5 == 1).collect()
}

/// Random weights for `cfg`, written as a training checkpoint into `dir`.
///
/// Decoder rows have norms in about [0.6, 1.4] (unit for matching pursuit),
/// `W_enc = W_decᵀ + noise`, biases O(0.3), JumpReLU thresholds in
/// [0.1, 0.6], BatchTopK's running threshold 0.25.
fn write_fixture(cfg: &TrainingSaeConfig, seed: u64, dir: &Path) {
    let (d, s) = (cfg.d_in(), cfg.d_sae());
    let template = cfg
        .init::<burn::backend::Flex>(&Default::default(), seed)
        .expect("init");
    let mut rng = TestRng::new(seed);
    let unit_rows = matches!(cfg.arch, TrainingArch::MatchingPursuit(_));
    let mut w_dec = vec![0f32; s * d];
    for r in w_dec.chunks_mut(d) {
        r.iter_mut().for_each(|v| *v = rng.normal());
        let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
        let target = if unit_rows {
            1.0
        } else {
            0.6 + 0.8 * rng.uniform() as f32
        };
        r.iter_mut().for_each(|v| *v *= target / norm);
    }
    let mut w_enc = vec![0f32; d * s];
    for i in 0..d {
        for j in 0..s {
            w_enc[i * s + j] = w_dec[j * d + i] + 0.3 * rng.normal() / (d as f32).sqrt();
        }
    }
    let tensors: Vec<(String, HostTensor)> = template
        .checkpoint_tensors()
        .into_iter()
        .map(|(name, t)| {
            let n: usize = t.shape.iter().product();
            let mut normal = |sd: f32| (0..n).map(|_| sd * rng.normal()).collect::<Vec<_>>();
            let data = match name.as_str() {
                "W_dec" => HostData::F32(w_dec.clone()),
                "W_enc" => HostData::F32(w_enc.clone()),
                "b_dec" => HostData::F32(normal(0.1)),
                "b_enc" | "b_gate" | "b_mag" => HostData::F32(normal(0.3)),
                "r_mag" => HostData::F32(normal(0.2)),
                "threshold" => {
                    HostData::F32((0..n).map(|_| 0.1 + 0.5 * rng.uniform() as f32).collect())
                }
                "topk_threshold" => HostData::F64(vec![0.25]),
                other => panic!("fixture: unexpected tensor {other}"),
            };
            (
                name,
                HostTensor {
                    shape: t.shape,
                    data,
                },
            )
        })
        .collect();
    write_tensors(&dir.join("sae_weights.safetensors"), &tensors).expect("write fixture");
    write_json(&dir.join("cfg.json"), &template.config().to_json()).expect("write cfg");
}

/// Everything read back from one backend.
#[derive(Debug)]
struct Observed {
    /// `sae_out`, `feature_acts`, `hidden_pre`.
    outputs: Vec<(String, Vec<f32>)>,
    /// Every loss term, then `loss`.
    losses: Vec<(String, f64)>,
    /// Gradient of every parameter, by module path.
    grads: Vec<(String, Option<Vec<f32>>)>,
    /// What `after_forward` reported.
    state: Vec<(String, f64)>,
    /// The exported inference SAE: its tensors, then `encode` and `decode` outputs.
    inference: Vec<(String, Vec<f32>)>,
}

impl Observed {
    fn output(&self, name: &str) -> &[f32] {
        &self
            .outputs
            .iter()
            .find(|(n, _)| n == name)
            .expect("output")
            .1
    }
}

/// Collects the gradient of every float parameter, named by module path.
struct Grads<'a, B: AutodiffBackend> {
    grads: &'a B::Gradients,
    path: Vec<String>,
    out: Vec<(String, Option<Vec<f32>>)>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Grads<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let name = self.path.join(".");
        let g = param
            .val()
            .grad(self.grads)
            .map(|g| host(&format!("gradient of {name}"), g));
        self.out.push((name, g));
    }
}

/// Loads the fixture in `dir` on backend `X` and runs everything on it.
fn observe<X: Backend>(dir: &Path, x: &[f32], device: &X::Device) -> Observed {
    let sae = AnyTrainingSae::<Autodiff<X>>::load_checkpoint(dir, device)
        .expect("load the fixture")
        .project();
    let d_sae = TrainingSae::d_sae(&sae);
    let dead: Vec<f32> = dead_mask(d_sae)
        .into_iter()
        .map(|b| if b { 1.0 } else { 0.0 })
        .collect();
    let input = TrainStepInput {
        x: tensor2::<Autodiff<X>>(x, [BATCH, D_IN], device),
        dead_mask: Some(
            Tensor::<Autodiff<X>, 1>::from_data(TensorData::new(dead, [d_sae]), device)
                .greater_elem(0.5),
        ),
        coefficients: sae
            .coefficients()
            .iter()
            .map(|c| (c.name.clone(), c.at_step(1_000_000)))
            .collect(),
        step: 1_000_000,
        precision: Default::default(),
    };
    let out = sae.training_forward(&input);
    let outputs = vec![
        ("sae_out".into(), host("sae_out", out.sae_out.clone())),
        (
            "feature_acts".into(),
            host("feature_acts", out.feature_acts.to_dense()),
        ),
        (
            "hidden_pre".into(),
            host("hidden_pre", out.hidden_pre.clone()),
        ),
    ];
    let mut losses: Vec<(String, f64)> = out
        .losses
        .iter()
        .map(|(n, t)| (n.clone(), host(n, t.clone())[0] as f64))
        .collect();
    losses.push(("loss".into(), host("loss", out.loss.clone())[0] as f64));

    let g = out.loss.backward();
    let mut visitor = Grads::<Autodiff<X>> {
        grads: &g,
        path: Vec::new(),
        out: Vec::new(),
    };
    sae.visit(&mut visitor);
    let grads = visitor.out;

    let mut sae = sae;
    let state = sae.after_forward(&out);
    let inference = sae.to_inference();
    let mut inf: Vec<(String, Vec<f32>)> = synthsae::sae::AnySae::tensors(&inference)
        .into_iter()
        .map(|(n, t)| {
            let v = match t.data {
                HostData::F32(v) => v,
                HostData::F64(v) => v.into_iter().map(|x| x as f32).collect(),
            };
            (format!("export {n}"), v)
        })
        .collect();
    let xi = tensor2::<X>(x, [BATCH, D_IN], device);
    let z = inference.encode(xi);
    inf.push(("encode".into(), host("encode", z.clone())));
    inf.push(("decode".into(), host("decode", inference.decode(z))));
    Observed {
        outputs,
        losses,
        grads,
        state,
        inference: inf,
    }
}

/// Gap between the `k`-th and `(k+1)`-th largest of `v` (`None` when there
/// is no `(k+1)`-th, or when `positive_only` and the `k`-th is not positive:
/// then the relu makes the choice irrelevant).
fn kth_gap(v: &[f32], k: usize, positive_only: bool) -> Option<f32> {
    if k == 0 || k >= v.len() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    if positive_only && s[k - 1] <= 0.0 {
        return None;
    }
    Some(s[k - 1] - s[k])
}

/// Smallest selection margin of the reference pass (see the module docs).
fn margin<R: Backend>(cfg: &TrainingSaeConfig, dir: &Path, x: &[f32], obs: &Observed) -> f32 {
    let s = cfg.d_sae();
    let hp = obs.output("hidden_pre");
    let rows = || hp.chunks(s);
    let dead = dead_mask(s);
    let k_aux = D_IN / 2;
    let mut m = f32::INFINITY;
    let mut take = |g: Option<f32>| {
        if let Some(g) = g {
            m = m.min(g);
        }
    };
    // The aux-k pick among the dead latents of `range`, per row.
    let aux = |range: std::ops::Range<usize>, abs: bool, take: &mut dyn FnMut(Option<f32>)| {
        for r in rows() {
            let keys: Vec<f32> = range
                .clone()
                .filter(|&j| dead[j])
                .map(|j| if abs { r[j].abs() } else { r[j] })
                .collect();
            take(kth_gap(&keys, k_aux.min(keys.len()), false));
        }
    };
    match &cfg.arch {
        TrainingArch::TopK(c) | TrainingArch::AbsTopK(c) => {
            let abs = matches!(cfg.arch, TrainingArch::AbsTopK(_));
            for r in rows() {
                let keys: Vec<f32> = r.iter().map(|v| if abs { v.abs() } else { *v }).collect();
                take(kth_gap(&keys, c.k, !abs));
            }
            aux(0..s, abs, &mut take);
        }
        TrainingArch::BatchTopK(_) | TrainingArch::MatryoshkaBatchTopK(_) => {
            let (k, levels) = match &cfg.arch {
                TrainingArch::BatchTopK(c) => (c.k, None),
                TrainingArch::MatryoshkaBatchTopK(m) => (
                    m.batch_topk.k,
                    m.use_matryoshka_aux_loss
                        .then(|| m.matryoshka_widths.clone()),
                ),
                _ => unreachable!(),
            };
            let relu: Vec<f32> = hp.iter().map(|v| v.max(0.0)).collect();
            take(kth_gap(&relu, (k * BATCH as f64).floor() as usize, true));
            match levels {
                None => aux(0..s, false, &mut take),
                Some(widths) => {
                    let mut prev = 0;
                    for w in widths {
                        aux(prev..w, false, &mut take);
                        prev = w;
                    }
                }
            }
        }
        TrainingArch::JumpRelu(c) => {
            let fixture = AnyTrainingSae::<R>::load_checkpoint(dir, &Default::default())
                .expect("load fixture");
            let AnyTrainingSae::JumpRelu(j) = fixture else {
                unreachable!()
            };
            let theta = host("threshold", j.threshold.val());
            let eps = c.jumprelu_bandwidth as f32;
            for r in rows() {
                for (p, t) in r.iter().zip(&theta) {
                    let u = p - t;
                    take(Some(
                        u.abs()
                            .min((u - eps / 2.0).abs())
                            .min((u + eps / 2.0).abs()),
                    ));
                }
            }
        }
        TrainingArch::Gated(_) => {
            let fixture = AnyTrainingSae::<R>::load_checkpoint(dir, &Default::default())
                .expect("load fixture");
            let AnyTrainingSae::Gated(g) = fixture else {
                unreachable!()
            };
            let w = &g.weights;
            let base = &cfg.base;
            let (xp, _) = synthsae::sae::linear::process_in(
                tensor2::<R>(x, [BATCH, D_IN], &Default::default()),
                base.normalize_activations,
                base.apply_b_dec_to_input,
                &w.b_dec,
            );
            let gate = xp.matmul(w.w_enc.val()) + w.b_gate.val().unsqueeze_dim(0);
            for v in host("gate pre-activations", gate) {
                take(Some(v.abs()));
            }
        }
        TrainingArch::Standard(_) | TrainingArch::MatchingPursuit(_) => {}
    }
    m
}

/// Runs case `name` on backend `B` against reference `R`.
pub fn check_case<B: Backend, R: Backend>(t: &Target<B>, name: &str) {
    let cfg = TrainingSaeConfig::from_json(&case(name)).expect("valid case config");
    let x = inputs();
    let dir = TempDir::new(&format!("sae-{}-{name}", t.name));
    // The first fixture seed whose reference pass is well conditioned.
    let (seed, reference, smallest_margin) = (0..32u64)
        .find_map(|seed| {
            write_fixture(&cfg, seed, dir.path());
            let obs = observe::<R>(dir.path(), &x, &Default::default());
            let m = margin::<R>(&cfg, dir.path(), &x, &obs);
            (m >= MARGIN).then_some((seed, obs, m))
        })
        .unwrap_or_else(|| panic!("{name}: no fixture seed with selection margins ≥ {MARGIN}"));
    let got = observe::<B>(dir.path(), &x, &t.device);
    let what = |part: &str| format!("{} {name} (fixture seed {seed}): {part}", t.name);
    let mut report = Report::default();
    let rel = t.tol.rel;

    // The fixture is meaningful: some latents fire, not all.
    let acts = reference.output("feature_acts");
    let active = acts.iter().filter(|v| **v != 0.0).count();
    assert!(
        active > 0 && active < acts.len(),
        "{name}: degenerate fixture ({active} of {} latents active)",
        acts.len()
    );

    for ((n, g), (_, w)) in got.outputs.iter().zip(&reference.outputs) {
        report.add("outputs", compare(&what(n), g, w, rel) as f64);
    }
    let names = |o: &Observed| o.losses.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&reference), "{}", what("loss terms"));
    for ((n, g), (_, w)) in got.losses.iter().zip(&reference.losses) {
        report.add("losses", compare_scalar(&what(n), *g, *w, rel as f64));
    }
    let names = |o: &Observed| o.grads.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&reference), "{}", what("parameters"));
    for ((n, g), (_, w)) in got.grads.iter().zip(&reference.grads) {
        match (g, w) {
            (Some(g), Some(w)) => {
                report.add(
                    "gradients",
                    compare(&what(&format!("∂loss/∂{n}")), g, w, rel) as f64,
                );
            }
            (None, None) => {}
            _ => panic!(
                "{}: gradient present on one backend only",
                what(&format!("∂loss/∂{n}"))
            ),
        }
    }
    assert!(
        reference.grads.iter().any(|(_, g)| g.is_some()),
        "{name}: no gradient at all"
    );
    assert_eq!(got.state.len(), reference.state.len(), "{}", what("state"));
    for ((n, g), (_, w)) in got.state.iter().zip(&reference.state) {
        report.add("state", compare_scalar(&what(n), *g, *w, rel as f64));
    }
    let names = |o: &Observed| {
        o.inference
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&got), names(&reference), "{}", what("inference"));
    for ((n, g), (_, w)) in got.inference.iter().zip(&reference.inference) {
        report.add("inference", compare(&what(n), g, w, rel) as f64);
    }
    report.print(t.name, &format!("sae_{name}"));
    eprintln!(
        "conformance[{}] sae_{name}: fixture seed {seed}, smallest selection margin {}",
        t.name,
        if smallest_margin.is_finite() {
            format!("{smallest_margin:.1e}")
        } else {
            "- (no selection checked)".to_string()
        }
    );
}
