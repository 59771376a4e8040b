//! Hand-derived training losses for every architecture, and gradients of the
//! pseudo-gradient and straight-through paths.

use burn::backend::{Autodiff, NdArray};
use burn::prelude::*;

use crate::arch::batchtopk::BatchTopKTrainingSae;
use crate::arch::gated::{GatedTrainingSae, GatedWeights};
use crate::arch::jumprelu::JumpReluTrainingSae;
use crate::arch::matching_pursuit::MatchingPursuitTrainingSae;
use crate::arch::standard::StandardTrainingSae;
use crate::arch::topk::TopKTrainingSae;
use crate::config::*;
use crate::linear::LinearCore;
use crate::ops::{param, to_vec};
use crate::sae::{TrainStepInput, TrainStepOutput};

type B = NdArray;
type AD = Autodiff<NdArray>;

fn t2<Bk: Backend>(rows: &[&[f32]]) -> Tensor<Bk, 2> {
    let r = rows.len();
    let c = rows[0].len();
    let v: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(v, [r, c]), &Default::default())
}

fn t1<Bk: Backend>(v: &[f32]) -> Tensor<Bk, 1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Default::default())
}

fn core<Bk: Backend>(
    w_enc: &[&[f32]],
    w_dec: &[&[f32]],
    b_enc: &[f32],
    b_dec: &[f32],
) -> LinearCore<Bk> {
    LinearCore {
        w_enc: param(t2(w_enc)),
        w_dec: param(t2(w_dec)),
        b_enc: param(t1(b_enc)),
        b_dec: param(t1(b_dec)),
    }
}

fn cfg(arch: TrainingArch, d_in: usize, d_sae: usize) -> TrainingSaeConfig {
    TrainingSaeConfig::from_parts(SaeBase::new(d_in, d_sae), Some(0.1), arch).unwrap()
}

fn input<Bk: Backend>(
    x: Tensor<Bk, 2>,
    dead: Option<&[bool]>,
    coefs: &[(&str, f64)],
) -> TrainStepInput<Bk> {
    TrainStepInput {
        x,
        dead_mask: dead.map(|d| {
            Tensor::<Bk, 1>::from_data(
                TensorData::new(
                    d.iter().map(|&b| if b { 1.0f32 } else { 0.0 }).collect(),
                    [d.len()],
                ),
                &Default::default(),
            )
            .greater_elem(0.5)
        }),
        coefficients: coefs.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        step: 0,
        precision: Default::default(),
    }
}

fn scalar<Bk: Backend>(t: &Tensor<Bk, 1>) -> f64 {
    to_vec(t.clone())[0] as f64
}

fn term<Bk: Backend>(out: &TrainStepOutput<Bk>, name: &str) -> f64 {
    let t = &out
        .losses
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1;
    scalar(t)
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "{a} != {b}");
}

fn topk_core<Bk: Backend>() -> LinearCore<Bk> {
    // Decoder rows [2,0], [0,1], [1,1]: norms 2, 1, √2.
    core(
        &[&[1.0, 0.0, 1.0], &[0.0, 1.0, 1.0]],
        &[&[2.0, 0.0], &[0.0, 1.0], &[1.0, 1.0]],
        &[0.0; 3],
        &[0.0; 2],
    )
}

#[test]
fn standard_loss_by_hand() {
    let c = StandardConfig {
        l1_coefficient: 0.5,
        ..Default::default()
    };
    let sae = StandardTrainingSae::<B> {
        core: core(
            &[&[1.0, 0.0], &[0.0, 1.0]],
            &[&[2.0, 0.0], &[0.0, 1.0]],
            &[0.0; 2],
            &[0.0; 2],
        ),
        cfg: cfg(TrainingArch::Standard(c.clone()), 2, 2),
    };
    let x = t2(&[&[1.0, -1.0], &[3.0, 2.0]]);
    // z = [[1,0],[3,2]], x̂ = [[2,0],[6,2]]: mse = (2 + 9)/2; l1 = 0.5·(2 + 8)/2.
    let out = sae.forward_train(&input(x.clone(), None, &[("l1", 0.5)]));
    close(term(&out, "mse_loss"), 5.5);
    close(term(&out, "l1_loss"), 2.5);
    close(scalar(&out.loss), 8.0);
    // The warm-up value passed by the trainer is the one used.
    let out = sae.forward_train(&input(x.clone(), None, &[("l1", 0.25)]));
    close(term(&out, "l1_loss"), 1.25);
    // p = 2: rows ‖[2,0]‖ = 2 and ‖[6,2]‖ = √40.
    let sae2 = StandardTrainingSae::<B> {
        cfg: cfg(
            TrainingArch::Standard(StandardConfig { lp_norm: 2.0, ..c }),
            2,
            2,
        ),
        ..sae
    };
    let out = sae2.forward_train(&input(x, None, &[("l1", 0.5)]));
    close(term(&out, "l1_loss"), 0.5 * (2.0 + 40f64.sqrt()) / 2.0);
}

#[test]
fn topk_loss_by_hand() {
    let c = TopKConfig {
        k: 1,
        ..Default::default()
    };
    let sae = TopKTrainingSae::<B> {
        core: topk_core(),
        cfg: cfg(TrainingArch::TopK(c), 2, 3),
    };
    // pre = [1, .5, 1.5], ·n = [2, .5, 2.1213]: keep latent 2; x̂ = 1.5·[1,1].
    let x = t2(&[&[1.0, 0.5]]);
    let out = sae.forward_train(&input(x.clone(), Some(&[true, true, false]), &[]));
    close(term(&out, "mse_loss"), 1.25);
    // Aux: k_aux = 1, scale 1; top dead hidden_pre = 2 (latent 0) → ê = [2, 0],
    // e = [-0.5, -1]: (2.5² + 1²) = 7.25.
    close(term(&out, "auxiliary_reconstruction_loss"), 7.25);
    close(scalar(&out.loss), 8.5);
    let fa = to_vec(out.feature_acts.to_dense());
    close(fa[2] as f64, 1.5 * 2f64.sqrt());
    assert_eq!((fa[0], fa[1]), (0.0, 0.0));
    let out = sae.forward_train(&input(x, None, &[]));
    close(term(&out, "auxiliary_reconstruction_loss"), 0.0);
}

#[test]
fn abstopk_loss_by_hand() {
    let c = TopKConfig {
        k: 1,
        ..Default::default()
    };
    let sae = TopKTrainingSae::<B> {
        core: topk_core(),
        cfg: cfg(TrainingArch::AbsTopK(c), 2, 3),
    };
    let x = t2(&[&[-1.0, -0.5]]);
    let out = sae.forward_train(&input(x, Some(&[true, true, false]), &[]));
    let fa = to_vec(out.feature_acts.to_dense());
    close(fa[2] as f64, -1.5 * 2f64.sqrt());
    close(term(&out, "mse_loss"), 1.25);
    close(term(&out, "auxiliary_reconstruction_loss"), 7.25);
}

#[test]
fn batchtopk_and_matryoshka_loss_by_hand() {
    let btk = BatchTopKConfig {
        k: 1.0,
        ..Default::default()
    };
    let mut sae = BatchTopKTrainingSae::<B> {
        core: topk_core(),
        topk_threshold: 0.0,
        cfg: cfg(TrainingArch::BatchTopK(btk.clone()), 2, 3),
    };
    // Keep floor(1·2) = 2 values of the batch: 2.1213 and 2 (both row 0).
    let x = t2(&[&[1.0, 0.5], &[0.2, 0.1]]);
    let out = sae.forward_train(&input(x.clone(), None, &[]));
    close(term(&out, "mse_loss"), (7.25 + 0.05) / 2.0);
    let metrics = sae.update_threshold(&out.feature_acts.to_dense());
    close(metrics[0].1, 0.01 * 2.0);
    close(sae.topk_threshold, 0.02);
    // Matryoshka, widths [1, 3]: x̂_1 rows [2,0] and 0 → (1.25 + 0.05)/2.
    let m = MatryoshkaConfig {
        batch_topk: btk,
        matryoshka_widths: vec![1, 3],
        use_matryoshka_aux_loss: false,
    };
    let sae = BatchTopKTrainingSae::<B> {
        core: topk_core(),
        topk_threshold: 0.0,
        cfg: cfg(TrainingArch::MatryoshkaBatchTopK(m.clone()), 2, 3),
    };
    let out = sae.forward_train(&input(x.clone(), None, &[]));
    close(term(&out, "inner_mse_loss_1"), 0.65);
    close(scalar(&out.loss), 3.65 + 0.65);
    // Matryoshka aux, dead [true, false, true], k_aux = 1:
    // level [0,1): dead latent 0, residual x − x̂_1; level [1,3): dead latent 2.
    let m2 = MatryoshkaConfig {
        use_matryoshka_aux_loss: true,
        ..m
    };
    let sae = BatchTopKTrainingSae::<B> {
        cfg: cfg(TrainingArch::MatryoshkaBatchTopK(m2), 2, 3),
        ..sae
    };
    let out = sae.forward_train(&input(x, Some(&[true, false, true]), &[]));
    // Level 1: acts = hidden_pre[:,0] = [2, 0.4], decoded with unit row [1,0]:
    // ê = [[2,0],[0.4,0]]; e = x − x̂_1 = [[-1, .5],[.2,.1]] → (9 + .25 + .04 + .01)/2.
    // Level 2: acts = hidden_pre[:,2] = [2.1213, .4243] with unit row [1,1]/√2 → ê = [[1.5,1.5],[.3,.3]];
    // e = x − x̂ = [[-2.5,-1],[.2,.1]] → (16 + 6.25 + .01 + .04)/2.
    close(
        term(&out, "auxiliary_reconstruction_loss"),
        9.3 / 2.0 + 22.3 / 2.0,
    );
}

fn jumprelu_sae<Bk: Backend>(c: JumpReluConfig) -> JumpReluTrainingSae<Bk> {
    JumpReluTrainingSae {
        core: core(
            &[&[1.0, 0.0], &[0.0, 1.0]],
            &[&[1.0, 0.0], &[0.0, 1.0]],
            &[0.0; 2],
            &[0.0; 2],
        ),
        threshold: param(t1(&[0.5, 0.5])),
        cfg: cfg(TrainingArch::JumpRelu(c), 2, 2),
    }
}

#[test]
fn jumprelu_losses_by_hand() {
    let x = t2::<B>(&[&[1.0, 0.3], &[0.52, 2.0]]);
    let base = JumpReluConfig {
        l0_coefficient: 0.1,
        ..Default::default()
    };
    let sae = jumprelu_sae::<B>(base.clone());
    let out = sae.forward_train(&input(x.clone(), None, &[("l0", 0.1)]));
    close(term(&out, "mse_loss"), 0.045);
    close(term(&out, "l0_loss"), 0.15);
    close(scalar(&out.loss), 0.195);
    assert!(out.losses.iter().all(|(n, _)| n != "pre_act_loss"));
    let quad = JumpReluConfig {
        jumprelu_sparsity_loss_mode: SparsityLossMode::Quadratic,
        target_l0: Some(1.0),
        ..base.clone()
    };
    let out = jumprelu_sae::<B>(quad).forward_train(&input(x.clone(), None, &[("l0", 0.1)]));
    close(term(&out, "l0_loss"), 0.1);
    let tanh = JumpReluConfig {
        jumprelu_sparsity_loss_mode: SparsityLossMode::Tanh,
        ..base.clone()
    };
    let out = jumprelu_sae::<B>(tanh).forward_train(&input(x.clone(), None, &[("l0", 0.1)]));
    let expected = 0.1 * (4f64.tanh() + (4.0f64 * 0.52).tanh() + 8f64.tanh()) / 2.0;
    close(term(&out, "l0_loss"), expected);
    let pal = JumpReluConfig {
        pre_act_loss_coefficient: Some(0.5),
        ..base
    };
    let sae = jumprelu_sae::<B>(pal);
    let out = sae.forward_train(&input(x.clone(), Some(&[false, true]), &[("l0", 0.1)]));
    close(term(&out, "pre_act_loss"), 0.05);
    let out = sae.forward_train(&input(x, None, &[("l0", 0.1)]));
    close(term(&out, "pre_act_loss"), 0.0);
}

/// Gradients of θ and of the pre-activations (via `b_enc`) equal the
/// pseudo-gradient formulas of spec §10.6, computed here on the host.
#[test]
fn jumprelu_pseudo_gradients_match_formulas() {
    let eps = 0.05f64;
    for ste in [false, true] {
        let c = JumpReluConfig {
            l0_coefficient: 0.3,
            jumprelu_ste_to_input: ste,
            ..Default::default()
        };
        let sae = jumprelu_sae::<AD>(c);
        // Entries near θ = 0.5 fall inside the kernel window (|pre − θ| < ε/2).
        let xv = [[0.51f32, 0.49], [0.7, 0.52], [0.2, 0.515]];
        let x = t2::<AD>(&[&xv[0], &xv[1], &xv[2]]);
        let out = sae.forward_train(&input(x, None, &[("l0", 0.3)]));
        let grads = out.loss.backward();
        let g_theta = to_vec(sae.threshold.grad(&grads).unwrap());
        let g_benc = to_vec(sae.core.b_enc.grad(&grads).unwrap());
        // Host formulas. pre = x (identity encoder), θ = 0.5, W_dec = I, b = 0.
        let (n, lam, th) = (3.0f64, 0.3f64, 0.5f64);
        let mut exp_theta = [0.0f64; 2];
        let mut exp_pre = [0.0f64; 2];
        for r in xv {
            for s in 0..2 {
                let pre = r[s] as f64;
                let h = if pre > th { 1.0 } else { 0.0 };
                let k = if ((pre - th) / eps).abs() < 0.5 {
                    1.0
                } else {
                    0.0
                };
                let z = pre * h;
                let g_z = 2.0 * (z - pre) / n; // ∂mse/∂z with x̂ = z
                let g_l0 = lam / n;
                exp_theta[s] += -(th / eps) * k * g_z - (1.0 / eps) * k * g_l0;
                let mut gp = h * g_z - 2.0 * (z - pre) / n; // direct mse term via x
                gp -= 0.0;
                if ste {
                    gp += (th / eps) * k * g_z + (1.0 / eps) * k * g_l0;
                }
                // ∂mse/∂x contributes nothing to b_enc: x is an input.
                gp += 2.0 * (z - pre) / n;
                exp_pre[s] += gp;
            }
        }
        for s in 0..2 {
            close(g_theta[s] as f64, exp_theta[s]);
            close(g_benc[s] as f64, exp_pre[s]);
        }
    }
}

/// Through the straight-through paths of TopK (selection, decoder-norm
/// rescaling) the autodiff gradient equals finite differences of the loss.
#[test]
fn topk_gradients_match_finite_differences() {
    let c = TopKConfig {
        k: 2,
        ..Default::default()
    };
    let w_enc: [&[f32]; 2] = [&[0.9, -0.2, 0.4, 0.1], &[0.3, 0.8, -0.5, 0.6]];
    let w_dec: [&[f32]; 4] = [&[1.2, 0.1], &[-0.3, 0.9], &[0.5, 0.5], &[0.2, -1.1]];
    let x: [&[f32]; 3] = [&[1.0, 0.5], &[-0.4, 1.3], &[0.8, -0.9]];
    let loss_with = |b_enc: [f32; 4]| -> f64 {
        let sae = TopKTrainingSae::<B> {
            core: core(&w_enc, &w_dec, &b_enc, &[0.05, -0.02]),
            cfg: cfg(TrainingArch::TopK(c.clone()), 2, 4),
        };
        let out = sae.forward_train(&input(t2(&x), None, &[]));
        scalar(&out.loss)
    };
    let b0 = [0.01f32, -0.02, 0.03, 0.0];
    let sae = TopKTrainingSae::<AD> {
        core: core(&w_enc, &w_dec, &b0, &[0.05, -0.02]),
        cfg: cfg(TrainingArch::TopK(c.clone()), 2, 4),
    };
    // No dead mask: the aux loss's residual is detached by design, so only
    // the reconstruction path is comparable with finite differences.
    let out = sae.forward_train(&input(t2(&x), None, &[]));
    let g = to_vec(sae.core.b_enc.grad(&out.loss.backward()).unwrap());
    let h = 1e-3f32;
    for s in 0..4 {
        let (mut bp, mut bm) = (b0, b0);
        bp[s] += h;
        bm[s] -= h;
        let fd = (loss_with(bp) - loss_with(bm)) / (2.0 * h as f64);
        assert!(
            (fd - g[s] as f64).abs() < 2e-3,
            "latent {s}: fd {fd} vs grad {}",
            g[s]
        );
    }
}

#[test]
fn gated_loss_by_hand() {
    let sae = GatedTrainingSae::<B> {
        weights: GatedWeights {
            w_enc: param(t2(&[&[1.0, 0.0], &[0.0, 1.0]])),
            w_dec: param(t2(&[&[1.0, 0.0], &[0.0, 1.0]])),
            b_dec: param(t1(&[0.0, 0.0])),
            b_gate: param(t1(&[0.0, -1.0])),
            r_mag: param(t1(&[0.0, 2f32.ln()])),
            b_mag: param(t1(&[0.5, 0.0])),
        },
        cfg: cfg(
            TrainingArch::Gated(GatedConfig {
                l1_coefficient: 0.1,
                l1_warm_up_steps: 0,
            }),
            2,
            2,
        ),
    };
    let out = sae.forward_train(&input(t2(&[&[1.0, 2.0]]), None, &[("l1", 0.1)]));
    close(term(&out, "mse_loss"), 4.25);
    close(term(&out, "l1_loss"), 0.2);
    close(term(&out, "auxiliary_reconstruction_loss"), 1.0);
    close(scalar(&out.loss), 5.45);
}

#[test]
fn matching_pursuit_loss_by_hand() {
    let mp = MatchingPursuitConfig {
        residual_threshold: 0.0,
        max_iterations: None,
        stop_on_duplicate_support: true,
    };
    let sae = MatchingPursuitTrainingSae::<B> {
        w_dec: param(t2(&[&[1.0, 0.0], &[0.6, 0.8]])),
        b_dec: param(t1(&[0.0, 0.0])),
        cfg: cfg(TrainingArch::MatchingPursuit(mp), 2, 2),
    };
    let out = sae.forward_train(&input(t2(&[&[1.0, 1.0]]), None, &[]));
    let z = to_vec(out.feature_acts.to_dense());
    close(z[0] as f64, 0.16);
    close(z[1] as f64, 1.4);
    close(term(&out, "mse_loss"), 0.0144);
    assert!(to_vec(out.hidden_pre).iter().all(|&v| v == 0.0));
}
