//! Tensor helpers shared by the architectures (shapes in each doc comment).

use burn::module::Param;
use burn::prelude::*;

use synthsae_host::select::nth_largest;

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
        .map(|r| nth_largest(r, k).unwrap_or(f32::NEG_INFINITY))
        .collect();
    let kth = Tensor::<B, 2>::from_data(TensorData::new(kth, [b, 1]), &x.device());
    x.greater_equal(kth.expand([b, s]))
}

pub use synthsae_host::to_vec;

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
}
