//! The CPU fast paths against the generic tensor formulation on the same
//! backend: the TopK family's training step (losses, latents,
//! reconstructions and every gradient), the host TopK activation, and the
//! sparse inference forward.

use burn::backend::{Autodiff, Flex, NdArray};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Distribution;

use crate::arch::batchtopk::BatchTopKTrainingSae;
use crate::arch::topk::TopKTrainingSae;
use crate::config::*;
use crate::linear::LinearCore;
use crate::ops::{param, to_vec};
use crate::sae::{TrainStepInput, TrainStepOutput};

const D: usize = 8;
const S: usize = 48;
const BATCH: usize = 13;

/// `[rows, cols]` normal values with standard deviation `sd`, drawn on
/// the host (the backends' own RNGs are global, shared between tests).
fn normal<B: Backend, const N: usize>(seed: u64, shape: [usize; N], sd: f32) -> Tensor<B, N> {
    use rand::SeedableRng;
    use rand_distr::Distribution as _;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let law = rand_distr::Normal::new(0.0f32, sd).unwrap();
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| law.sample(&mut rng)).collect();
    Tensor::from_data(TensorData::new(v, shape), &Default::default())
}

fn core<B: Backend>(seed: u64) -> LinearCore<B> {
    LinearCore {
        w_enc: param(normal(seed, [D, S], 0.5)),
        w_dec: param(normal(seed + 1, [S, D], 0.4)),
        b_enc: param(normal(seed + 2, [S], 0.1)),
        b_dec: param(normal(seed + 3, [D], 0.1)),
    }
}

fn input<B: Backend>(dead: bool) -> TrainStepInput<B> {
    let device = Default::default();
    TrainStepInput {
        x: normal(99, [BATCH, D], 1.0),
        // Every third latent dead (16 of 48 ≥ k_aux = D / 2).
        dead_mask: dead.then(|| {
            let m: Vec<f32> = (0..S).map(|i| (i % 3 == 0) as u8 as f32).collect();
            Tensor::<B, 1>::from_data(TensorData::new(m, [S]), &device).greater_elem(0.5)
        }),
        coefficients: Default::default(),
        step: 0,
        precision: Default::default(),
    }
}

fn cfg(arch: TrainingArch, normalize: NormalizeActivations, b_dec_in: bool) -> TrainingSaeConfig {
    let mut base = SaeBase::new(D, S);
    base.normalize_activations = normalize;
    base.apply_b_dec_to_input = b_dec_in;
    TrainingSaeConfig::from_parts(base, Some(0.1), arch).unwrap()
}

/// Host copies of everything the two paths must agree on.
fn outputs<B: AutodiffBackend>(
    core: &LinearCore<B>,
    out: TrainStepOutput<B>,
) -> Vec<(String, Vec<f32>)> {
    let mut v: Vec<(String, Vec<f32>)> = out
        .losses
        .iter()
        .map(|(n, t)| (n.clone(), to_vec(t.clone().detach())))
        .collect();
    v.push(("loss".into(), to_vec(out.loss.clone().detach())));
    v.push(("sae_out".into(), to_vec(out.sae_out.clone().detach())));
    v.push((
        "feature_acts".into(),
        to_vec(out.feature_acts.to_dense().detach()),
    ));
    v.push(("hidden_pre".into(), to_vec(out.hidden_pre.clone().detach())));
    // The firing summary, as the dense latents give it (both paths).
    let acts = to_vec(out.feature_acts.to_dense().detach());
    let mut counts = vec![0.0f32; S];
    for row in acts.chunks_exact(S) {
        for (n, &a) in counts.iter_mut().zip(row) {
            *n += (a != 0.0) as u8 as f32;
        }
    }
    let min_pos = acts
        .iter()
        .copied()
        .filter(|&a| a > 0.0)
        .fold(f32::INFINITY, f32::min);
    if let Some(f) = &out.firing {
        let got: Vec<f32> = f.counts.iter().map(|&n| n as f32).collect();
        assert_eq!(got, counts, "firing counts");
        assert_eq!(
            f.min_positive,
            min_pos.is_finite().then_some(min_pos),
            "min positive"
        );
    }
    v.push(("fire counts".into(), counts));
    let g = out.loss.backward();
    v.push(("grad W_enc".into(), to_vec(core.w_enc.grad(&g).unwrap())));
    v.push(("grad b_enc".into(), to_vec(core.b_enc.grad(&g).unwrap())));
    v.push(("grad W_dec".into(), to_vec(core.w_dec.grad(&g).unwrap())));
    v.push(("grad b_dec".into(), to_vec(core.b_dec.grad(&g).unwrap())));
    v
}

/// `tol` relative to each tensor's largest magnitude (float rounding:
/// the two paths sum in different orders).
fn agree(case: &str, generic: &[(String, Vec<f32>)], fused: &[(String, Vec<f32>)], tol: f32) {
    assert_eq!(generic.len(), fused.len(), "{case}: output count");
    for ((n, a), (m, b)) in generic.iter().zip(fused) {
        assert_eq!(n, m, "{case}: output order");
        assert_eq!(a.len(), b.len(), "{case}: {n} length");
        let scale = a.iter().fold(1e-3f32, |s, v| s.max(v.abs()));
        for (i, (p, q)) in a.iter().zip(b).enumerate() {
            assert!(
                (p - q).abs() <= tol * scale,
                "{case}: {n}[{i}] generic {p} vs fused {q}"
            );
        }
    }
}

/// Runs both paths of one case and requires them to agree (and the
/// dispatching one to have taken the fused path).
fn check_paths<B: AutodiffBackend>(
    case: &str,
    tol: f32,
    core: &LinearCore<B>,
    fused: impl FnOnce() -> TrainStepOutput<B>,
    generic: impl FnOnce() -> TrainStepOutput<B>,
) {
    let want = outputs(core, generic());
    let out = fused();
    assert!(out.firing.is_some(), "{case}: the CPU path ran");
    // Without Matryoshka levels the whole loss is one node, whose
    // latents stay sparse.
    let one_node = !case.contains("Matryoshka");
    assert_eq!(
        matches!(out.feature_acts, crate::StepLatents::Sparse(..)),
        one_node,
        "{case}: one-node path"
    );
    agree(case, &want, &outputs(core, out), tol);
}

fn normalizations() -> [(NormalizeActivations, bool); 3] {
    [
        // (Per-sample normalisations are refused for the TopK family.)
        (NormalizeActivations::None, true),
        (NormalizeActivations::None, false),
        (NormalizeActivations::ExpectedAverageOnlyIn, true),
    ]
}

fn topk_family<B: AutodiffBackend>(tol: f32) {
    assert!(synthsae_host::is_cpu_autodiff::<B>());
    for (arch_name, abs) in [("topk", false), ("abstopk", true)] {
        for rescale in [false, true] {
            for (norm, b_dec_in) in normalizations() {
                for dead in [false, true] {
                    let c = TopKConfig {
                        k: 5,
                        rescale_acts_by_decoder_norm: rescale,
                        ..Default::default()
                    };
                    let arch = if abs {
                        TrainingArch::AbsTopK(c)
                    } else {
                        TrainingArch::TopK(c)
                    };
                    let sae = TopKTrainingSae::<B> {
                        core: core(7),
                        cfg: cfg(arch.clone(), norm, b_dec_in),
                    };
                    let inp = input::<B>(dead);
                    let case = format!("{arch_name} rescale={rescale} {norm:?} dead={dead}");
                    check_paths(
                        &case,
                        tol,
                        &sae.core,
                        || sae.forward_train(&inp),
                        || sae.forward_train_generic(&inp),
                    );
                }
            }
        }
    }
}

fn batchtopk_family<B: AutodiffBackend>(tol: f32) {
    let btk = |rescale| BatchTopKConfig {
        k: 4.0,
        rescale_acts_by_decoder_norm: rescale,
        ..Default::default()
    };
    let mut archs = vec![];
    for rescale in [false, true] {
        archs.push(TrainingArch::BatchTopK(btk(rescale)));
        for aux in [false, true] {
            archs.push(TrainingArch::MatryoshkaBatchTopK(MatryoshkaConfig {
                batch_topk: btk(rescale),
                matryoshka_widths: vec![8, 20, S],
                use_matryoshka_aux_loss: aux,
            }));
        }
    }
    for arch in archs {
        for (norm, b_dec_in) in normalizations() {
            for dead in [false, true] {
                // Threshold hints: none, below the cut, far above it (the
                // candidate filter must fall back).
                for hint in [0.0, 0.05, 1e3] {
                    let sae = BatchTopKTrainingSae::<B> {
                        core: core(11),
                        topk_threshold: hint,
                        cfg: cfg(arch.clone(), norm, b_dec_in),
                    };
                    let inp = input::<B>(dead);
                    let case = format!("{arch:?} {norm:?} dead={dead} hint={hint}");
                    check_paths(
                        &case,
                        tol,
                        &sae.core,
                        || sae.forward_train(&inp),
                        || sae.forward_train_generic(&inp),
                    );
                }
            }
        }
    }
}

#[test]
fn topk_fused_equals_generic_flex() {
    topk_family::<Autodiff<Flex>>(2e-5);
}

#[test]
fn topk_fused_equals_generic_ndarray() {
    // burn-ndarray's approximate `recip` in the generic path's division
    // backward: ~5e-5 relative.
    topk_family::<Autodiff<NdArray>>(2e-4);
}

#[test]
fn batchtopk_and_matryoshka_fused_equal_generic_flex() {
    batchtopk_family::<Autodiff<Flex>>(2e-5);
}

#[test]
fn batchtopk_and_matryoshka_fused_equal_generic_ndarray() {
    batchtopk_family::<Autodiff<NdArray>>(2e-4);
}

// The inference fast paths.

#[test]
fn topk_host_equals_device_masks() {
    let device = Default::default();
    Flex::seed(&device, 1);
    let x = Tensor::<Flex, 2>::random([7, 50], Distribution::Normal(0.0, 1.0), &device);
    for k in [0, 1, 5, 49, 50, 80] {
        for abs in [false, true] {
            let host = to_vec(synthsae_host::inference::topk_host(x.clone(), k, abs));
            let dev = to_vec(crate::arch::topk::topk_activation_device(x.clone(), k, abs));
            assert_eq!(host, dev, "k {k} abs {abs}");
        }
    }
}

/// A random linear core (`D` 12, `S` 300) with the encoder bias shifted
/// by `shift` (a negative shift keeps relu / JumpReLU latents sparse).
fn random_core<Bk: Backend>(shift: f32) -> LinearCore<Bk> {
    let device = Default::default();
    Bk::seed(&device, 3);
    let n = Distribution::Normal(0.0, 1.0);
    LinearCore {
        w_enc: param(Tensor::random([12, 300], n, &device)),
        w_dec: param(Tensor::random([300, 12], n, &device)),
        b_enc: param(Tensor::random([300], n, &device) + shift),
        b_dec: param(Tensor::random([12], n, &device)),
    }
}

fn sae_cfg(arch: crate::config::InferenceArch, norm: &str) -> crate::config::SaeConfig {
    let mut base = crate::config::SaeBase::new(12, 300);
    base.normalize_activations = crate::config::NormalizeActivations::parse(norm).unwrap();
    crate::config::SaeConfig { base, arch }
}

/// `forward_sparse` against `encode` + `decode` on the same input:
/// identical latents and reconstruction (the decode takes the sparse
/// gather on both paths at these densities).
fn check_sparse_forward<Bk: Backend>(sae: &dyn crate::Sae<Bk>, rows: usize) {
    let device = Default::default();
    let x = Tensor::<Bk, 2>::random([rows, 12], Distribution::Normal(0.0, 1.0), &device);
    let f = sae
        .forward_sparse(x.clone())
        .expect("host backend, sparse latents");
    let z = sae.encode(x);
    let out = sae.decode(z.clone());
    assert_eq!(f.latents.n_rows(), rows);
    assert_eq!(f.latents.n_cols(), 300);
    let dense = to_vec(z);
    assert!(dense.iter().any(|&v| v != 0.0));
    assert_eq!(f.latents.to_dense_vec(), dense);
    assert_eq!(f.latents.nnz(), dense.iter().filter(|&&v| v != 0.0).count());
    assert_eq!(to_vec(f.output), to_vec(out));
}

#[test]
fn sparse_forward_equals_encode_decode() {
    use crate::arch::{jumprelu::JumpReluSae, standard::StandardSae, topk::TopKSae};
    use crate::config::InferenceArch;
    use crate::Sae;
    // 2500 rows: three gemm blocks, the last one partial.
    for norm in ["none", "constant_norm_rescale", "layer_norm"] {
        for rescale in [false, true] {
            for (k, abs) in [(3, false), (3, true), (0, false), (1, true)] {
                let arch = if abs {
                    InferenceArch::AbsTopK {
                        k,
                        rescale_acts_by_decoder_norm: rescale,
                    }
                } else {
                    InferenceArch::TopK {
                        k,
                        rescale_acts_by_decoder_norm: rescale,
                    }
                };
                let sae = TopKSae::<Flex>::new(random_core(0.0), sae_cfg(arch, norm));
                if k == 0 {
                    let x = Tensor::<Flex, 2>::ones([4, 12], &Default::default());
                    let f = sae.forward_sparse(x).expect("k 0: no latents");
                    assert_eq!((f.latents.nnz(), f.latents.n_rows()), (0, 4));
                    continue;
                }
                check_sparse_forward::<Flex>(&sae, 2500);
            }
        }
        let standard =
            StandardSae::<Flex>::new(random_core(-8.0), sae_cfg(InferenceArch::Standard, norm));
        check_sparse_forward::<Flex>(&standard, 2500);
        // Pre-activations have a standard deviation of about √12 ≈ 3.5:
        // a shift or threshold of 8 leaves about 1 % active.
        let theta = Tensor::<NdArray, 1>::full([300], 8.0, &Default::default());
        let jumprelu = JumpReluSae::<NdArray>::new(
            random_core(0.0),
            crate::ops::param(theta),
            sae_cfg(InferenceArch::JumpRelu, norm),
        );
        check_sparse_forward::<NdArray>(&jumprelu, 300);
    }
}

#[test]
fn dense_latents_and_tracked_inputs_have_no_sparse_forward() {
    use crate::arch::standard::StandardSae;
    use crate::config::InferenceArch;
    use crate::Sae;
    let device = Default::default();
    // relu with a zero-mean bias: about half the latents are active.
    let sae = StandardSae::<Flex>::new(random_core(0.0), sae_cfg(InferenceArch::Standard, "none"));
    let x = Tensor::<Flex, 2>::random([64, 12], Distribution::Normal(0.0, 1.0), &device);
    assert!(sae.forward_sparse(x).is_none());
    type A = Autodiff<NdArray>;
    let sae = StandardSae::<A>::new(random_core(-8.0), sae_cfg(InferenceArch::Standard, "none"));
    let x = Tensor::<A, 2>::ones([3, 12], &Default::default()).require_grad();
    assert!(sae.forward_sparse(x).is_none());
}
