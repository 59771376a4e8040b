//! Initialising SAE weights to the true features (spec §9.9), without the
//! reference's weak points (§13 #27): only the first `m = min(S, N)` latents
//! are written (encoder columns *and* decoder rows, to the same values), the
//! noise comes from an explicit seed and is drawn only when
//! `noise_level > 0`, and tied SAEs (decoder only) are supported.
//!
//! The function works on raw weight tensors so it needs nothing from the
//! SAE types: take the weights out, call it, put the returned tensors back.

use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use crate::error::{invalid, shape_err, Result};

/// SAE weights in sae-lens orientation.
#[derive(Debug, Clone)]
pub struct SaeWeights<B: Backend> {
    /// `W_enc`, `[D, S]`; `None` for tied SAEs (the decoder is the encoder).
    pub w_enc: Option<Tensor<B, 2>>,
    /// `W_dec`, `[S, D]`.
    pub w_dec: Tensor<B, 2>,
}

/// Options of [`init_weights_to_match_features`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InitOptions {
    /// Standard deviation of Gaussian noise added to the copied features
    /// (0 = exact copy, and then no randomness is consumed).
    pub noise_level: f64,
    /// A permutation of the `N` features: latent `s < m` gets feature
    /// `ordering[s]`. `None` = identity.
    pub feature_ordering: Option<Vec<usize>>,
    /// Seed of the noise (`None`: OS entropy).
    pub seed: Option<u64>,
}

/// Returns `weights` with latents `s < m = min(S, N)` set to feature
/// `ordering[s]` (plus noise): `W_enc[:, s]` and `W_dec[s, :]` get the same
/// `[D]` vector. Latents `≥ m` and all biases are untouched.
///
/// `features` is `[N, D]` (e.g. `model.feature_dictionary().feature_vectors.val()`),
/// on the weights' device.
pub fn init_weights_to_match_features<B: Backend>(
    weights: SaeWeights<B>,
    features: Tensor<B, 2>,
    options: &InitOptions,
) -> Result<SaeWeights<B>> {
    let [s, d] = weights.w_dec.dims();
    let [n, fd] = features.dims();
    if fd != d {
        return Err(shape_err(
            "features",
            format!("[N, {d}] (the decoder's width)"),
            &[n, fd],
        ));
    }
    if let Some(w_enc) = &weights.w_enc {
        if w_enc.dims() != [d, s] {
            return Err(shape_err(
                "w_enc",
                format!("[{d}, {s}] (transpose of w_dec)"),
                &w_enc.dims(),
            ));
        }
    }
    if !(options.noise_level.is_finite() && options.noise_level >= 0.0) {
        return Err(invalid(
            "noise_level",
            format!("must be finite and ≥ 0, got {}", options.noise_level),
        ));
    }
    let m = s.min(n);
    if m == 0 {
        return Ok(weights);
    }
    let device = weights.w_dec.device();
    let chosen = match &options.feature_ordering {
        None => features.slice(0..m),
        Some(order) => {
            let mut seen = vec![false; n];
            if order.len() != n
                || order
                    .iter()
                    .any(|&j| j >= n || std::mem::replace(&mut seen[j], true))
            {
                return Err(invalid(
                    "feature_ordering",
                    format!("must be a permutation of 0..{n}"),
                ));
            }
            let idx: Vec<i64> = order[..m].iter().map(|&j| j as i64).collect();
            features.select(
                0,
                Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [m]), &device),
            )
        }
    };
    let target = if options.noise_level > 0.0 {
        let mut rng = match options.seed {
            Some(seed) => rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            None => rand_chacha::ChaCha8Rng::from_os_rng(),
        };
        let noise: Vec<f32> = (0..m * d)
            .map(|_| (rng.sample::<f64, _>(StandardNormal) * options.noise_level) as f32)
            .collect();
        chosen + Tensor::<B, 2>::from_data(TensorData::new(noise, [m, d]), &device)
    } else {
        chosen
    };
    let w_enc = weights
        .w_enc
        .map(|w| w.slice_assign([0..d, 0..m], target.clone().transpose()));
    let w_dec = weights.w_dec.slice_assign([0..m, 0..d], target);
    Ok(SaeWeights { w_enc, w_dec })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readback::to_f32;
    use burn::backend::NdArray;

    type B = NdArray;

    fn weights(s: usize, d: usize) -> SaeWeights<B> {
        let dev = Default::default();
        SaeWeights {
            w_enc: Some(Tensor::full([d, s], 7.0, &dev)),
            w_dec: Tensor::full([s, d], 9.0, &dev),
        }
    }

    #[test]
    fn writes_only_the_first_m_latents() {
        let f = Tensor::<B, 2>::from_data([[1.0, 0.0], [0.0, 1.0]], &Default::default());
        let opts = InitOptions {
            feature_ordering: Some(vec![1, 0]),
            ..Default::default()
        };
        let out = init_weights_to_match_features(weights(3, 2), f, &opts).unwrap();
        assert_eq!(
            to_f32(out.w_dec, "d").unwrap(),
            vec![0.0, 1.0, 1.0, 0.0, 9.0, 9.0]
        );
        // W_enc [2, 3]: columns 0, 1 are features 1, 0; column 2 untouched.
        assert_eq!(
            to_f32(out.w_enc.unwrap(), "e").unwrap(),
            vec![0.0, 1.0, 7.0, 1.0, 0.0, 7.0]
        );
    }

    #[test]
    fn noise_is_seeded_and_shared_by_encoder_and_decoder() {
        let f = Tensor::<B, 2>::from_data([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], &Default::default());
        let opts = InitOptions {
            noise_level: 0.1,
            seed: Some(5),
            ..Default::default()
        };
        let a = init_weights_to_match_features(weights(1, 3), f.clone(), &opts).unwrap();
        let b = init_weights_to_match_features(weights(1, 3), f, &opts).unwrap();
        let dec = to_f32(a.w_dec, "d").unwrap();
        assert_eq!(dec, to_f32(b.w_dec, "d").unwrap());
        assert_eq!(dec, to_f32(a.w_enc.unwrap(), "e").unwrap());
        assert!(dec[0] != 1.0 && (dec[0] - 1.0).abs() < 0.6);
    }

    #[test]
    fn tied_and_invalid_inputs() {
        let f = Tensor::<B, 2>::from_data([[3.0, 4.0]], &Default::default());
        let tied = SaeWeights {
            w_enc: None,
            w_dec: Tensor::<B, 2>::zeros([2, 2], &Default::default()),
        };
        let out = init_weights_to_match_features(tied.clone(), f.clone(), &InitOptions::default())
            .unwrap();
        assert_eq!(to_f32(out.w_dec, "d").unwrap(), vec![3.0, 4.0, 0.0, 0.0]);
        let bad = InitOptions {
            feature_ordering: Some(vec![0, 0]),
            ..Default::default()
        };
        assert!(init_weights_to_match_features(tied.clone(), f.clone(), &bad).is_err());
        let neg = InitOptions {
            noise_level: -1.0,
            ..Default::default()
        };
        assert!(init_weights_to_match_features(tied, f, &neg).is_err());
    }
}
