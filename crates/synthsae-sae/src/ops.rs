//! Tensor helpers shared by the architectures (shapes in each doc comment).

use burn::module::Param;
use burn::prelude::*;

use crate::config::NormalizeActivations;

/// Row norms of a decoder `[S, D]` → `[S]` (differentiable, not clamped).
pub fn row_norms<B: Backend>(w_dec: Tensor<B, 2>) -> Tensor<B, 1> {
    w_dec.powi_scalar(2).sum_dim(1).sqrt().squeeze_dim(1)
}

/// `mean_rows(Σ_dims d²)` of a difference `[B, D]` → `[1]` (sae-lens's MSE loss).
pub fn sum_sq_mean<B: Backend>(diff: Tensor<B, 2>) -> Tensor<B, 1> {
    diff.powi_scalar(2).sum_dim(1).mean()
}

/// A `[n]` vector broadcast over rows: `[1, n]`.
pub fn row<B: Backend>(v: Tensor<B, 1>) -> Tensor<B, 2> {
    v.unsqueeze_dim(0)
}

/// Mask of the `k` largest entries of each row of `x` (`[B, S]` → `[B, S]`):
/// `x ≥ (k-th largest of its row)`. Ties at the k-th value keep all tied
/// entries (measure zero for real activations); `k ≥ S` keeps everything.
pub fn row_topk_mask<B: Backend>(x: Tensor<B, 2>, k: usize) -> Tensor<B, 2, Bool> {
    let [b, s] = x.dims();
    if k >= s {
        return x.zeros_like().equal_elem(0.0);
    }
    if k == 0 {
        return x.zeros_like().greater_elem(1.0);
    }
    // The k-th value of each row, by linear-time selection on the host
    // (Burn's device `topk` sorts, and has no autodiff implementation).
    let mut values = to_vec(x.clone().detach());
    let kth: Vec<f32> = values
        .chunks_exact_mut(s)
        .map(|r| nth_largest_host(r, k).unwrap_or(f32::NEG_INFINITY))
        .collect();
    let kth = Tensor::<B, 2>::from_data(TensorData::new(kth, [b, 1]), &x.device());
    x.greater_equal(kth.expand([b, s]))
}

/// The `k`-th largest of `key(v)` over `row` (`1 ≤ k ≤ row.len()`), exact,
/// using `scratch` as working memory.
///
/// For `k` much smaller than the row, the `k`-th largest key of the first
/// `16k` entries is a lower bound of the row's (a subset's `k`-th largest
/// never exceeds the whole set's), so only the entries at or above it are
/// selected among: one linear scan instead of a partition of the whole row.
pub fn row_kth_largest(
    row: &[f32],
    k: usize,
    key: impl Fn(f32) -> f32,
    scratch: &mut Vec<f32>,
) -> Option<f32> {
    let head = 16 * k;
    scratch.clear();
    if k == 0 || k > row.len() {
        return None;
    }
    if head >= row.len() / 2 {
        scratch.extend(row.iter().map(|&v| key(v)));
        return nth_largest_host(scratch, k);
    }
    scratch.extend(row[..head].iter().map(|&v| key(v)));
    let lo = nth_largest_host(scratch, k)?;
    scratch.clear();
    scratch.extend(row.iter().map(|&v| key(v)).filter(|&v| v >= lo));
    // At least the head's k entries pass (NaN keys excepted: then select
    // over the whole row, as without the bound).
    if scratch.len() < k {
        scratch.clear();
        scratch.extend(row.iter().map(|&v| key(v)));
    }
    nth_largest_host(scratch, k)
}

/// Value of the `n`-th largest entry of `values` (1-based), found on the host
/// in O(len) (`select_nth_unstable`); `None` if `n` is 0 or exceeds the length.
pub fn nth_largest_host(values: &mut [f32], n: usize) -> Option<f32> {
    if n == 0 || n > values.len() {
        return None;
    }
    let (_, nth, _) = values.select_nth_unstable_by(n - 1, |a, b| b.total_cmp(a));
    Some(*nth)
}

pub use synthsae_host::to_vec;

/// Per-sample input normalisation state, needed to undo it on output.
#[derive(Debug, Clone)]
pub enum NormState<B: Backend> {
    /// Nothing to undo.
    None,
    /// `constant_norm_rescale`: the per-row coefficient `sqrt(D)/‖x‖`, `[B, 1]`.
    Scale(Tensor<B, 2>),
    /// `layer_norm`: row mean and unbiased row std, each `[B, 1]`.
    LayerNorm(Tensor<B, 2>, Tensor<B, 2>),
}

/// Applies a per-sample normalisation (`[B, D]` → `[B, D]`) and returns what
/// is needed to undo it. Modes that the trainer applies (`none`,
/// `expected_average_only_in`, `covariance_whitening`) are the identity here.
pub fn normalize_in<B: Backend>(
    x: Tensor<B, 2>,
    mode: NormalizeActivations,
) -> (Tensor<B, 2>, NormState<B>) {
    let d = x.dims()[1];
    match mode {
        NormalizeActivations::ConstantNormRescale => {
            let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt();
            // `sqrt(D) / norm` as a division, not `norm.recip()`: burn-ndarray's
            // `recip` is a SIMD approximation (~5e-5 relative error).
            let coeff = norm.ones_like().mul_scalar((d as f64).sqrt()) / norm;
            (x * coeff.clone(), NormState::Scale(coeff))
        }
        NormalizeActivations::LayerNorm => {
            let mu = x.clone().mean_dim(1);
            let xc = x - mu.clone();
            let denom = (d.max(2) - 1) as f64;
            let std = xc
                .clone()
                .powi_scalar(2)
                .sum_dim(1)
                .div_scalar(denom)
                .sqrt();
            let out = xc / std.clone().add_scalar(1e-5);
            (out, NormState::LayerNorm(mu, std))
        }
        _ => (x, NormState::None),
    }
}

/// Undoes [`normalize_in`] on an output `[B, D]`.
pub fn normalize_out<B: Backend>(x: Tensor<B, 2>, state: &NormState<B>) -> Tensor<B, 2> {
    match state {
        NormState::None => x,
        NormState::Scale(c) => x / c.clone(),
        NormState::LayerNorm(mu, std) => x * std.clone() + mu.clone(),
    }
}

/// Replaces a parameter's value, keeping its id and gradient requirement
/// (the value is computed from the detached old value, outside any graph).
pub fn map_param<B: Backend, const D: usize>(
    p: Param<Tensor<B, D>>,
    f: impl FnOnce(Tensor<B, D>) -> Tensor<B, D>,
) -> Param<Tensor<B, D>> {
    let require_grad = p.is_require_grad();
    // The result is detached too: `f` may combine the value with other
    // tracked tensors (decoder norms), and only a leaf can require a gradient.
    p.map(|t| f(t.detach()).detach().set_require_grad(require_grad))
}

/// A fresh trainable parameter.
pub fn param<B: Backend, const D: usize>(t: Tensor<B, D>) -> Param<Tensor<B, D>> {
    Param::from_tensor(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    #[test]
    fn row_kth_largest_equals_a_full_selection() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut scratch = Vec::new();
        for len in [1usize, 7, 100, 1000, 5000] {
            // Continuous values, and heavy ties (a few distinct values).
            for ties in [false, true] {
                let row: Vec<f32> = (0..len)
                    .map(|_| {
                        let v: f32 = rng.random_range(-1.0..1.0);
                        if ties {
                            (v * 3.0).round()
                        } else {
                            v
                        }
                    })
                    .collect();
                for k in [1usize, 2, 5, 25, 60, len] {
                    if k > len {
                        continue;
                    }
                    for abs in [false, true] {
                        let key = |v: f32| if abs { v.abs() } else { v };
                        let mut full: Vec<f32> = row.iter().map(|&v| key(v)).collect();
                        let want = nth_largest_host(&mut full, k);
                        let got = row_kth_largest(&row, k, key, &mut scratch);
                        assert_eq!(got, want, "len {len} k {k} abs {abs} ties {ties}");
                    }
                }
            }
        }
        assert_eq!(row_kth_largest(&[1.0], 0, |v| v, &mut scratch), None);
        assert_eq!(row_kth_largest(&[1.0], 2, |v| v, &mut scratch), None);
    }

    #[test]
    fn topk_mask_keeps_k_largest_per_row() {
        let dev = Default::default();
        let x = Tensor::<B, 2>::from_floats([[1.0, 5.0, 3.0, -2.0], [0.5, -1.0, 4.0, 2.0]], &dev);
        let m = row_topk_mask(x, 2)
            .int()
            .into_data()
            .to_vec::<i64>()
            .unwrap();
        assert_eq!(m, vec![0, 1, 1, 0, 0, 0, 1, 1]);
    }

    #[test]
    fn nth_largest() {
        let mut v = vec![3.0, 1.0, 4.0, 1.5, 9.0];
        assert_eq!(nth_largest_host(&mut v, 2), Some(4.0));
        assert_eq!(nth_largest_host(&mut v, 0), None);
        assert_eq!(nth_largest_host(&mut v, 6), None);
    }

    #[test]
    fn normalisations_round_trip() {
        let dev = Default::default();
        let x = Tensor::<B, 2>::from_floats([[1.0, 2.0, 3.0, 6.0], [-1.0, 0.5, 4.0, 2.0]], &dev);
        for mode in [
            NormalizeActivations::ConstantNormRescale,
            NormalizeActivations::LayerNorm,
        ] {
            let (y, st) = normalize_in(x.clone(), mode);
            let back = normalize_out(y.clone(), &st);
            let diff = to_vec(back - x.clone());
            // layer_norm undoes with std, not std + eps (as sae-lens): tiny error.
            assert!(diff.iter().all(|d| d.abs() < 1e-4), "{mode:?}: {diff:?}");
            if mode == NormalizeActivations::ConstantNormRescale {
                let n = to_vec(y.powi_scalar(2).sum_dim(1));
                assert!(n.iter().all(|v| (v - 4.0).abs() < 1e-5));
            }
        }
    }
}
