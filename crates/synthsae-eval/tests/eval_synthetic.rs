//! End-to-end evaluation on synthetic models with test SAEs implementing the
//! `Sae` trait.

use burn::backend::NdArray;
use burn::prelude::*;
use burn::tensor::Distribution;
use synthsae_data::{preset, sample_rng, SyntheticModel};
use synthsae_eval::{eval_sae_on_synthetic_data, EvalOptions};
use synthsae_sae::Sae;

type B = NdArray;

/// `z = p · [|p| > θ]` with `p = (x − b_dec) W_enc`; `x̂ = z W_dec + b_dec`.
/// Bidirectional (like AbsTopK), so a sign-flipped copy of the features
/// still reconstructs exactly.
struct ThresholdSae {
    w_enc: Tensor<B, 2>,
    w_dec: Tensor<B, 2>,
    b_dec: Tensor<B, 1>,
    theta: f32,
}

impl Sae<B> for ThresholdSae {
    fn d_in(&self) -> usize {
        self.w_enc.dims()[0]
    }
    fn d_sae(&self) -> usize {
        self.w_enc.dims()[1]
    }
    fn encode(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let p = (x - self.b_dec.clone().unsqueeze()).matmul(self.w_enc.clone());
        let keep = p.clone().abs().greater_elem(self.theta).float();
        p * keep
    }
    fn decode(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        z.matmul(self.w_dec.clone()) + self.b_dec.clone().unsqueeze()
    }
    fn decoder_weights(&self) -> Tensor<B, 2> {
        self.w_dec.clone()
    }
    fn encoder_weights(&self) -> Tensor<B, 2> {
        self.w_enc.clone()
    }
}

#[test]
fn sae_equal_to_the_true_features_in_any_order_and_sign_is_perfect() {
    let device = Default::default();
    // 16 orthogonal features in 32 dimensions, constant magnitude 1, bias.
    let model = SyntheticModel::<B>::new(preset("tutorial").unwrap(), &device).unwrap();
    let f = model.feature_dictionary().feature_vectors.val();
    let bias = model.feature_dictionary().bias.val();
    let perm: Vec<i64> = vec![5, 3, 12, 0, 9, 15, 1, 7, 2, 14, 10, 4, 13, 6, 11, 8];
    let signs: Vec<f32> = (0..16)
        .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
        .collect();
    let rows = f
        .select(0, Tensor::from_data(TensorData::new(perm, [16]), &device))
        .mul(Tensor::<B, 1>::from_data(TensorData::new(signs, [16]), &device).unsqueeze_dim(1));
    let sae = ThresholdSae {
        w_enc: rows.clone().transpose(),
        w_dec: rows,
        b_dec: bias,
        theta: 0.5,
    };
    let opts = EvalOptions::new(20_000).with_batch_size(3000);
    let r = eval_sae_on_synthetic_data(&sae, &model, &opts, &mut sample_rng(Some(1))).unwrap();
    assert!((r.mcc - 1.0).abs() < 1e-5, "{r:?}");
    assert_eq!(r.uniqueness, 1.0);
    assert_eq!(r.classification.f1_score, 1.0, "{r:?}");
    assert_eq!(r.classification.precision, 1.0);
    assert_eq!(r.classification.accuracy, 1.0);
    assert_eq!(r.dead_latents, 0);
    assert_eq!(r.sae_l0, r.true_l0);
    // 16 features at p = 0.25: L0 4 ± 4σ/√n with σ = √3.
    assert!(
        (r.true_l0 - 4.0).abs() < 4.0 * 3f64.sqrt() / (20_000f64).sqrt(),
        "{}",
        r.true_l0
    );
    assert!(r.explained_variance > 0.9999, "{r:?}");
    assert!((r.shrinkage - 1.0).abs() < 1e-4, "{r:?}");

    // The activation scaler is undone on the output: same metrics.
    let scaled = opts.clone().with_activation_scaling_factor(2.0);
    let sae2 = ThresholdSae {
        theta: 1.0,
        b_dec: sae.b_dec.clone() * 2.0,
        ..sae
    };
    let r2 = eval_sae_on_synthetic_data(&sae2, &model, &scaled, &mut sample_rng(Some(1))).unwrap();
    assert_eq!(r2.classification, r.classification);
    assert!(r2.explained_variance > 0.9999, "{r2:?}");
}

#[test]
fn random_sae_scores_low_and_eval_is_reproducible() {
    let device = Default::default();
    let model = SyntheticModel::<B>::new(preset("tutorial").unwrap(), &device).unwrap();
    B::seed(&device, 3);
    let w_dec = Tensor::<B, 2>::random([24, 32], Distribution::Normal(0.0, 1.0), &device);
    let sae = ThresholdSae {
        w_enc: w_dec.clone().transpose(),
        w_dec,
        b_dec: Tensor::zeros([32], &device),
        theta: 0.0,
    };
    let opts = EvalOptions::new(5000).with_batch_size(1024);
    let a = eval_sae_on_synthetic_data(&sae, &model, &opts, &mut sample_rng(Some(9))).unwrap();
    let b = eval_sae_on_synthetic_data(&sae, &model, &opts, &mut sample_rng(Some(9))).unwrap();
    assert_eq!(a, b);
    assert!(a.mcc > 0.1 && a.mcc < 0.6, "{a:?}");
    assert!(a.uniqueness < 1.0 || a.mcc < 0.6);
    assert_eq!(a.dead_latents, 0);
    assert!(
        (a.sae_l0 - 24.0).abs() < 1e-9,
        "every latent is active: {a:?}"
    );
}

#[test]
fn mismatched_sae_width_is_an_error() {
    let device = Default::default();
    let model = SyntheticModel::<B>::new(preset("tutorial").unwrap(), &device).unwrap();
    let sae = ThresholdSae {
        w_enc: Tensor::zeros([8, 4], &device),
        w_dec: Tensor::zeros([4, 8], &device),
        b_dec: Tensor::zeros([8], &device),
        theta: 0.0,
    };
    let e = eval_sae_on_synthetic_data(
        &sae,
        &model,
        &EvalOptions::new(10),
        &mut sample_rng(Some(0)),
    )
    .unwrap_err();
    assert!(e.to_string().contains("d_in"), "{e}");
    let bad = EvalOptions::new(10).with_batch_size(0);
    assert!(eval_sae_on_synthetic_data(&sae, &model, &bad, &mut sample_rng(Some(0))).is_err());
}

/// Hides [`Sae::forward_sparse`] of the SAE it wraps, so the evaluator takes
/// the dense `encode` / `decode` path.
struct DenseOnly<S>(S);

impl<S: Sae<B>> Sae<B> for DenseOnly<S> {
    fn d_in(&self) -> usize {
        self.0.d_in()
    }
    fn d_sae(&self) -> usize {
        self.0.d_sae()
    }
    fn encode(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.0.encode(x)
    }
    fn decode(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        self.0.decode(z)
    }
    fn decoder_weights(&self) -> Tensor<B, 2> {
        self.0.decoder_weights()
    }
    fn encoder_weights(&self) -> Tensor<B, 2> {
        self.0.encoder_weights()
    }
}

#[test]
fn sparse_and_dense_latents_give_the_same_result() {
    use synthsae_sae::config::{SaeBase, TopKConfig, TrainingArch};
    use synthsae_sae::TrainingSaeConfig;
    let device = Default::default();
    let model = SyntheticModel::<B>::new(preset("tutorial").unwrap(), &device).unwrap();
    // k 3 of 96 latents (3 %): below the 5 % bound of the sparse path.
    let arch = TrainingArch::TopK(TopKConfig {
        k: 3,
        ..TopKConfig::default()
    });
    for rescale in [false, true] {
        let mut arch = arch.clone();
        if let TrainingArch::TopK(c) = &mut arch {
            c.rescale_acts_by_decoder_norm = rescale;
        }
        let cfg = TrainingSaeConfig::from_parts(SaeBase::new(32, 96), Some(0.5), arch).unwrap();
        let sae = cfg.init::<B>(&device, 4).unwrap().to_inference_sae();
        let x = Tensor::<B, 2>::random([8, 32], Distribution::Normal(0.0, 1.0), &device);
        assert!(sae.forward_sparse(x).is_some(), "the sparse path applies");
        for scale in [None, Some(2.5)] {
            let mut opts = EvalOptions::new(5_000).with_batch_size(1500);
            if let Some(c) = scale {
                opts = opts.with_activation_scaling_factor(c);
            }
            let sparse =
                eval_sae_on_synthetic_data(&sae, &model, &opts, &mut sample_rng(Some(2))).unwrap();
            let dense = eval_sae_on_synthetic_data(
                &DenseOnly(sae.clone()),
                &model,
                &opts,
                &mut sample_rng(Some(2)),
            )
            .unwrap();
            assert_eq!(sparse, dense, "rescale {rescale}, scale {scale:?}");
            assert!(sparse.sae_l0 > 2.9 && sparse.sae_l0 <= 3.0, "{sparse:?}");
        }
    }
}
